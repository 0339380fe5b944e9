"""Reading npz archives: budgets before bytes, only the members asked for, errors that name them.

Each check of a member (dtype, shape, declared size, budget) happens from the zip directory and
the ``.npy`` header, before any data is decompressed: memory is measured with ``tracemalloc``
(numpy's allocations are traced). The old reader decompressed every member first.
"""

import os
import threading
import warnings
import zipfile

import numpy as np
import pytest

from hand_jax import safe_npz
from tests.npz_helpers import npy_header, traced_peak, write_npz

BIG = ("zeros", "<f4", (64, 1024, 1024))  # 256 MiB of zeros, 0.3 MB deflated


class FileError(ValueError):
    """A caller's own error class."""


@pytest.fixture(scope="module")
def big_npz(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("npz") / "big.npz")
    write_npz(path, {"small": np.arange(6.0).reshape(2, 3), "big": BIG})
    assert os.path.getsize(path) < 1_000_000
    return path


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_reads_what_np_load_reads(tmp_path, method):
    arrays = {
        "f": np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4),
        "fortran": np.asfortranarray(np.arange(12).reshape(3, 4)),
        "scalar": np.int64(7),
        "empty": np.zeros((0, 3), np.float16),
        "text": np.array(["left", "right"]),
        "big_endian": np.arange(5, dtype=">i4"),
        "flags": np.array([True, False]),
    }
    path = str(tmp_path / "a.npz")
    write_npz(path, arrays, method=method)
    out = safe_npz.read_npz(path)
    with np.load(path) as want:
        assert sorted(out) == sorted(want.files)
        for key in want.files:
            np.testing.assert_array_equal(out[key], want[key])
            assert out[key].dtype == want[key].dtype and out[key].shape == want[key].shape
    assert sorted(safe_npz.npz_keys(path)) == sorted(arrays)


def test_members_not_asked_for_are_never_decompressed(big_npz):
    expected = {"small": ("f", (None, 3)), "absent": (None, None)}
    out, peak = traced_peak(lambda: safe_npz.read_npz(big_npz, expected=expected))
    assert list(out) == ["small"]
    np.testing.assert_array_equal(out["small"], np.arange(6.0).reshape(2, 3))
    assert peak < 2_000_000


def test_the_budget_is_checked_before_reading(big_npz):
    out, peak = traced_peak(lambda: safe_npz.read_npz(big_npz, error=FileError, budget_bytes=2**27))
    assert isinstance(out, FileError), out
    assert f"{big_npz}: key 'big' brings the declared arrays to 268,435,504 bytes" in str(out)
    assert "over the budget of 134,217,728 bytes" in str(out)
    assert peak < 2_000_000


def test_a_forged_shape_names_the_file_and_member_not_memory_error(tmp_path):
    # 10^12 float64 values (8 TB) declared in a member that holds 64 bytes.
    path = str(tmp_path / "forged.npz")
    write_npz(path, {"ok": np.zeros(3), "x": npy_header("<f8", (10**12,)) + bytes(64)})
    for expected in (None, {"x": (np.float64, (None,))}):
        out, peak = traced_peak(
            lambda e=expected: safe_npz.read_npz(path, expected=e, error=FileError)
        )
        assert isinstance(out, FileError) and not isinstance(out.__cause__, MemoryError), out
        assert f"{path}: key 'x' declares float64 (1000000000000,)" in str(out)
        assert "but the zip holds 64 bytes for it" in str(out)
        assert peak < 1_000_000


def test_object_arrays_are_refused_from_their_header(tmp_path):
    path = str(tmp_path / "objects.npz")
    write_npz(path, {"w": np.array([{"a": 1}, None], object), "ok": np.zeros(2)})
    for expected in (None, {"w": (None, None)}):
        with pytest.raises(FileError, match=f"{path}: key 'w' .*Python objects .dtype object"):
            safe_npz.read_npz(path, error=FileError, expected=expected)
    assert list(safe_npz.read_npz(path, expected={"ok": (np.float64, (2,))})) == ["ok"]


@pytest.mark.parametrize(
    "spec, match",
    [
        ((np.float32, (2, 3)), r"key 'a' has dtype float64; expected float32 \[2, 3\]"),
        (((np.float16, np.float32), None), r"has dtype float64; expected float16 or float32$"),
        (("iu", None), r"has dtype float64; expected a dtype of kind 'iu'"),
        (("f", (None, 4)), r"key 'a' has shape \(2, 3\); expected a dtype of kind 'f' \[\?, 4\]"),
        (("f", (2, 3, 1)), r"has shape \(2, 3\)"),
    ],
)
def test_unexpected_dtypes_and_shapes_name_what_was_expected(tmp_path, spec, match):
    path = str(tmp_path / "a.npz")
    write_npz(path, {"a": np.zeros((2, 3))})
    with pytest.raises(FileError, match=match) as info:
        safe_npz.read_npz(path, error=FileError, expected={"a": spec})
    assert str(info.value).startswith(f"{path}: ")


def test_malformed_archives_name_the_file_and_member(tmp_path):
    cases = {
        "short.npz": ({"a": npy_header("<f8", (10,)) + bytes(16)}, zipfile.ZIP_DEFLATED,
                      r"key 'a' declares float64 \(10,\) \(80 bytes of data\) but the zip "
                      r"holds 16"),
        "bzip.npz": ({"a": np.zeros(3)}, zipfile.ZIP_BZIP2, r"key 'a' .*compression method 12"),
        "header.npz": ({"a": b"\x93NUMPY\x01\x00\xff\x00{'descr'"}, zipfile.ZIP_STORED,
                       r"key 'a' is not a readable array \(no readable .npy header"),
    }  # fmt: skip
    for name, (members, method, match) in cases.items():
        path = str(tmp_path / name)
        write_npz(path, members, method=method)
        with pytest.raises(FileError, match=f"{name}: {match}"):
            safe_npz.read_npz(path, error=FileError)
    path = str(tmp_path / "twice.npz")
    with zipfile.ZipFile(path, "w") as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate name it writes
        for _ in range(2):
            archive.writestr("a.npy", b"")
    with pytest.raises(FileError, match="twice.npz: key 'a' appears twice"):
        safe_npz.read_npz(path, error=FileError)


def test_fifo_is_refused_without_opening_it(tmp_path):
    path = str(tmp_path / "pipe.npz")
    os.mkfifo(path)
    result = {}

    def read():
        try:
            safe_npz.read_npz(path, error=FileError)
        except Exception as e:  # noqa: BLE001 - checked below
            result["error"] = e

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=10)
    if reader.is_alive():  # blocked in open(): give it a writer so the thread ends
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("read_npz blocked on a FIFO")
    assert isinstance(result["error"], FileError)
    assert "pipe.npz: not a regular file" in str(result["error"])
