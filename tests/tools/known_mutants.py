"""Do the tests catch the one-line bugs that once survived them? (issue 15's list)

Each mutant is a one-line change to a copy of the repository (``git archive HEAD`` into a
temporary folder, so the working tree is never touched); the module's test files run against it
and the mutant counts as killed when they fail. Prints a table; exits 1 if any mutant survives.

    python tests/tools/known_mutants.py [--only NAME ...]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

from mutation_scores import _git_files as copy_head  # this script's folder is on sys.path

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# name: (file, original text, mutated text, test files)
MUTANTS = {
    "pose prior sign": (
        "hand_jax/refine/energy.py", "(params.pose - pose_mean) ** 2",
        "(params.pose + pose_mean) ** 2",
        ["tests/refine/test_energy_reference.py"],
    ),
    "proximity abs, not squared": (
        "hand_jax/refine/energy.py", "jnp.sum((x - y) ** 2)", "jnp.sum(jnp.abs(x - y))",
        ["tests/refine/test_energy_reference.py"],
    ),
    "BCE terms swapped": (
        "hand_jax/refine/energy.py", "-(mask * jnp.log(a) + (1.0 - mask) * jnp.log1p(-a))",
        "-((1.0 - mask) * jnp.log(a) + mask * jnp.log1p(-a))",
        ["tests/refine/test_energy_reference.py"],
    ),
    "uint8 mask not scaled": (
        "hand_jax/refine/io.py", "peak = 1.0 if mask.size and mask.max() <= 1 else 255.0",
        "peak = 1.0", ["tests/test_refine_io.py", "tests/refine/test_job_hardening.py"],
    ),
    "d/d sigma sign": (
        "hand_jax/render/soft.py", "g_sigma = jnp.sum(g_x * (-x / sigma))",
        "g_sigma = jnp.sum(g_x * (x / sigma))", ["tests/render/test_soft.py"],
    ),
    "bilinear x/y swapped": (
        "hand_jax/data/crop.py", "fx, fy = (x - x0)[..., None], (y - y0)[..., None]",
        "fy, fx = (x - x0)[..., None], (y - y0)[..., None]", ["tests/data/test_schema_crop.py"],
    ),
    "anti-aliasing off": (
        "hand_jax/data/crop.py", "if antialias and shrink > 1.5 else 1", "if False else 1",
        ["tests/data/test_schema_crop.py"],
    ),
    "crop masks dilated": (
        "hand_jax/data/crop.py", "(warped >= 0.5)", "(warped > 0.0)",
        ["tests/data/test_schema_crop.py"],
    ),
    "6D orthogonality dropped": (
        "hand_jax/train/losses.py", " + jnp.dot(a, b) ** 2", "", ["tests/test_losses.py"],
    ),
    "2D scale H/W swapped": (
        "hand_jax/train/losses.py", "jnp.asarray([image_size[1], image_size[0]]",
        "jnp.asarray([image_size[0], image_size[1]]", ["tests/test_losses.py"],
    ),
    "kintree child order ignored": (
        "hand_jax/mano_pkl.py", "check_parents(parents[order], path", "check_parents(parents, path",
        ["tests/test_mano_pkl.py"],
    ),
    "F-score < vs <=": (
        "hand_jax/eval/metrics.py", "precision = float(np.mean(d_pred < t))",
        "precision = float(np.mean(d_pred <= t))", ["tests/eval/test_metrics.py"],
    ),
}  # fmt: skip


def run_mutant(name: str) -> tuple[str, float]:
    """Apply one mutant in a fresh copy and run its tests; 'killed' or 'SURVIVED'."""
    path, old, new, tests = MUTANTS[name]
    with tempfile.TemporaryDirectory() as tmp:
        copy_head(tmp, [])
        target = os.path.join(tmp, path)
        with open(target) as f:
            text = f.read()
        if text.count(old) != 1:
            raise SystemExit(f"{name}: {old!r} occurs {text.count(old)} times in {path}")
        with open(target, "w") as f:
            f.write(text.replace(old, new))
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
            cwd=tmp, capture_output=True,
        )  # fmt: skip
        return ("killed" if done.returncode != 0 else "SURVIVED"), time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=list(MUTANTS))
    args = parser.parse_args()
    print(f"load average: {os.getloadavg()}")
    print("| mutant | file | tests | result | seconds |\n|---|---|---|---|---|")
    survived = 0
    for name in args.only:
        result, seconds = run_mutant(name)
        survived += result != "killed"
        path, _, _, tests = MUTANTS[name]
        names = ", ".join(os.path.basename(t) for t in tests)
        print(f"| {name} | {path} | {names} | {result} | {seconds:.0f} |", flush=True)
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
