"""Mutation score per module: mutmut 2 over scratch copies of the repository (issue 15).

    python benchmarks/mutation_scores.py [--only losses crop ...] [--work_dir DIR]
    python benchmarks/mutation_scores.py --report_only [--show_survivors]

Each module group runs in its own copy (``git archive HEAD`` into WORK_DIR/<group>; mutmut
writes every mutant into the copy's source file, never into the working tree) against the test
files listed for it in GROUPS. The runner is ``pytest -x --ff``: it stops at the first failing
test and runs the last failures first, so neighbouring mutants are usually killed by the test
that killed the previous one. A persistent JAX compilation cache shared by the copies makes an
unchanged function's test compile once (about 3x faster test files on the 2-core CPU).

A rerun resumes: the copy's ``tests/`` is refreshed from HEAD, killed mutants stay killed and
only survivors and untested mutants run again. The score counts killed, timed-out and
"suspicious" (killed, but slowly) mutants over all mutants less the equivalent ones listed in
EQUIVALENT (a mutant that cannot change behaviour, with the reason).
"""

import argparse
import functools
import gzip
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile

import mutmut

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# group: (files to mutate, test files in the order they run)
GROUPS = {
    "losses": (["hand_jax/losses.py"], ["tests/test_losses.py"]),
    "crop": (
        ["hand_jax/data/crop.py"],
        ["tests/data/test_schema_crop.py", "tests/data/test_view_rotation.py"],
    ),
    "soft": (["hand_jax/render/soft.py"], ["tests/render/test_soft.py"]),
    "geometry": (
        ["hand_jax/geometry/rotations.py", "hand_jax/geometry/kinematics.py"],
        ["tests/test_kinematics.py", "tests/test_rotations.py"],
    ),
    "mano": (
        ["hand_jax/mano.py"],
        ["tests/test_mano_args.py", "tests/test_mano.py", "tests/test_mano_files.py",
         "tests/test_mano_pkl.py"],
    ),
    "mano_pkl": (["hand_jax/mano_pkl.py"], ["tests/test_mano_pkl.py", "tests/test_mano_files.py"]),
    "refine_energy": (
        ["hand_jax/refine/energy.py"],
        ["tests/refine/test_energy_parts.py", "tests/refine/test_energy_reference.py"],
    ),
    "refine_optimize": (
        ["hand_jax/refine/optimize.py"],
        ["tests/refine/test_refine_loop.py", "tests/refine/test_precondition.py",
         "tests/test_refine.py"],
    ),
    "metrics": (["hand_jax/eval/metrics.py"], ["tests/eval/test_metrics.py"]),
    "refine_io": (
        ["hand_jax/refine/io.py"],
        ["tests/refine/test_evidence_format.py", "tests/test_refine_io.py",
         "tests/refine/test_job_hardening.py"],
    ),
}  # fmt: skip

# (file, the mutated line as written in the source, stripped; mutmut's index on that line): why
# the mutant cannot change behaviour. Kept small and specific: a listed line that changes stops
# matching and its mutants count again.
_DIAG = (
    "diag = jnp.stack([1 + trace, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22],"
    " -1)"
)

