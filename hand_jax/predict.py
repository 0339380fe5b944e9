"""Run a trained model from its checkpoint over samples or a dataset split.

A training run directory (``launch.train --workdir``) holds ``config.json`` (the resolved config)
and ``checkpoints/<step>/``; an exported model directory (``hand_jax.model_store``) holds
``config.json`` and ``params.npz``. Without a path, the shipped model
(``model_store.SHIPPED_MODEL``, trained on the embedded synthetic data) is used.
``predict_split`` rebuilds the model from that config, restores the newest (or the given)
step's parameters, crops the split as training did, and returns the predictions that
``hand_jax.eval.evaluate`` scores: ``keypoints_3d`` [N, 21, 3] metres, root-relative in the
camera frame of the crop (the network predicts in the frame looking through the crop centre;
the predictions are rotated back, see ``hand_jax.train.step``; weak perspective has no absolute
depth,
so the evaluation protocols align the root and scale), in the canonical keypoint order.
"""

import json
import os

import jax
import ml_collections
import numpy as np

from hand_jax import checkpoint, data, model_store
from hand_jax.train import evaluation as train_eval
from hand_jax.train import loop as train_loop
from hand_jax.train import step as tr


def find_run_dir(path: str) -> str:
    """Return the run directory (the one holding ``config.json``) of a checkpoint path.

    Args:
      path: a run directory, its ``checkpoints`` directory, or one step directory.
    """
    candidate = os.path.abspath(path)
    for _ in range(3):
        if os.path.isfile(os.path.join(candidate, "config.json")):
            return candidate
        candidate = os.path.dirname(candidate)
    raise FileNotFoundError(
        f"{path}: no config.json in it or its two parents; pass the --workdir of a training run"
    )


def load_run_config(run_dir: str) -> ml_collections.ConfigDict:
    """Read the resolved training config a run wrote into its directory."""
    with open(os.path.join(run_dir, "config.json")) as f:
        return ml_collections.ConfigDict(json.load(f))


def restore(path: str | None = None, *, mano_path=None):
    """Rebuild the model of a run (or an exported model) and restore its parameters.

    Args:
      path: a run directory, its ``checkpoints`` directory, one step directory, or an exported
        model directory; None: the shipped model.
      mano_path: the hand model the run used (None = the embedded default hand).

    Returns:
      (config, state, consts, programs, mesh).
    """
    path = model_store.SHIPPED_MODEL if path is None else path
    run_dir = find_run_dir(path)
    config = load_run_config(run_dir)
    mesh, consts, programs = train_loop.build(config, mano_path=mano_path)
    if os.path.abspath(path) == run_dir and model_store.is_model_dir(run_dir):
        abstract = {k: getattr(programs.abstract, k) for k in ("params", "batch_stats")}
        restored = model_store.load_params(os.path.join(run_dir, model_store.PARAMS_FILE), abstract)
    else:
        step_path = (
            path if os.path.abspath(path) != run_dir else os.path.join(run_dir, "checkpoints")
        )
        restored = checkpoint.restore_params(step_path, programs.abstract)
    state = programs.init(train_loop.init_key(config.seed), h_init=consts.h_init)
    state = state._replace(params=restored["params"], batch_stats=restored["batch_stats"])
    return config, state, consts, programs, mesh


def predict_samples(path: str | None, samples, *, mano_path=None, batch_size: int | None = None):
    """Predict cropped samples with a run's model.

    Args:
      path: as ``restore`` (None: the shipped model).
      samples: a sequence of sample dicts cropped to the run's ``data.image_size``.
      mano_path: the hand model the run used.
      batch_size: global batch (default: the run's training batch).

    Returns:
      dict of numpy arrays: ``ids`` [N], ``keypoints_3d`` [N, 21, 3] and ``verts`` [N, V, 3]
      metres, root-relative, crop camera frame; ``keypoints_2d`` [N, 21, 2] crop pixels
      (reprojected); ``h`` [N, D] (view frame, ``hand_jax.models.dhpe.to_hand_params`` turns it
      into ``HandParams``).
    """
    config, state, consts, programs, mesh = restore(path, mano_path=mano_path)
    size = int(samples[0]["image"].shape[0]) if len(samples) else 0
    if size != config.data.image_size:
        raise ValueError(
            f"samples are {size} px crops but the run at {path} was trained on "
            f"{config.data.image_size} px crops"
        )
    batch = batch_size or config.train.global_batch_size
    batch = -(-batch // jax.device_count()) * jax.device_count()
    out = train_eval.run_predictions(
        programs.predict, state, samples, consts, batch_size=batch,
        sharding=tr.batch_sharding(mesh),
    )  # fmt: skip
    return {
        "ids": np.asarray([str(s["id"]) for s in samples]),
        "keypoints_3d": out["kp3d"],
        "keypoints_2d": out["kp2d"],
        "verts": out["verts"],
        "h": out["h"],
    }


def predict_split(path: str | None, *, dataset: str, data_dir: str, split: str, mano_path=None):
    """Predict one split of a dataset (cropped as the run's training crops were).

    Returns:
      as ``predict_samples``.
    """
    path = model_store.SHIPPED_MODEL if path is None else path
    config = load_run_config(find_run_dir(path))
    samples = data.load_split(
        dataset, data_dir, split, crop_size=config.data.image_size,
        crop_margin=config.data.crop_margin,
    )  # fmt: skip
    return predict_samples(path, samples, mano_path=mano_path)


def validation_metrics(path: str | None, samples, *, mano_path=None) -> dict:
    """Score a model on cropped samples with the in-training validation metrics.

    Args:
      path: as ``restore`` (None: the shipped model).
      samples: cropped sample dicts (the run's ``data.image_size``).
      mano_path: the hand model the run used.

    Returns:
      ``hand_jax.train.evaluation.compute_metrics`` of the predictions: root-relative, Z&B and
      Procrustes 3D errors and AUCs, 2D errors, mask and silhouette IoU.
    """
    config, state, consts, programs, mesh = restore(path, mano_path=mano_path)
    batch = -(-config.train.global_batch_size // jax.device_count()) * jax.device_count()
    out = train_eval.run_predictions(
        programs.predict, state, samples, consts, batch_size=batch,
        sharding=tr.batch_sharding(mesh),
    )  # fmt: skip
    return train_eval.compute_metrics(out)


def export(run: str, out_dir: str, *, dtype=np.float16, mano_path=None) -> None:
    """Export a training run's newest (or given step's) parameters as a model directory."""
    _, state, _, _, _ = restore(run, mano_path=mano_path)
    trees = jax.device_get({"params": state.params, "batch_stats": state.batch_stats})
    config_path = os.path.join(find_run_dir(run), "config.json")
    model_store.export_model(config_path, trees, out_dir, dtype=dtype)
