"""The restricted unpickler: malformed pickles of allowed names fail naming the file."""

import io
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from hand_jax import safe_pickle

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Pickles that use only allowed names (or none) yet are malformed; each raised a raw exception
# from inside pickle or numpy, without the file's name, before the loader wrapped them.
MALFORMED = {
    "empty": b"",  # EOFError
    "truncated": pickle.dumps({"xyz": np.zeros((2, 3))}, protocol=2)[:40],  # UnpicklingError
    "stack underflow": b"0.",  # UnpicklingError
    "ndarray bad args": b"cnumpy\nndarray\n(S'x'\ntR.",  # TypeError
    "dtype bad": b"cnumpy\ndtype\n(S'zz9'\ntR.",  # TypeError
    "reconstruct no args": b"cnumpy.core.multiarray\n_reconstruct\n(tR.",  # TypeError
    "unknown codec": b"c_codecs\nencode\n(S'x'\nS'no-such-codec'\ntR.",  # LookupError
    "short setstate": (
        b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85C\x01b\x87R"
        b"(K\x01tb."
    ),  # TypeError
    "scalar too short": (
        b"\x80\x02cnumpy.core.multiarray\nscalar\ncnumpy\ndtype\nX\x02\x00\x00\x00f8\x85RC\x01a"
        b"\x86R."
    ),  # ValueError
    "bytes of an int": b"c__builtin__\nbytes\n(I1000000000000\ntR.",  # refused: would allocate
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_pickle_raises_the_loaders_error_naming_the_file(tmp_path, name):
    path = tmp_path / "labels.pickle"
    path.write_bytes(MALFORMED[name])
    with pytest.raises(safe_pickle.PickleReadError, match=r"labels.pickle: (cannot unpick|refus)"):
        safe_pickle.load(path)


def test_file_objects_are_named_too():
    blob = io.BytesIO(b"")
    blob.name = "stream.pkl"
    with pytest.raises(safe_pickle.PickleReadError, match="stream.pkl: cannot unpickle"):
        safe_pickle.load(blob)


def test_refused_globals_stay_unsafe_pickle_errors(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(b"cos\nsystem\n(S'true'\ntR.")
    with pytest.raises(safe_pickle.UnsafePickleError, match=r"evil.pkl: refusing .*os.system"):
        safe_pickle.load(path)
    assert issubclass(safe_pickle.UnsafePickleError, safe_pickle.PickleReadError)


def test_valid_data_still_loads(tmp_path):
    data = {"a": np.arange(6.0).reshape(2, 3), "b": np.zeros((0, 3), np.int32), "c": [1, "x"]}
    path = tmp_path / "ok.pkl"
    for protocol in (2, 4):
        path.write_bytes(pickle.dumps(data, protocol=protocol))
        back = safe_pickle.load(path)
        np.testing.assert_array_equal(back["a"], data["a"])
        assert back["b"].shape == (0, 3) and back["c"] == [1, "x"]


def _object_array_short_list() -> bytes:
    # An object array pickled with shape (2,), its shape patched to 100000: numpy's __setstate__
    # reads past the 2-item list and crashes the interpreter (allowed names only).
    blob = pickle.dumps(np.array([1, 2], dtype=object), protocol=2)
    return blob.replace(b"K\x02\x85", b"J" + (100000).to_bytes(4, "little") + b"\x85")


def _dtype_with_object_flags() -> bytes:
    # A raw-bytes dtype whose pickled state claims it holds objects: its bytes become pointers.
    blob = pickle.dumps(np.full(2, 0x41, "V8"), protocol=2)
    at = blob.index(b"K\x00tq")
    return blob[:at] + b"K\x3ftq" + blob[at + 4 :]


_CHILD = """
import sys
from hand_jax import safe_pickle
try:
    value = safe_pickle.load(sys.argv[1])
    print("loaded", repr(value)[:100])
except safe_pickle.PickleReadError as e:
    print("PickleReadError:", e)
"""


@pytest.mark.parametrize("make", [_object_array_short_list, _dtype_with_object_flags])
def test_numpy_reconstruction_cannot_be_steered_into_a_crash(tmp_path, make):
    path = tmp_path / "crafted.pkl"
    path.write_bytes(make())
    # In a child process: before the fix this was a segmentation fault.
    run = subprocess.run([sys.executable, "-c", _CHILD, str(path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, (run.returncode, run.stderr[-1000:])
    assert "PickleReadError:" in run.stdout and "crafted.pkl" in run.stdout


def test_shared_dtypes_cannot_be_mutated(tmp_path):
    blob = pickle.dumps(np.dtype("f8"), protocol=2)
    blob = blob.replace(b"\x89\x88\x87", b"\x89\x89\x87")  # np.dtype("f8", copy=False)
    blob = blob.replace(b"X\x01\x00\x00\x00<", b"X\x01\x00\x00\x00>")  # set big-endian
    path = tmp_path / "endian.pkl"
    path.write_bytes(blob)
    assert safe_pickle.load(path) == np.dtype(">f8")
    assert np.dtype("f8").str == "<f8" and np.float64(1.5).dtype.byteorder == "="


def test_counted_bytearray_is_bounded_by_the_file(tmp_path):
    path = tmp_path / "bomb.pkl"
    path.write_bytes(b"\x80\x05\x96" + (1 << 40).to_bytes(8, "little") + b".")
    with pytest.raises(safe_pickle.PickleReadError, match=r"bomb.pkl: refusing a bytearray"):
        safe_pickle.load(path)
