"""Output folders and file names that cannot escape them or destroy what a user had.

Every command that writes a folder of results goes through ``staged_dir``: it refuses a
non-empty folder unless ``overwrite`` is set, and writes into a temporary sibling that replaces
the folder only when the command finished, so a failed or interrupted run leaves the previous
results intact. An output folder may not be, contain or lie inside any of the command's inputs,
nor hold the package itself (``check_out_dir(inputs=...)``). Each finished folder carries a
manifest of the files the command wrote (``OWNED``); ``overwrite`` replaces only a folder whose
every file is listed there, never foreign files. Just before the swap the folder is checked
again: files that appeared meanwhile stop the swap, and the results stay in the staging folder,
whose path the error gives. File names derived from data (sample ids) go through ``safe_stem``:
a sanitised, length-limited id prefixed with the row index, so names are unique, never contain a
separator or ``..``, and stay inside the folder.
"""

import contextlib
import json
import os
import re
import shutil
import tempfile
import uuid

MAX_ID_CHARS = 80
OWNED = ".hand_jax_output.json"  # the files a command wrote into its output folder
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_PACKAGE = os.path.dirname(os.path.abspath(__file__))


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


def _real(path: str) -> str:
    return os.path.realpath(os.path.abspath(os.fspath(path)))


def _within(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or lies inside it (both resolved)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _check_overlap(out_dir: str, inputs) -> None:
    out = _real(out_dir)
    for given in inputs or ():
        if given is None or given == "":
            continue
        inp = _real(given)
        if _within(out, inp) or _within(inp, out):
            raise ValueError(
                f"{out_dir}: is, contains or lies inside the input {given}; choose an output "
                "directory apart from the inputs"
            )
    if _within(out, _PACKAGE) or _within(os.path.dirname(_PACKAGE), out):
        raise ValueError(f"{out_dir}: holds or lies inside the hand_jax package; choose another")


def _foreign_files(out_dir: str) -> list[str]:
    """Files in ``out_dir`` that its ``OWNED`` manifest does not list (all, without one)."""
    try:
        with open(os.path.join(out_dir, OWNED)) as f:
            owned = set(json.load(f))
    except (OSError, ValueError, TypeError):
        owned = set()
    found = []
    for root, dirs, files in os.walk(out_dir):
        dirs.sort()
        for name in sorted(files):
            rel = os.path.relpath(os.path.join(root, name), out_dir)
            if rel != OWNED and rel not in owned:
                found.append(rel)
    return found


def check_out_dir(out_dir: str, *, overwrite: bool, inputs=(), merge: bool = False) -> None:
    """Refuse an ``out_dir`` that would lose anything; create nothing.

    Refused: a file in its place; a non-empty folder unless ``overwrite``; with ``overwrite``, a
    folder holding files this project did not write there (not in its ``OWNED`` manifest); a
    folder that is, contains or lies inside one of ``inputs`` (paths of files or folders) or
    holds the package. ``merge``: the caller carries foreign files over into its new folder
    (``staged_dir(merge=True)``), so they are not refused.
    """
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise NotADirectoryError(f"{out_dir}: exists and is not a directory")
    _check_overlap(out_dir, inputs)
    if not (os.path.isdir(out_dir) and os.listdir(out_dir)):
        return
    if not overwrite:
        raise FileExistsError(
            f"{out_dir}: not empty; pass --overwrite to replace its contents, or choose another "
            "output directory"
        )
    foreign = [] if merge else _foreign_files(out_dir)
    if foreign:
        raise FileExistsError(
            f"{out_dir}: holds {len(foreign)} file(s) that no hand_jax command wrote there "
            f"(e.g. {foreign[0]!r}); --overwrite replaces only a folder of its own results"
        )


def _write_owned(staging: str) -> None:
    files = []
    for root, dirs, names in os.walk(staging):
        dirs.sort()
        files += [os.path.relpath(os.path.join(root, n), staging) for n in sorted(names)]
    with open(os.path.join(staging, OWNED), "w") as f:
        json.dump([x for x in files if x != OWNED], f, indent=0)


@contextlib.contextmanager
def staged_dir(out_dir: str, *, overwrite: bool, inputs=(), merge: bool = False):
    """Yield a temporary sibling of ``out_dir`` to write into; swap it in on success.

    The check (``check_out_dir``) happens before anything is written and again before the swap.
    On an exception the temporary folder is removed and ``out_dir`` is untouched. On success the
    old ``out_dir`` (if any) is renamed aside, the new one renamed into place, and the old one
    removed.
    """
    check_out_dir(out_dir, overwrite=overwrite, inputs=inputs, merge=merge)
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
    swap_in(staging, out_dir, overwrite=overwrite, merge=merge)


def swap_in(staging: str, out_dir: str, *, overwrite: bool = True, merge: bool = False) -> None:
    """Make the finished folder ``staging`` be ``out_dir``, replacing (then removing) an old one.

    ``staging`` must be a sibling of ``out_dir`` (same file system, so the renames are atomic).
    ``out_dir`` is checked again first (``check_out_dir``): if files appeared in it while the
    command ran, nothing is swapped and the results stay in ``staging`` (the error says where).
    """
    out_dir = os.path.abspath(out_dir)
    try:
        check_out_dir(out_dir, overwrite=overwrite, merge=merge)
    except (FileExistsError, NotADirectoryError) as e:
        raise FileExistsError(f"{e}; the finished results are kept in {staging}") from e
    _write_owned(staging)
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
