"""Property-based fuzzing of every file reader (short profile; the long one: tests/tools/).

Property: given a mutated file (``tests/fuzz/readers.py``: structured mutations of a valid file
in the native format, then byte-level ones), the reader either returns or raises the project's
own error for that reader with a message naming the file; never a raw exception from numpy,
scipy, zipfile, pickle or JSON (or a crash, which would kill this process). A few dozen
derandomised examples per reader keep this under a minute; ``python tests/tools/fuzz_readers.py``
runs thousands per reader, each reader in a child process, and tabulates the outcomes.
"""

import warnings

import hypothesis
import pytest
from hypothesis import HealthCheck, Phase, given, settings

from tests.fuzz.readers import OTHER, TARGETS, classify

EXAMPLES = 50
# The STB reader parses each .mat file in a child process (scipy's reader can segfault).
FEWER = {"stb_mat": 10}


def run_target(
    name: str, examples: int, *, derandomize: bool, seed=None, on_example=None, before=None
):
    """Run ``examples`` fuzz cases of one target.

    ``before(blob)`` sees each case before it is read (to keep the case that crashes a process);
    ``on_example(outcome, detail)`` sees each outcome; without it a finding fails the test.
    """
    target = TARGETS[name]

    @settings(max_examples=examples, deadline=None, database=None, derandomize=derandomize,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])  # fmt: skip
    @given(blob=target.strategy)
    def check(blob):
        if before is not None:
            before(blob)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ComplexWarning etc. while building the cases
            outcome, detail = classify(target, blob)
        if on_example is not None:
            on_example(outcome, detail)
        else:
            assert outcome != OTHER, f"{name}: {detail}"

    (check if seed is None else hypothesis.seed(seed)(check))()


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_reader_returns_or_raises_its_own_error_naming_the_file(name):
    run_target(name, FEWER.get(name, EXAMPLES), derandomize=True)
