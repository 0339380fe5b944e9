"""Reading ``.npz`` archives a user hands the project: budgets before bytes, no pickle.

An npz is a zip of ``<key>.npy`` members. ``read_npz`` reads what the archive declares before
decompressing any array data: the zip directory (each member's name, compression method and
uncompressed size) and each wanted member's ``.npy`` header (dtype, shape, order; a few hundred
bytes decompressed). It checks those, and only then reads the arrays:

- members the caller did not ask for (``expected``) are never decompressed;
- object arrays are refused from their header, never unpickled;
- a header whose dtype and shape disagree with the member's uncompressed size (a truncated or
  forged member, e.g. 10^12 declared values in 1 KB) is refused;
- dtypes and shapes other than the expected ones are refused;
- more declared bytes than ``budget_bytes`` (all read members together) are refused before
  anything is allocated; members compressed other than stored or deflate (what ``np.savez``
  writes) are refused, so a header read is bounded too;
- a path that is not a regular file (a FIFO would block ``open`` forever, a device) is refused
  without opening it.

Every failure, including zipfile/zlib/numpy errors and ``MemoryError`` while reading, is raised
as the caller's error class with a message naming the file, the member and what was expected.
"""

import math
import os
import stat
import zipfile

import numpy as np

BUDGET_BYTES = 2 * 2**30
"""Default budget of ``read_npz``: the declared bytes of all members read, 2 GiB."""

_MAX_HEADER = 10_000  # numpy's own limit on a .npy header
_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)


def _open_zip(path, error, what) -> zipfile.ZipFile:
    """Open the archive (its directory only); refuse non-regular files without opening them."""
    try:
        info = os.stat(path)
    except FileNotFoundError as e:
        raise error(f"{path}: no such file; expected an npz of {what}") from e
    except OSError as e:
        raise error(f"{path}: cannot be read ({type(e).__name__}: {e})") from e
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{path}: not a regular file (a directory, FIFO or device); expected an npz")
    if info.st_size == 0:
        raise error(f"{path}: not a readable npz of {what} (EOFError: the file is empty)")
    try:
        with open(path, "rb") as f:
            single = f.read(6) == b"\x93NUMPY"
        archive = None if single else zipfile.ZipFile(path)
    except Exception as e:  # BadZipFile, OSError, EOFError, ValueError, NotImplementedError, ...
        raise error(
            f"{path}: not a readable npz of {what} ({type(e).__name__}: {str(e)[:200]})"
        ) from e
    if archive is None:
        raise error(f"{path}: holds a single .npy array; expected an npz of {what}")
    return archive


def _name(path, key: str) -> str:
    return f"{path}: key {key[:80]!r}"


def _members(archive: zipfile.ZipFile, path, error) -> dict[str, zipfile.ZipInfo]:
    """Key -> zip entry, keys as ``np.load`` names them (``.npy`` stripped); duplicates refused."""
    out = {}
    for info in archive.infolist():
        key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
        if key in out:
            raise error(f"{_name(path, key)} appears twice")
        out[key] = info
    return out


def npz_keys(path, *, error: type[Exception] = ValueError, what: str = "arrays") -> list[str]:
    """The keys of an npz archive, from its zip directory alone (nothing decompressed).

    Args:
      path: the archive.
      error: the exception class raised for a missing or unreadable file (names ``path``).
      what: what the file should hold, for the messages.
    """
    with _open_zip(path, error, what) as archive:
        return list(_members(archive, path, error))


def _header(archive, info, name, error) -> tuple[np.dtype, tuple, int]:
    """(dtype, shape, header bytes) of a member, reading only its ``.npy`` header."""
    if not info.filename.endswith(".npy"):
        raise error(f"{name} is not a readable array (a zip member not named .npy)")
    if info.compress_type not in _METHODS:
        raise error(
            f"{name} is not a readable array (zip compression method {info.compress_type}; "
            "npz members are stored or deflated)"
        )
    try:
        with archive.open(info) as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0
            if version != (1, 0):  # 2.0 and 3.0 (utf-8 field names) have 4-byte lengths
                read = np.lib.format.read_array_header_2_0
            shape, _, dtype = read(f, max_header_size=_MAX_HEADER)
            return dtype, shape, f.tell()
    except Exception as e:  # truncated or damaged headers: ValueError, zlib.error, EOFError, ...
        raise error(
            f"{name} is not a readable array (no readable .npy header; "
            f"{type(e).__name__}: {str(e)[:200]})"
        ) from e