# fmt: off
_EQUIVALENT = [
    ("hand_jax/losses.py", "_EPS = 1e-12", 0,
     "safe-norm epsilon 2e-12: a norm changes by < 1e-6"),
    ("hand_jax/data/crop.py", "points = points[np.all(np.isfinite(points), axis=-1)]", 0,
     "axis=+1 is axis=-1 on the [N, 2] points"),
    ("hand_jax/data/crop.py", "if sin < 1e-12:", 0,
     "<= at the zero-axis threshold: both branches give the identity to 1e-12 there"),
    ("hand_jax/data/crop.py", "if sin < 1e-12:", 1,
     "a 2e-12 zero-axis threshold: both branches give the identity to 1e-12 there"),
    ("hand_jax/data/crop.py",
     "cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])", 1,
     "k[2] is exactly 0 (the axis is ray x +z), so its sign cannot matter"),
    ("hand_jax/data/crop.py", "flat = src.reshape(src.shape[0], src.shape[1], -1)", 3,
     "numpy reads any negative size in reshape as the unknown one: -2 is -1"),
    ("hand_jax/data/crop.py",
     "grid = (np.arange(out_size)[:, None] + offsets[None, :]).reshape(-1)  # [S * n]", 2,
     "numpy reads any negative size in reshape as the unknown one: -2 is -1"),
    ("hand_jax/data/crop.py",
     "out = out.reshape(out_size, n, out_size, n, -1).mean(axis=(1, 3))", 1,
     "numpy reads any negative size in reshape as the unknown one: -2 is -1"),
    ("hand_jax/data/crop.py", "return np.clip(np.rint(x), 0, 255).astype(np.uint8)", 1,
     "clip at 256: bilinear averages of uint8 images never exceed 255"),
    ("hand_jax/data/crop.py",
     "n = int(min(4, np.ceil(shrink - 0.5))) if antialias and shrink > 1.5 else 1", 3,
     ">= 1.5: at a shrink of exactly 1.5 both rules give one sample (ceil(1.0) = 1)"),
    ("hand_jax/render/soft.py", "if verts_px.ndim != 2 or verts_px.shape[-1] not in (2, 3):", 2,
     "shape[+1] is shape[-1] once ndim == 2 has been checked"),
    ("hand_jax/render/soft.py", "if faces.ndim != 2 or faces.shape[-1] != 3 or not "
     "jnp.issubdtype(faces.dtype, jnp.integer):", 2,
     "shape[+1] is shape[-1] once ndim == 2 has been checked"),
    ("hand_jax/render/soft.py", "if verts_px.shape[-1] == 3:", 0,
     "shape[+1] is shape[-1] once ndim == 2 has been checked"),
    ("hand_jax/render/soft.py", "z = tri[..., 2]", 0,
     "tri[..., 3] on a last axis of 3: JAX clamps a static out-of-range index to 2"),
    ("hand_jax/render/soft.py", "valid &= jnp.all(z > near, axis=-1)", 3,
     "axis=+1 is axis=-1 on the [F, 3] depths"),
    ("hand_jax/render/soft.py", "chunk: int = 1024,", 0,
     "the chunk only splits the work: every chunk size gives the same image"),
    ("hand_jax/render/soft.py", "closer = cur[0] < best[0]", 1,
     "on a tie of two edges' distances either is a valid subgradient; at a shared end point "
     "both give the same one"),
    ("hand_jax/render/soft.py",
     "best = tuple(jnp.where(closer, c, b) for c, b in zip(cur, best, strict=True))", 0,
     "strict=False: the two tuples always have five members"),
    ("hand_jax/render/soft.py",
     "c = -2.0 * g_x * sign / sigma  # d d2 / d a = -2 (1 - t) r,  d d2 / d b = -2 t r", 3,
     "g_x / sign for g_x * sign: sign is +-1"),
    ("hand_jax/mano.py", "ids = tuple(int(i) for i in np.asarray(tips).reshape(-1))", 1,
     "numpy reads any negative size in reshape as the unknown one: -2 is -1"),
    ("hand_jax/mano.py",
     'fields = {k: jnp.asarray(v, dtype=float) for k, v in a.items() if k != "faces"}', 1,
     "faces converted to float are overwritten by the int32 faces on the next line"),
    ("hand_jax/geometry/rotations.py", _DIAG, 0,
     "a diagonal term raised by 1 wins only if it is >= max - 1 >= 1/3 (the four sum to 4): "
     "the branch it picks is still well conditioned"),
    ("hand_jax/geometry/rotations.py", _DIAG, 2,
     "a diagonal term raised by 1 wins only if it is >= max - 1 >= 1/3 (the four sum to 4): "
     "the branch it picks is still well conditioned"),
    ("hand_jax/geometry/rotations.py", _DIAG, 6,
     "a diagonal term raised by 1 wins only if it is >= max - 1 >= 1/3 (the four sum to 4): "
     "the branch it picks is still well conditioned"),
    ("hand_jax/geometry/rotations.py", _DIAG, 10,
     "a diagonal term raised by 1 wins only if it is >= max - 1 >= 1/3 (the four sum to 4): "
     "the branch it picks is still well conditioned"),
    ("hand_jax/geometry/rotations.py",
     "q = jnp.take_along_axis(candidates, best[..., None, None], axis=-2)[..., 0, :]", 2,
     "[..., 1, :] on an axis of 1: JAX clamps the index to 0"),
    ("hand_jax/mano.py", "feature_signs = np.tile(np.outer(m, m).reshape(-1), NUM_JOINTS - 1)", 1,
     "numpy reads any negative size in reshape as the unknown one: -2 is -1"),
    ("hand_jax/mano.py", "posedirs=_signed(model.posedirs, m[:, None] * feature_signs),", 0,
     "m / feature_signs for m * feature_signs: the signs are +-1"),
    ("hand_jax/geometry/rotations.py", "return jnp.where(q[..., :1] < 0, -q, q)", 1,
     "<= 0 also negates a w = 0 quaternion (a half turn): q and -q are both on the edge of the "
     "w >= 0 hemisphere"),
    ("hand_jax/geometry/rotations.py",
     "q = jnp.where(quaternion[..., :1] < 0, -quaternion, quaternion)", 1,
     "<= 0 also negates a half turn: angle pi about the negated axis is the same rotation"),
    ("hand_jax/geometry/rotations.py", "small = n_sq < _SMALL_ANGLE_SQ", 0,
     "<= at the series threshold, where series and closed form agree to 1e-16"),
    ("hand_jax/geometry/rotations.py", "small = theta_sq < _SMALL_ANGLE_SQ", 0,
     "<= at the series threshold, where series and closed form agree to 1e-16"),
    ("hand_jax/mano.py",
     'version = _scalar(d, "format_version", path, "iu", "an integer scalar")', 1,
     "dtype kinds 'XXiuXX' still hold 'i' and 'u', and no dtype has kind 'X'"),
    ("hand_jax/geometry/kinematics.py", "@functools.lru_cache(maxsize=64)", 0,
     "a cache of 65 trees instead of 64"),
    ("hand_jax/geometry/kinematics.py", "@functools.lru_cache(maxsize=64)", 1,
     "no cache: the levels are recomputed, equal"),
    ("hand_jax/geometry/kinematics.py", "depth = [-1] * num", 1,
     "-2 marks an unvisited joint as well as -1 (the test is depth < 0)"),
    ("hand_jax/geometry/kinematics.py", "while k != -1 and depth[k] < 0:", 3,
     "<= 0 revisits depth-0 roots, which get depth 0 again"),
    ("hand_jax/geometry/kinematics.py", "while k != -1 and depth[k] < 0:", 4,
     "< 1 is <= 0 on integers: roots are revisited and get depth 0 again"),
    ("hand_jax/geometry/rotations.py", "eps = jnp.finfo(rot6d.dtype).eps ** 2", 1,
     "a degenerate-vector floor of eps^3 instead of eps^2: both only guard |a| ~ 0"),
    ("hand_jax/mano.py", 'side = _scalar(d, "side", path, "U", f"one of {SIDES}")', 1,
     "dtype kinds 'XXUXX' still hold 'U', and no dtype has kind 'X'"),
    ("hand_jax/mano.py", 'if tips.dtype.kind not in "iu":', 1,
     "dtype kinds 'XXiuXX' still hold 'i' and 'u', and no dtype has kind 'X'"),
    ("hand_jax/geometry/kinematics.py",
     "return m[..., 0] * v[..., 0:1] + m[..., 1] * v[..., 1:2] + m[..., 2] * v[..., 2:3]", 13,
     "the slice 2:4 of an axis of 3 is 2:3"),
    ("hand_jax/geometry/kinematics.py", "flat = dirs.reshape(-1, dirs.shape[-1])  # [3 V, N]", 1,
     "reshape reads any negative size as the unknown one: -2 is -1"),
    ("hand_jax/geometry/kinematics.py", "prev_pos = {}", 0,
     "the first level (the roots) never reads prev_pos"),
    ("hand_jax/refine/energy.py",
     "kp_ok = jnp.all(jnp.isfinite(evidence.keypoints_2d), axis=-1) & jnp.isfinite(", 0,
     "axis=+1 is axis=-1 on the [21, 2] keypoints"),
    ("hand_jax/refine/io.py", 'if k == "ids" and v.dtype.kind in "US":', 3,
     "dtype kinds 'XXUSXX' still hold 'U' and 'S', and no dtype has kind 'X'"),
    ("hand_jax/render/soft.py", "if not isinstance(capacity, int) or capacity <= 0:", 1,
     "capacity 0 is then refused by binning.bin_faces with the same message"),
    ("hand_jax/geometry/rotations.py",
     "sinc_series = 1.0 - theta_sq / 6.0 + sq2 / 120.0 - sq3 / 5040.0", 9,
     "5041 for 5040 changes the series by < 4e-17 below the threshold: under float64's eps"),
    ("hand_jax/geometry/rotations.py",
     "cosc_series = 0.5 - theta_sq / 24.0 + sq2 / 720.0 - sq3 / 40320.0", 9,
     "40321 for 40320 changes the series by < 1e-17 below the threshold: under float64's eps"),
    ("hand_jax/refine/energy.py", "verts_px = verts_px.at[:, :2].multiply(factor)", 0,
     "also scaling the depth column by M / S > 0: the rasterizer only uses its sign (near = 0)"),
    ("hand_jax/refine/energy.py",
     "return sum(jnp.sum((x - y) ** 2) for x, y in zip(a, b, strict=True))", 3,
     "strict=False: both are HandParams of four fields"),
    ("hand_jax/refine/energy.py",
     "silhouette_fn=silhouette_fn, mask_size=evidence.mask.shape[-1],", 0,
     "shape[+1] of a square [M, M] mask is shape[-1]"),
    ("hand_jax/refine/energy.py",
     "silhouette_fn=silhouette_fn, mask_size=evidence.mask.shape[-1],", 1,
     "shape[-2] of a square [M, M] mask is shape[-1]"),
    ("hand_jax/refine/io.py", 'if v.dtype.kind not in "biuf":', 1,
     "dtype kinds 'XXbiufXX' still hold b, i, u and f, and no dtype has kind 'X'"),
    ("hand_jax/refine/io.py", "same = zip(shape, value.shape, strict=False)", 0,
     "strict=True: the lengths are compared (ndim) before the zip is consumed"),
    ("hand_jax/refine/io.py", "if mask.shape[1] != mask.shape[2] or mask.shape[1] < 1:", 3,
     "shape[2] is shape[1] once they were found equal"),
    ("hand_jax/geometry/kinematics.py", "x, y, z = verts[0:1], verts[1:2], verts[2:3]", 5,
     "the slice 2:4 of an axis of 3 is 2:3"),
    ("hand_jax/geometry/kinematics.py",
     "return blended[0:3] * x + blended[3:6] * y + blended[6:9] * z + blended[9:12]", 13,
     "the slice 9:13 of an axis of 12 is 9:12"),
    ("hand_jax/refine/energy.py",
     "kp_err = jnp.sum((kp2d - kp) ** 2, axis=-1) / float(image_size) ** 2", 3,
     "axis=+1 is axis=-1 on the [21, 2] keypoints"),
    ("hand_jax/mano.py", "return x * jnp.asarray(signs, dtype=x.dtype)", 0,
     "x / signs for x * signs: the signs are +-1"),
    ("hand_jax/mano.py", "_ARRAY_FIELDS = tuple(mano_pkl.field_shapes(0))", 0,
     "field_shapes(1): only the keys are used, and they do not depend on V"),
    ("hand_jax/mano.py", 'num_verts = property(lambda self: self.v_template.shape[0], doc="V")', 2,
     "a property's docstring"),
    ("hand_jax/mano.py", 'num_betas = property(lambda self: self.shapedirs.shape[-1], doc="S")', 3,
     "a property's docstring"),
    ("hand_jax/geometry/rotations.py",
     "tiny = norm_sq < jnp.finfo(quaternion.dtype).tiny * 1e4", 0,
     "<= at the zero-quaternion threshold (1e4 x the smallest normal float)"),
    ("hand_jax/geometry/rotations.py",
     "tiny = norm_sq < jnp.finfo(quaternion.dtype).tiny * 1e4", 2,
     "a zero-quaternion threshold of 10001 x the smallest normal float instead of 1e4"),
]
# fmt: on
EQUIVALENT = {(f, line, i): why for f, line, i, why in _EQUIVALENT}

