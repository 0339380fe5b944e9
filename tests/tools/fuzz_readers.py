"""Fuzz every file reader with thousands of cases and tabulate the outcomes.

    python tests/tools/fuzz_readers.py [--examples 2000] [--readers mano_npz,rhd_pickle] [--seed 0]

The targets, mutations and the property are those of ``tests/fuzz/readers.py`` (the quick
profile runs in the default test suite: ``tests/fuzz/test_readers_fuzz.py``). Each reader runs in
its own child process so that a segmentation fault is counted (``crash``) instead of ending the
run; the case that killed it is kept (its path is printed). Each child's address space is capped
(``--memory_gb``), so a memory bomb is a ``MemoryError`` rather than a kill by the kernel.
Outcomes per case: ``valid`` (the reader returned), ``project error`` (the reader's own error
type, naming the file), ``other`` (anything else: a raw exception from numpy, scipy, zipfile,
pickle or JSON, or an error without the file's name), ``crash`` (the child died). Prints a
Markdown table and the most frequent ``other`` findings per reader.
"""

import argparse
import collections
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)


def child(name: str, examples: int, seed: int, progress: str, memory_gb: float) -> None:
    # A memory bomb must become a MemoryError here, not a kill by the kernel's OOM killer.
    limit = int(memory_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from tests.fuzz.test_readers_fuzz import run_target

    counts, details = collections.Counter(), collections.Counter()
    with open(progress, "a") as log:

        def record(outcome, detail):
            counts[outcome] += 1
            if detail and outcome != "project error":
                details[detail[:160]] += 1
            log.write(outcome[0])
            log.flush()

        def keep(blob):  # the case being read, kept if it kills the process
            with open(progress + ".case", "wb") as f:
                f.write(blob)

        run_target(name, examples, derandomize=False, seed=seed, on_example=record, before=keep)
    print(json.dumps({"counts": counts, "details": details.most_common(8)}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=2000, help="cases per reader")
    parser.add_argument("--readers", default="", help="comma-separated subset of the targets")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=900, help="seconds per reader")
    parser.add_argument("--memory_gb", type=float, default=8, help="address space per child")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    parser.add_argument("--progress", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.examples, args.seed, args.progress, args.memory_gb)
        return
    from tests.fuzz.readers import TARGETS

    names = args.readers.split(",") if args.readers else sorted(TARGETS)
    rows, findings = [], {}
    for name in names:
        handle, progress = tempfile.mkstemp(prefix=f"fuzz_{name}_", suffix=".progress")
        os.close(handle)
        start = time.perf_counter()
        cmd = [sys.executable, "-W", "ignore", __file__, "--child", name, "--examples",
               str(args.examples), "--seed", str(args.seed), "--progress", progress,
               "--memory_gb", str(args.memory_gb)]  # fmt: skip
        env = dict(os.environ, JAX_PLATFORMS="cpu")
        run = None
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout,
                                 env=env)  # fmt: skip
            died = run.returncode != 0
            tail = run.stderr[-500:]
        except subprocess.TimeoutExpired:
            died, tail = True, "timeout"
        seconds = time.perf_counter() - start
        with open(progress) as f:
            marks = f.read()
        os.remove(progress)
        case = progress + ".case"
        if not died and os.path.exists(case):
            os.remove(case)
        if died:  # count what ran before the child died; the next case is the crash
            counts = collections.Counter(
                {"valid": marks.count("v"), "project error": marks.count("p"),
                 "other": marks.count("o"), "crash": 1}
            )  # fmt: skip
            rc = getattr(run, "returncode", "?") if tail != "timeout" else "timeout"
            findings[name] = [(f"child died ({rc}); the case: {case}; {tail[-200:]}", 1)]
        else:
            result = json.loads(run.stdout.strip().splitlines()[-1])
            counts = collections.Counter(result["counts"])
            findings[name] = result["details"]
        rows.append((name, counts, seconds))
        print(f"{name}: {dict(counts)} in {seconds:.0f} s", file=sys.stderr)
    print("| reader | cases | valid | project error | other | crash | seconds |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, c, seconds in rows:
        total = sum(c.values())
        print(f"| {name} | {total} | {c['valid']} | {c['project error']} | {c['other']} | "
              f"{c['crash']} | {seconds:.0f} |")  # fmt: skip
    for name, details in findings.items():
        if details:
            print(f"\n{name}: most frequent findings")
            for detail, count in details:
                print(f"  {count:5d}  {detail}")


if __name__ == "__main__":
    main()