def _describe(spec) -> str:
    """``spec`` (see ``read_npz``) in words: ``float16 or float32 [3, ?]``."""
    dtype, shape = spec
    if dtype is None:
        text = "any dtype but object"
    elif isinstance(dtype, str):
        text = f"a dtype of kind {dtype!r}"
    else:
        text = " or ".join(np.dtype(d).name for d in _as_tuple(dtype))
    if shape is not None:
        text += " [" + ", ".join("?" if s is None else str(s) for s in shape) + "]"
    return text


def _as_tuple(dtype) -> tuple:
    return tuple(dtype) if isinstance(dtype, tuple | list) else (dtype,)


def _dtype_ok(dtype: np.dtype, want) -> bool:
    if want is None:
        return True
    if isinstance(want, str):  # numpy kind letters, e.g. "f", "iu", "biuf", "U"
        return dtype.kind in want
    return any(dtype == np.dtype(d) for d in _as_tuple(want))


def _shape_ok(shape: tuple, want) -> bool:
    if want is None:
        return True
    same = zip(want, shape, strict=False)
    return len(shape) == len(want) and all(w is None or w == s for w, s in same)


def _check(info, header, spec, name, error) -> int:
    """Check a member's declared dtype, shape and size; return its declared data bytes."""
    dtype, shape, header_bytes = header
    if dtype.hasobject:
        raise error(
            f"{name} is not a readable array: it holds Python objects (dtype {dtype}); object "
            "arrays are refused"
        )
    if any(s < 0 for s in shape):
        raise error(f"{name} declares a negative shape {shape}")
    if spec is not None and not _dtype_ok(dtype, spec[0]):
        raise error(f"{name} has dtype {dtype}; expected {_describe(spec)}")
    if spec is not None and not _shape_ok(shape, spec[1]):
        raise error(f"{name} has shape {shape}; expected {_describe(spec)}")
    size = math.prod(shape) * dtype.itemsize
    if header_bytes + size != info.file_size:
        raise error(
            f"{name} declares {dtype} {shape} ({size:,} bytes of data) but the zip holds "
            f"{info.file_size - header_bytes:,} bytes for it: truncated or forged"
        )
    return size


def _read_member(archive, info, name, error) -> np.ndarray:
    """Read one member whose header was checked (bounded by its zip ``file_size``)."""
    try:
        with archive.open(info) as f:
            array = np.lib.format.read_array(f, allow_pickle=False, max_header_size=_MAX_HEADER)
            trailing = f.read(1)  # reaches the member's end, where zipfile checks the CRC
    except Exception as e:  # zlib.error, BadZipFile (CRC), EOFError, MemoryError, ...
        raise error(f"{name} is not a readable array ({type(e).__name__}: {str(e)[:200]})") from e
    if trailing:
        raise error(f"{name} has data after its array")
    return array


def read_npz(
    path,
    *,
    error: type[Exception] = ValueError,
    what: str = "arrays",
    expected: dict | None = None,
    budget_bytes: int = BUDGET_BYTES,
) -> dict:
    """The arrays of an npz archive, checked from their headers before any data is read.

    Args:
      path: the archive.
      error: the exception class raised for a missing, unreadable or malformed file (the
        caller's own, e.g. ``HandModelError``); its message names ``path`` and the member.
      what: what the file should hold, for the messages.
      expected: None to read every member, or ``{key: (dtype, shape)}``: only these keys are
        read (others are never decompressed; absent ones are simply not returned, the caller
        decides). ``dtype``: None (any but object), a numpy dtype or a tuple of them, or a string
        of dtype kind letters (``"f"``, ``"iu"``, ``"biuf"``); ``shape``: None (any) or a tuple
        whose None entries match any length.
      budget_bytes: the most declared array bytes read in all (``BUDGET_BYTES``).

    Returns:
      Key -> numpy array.
    """
    with _open_zip(path, error, what) as archive:
        members = _members(archive, path, error)
        wanted = members if expected is None else {k: members[k] for k in expected if k in members}
        total = 0
        for key, info in wanted.items():
            name = _name(path, key)
            header = _header(archive, info, name, error)
            total += _check(info, header, None if expected is None else expected[key], name, error)
            if total > budget_bytes:
                raise error(
                    f"{name} brings the declared arrays to {total:,} bytes, over the budget of "
                    f"{budget_bytes:,} bytes"
                )
        return {
            key: _read_member(archive, info, _name(path, key), error)
            for key, info in wanted.items()
        }
