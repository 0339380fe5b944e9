"""Restricted unpickling: load pickles that hold data, refuse pickles that run code.

Plain ``pickle.load`` calls any importable callable a file names (``os.system`` included). The
loaders here resolve only globals on an explicit allow-list and refuse everything else with an
error that names the file and the class. ``NUMPY_GLOBALS`` is what pickled numpy arrays need;
callers add their own entries (scipy sparse matrices, stand-ins for chumpy classes).

Allowed names alone are not enough: numpy's own reconstruction can be steered into memory
corruption by data. An object-dtype array whose pickled list is shorter than its shape, or a
dtype whose pickled state sets the "holds objects" flags on raw bytes, crashes the interpreter
(file bytes become object pointers). So no object dtype can be built here (``np.dtype`` and
``_reconstruct`` are wrapped, ``np.ndarray`` cannot be called directly), a dtype's pickled
state may not change its flags or add fields or sub-arrays, and dtypes are always fresh copies
(a pickle cannot mutate numpy's shared built-in dtypes). The opcodes run in Python's
pure-Python unpickler so that these checks see every ``BUILD``; its memo is a dict and the one
counted opcode that allocates before reading (``BYTEARRAY8``) is bounded by the file's size, so
a few bytes cannot ask for gigabytes. (About 3x slower than the C unpickler: 3 s for a 90 MB
RHD annotation file.)
"""

import codecs
import io
import os
import pickle
import struct
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np


class PickleReadError(pickle.UnpicklingError):
    """A pickle could not be read: malformed, truncated, or refused; the message names the file."""


class UnsafePickleError(PickleReadError):
    """A pickle asked for a global that is not on the allow-list."""


def _numpy_globals() -> dict[tuple[str, str], Any]:
    from numpy._core import multiarray

    table = {}
    # Old files name numpy.core, new ones numpy._core; both resolve to the same functions.
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[(module, "_reconstruct")] = _reconstruct
        table[(module, "scalar")] = multiarray.scalar
    from numpy._core import numeric

    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        table[(module, "_frombuffer")] = numeric._frombuffer
    # Protocol-2 pickles encode bytes through codecs.encode(str, "latin1"): pure data; an empty
    # buffer (a size-0 array's) is written as bytes().
    table[("_codecs", "encode")] = codecs.encode
    table[("__builtin__", "bytes")] = _bytes
    table[("builtins", "bytes")] = _bytes
    table[("numpy", "ndarray")] = np.ndarray  # an argument of _reconstruct; never called
    table[("numpy", "dtype")] = _dtype
    table[("numpy", "bool_")] = np.bool_
    # Python 2 pickles spell built-in containers through these modules.
    table[("__builtin__", "object")] = object
    table[("builtins", "object")] = object
    table[("copy_reg", "_reconstructor")] = _reconstructor
    table[("copyreg", "_reconstructor")] = _reconstructor
    return table


def _plain(dtype: np.dtype, what: str) -> np.dtype:
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise TypeError(f"{what}: dtype {dtype} (objects, fields or sub-arrays) is not allowed")
    return dtype


def _dtype(obj, align=False, copy=False):
    # A fresh copy always: BUILD then sets its byte order on this copy, never on numpy's shared
    # built-in float64 (which np.dtype("f8") returns without copy=True).
    if isinstance(obj, np.dtype):
        raise TypeError("np.dtype(dtype) is not allowed in a data pickle")
    return _plain(np.dtype(obj, align=bool(align), copy=True), "np.dtype")


def _reconstruct(subtype, shape, typecode):
    # numpy pickles call _reconstruct(ndarray, (0,), b"b") and then set the real state.
    from numpy._core import multiarray

    if subtype is not np.ndarray or tuple(shape) != (0,):
        raise TypeError(f"_reconstruct({getattr(subtype, '__name__', subtype)}, {shape!r}) is not "
                        "how numpy pickles arrays")  # fmt: skip
    _plain(np.dtype(typecode), "_reconstruct")
    return multiarray._reconstruct(subtype, shape, typecode)


def _bytes(*args):
    # bytes() and bytes(str, encoding) only: bytes(n) would let a file allocate n zeroed bytes.
    if args and not isinstance(args[0], str | bytes):
        raise TypeError(f"bytes({type(args[0]).__name__}) is not allowed in a data pickle")
    return bytes(*args)


