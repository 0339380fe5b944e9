"""Writing npz archives for reader tests: ordinary arrays, forged ``.npy`` headers, and large
zero members streamed into the zip (a 256 MB member costs 1 MB of memory and 0.3 MB of disk)."""

import io
import tracemalloc
import zipfile

import numpy as np


def npy_header(descr: str, shape: tuple) -> bytes:
    """The bytes of a version 1.0 ``.npy`` header declaring ``descr`` and ``shape``."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return buf.getvalue()


def write_npz(path, members: dict, *, method=zipfile.ZIP_DEFLATED) -> None:
    """Write ``members`` {key: array | bytes | ("zeros", descr, shape)} as ``<key>.npy`` members.

    Bytes are written as they are (a forged member); ``("zeros", descr, shape)`` streams a valid
    all-zero array of that dtype and shape, a megabyte at a time.
    """
    with zipfile.ZipFile(path, "w", method) as archive:
        for key, value in members.items():
            with archive.open(f"{key}.npy", "w", force_zip64=True) as f:
                if isinstance(value, bytes):
                    f.write(value)
                elif isinstance(value, tuple):
                    _, descr, shape = value
                    f.write(npy_header(descr, shape))
                    left = int(np.prod(shape)) * np.dtype(descr).itemsize
                    chunk = bytes(1 << 20)
                    while left > 0:
                        f.write(chunk[: min(left, len(chunk))])
                        left -= len(chunk)
                else:
                    np.lib.format.write_array(f, np.asarray(value), allow_pickle=True)


def traced_peak(fn):
    """(result or exception, peak bytes traced by tracemalloc while running ``fn``).

    numpy registers its allocations with tracemalloc, so decoded arrays count.
    """
    tracemalloc.start()
    try:
        try:
            out = fn()
        except Exception as e:  # noqa: BLE001 - returned for the caller to check
            out = e
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