KILLED = ("ok_killed", "bad_timeout", "ok_suspicious")
ENV = {
    "JAX_COMPILATION_CACHE_DIR": "",  # set in main() under --work_dir
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
}


def _git_files(dest: str, paths: list[str]) -> None:
    """Extract PATHS (everything when empty) of HEAD into DEST."""
    archive = subprocess.run(
        ["git", "-C", ROOT, "archive", "HEAD", *paths], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", dest], input=archive.stdout, check=True)


# Each group's mutmut cache, kept in the repository (gzip) so that a run on another machine or
# a later day resumes instead of starting over: hours of CPU on 2 cores.
STATE_DIR = os.path.join(ROOT, "benchmarks", "mutation_state")


def load_state(copy: str, group: str) -> None:
    """Seed a copy without a mutmut cache from the saved one (statuses keyed by line text)."""
    saved, db = os.path.join(STATE_DIR, f"{group}.sqlite.gz"), os.path.join(copy, ".mutmut-cache")
    if os.path.exists(saved) and not os.path.exists(db):
        with gzip.open(saved, "rb") as f, open(db, "wb") as out:
            shutil.copyfileobj(f, out)


def save_state(copy: str, group: str) -> None:
    """Write a copy's mutmut cache to STATE_DIR (temporary sibling, then rename)."""
    db = os.path.join(copy, ".mutmut-cache")
    if not os.path.exists(db):
        return
    os.makedirs(STATE_DIR, exist_ok=True)
    saved = os.path.join(STATE_DIR, f"{group}.sqlite.gz")
    snapshot = saved + ".sqlite.tmp"
    with sqlite3.connect(db) as src, sqlite3.connect(snapshot) as dest:
        src.backup(dest)  # consistent even while a run writes to it
    with open(snapshot, "rb") as f, gzip.GzipFile(saved + ".tmp", "wb", mtime=0) as out:
        shutil.copyfileobj(f, out)
    os.remove(snapshot)
    os.replace(saved + ".tmp", saved)


def prepare(copy: str, sources: list[str], group: str) -> None:
    """A fresh copy of HEAD (seeded with the saved cache), or an old one with HEAD's tests and
    clean sources."""
    if not os.path.isdir(copy):
        os.makedirs(copy)
        _git_files(copy, [])
        load_state(copy, group)
        return
    # A stopped run can leave a mutant written into a source file: restore them all.
    _git_files(copy, ["tests", *sources])
    for source in sources:
        if os.path.exists(os.path.join(copy, source + ".bak")):
            os.remove(os.path.join(copy, source + ".bak"))


def retry_survivors(copy: str) -> None:
    """Mark survivors untested (after changing the runner's test files, not their content)."""
    db = os.path.join(copy, ".mutmut-cache")
    if os.path.exists(db):
        with sqlite3.connect(db) as con:
            con.execute("update Mutant set status = 'untested' where status = 'bad_survived'")


def run_group(group: str, work_dir: str, retry: bool) -> int:
    sources, tests = GROUPS[group]
    copy = os.path.join(work_dir, group)
    prepare(copy, sources, group)
    if retry:
        retry_survivors(copy)
    # mutmut 2 counts only exit status 1 as a kill: a mutant that breaks an import (pytest's 2)
    # would count as a survivor, so every failure becomes 1 (``sh -c``: mutmut runs the baseline
    # without a shell and the mutants with one).
    pytest = " ".join([sys.executable, "-m", "pytest", "-x", "-q", "--ff", *tests])
    runner = f"sh -c '{pytest} || exit 1'"
    cmd = ["mutmut", "run", "--paths-to-mutate", ",".join(sources), "--runner", runner]
    print(f"[{group}] {' '.join(cmd[:4])} (in {copy})", flush=True)
    done = subprocess.run([*cmd, "--no-progress"], cwd=copy, env={**os.environ, **ENV})
    prepare(copy, sources, group)
    save_state(copy, group)
    return done.returncode


def mutants(copy: str) -> list[tuple[str, str, int, int, str, int]]:
    """(file, line text, line number, index, status, id) of every mutant in a copy's cache, or
    in the saved state of the group when there is no copy (a fresh checkout)."""
    db = os.path.join(copy, ".mutmut-cache")
    with tempfile.TemporaryDirectory() as tmp:
        if not os.path.exists(db):
            load_state(tmp, os.path.basename(copy))
            db = os.path.join(tmp, ".mutmut-cache")
            if not os.path.exists(db):
                return []
        with sqlite3.connect(db) as con:
            rows = con.execute(
                'select s.filename, l.line, l.line_number, m."index", m.status, m.id from Mutant m'
                " join Line l on m.line = l.id join SourceFile s on l.sourcefile = s.id"
            ).fetchall()
    return [(f, text, n + 1, i, status, key) for f, text, n, i, status, key in rows]


@functools.cache
def _head_source(path: str) -> str:
    return subprocess.run(
        ["git", "-C", ROOT, "show", f"HEAD:{path}"], capture_output=True, text=True, check=True
    ).stdout


@functools.cache
def mutated_line(path: str, text: str, line_number: int, index: int) -> str:
    """The line as the mutant writes it, from HEAD's source (in-process: ``mutmut show`` would
    rewrite the line table of a copy whose source holds a mutant while a run is going on). The
    line is looked up by its text, nearest to its old number, since HEAD may have moved it."""
    source = _head_source(path)
    found = [k for k, line in enumerate(source.splitlines()) if line == text]
    if not found:
        return "(the line has changed since)"
    k = min(found, key=lambda k: abs(k - (line_number - 1)))
    mutation = mutmut.RelativeMutationID(text, index, k)
    new, _ = mutmut.mutate(mutmut.Context(source=source, mutation_id=mutation, filename=path))
    return new.splitlines()[k].strip()


# JAX clamps an out-of-range static index, so ``x[..., 3]`` on an axis of 3 reads ``x[..., 2]``.
JAX_FILES = {
    "hand_jax/geometry/rotations.py", "hand_jax/geometry/kinematics.py",
    "hand_jax/render/soft.py", "hand_jax/losses.py", "hand_jax/refine/energy.py",
}  # fmt: skip


def clamped_index(row) -> bool:
    """A surviving mutant of a JAX module that only turns a subscript's 2 into 3 (every such
    line indexes an axis of 3: xyz or a 3 x 3 matrix; --show_survivors lists them to check)."""
    path, text, line_number, index, status, _ = row
    if status != "bad_survived" or path not in JAX_FILES:
        return False
    old, new = text.strip(), mutated_line(path, text, line_number, index)
    diff = [k for k in range(len(old)) if len(new) == len(old) and old[k] != new[k]]
    if len(diff) != 1 or (old[diff[0]], new[diff[0]]) != ("2", "3"):
        return False
    k = diff[0]
    return (
        old.rfind("[", 0, k) > old.rfind("]", 0, k) and old[k - 1] in " [," and old[k + 1] in "],"
    )


def is_equivalent(row) -> bool:
    return (row[0], row[1].strip(), row[3]) in EQUIVALENT or clamped_index(row)


def score(rows) -> dict:
    equivalent = [r for r in rows if is_equivalent(r)]
    counted = [r for r in rows if r not in equivalent]
    killed = sum(r[4] in KILLED for r in counted)
    untested = sum(r[4] in ("untested", "skipped") for r in counted)
    survived = [r for r in counted if r[4] == "bad_survived"]
    tested = len(counted) - untested
    return {
        "mutants": len(rows), "equivalent": len(equivalent), "killed": killed,
        "survived": survived, "untested": untested,
        "score": killed / tested if tested else float("nan"),
    }  # fmt: skip


def report(work_dir: str, groups: list[str], show_survivors: bool) -> bool:
    print("| group | mutants | equivalent | killed | survived | not run | score |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    ok = True
    for group in groups:
        s = score(mutants(os.path.join(work_dir, group)))
        ok &= s["score"] >= 0.85 and not s["untested"]
        print(
            f"| {group} | {s['mutants']} | {s['equivalent']} | {s['killed']} | "
            f"{len(s['survived'])} | {s['untested']} | {100 * s['score']:.0f}% |"
        )
    if show_survivors:
        for group in groups:
            copy = os.path.join(work_dir, group)
            for f, text, n, i, status, _ in mutants(copy):
                row = (f, text, n, i, status, _)
                if status == "bad_survived" and (f, text.strip(), i) not in EQUIVALENT:
                    rule = "  (equivalent: clamped index)" if clamped_index(row) else ""
                    print(
                        f"{f}:{n} #{i}: {text.strip()}\n    -> {mutated_line(f, text, n, i)}{rule}"
                    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=list(GROUPS), choices=list(GROUPS))
    parser.add_argument("--work_dir", default="/tmp/hand_jax_mutation")
    parser.add_argument("--report_only", action="store_true")
    parser.add_argument("--show_survivors", action="store_true")
    parser.add_argument(
        "--save_state", action="store_true", help="with --report_only: save the caches now"
    )
    parser.add_argument(
        "--retry_survivors", action="store_true", help="run survivors again with the same tests"
    )
    args = parser.parse_args()
    work_dir = os.path.abspath(args.work_dir)
    ENV["JAX_COMPILATION_CACHE_DIR"] = os.path.join(work_dir, "jax_cache")
    print(f"load average: {os.getloadavg()}")
    if not args.report_only:
        for group in args.only:
            run_group(group, work_dir, args.retry_survivors)
    elif args.save_state:
        for group in args.only:
            save_state(os.path.join(work_dir, group), group)
    return 0 if report(work_dir, args.only, args.show_survivors) else 1


if __name__ == "__main__":
    sys.exit(main())