def _reconstructor(cls, base, state):
    # copyreg._reconstructor restricted to the classes already allowed by find_class.
    if base is object:
        return object.__new__(cls)
    return base.__new__(cls, state)


NUMPY_GLOBALS: Mapping[tuple[str, str], Any] = _numpy_globals()


class _RestrictedUnpickler(pickle._Unpickler):  # the pure-Python one: every opcode is seen
    def __init__(self, file, *, allowed, source, encoding, size):
        super().__init__(file, encoding=encoding)
        self._allowed = allowed
        self._source = source
        self._size = size

    def find_class(self, module, name):
        key = (module, name)
        if key in self._allowed:
            return self._allowed[key]
        raise UnsafePickleError(
            f"{self._source}: refusing to load global '{module}.{name}': only data classes on "
            "the allow-list may be unpickled (numpy arrays and the classes this format needs)"
        )

    def _refuse(self, what):
        raise PickleReadError(f"{self._source}: refusing {what:.300}")

    def load_build(self):
        inst, state = self.stack[-2], self.stack[-1]
        if isinstance(inst, np.dtype):
            # (version, byte order, sub-array, names, fields, itemsize, alignment, flags[, meta])
            ok = isinstance(state, tuple) and len(state) in (8, 9) and state[2:5] == (None,) * 3
            if not ok or state[7] != inst.flags:  # flags come from the type, never the file
                self._refuse(f"a dtype state {state!r}")
        elif isinstance(inst, np.ndarray):
            # (version, shape, dtype, is_fortran, raw data): raw bytes, never an object list.
            ok = isinstance(state, tuple) and len(state) in (4, 5)
            if not ok or not isinstance(state[-3], np.dtype):
                self._refuse(f"an array state {state!r}")
            _plain(state[-3], "array state")
        pickle._Unpickler.load_build(self)
        if isinstance(inst, np.dtype):
            _plain(inst, "dtype state")

    def _check_callable(self, func):
        if func is np.ndarray:
            self._refuse("to call numpy.ndarray directly (numpy pickles use _reconstruct)")

    def load_reduce(self):
        self._check_callable(self.stack[-2])
        pickle._Unpickler.load_reduce(self)

    def load_newobj(self):
        self._check_callable(self.stack[-2])
        pickle._Unpickler.load_newobj(self)

    def load_newobj_ex(self):
        self._check_callable(self.stack[-3])
        pickle._Unpickler.load_newobj_ex(self)

    def _instantiate(self, klass, args):
        self._check_callable(klass)
        pickle._Unpickler._instantiate(self, klass, args)

    def load_bytearray8(self):
        # The only counted opcode that allocates before reading: bound it by the file's size.
        (n,) = struct.unpack("<Q", self.read(8))
        if n > self._size:
            self._refuse(f"a bytearray of {n} bytes in a file of {self._size}")
        data = self.read(n)
        self.append(bytearray(data))

    dispatch = dict(pickle._Unpickler.dispatch)
    dispatch[pickle.BUILD[0]] = load_build
    dispatch[pickle.REDUCE[0]] = load_reduce
    dispatch[pickle.NEWOBJ[0]] = load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex
    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8


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
      PickleReadError: any other failure to unpickle (truncated or malformed data, allowed
        names called with bad arguments, nesting too deep, ...), naming the file.
      FileNotFoundError: the path does not exist (other ``OSError`` while opening too).
    """
    table = dict(NUMPY_GLOBALS)
    table.update(allowed or {})
    if isinstance(path_or_file, (str, os.PathLike)):
        source = os.fspath(path_or_file)
        with open(source, "rb") as f:
            data = f.read()
    else:
        source = getattr(path_or_file, "name", "<file object>")
        data = path_or_file.read()
    unpickler = _RestrictedUnpickler(
        io.BytesIO(data), allowed=table, source=source, encoding=encoding, size=len(data)
    )
    try:
        return unpickler.load()
    except PickleReadError:
        raise
    except Exception as e:  # EOFError, UnpicklingError, TypeError, IndexError, RecursionError,
        # MemoryError, ... from the opcodes or from allowed constructors given bad arguments.
        raise PickleReadError(
            f"{source}: cannot unpickle ({type(e).__name__}: {str(e)[:200]})"
        ) from e


def allow(module: str, name: str, obj: Callable | type) -> dict[tuple[str, str], Any]:
    """Return a one-entry allow-list mapping ``module.name`` to ``obj``."""
    return {(module, name): obj}
