"""Restricted unpickling: load pickles that hold data, refuse pickles that run code.

Plain ``pickle.load`` calls any importable callable a file names (``os.system`` included). The
loaders here resolve only globals on an explicit allow-list and refuse everything else with an
error that names the file and the class. ``NUMPY_GLOBALS`` is what pickled numpy arrays need;
callers add their own entries (scipy sparse matrices, stand-ins for chumpy classes).
"""

import codecs
import io
import os
import pickle
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for a global that is not on the allow-list."""


def _numpy_globals() -> dict[tuple[str, str], Any]:
    from numpy._core import multiarray

    table = {}
    # Old files name numpy.core, new ones numpy._core; both resolve to the same functions.
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[(module, "_reconstruct")] = multiarray._reconstruct
        table[(module, "scalar")] = multiarray.scalar
    from numpy._core import numeric

    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        table[(module, "_frombuffer")] = numeric._frombuffer
    # Protocol-2 pickles encode bytes through codecs.encode(str, "latin1"): pure data.
    table[("_codecs", "encode")] = codecs.encode
    table[("numpy", "ndarray")] = np.ndarray
    table[("numpy", "dtype")] = np.dtype
    table[("numpy", "bool_")] = np.bool_
    table[("numpy.dtypes", "Float64DType")] = type(np.dtype(np.float64))
    table[("numpy.dtypes", "Float32DType")] = type(np.dtype(np.float32))
    table[("numpy.dtypes", "Int64DType")] = type(np.dtype(np.int64))
    table[("numpy.dtypes", "Int32DType")] = type(np.dtype(np.int32))
    table[("numpy.dtypes", "UInt8DType")] = type(np.dtype(np.uint8))
    table[("numpy.dtypes", "BoolDType")] = type(np.dtype(np.bool_))
    table[("numpy.dtypes", "ObjectDType")] = type(np.dtype(object))
    # Python 2 pickles spell built-in containers through these modules.
    table[("__builtin__", "object")] = object
    table[("builtins", "object")] = object
    table[("copy_reg", "_reconstructor")] = _reconstructor
    table[("copyreg", "_reconstructor")] = _reconstructor
    return table


def _reconstructor(cls, base, state):
    # copyreg._reconstructor restricted to the classes already allowed by find_class.
    if base is object:
        return object.__new__(cls)
    return base.__new__(cls, state)


NUMPY_GLOBALS: Mapping[tuple[str, str], Any] = _numpy_globals()


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, *, allowed, source, encoding):
        super().__init__(file, encoding=encoding)
        self._allowed = allowed
        self._source = source

    def find_class(self, module, name):
        key = (module, name)
        if key in self._allowed:
            return self._allowed[key]
        raise UnsafePickleError(
            f"{self._source}: refusing to load global '{module}.{name}': only data classes on "
            "the allow-list may be unpickled (numpy arrays and the classes this format needs)"
        )


def load(
    path_or_file,
    *,
    allowed: Mapping[tuple[str, str], Any] | None = None,
    encoding: str = "latin1",
) -> Any:
    """Unpickle a file, resolving only allow-listed globals.

    Args:
      path_or_file: a filesystem path or a binary file object.
      allowed: extra ``(module, name) -> object`` entries on top of ``NUMPY_GLOBALS``.
      encoding: how Python 2 ``str`` objects decode (``latin1`` keeps numpy buffers intact).

    Returns:
      The unpickled object.

    Raises:
      UnsafePickleError: the pickle names a global not on the allow-list.
      FileNotFoundError: the path does not exist.
    """
    table = dict(NUMPY_GLOBALS)
    table.update(allowed or {})
    if isinstance(path_or_file, (str, os.PathLike)):
        source = os.fspath(path_or_file)
        with open(source, "rb") as f:
            data = f.read()
        file = io.BytesIO(data)
    else:
        source = getattr(path_or_file, "name", "<file object>")
        file = path_or_file
    return _RestrictedUnpickler(file, allowed=table, source=source, encoding=encoding).load()


def allow(module: str, name: str, obj: Callable | type) -> dict[tuple[str, str], Any]:
    """Return a one-entry allow-list mapping ``module.name`` to ``obj``."""
    return {(module, name): obj}
