"""Resuming an augmentation run only where it is the same run, and only from intact shards.

The run's fingerprint covers what decides its output: the request (source, split, views,
seeds, view and fit settings), the network's weights (a hash of the restored parameters and
batch statistics, whatever file they came from), the source data (its manifest, or else a
listing of its files with their sizes) and the hand model file. An unfinished run
(``OUT.partial``) is resumed only when all of these are unchanged. Each finished shard records
the SHA-256 of its npz in its JSON; on resume a shard whose file is missing or differs (truncated,
swapped in from another run) is redone.
"""

import hashlib
import json
import os
import shutil

import jax
import numpy as np

from hand_jax import mano, outputs
from hand_jax.data import synthetic
from hand_jax.data.synthetic_gen import file_sha256

PARTIAL_SUFFIX = ".partial"
REQUEST = "request.json"


def weights_sha256(variables) -> str:
    """Hash of a network's parameters and statistics (paths, dtypes, shapes and bytes)."""
    digest = hashlib.sha256()
    for path, leaf in sorted(jax.tree_util.tree_flatten_with_path(variables)[0],
                             key=lambda item: jax.tree_util.keystr(item[0])):  # fmt: skip
        a = np.asarray(leaf)
        digest.update(f"{jax.tree_util.keystr(path)}|{a.dtype}|{a.shape}|".encode())
        digest.update(np.ascontiguousarray(a).tobytes())
    return digest.hexdigest()


def data_sha256(data_dir: str) -> str:
    """Hash of a dataset: its synthetic manifest, else a listing of its files and sizes."""
    manifest = os.path.join(data_dir, synthetic.MANIFEST)
    if os.path.isfile(manifest):
        return file_sha256(manifest)
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(data_dir):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            digest.update(f"{os.path.relpath(path, data_dir)}|{os.path.getsize(path)}\n".encode())
    return digest.hexdigest()


def fingerprint(request: dict, *, variables, data_dir: str, mano_path) -> dict:
    """What decides a run's output, and its hash (``"fingerprint"``)."""
    model_file = mano.DEFAULT_MODEL_PATH if mano_path is None else mano_path
    body = {
        "request": request,
        "weights_sha256": weights_sha256(variables),
        "data_sha256": data_sha256(data_dir),
        "hand_model_sha256": file_sha256(model_file),
    }
    body["fingerprint"] = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return body


def prepare_partial(out_dir: str, body: dict, *, overwrite: bool, inputs) -> str:
    """The partial folder: resumed if it holds this fingerprint, else (re)started."""
    outputs.check_out_dir(out_dir, overwrite=overwrite, inputs=inputs)
    partial = os.path.abspath(out_dir) + PARTIAL_SUFFIX
    marker = os.path.join(partial, REQUEST)
    if os.path.isdir(partial):
        try:
            with open(marker) as f:
                same = json.load(f).get("fingerprint") == body["fingerprint"]
        except (OSError, ValueError, AttributeError):
            same = False
        if same:
            return partial
        if not overwrite:
            raise FileExistsError(
                f"{partial}: an unfinished run with other settings, weights, data or hand model; "
                "rerun it with its own inputs to finish it, or pass --overwrite to start this one"
            )
        shutil.rmtree(partial)
    os.makedirs(partial)
    outputs.write_text_atomic(marker, json.dumps(body, indent=1))
    return partial


def finished_shard(partial: str, done: str) -> dict | None:
    """A finished shard's entry if its JSON and npz are intact, else None (redo it)."""
    try:
        with open(done) as f:
            entry = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or "count" not in entry or "stats" not in entry:
        return None
    if entry.get("file") is None:
        return entry if entry["count"] == 0 else None
    path = os.path.join(partial, os.path.basename(str(entry["file"])))
    if not os.path.isfile(path) or file_sha256(path) != entry.get("sha256"):
        return None
    return entry
