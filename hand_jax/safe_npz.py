"""Reading ``.npz`` archives a user hands the project: no pickle, every failure names the file.

``np.load(..., allow_pickle=False)`` already refuses object arrays, but the errors it and
``zipfile`` raise for a damaged archive (``BadZipFile``, ``zlib.error``, ``EOFError``,
``NotImplementedError`` for odd zip versions, numpy's pickle ``ValueError``) do not say which file
or key. ``read_npz`` reads every member eagerly and turns any of them into the caller's own error
class with the file's path (and the key).
"""

import numpy as np


def read_npz(path, *, error: type[Exception] = ValueError, what: str = "arrays") -> dict:
    """Every array of an npz archive, read without pickle.

    Args:
      path: the archive.
      error: the exception class raised for a missing, unreadable or malformed file (the
        caller's own, e.g. ``HandModelError``); its message names ``path`` and the key.
      what: what the file should hold, for the messages.

    Returns:
      Key -> numpy array.
    """
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError as e:
        raise error(f"{path}: no such file; expected an npz of {what}") from e
    except Exception as e:  # BadZipFile, EOFError, ValueError (pickled data), OSError, ...
        raise error(
            f"{path}: not a readable npz of {what} ({type(e).__name__}: {str(e)[:200]})"
        ) from e
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise error(f"{path}: holds a single .npy array; expected an npz of {what}")
    out = {}
    with data:
        for key in data.files:
            try:
                out[key] = data[key]
            except Exception as e:  # object arrays (pickle refused), corrupt members (zlib.error,
                # BadZipFile, EOFError), unsupported compression (NotImplementedError), ...
                raise error(
                    f"{path}: key {key[:80]!r} is not a readable array (object arrays are "
                    f"refused; {type(e).__name__}: {str(e)[:200]})"
                ) from e
    return out
