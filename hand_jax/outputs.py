"""Output folders and file names that cannot escape them or destroy what a user had.

Every command that writes a folder of results goes through ``staged_dir``: it refuses a
non-empty folder unless ``overwrite`` is set, and writes into a temporary sibling that replaces
the folder only when the command finished, so a failed or interrupted run leaves the previous
results intact. File names derived from data (sample ids) go through ``safe_stem``: a sanitised,
length-limited id prefixed with the row index, so names are unique, never contain a separator or
``..``, and stay inside the folder.
"""

import contextlib
import os
import re
import shutil
import tempfile
import uuid

MAX_ID_CHARS = 80
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_stem(sample_id, index: int) -> str:
    """Return a file-name stem ``{index:05d}_{sanitised id}`` for one row of data.

    Args:
      sample_id: any value (str, bytes, number); only ``[A-Za-z0-9._-]`` survive, runs of other
        characters become ``_``; leading dots are dropped; at most ``MAX_ID_CHARS`` are kept.
      index: the row's index, which makes the stem unique within one output.
    """
    if isinstance(sample_id, bytes):
        sample_id = sample_id.decode("utf-8", "replace")
    text = _UNSAFE.sub("_", str(sample_id)).lstrip(".")[:MAX_ID_CHARS].strip("_")
    return f"{int(index):05d}_{text}" if text else f"{int(index):05d}"


def inside(out_dir: str, name: str) -> str:
    """Join ``name`` to ``out_dir`` and refuse any result that is not inside ``out_dir``."""
    root = os.path.realpath(out_dir)
    path = os.path.realpath(os.path.join(root, name))
    if os.path.commonpath([root, path]) != root or path == root:
        raise ValueError(f"{name!r}: an output name must stay inside {out_dir}")
    return path


def check_out_dir(out_dir: str, *, overwrite: bool) -> None:
    """Refuse a non-empty ``out_dir`` (or a file there) unless ``overwrite``; create nothing."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise NotADirectoryError(f"{out_dir}: exists and is not a directory")
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not overwrite:
        raise FileExistsError(
            f"{out_dir}: not empty; pass --overwrite to replace its contents, or choose another "
            "output directory"
        )


@contextlib.contextmanager
def staged_dir(out_dir: str, *, overwrite: bool):
    """Yield a temporary sibling of ``out_dir`` to write into; swap it in on success.

    The check (``check_out_dir``) happens before anything is written. On an exception the
    temporary folder is removed and ``out_dir`` is untouched. On success the old ``out_dir`` (if
    any) is renamed aside, the new one renamed into place, and the old one removed.
    """
    check_out_dir(out_dir, overwrite=overwrite)
    out_dir = os.path.abspath(out_dir)
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    base = os.path.basename(out_dir)
    staging = tempfile.mkdtemp(prefix=f".{base}.tmp-", dir=parent)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    swap_in(staging, out_dir)


def swap_in(staging: str, out_dir: str) -> None:
    """Make the finished folder ``staging`` be ``out_dir``, replacing (then removing) an old one.

    ``staging`` must be a sibling of ``out_dir`` (same file system, so the renames are atomic).
    """
    out_dir = os.path.abspath(out_dir)
    parent, base = os.path.dirname(out_dir), os.path.basename(out_dir)
    os.chmod(staging, 0o755)
    if os.path.isdir(out_dir):
        aside = tempfile.mkdtemp(prefix=f".{base}.old-", dir=parent)
        os.rename(out_dir, os.path.join(aside, base))
        os.rename(staging, out_dir)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.rename(staging, out_dir)


def write_atomic(path: str, write) -> None:
    """Write one file so that readers see the old or the new file, never half of one.

    Args:
      path: the file; its folder is created if missing.
      write: ``write(tmp)`` writes the whole file at ``tmp``, a sibling with the same extension
        (``<stem>.tmp-<random><ext>``), which then replaces ``path``.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    root, ext = os.path.splitext(path)
    tmp = f"{root}.tmp-{uuid.uuid4().hex[:8]}{ext}"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.remove(tmp)


def write_text_atomic(path: str, text: str) -> None:
    """``write_atomic`` of a text file."""

    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)

    write_atomic(path, write)
