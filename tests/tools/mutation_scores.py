"""Mutation score per module: mutmut 2 over scratch copies of the repository (issue 15).

    python tests/tools/mutation_scores.py [--only losses crop ...] [--work_dir DIR]
    python tests/tools/mutation_scores.py --report_only [--show_survivors]

Each module group runs in its own copy (``git archive HEAD`` into WORK_DIR/<group>; mutmut
writes every mutant into the copy's source file, never into the working tree) against the test
files listed for it in GROUPS. The runner is ``pytest -x --ff``: it stops at the first failing
test and runs the last failures first, so neighbouring mutants are usually killed by the test
that killed the previous one. A persistent JAX compilation cache shared by the copies makes an
unchanged function's test compile once (about 3x faster test files on the 2-core CPU).

A rerun resumes: the copy's ``tests/``, ``hand_jax/`` and ``launch/`` are refreshed from HEAD,
killed mutants stay killed and untested mutants run (``--retry_survivors``: the survivors not
listed as equivalent too). The score counts killed, timed-out and
"suspicious" (killed, but slowly) mutants over all mutants less the equivalent ones listed in
EQUIVALENT (tests/tools/mutation_equivalents.py: mutants that cannot change behaviour, with
the reason). Each group's mutmut cache is saved in tests/tools/mutation_state/ after a run:
a fresh checkout resumes from it, and ``--report_only`` prints the table from it.
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
from mutation_equivalents import EQUIVALENT  # this script's folder is on sys.path

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# group: (files to mutate, test files in the order they run)
GROUPS = {
    "losses": (["hand_jax/train/losses.py"], ["tests/test_losses.py"]),
    "crop": (
        ["hand_jax/data/crop.py"],
        ["tests/data/test_schema_crop.py", "tests/data/test_view_rotation.py"],
    ),
    "soft": (["hand_jax/render/soft.py"], ["tests/render/test_soft.py"]),
    "render_binning": (
        ["hand_jax/render/binning.py", "hand_jax/render/pairs.py"],
        ["tests/render/test_binning.py", "tests/render/test_pairs.py", "tests/render/test_soft.py"],
    ),
    "render_primitives": (
        ["hand_jax/render/primitives.py", "hand_jax/render/dense.py"],
        ["tests/render/test_primitives.py", "tests/render/test_soft.py",
         "tests/render/test_aggregate.py"],
    ),
    "render_aggregate": (["hand_jax/render/aggregate.py"], ["tests/render/test_aggregate.py"]),
    "render_hard": (["hand_jax/render/hard.py"], ["tests/render/test_hard.py"]),
    "geometry": (
        ["hand_jax/geometry/rotations.py", "hand_jax/geometry/kinematics.py"],
        ["tests/test_kinematics.py", "tests/test_rotations.py"],
    ),
    "mano": (
        ["hand_jax/mano.py"],
        ["tests/test_mano_args.py", "tests/test_mano.py", "tests/test_mano_files.py",
         "tests/test_mano_pkl.py"],
    ),
    "mano_pkl": (
        ["hand_jax/mano_pkl.py"],
        ["tests/test_mano_pkl_standins.py", "tests/test_mano_pkl_messages.py",
         "tests/test_mano_files.py", "tests/test_mano_pkl.py"],
    ),
    "refine_energy": (
        ["hand_jax/refine/energy.py"],
        ["tests/refine/test_energy_parts.py", "tests/refine/test_energy_reference.py"],
    ),
    "refine_optimize": (
        ["hand_jax/refine/optimize.py"],
        ["tests/refine/test_refine_loop.py", "tests/refine/test_precondition.py",
         "tests/test_refine.py", "tests/test_refine_sharded.py"],
    ),
    "metrics": (["hand_jax/eval/metrics.py"], ["tests/eval/test_metrics.py"]),
    "refine_io": (
        ["hand_jax/refine/io.py"],
        ["tests/refine/test_evidence_format.py", "tests/test_refine_io.py",
         "tests/refine/test_job_hardening.py", "tests/refine/test_synthetic_problems.py"],
    ),
    "refine_job": (
        ["hand_jax/refine/job.py"],
        ["tests/refine/test_job_visuals.py", "tests/refine/test_job_hardening.py",
         "tests/test_refine_io.py", "tests/refine/test_job_outputs.py"],
    ),
    "refine_viz": (["hand_jax/refine/viz.py"], ["tests/refine/test_viz.py"]),
}  # fmt: skip

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
STATE_DIR = os.path.join(ROOT, "tests", "tools", "mutation_state")


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
    # A stopped run can leave a mutant written into a source file: restore them all, with the
    # rest of the package and the tests as they are at HEAD.
    _git_files(copy, ["tests", "hand_jax", "launch"])
    for source in sources:
        if os.path.exists(os.path.join(copy, source + ".bak")):
            os.remove(os.path.join(copy, source + ".bak"))


def retry_survivors(copy: str) -> None:
    """Mark the survivors that are not listed as equivalent untested, to run them again (after
    adding tests that target them)."""
    db = os.path.join(copy, ".mutmut-cache")
    if os.path.exists(db):
        rows = [r for r in mutants(copy) if r[4] == "bad_survived" and not is_equivalent(r)]
        with sqlite3.connect(db) as con:
            con.executemany(
                "update Mutant set status = 'untested' where id = ?", [(r[5],) for r in rows]
            )


def _untested_ids(copy: str) -> list[int]:
    with sqlite3.connect(os.path.join(copy, ".mutmut-cache")) as con:
        return [k for (k,) in con.execute("select id from Mutant where status = 'untested'")]


def run_group(group: str, work_dir: str, retry: bool) -> int:
    sources, tests = GROUPS[group]
    copy = os.path.join(work_dir, group)
    prepare(copy, sources, group)
    if retry:
        retry_survivors(copy)
    # mutmut 2 counts only exit status 1 as a kill: a mutant that breaks an import (pytest's 2)
    # would count as a survivor, so every failure becomes 1 (``sh -c``: mutmut runs the baseline
    # without a shell and the mutants with one).
    # -o addopts= drops the project's -m 'not slow': slow tests of these files kill mutants too.
    pytest = " ".join(
        [sys.executable, "-m", "pytest", "-o", "addopts=", "-x", "-q", "--ff", *tests]
    )
    runner = f"sh -c '{pytest} || exit 1'"
    cmd = ["mutmut", "run", "--paths-to-mutate", ",".join(sources), "--runner", runner]
    print(f"[{group}] {' '.join(cmd[:4])} (in {copy})", flush=True)
    done = subprocess.run([*cmd, "--no-progress"], cwd=copy, env={**os.environ, **ENV})
    # mutmut 2 keys a mutant by its line's text: of two identical lines (the same `raise` in two
    # functions) a plain run leaves the second one's mutants untested. Run them by id.
    for key in _untested_ids(copy):
        subprocess.run([*cmd[:2], str(key), *cmd[2:], "--no-progress"], cwd=copy,
                       env={**os.environ, **ENV})  # fmt: skip
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
    "hand_jax/render/soft.py", "hand_jax/train/losses.py", "hand_jax/refine/energy.py",
    "hand_jax/render/binning.py", "hand_jax/render/pairs.py", "hand_jax/render/primitives.py",
    "hand_jax/render/dense.py", "hand_jax/render/aggregate.py", "hand_jax/render/hard.py",
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
