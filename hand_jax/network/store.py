"""Trained models as plain files: the shipped model, export from a run, validated loading.

A model directory holds ``config.json`` (the resolved training config, as a run writes it),
``params.npz`` (the ``params`` and ``batch_stats`` trees flattened to ``"params/backbone/..."``
keys; float16 or float32) and a ``MODEL_CARD.md``. No optimiser state, no hand model (MANO is
licensed and reloaded from ``--mano_path``) and nothing pickled: ``np.load`` runs with
``allow_pickle=False`` and every array is checked against the tree the config builds.

The project ships one: ``SHIPPED_MODEL`` (trained on the embedded CC0-derived synthetic data);
``hand_jax.network.restore()`` with no path uses it.
"""

import json
import os
import tempfile

import jax
import numpy as np

from hand_jax import safe_npz

SHIPPED_MODEL = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", "models", "synthetic_cpu"
)
PARAMS_FILE = "params.npz"
_COLLECTIONS = ("params", "batch_stats")
_DTYPES = (np.float16, np.float32)


def is_model_dir(path: str) -> bool:
    """Whether ``path`` is an exported model directory (``params.npz`` beside ``config.json``)."""
    return os.path.isfile(os.path.join(path, PARAMS_FILE)) and os.path.isfile(
        os.path.join(path, "config.json")
    )


def _key(path) -> str:
    return "/".join(str(getattr(p, "key", p)) for p in path)


def _keyed_leaves(trees: dict):
    """Yield ``("params/a/b", leaf)`` for every leaf of ``{"params": ..., "batch_stats": ...}``."""
    for name in _COLLECTIONS:
        for path, leaf in jax.tree_util.tree_leaves_with_path(trees[name]):
            yield f"{name}/{_key(path)}", leaf


def flatten(trees: dict) -> dict:
    """Flatten ``{"params": tree, "batch_stats": tree}`` to ``{"params/a/b": array}``."""
    return {key: np.asarray(leaf) for key, leaf in _keyed_leaves(trees)}


def save_params(path: str, trees: dict, *, dtype=np.float16) -> None:
    """Write the params and batch statistics to an npz, atomically (temporary sibling + rename).

    Args:
      path: the npz file to write.
      trees: ``{"params": ..., "batch_stats": ...}`` of arrays.
      dtype: storage dtype of the floating-point arrays (float16 halves the file).
    """
    flat, limit = {}, np.finfo(dtype).max
    for key, value in flatten(trees).items():
        if not np.all(np.isfinite(value)) or np.max(np.abs(value), initial=0) > limit:
            raise ValueError(f"{path}: {key!r} is non-finite or beyond {np.dtype(dtype).name}")
        flat[key] = value.astype(dtype)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp.npz")
    os.close(fd)
    try:
        np.savez_compressed(tmp, **flat)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a model is for everyone to read
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_params(path: str, abstract: dict) -> dict:
    """Read an npz written by ``save_params`` into the structure of ``abstract``, as float32.

    The keys, dtypes and shapes are checked from the archive's directory and the arrays'
    headers before any data is decompressed (``hand_jax.safe_npz``), so a forged or foreign
    file costs no more memory than the model itself.

    Args:
      path: the npz file.
      abstract: ``{"params": tree, "batch_stats": tree}`` of arrays or ``ShapeDtypeStruct``s
        (the model the config builds).

    Returns:
      ``{"params": tree, "batch_stats": tree}`` of float32 numpy arrays.

    Raises:
      ValueError: naming the file and the key, for a missing, unexpected, non-float, wrongly
        shaped or non-finite array, or a file that is not a readable npz.
    """
    shapes = {key: tuple(leaf.shape) for key, leaf in _keyed_leaves(abstract)}
    keys = safe_npz.npz_keys(path, what="model parameters")
    missing, extra = sorted(set(shapes) - set(keys)), sorted(set(keys) - set(shapes))
    if missing or extra:
        raise ValueError(
            f"{path}: does not match the model its config.json builds: missing {missing[:3]} "
            f"({len(missing)}), unexpected {extra[:3]} ({len(extra)})"
        )
    expected = {key: (_DTYPES, shape) for key, shape in shapes.items()}
    arrays = safe_npz.read_npz(path, what="model parameters", expected=expected)
    for key, a in arrays.items():
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{path}: {key!r} holds non-finite values")
    return {
        name: jax.tree_util.tree_map_with_path(
            lambda path, _, name=name: arrays[f"{name}/{_key(path)}"].astype(np.float32),
            abstract[name],
        )
        for name in _COLLECTIONS
    }


def export_model(run_config_path: str, trees: dict, out_dir: str, *, dtype=np.float16) -> None:
    """Write a model directory: the run's config.json and the params npz (card written apart).

    Args:
      run_config_path: the training run's ``config.json``.
      trees: ``{"params": ..., "batch_stats": ...}`` restored from the run.
      out_dir: the model directory (created; its config and params are replaced).
      dtype: storage dtype of the arrays.
    """
    os.makedirs(out_dir, exist_ok=True)
    with open(run_config_path) as f:
        config = json.load(f)
    save_params(os.path.join(out_dir, PARAMS_FILE), trees, dtype=dtype)
    tmp = os.path.join(out_dir, "config.json.tmp")
    with open(tmp, "w") as f:
        json.dump(config, f, indent=2)
    os.replace(tmp, os.path.join(out_dir, "config.json"))
