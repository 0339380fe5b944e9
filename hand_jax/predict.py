"""Run a trained model from its checkpoint over samples or a dataset split.

A training run directory (``launch.train --workdir``) holds ``config.json`` (the resolved config)
and ``checkpoints/<step>/``. ``predict_split`` rebuilds the model from that config, restores the
newest (or the given) step's parameters, crops the split as training did, and returns the
predictions that ``hand_jax.eval.evaluate`` scores: ``keypoints_3d`` [N, 21, 3] metres,
root-relative in the camera-aligned frame of the crop (weak perspective has no absolute depth;
the evaluation protocols align the root and scale), in the canonical keypoint order.
"""

import json
import os

import jax
import ml_collections
import numpy as np

from hand_jax import checkpoint, data, train_eval, train_loop
from hand_jax import train as tr


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


def restore(path: str, *, mano_path=None):
    """Rebuild the model of a run and restore its parameters.

    Args:
      path: a run directory, its ``checkpoints`` directory or one step directory.
      mano_path: the hand model the run used (None = the embedded default hand).

    Returns:
      (config, state, consts, programs, mesh).
    """
    run_dir = find_run_dir(path)
    config = load_run_config(run_dir)
    mesh, consts, programs = train_loop.build(config, mano_path=mano_path)
    step_path = path if os.path.abspath(path) != run_dir else os.path.join(run_dir, "checkpoints")
    restored = checkpoint.restore_params(step_path, programs.abstract)
    state = programs.init(train_loop.init_key(config.seed), h_init=consts.h_init)
    state = state._replace(params=restored["params"], batch_stats=restored["batch_stats"])
    return config, state, consts, programs, mesh


def predict_samples(path: str, samples, *, mano_path=None, batch_size: int | None = None):
    """Predict cropped samples with a run's model.

    Args:
      path: a run directory, its ``checkpoints`` directory or one step directory.
      samples: a sequence of sample dicts cropped to the run's ``data.image_size``.
      mano_path: the hand model the run used.
      batch_size: global batch (default: the run's training batch).

    Returns:
      dict of numpy arrays: ``ids`` [N], ``keypoints_3d`` [N, 21, 3] metres (root-relative),
      ``keypoints_2d`` [N, 21, 2] crop pixels (reprojected), ``verts`` [N, V, 3], ``h`` [N, D].
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


def predict_split(path: str, *, dataset: str, data_dir: str, split: str, mano_path=None):
    """Predict one split of a dataset (cropped as the run's training crops were).

    Returns:
      as ``predict_samples``.
    """
    config = load_run_config(find_run_dir(path))
    samples = data.load_split(
        dataset, data_dir, split, crop_size=config.data.image_size,
        crop_margin=config.data.crop_margin,
    )  # fmt: skip
    return predict_samples(path, samples, mano_path=mano_path)
