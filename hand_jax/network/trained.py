"""A trained network: restore it from its files (no optimiser), run it over samples, export it.

A training run directory (``launch.train --workdir``) holds ``config.json`` (the resolved
config) and ``checkpoints/<step>/``; an exported model directory (``hand_jax.network.store``)
holds ``config.json`` and ``params.npz``. Without a path, the shipped model
(``store.SHIPPED_MODEL``, trained on the embedded synthetic data) is used. ``restore`` rebuilds
the module from the config and reads only the parameters and batch statistics: no optimiser, no
train step, nothing of ``hand_jax.train``.

Predictions (``predict_samples``) are what ``hand_jax.eval.evaluate`` scores: ``keypoints_3d``
[N, 21, 3] metres, root-relative in the camera frame of the crop (rotated back from the view
frame, ``hand_jax.network.forward``; weak perspective has no absolute depth, so the evaluation
protocols align the root and scale), in the canonical keypoint order.
"""

import functools
import os
from typing import Any, NamedTuple

import jax
import ml_collections
import numpy as np

from hand_jax import checkpoint, data, sharding
from hand_jax.network import batches, forward, model_config, settings, store, validation


class Network(NamedTuple):
    """A restored network, ready to run.

    Attributes:
      module: the Flax ``dhpe.DHPE`` module.
      variables: ``{"params": ..., "batch_stats": ...}``, replicated over ``mesh``.
      consts: ``settings.Constants`` (hand model, mean-hand h), replicated over ``mesh``.
      runtime: ``settings.RuntimeSettings`` (h layout, silhouette size and blur).
      image_size: S, the input crop side in pixels.
      crop_margin: the margin around the hand's box its training crops had.
      mesh: the device mesh it lives on (axis ``data``).
      batch_size: the run's global training batch, the default batch to run it with.
    """

    module: Any
    variables: Any
    consts: Any
    runtime: Any
    image_size: int
    crop_margin: float
    mesh: Any
    batch_size: int = 32


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
    """Read and check the resolved training config a run wrote into its directory."""
    return model_config.load(os.path.join(run_dir, "config.json"))


def _read_variables(path: str, run_dir: str, abstract: dict, mesh) -> dict:
    """The parameters and batch statistics of a model directory or a run's checkpoint."""
    placed = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
        abstract, sharding.replicated(mesh, abstract),
    )  # fmt: skip
    if os.path.abspath(path) == run_dir and store.is_model_dir(run_dir):
        arrays = store.load_params(os.path.join(run_dir, store.PARAMS_FILE), abstract)
        return jax.device_put(arrays, sharding.replicated(mesh, arrays))
    step_path = path if os.path.abspath(path) != run_dir else os.path.join(run_dir, "checkpoints")
    return checkpoint.restore_params(step_path, placed)


def restore(path: str | None = None, *, mano_path=None) -> Network:
    """Rebuild the network of a run (or an exported model) and restore its parameters.

    Args:
      path: a run directory, its ``checkpoints`` directory, one step directory, or an exported
        model directory; None: the shipped model.
      mano_path: the hand model the run used (None = the embedded default hand).
    """
    path = store.SHIPPED_MODEL if path is None else path
    run_dir = find_run_dir(path)
    config = load_run_config(run_dir)
    mesh = sharding.make_mesh()
    consts = settings.make_constants(config, mano_path=mano_path)
    consts = jax.device_put(consts, sharding.replicated(mesh, consts))
    module = settings.make_module(config)
    h_dim = int(consts.h_init.shape[0])
    runtime = settings.RuntimeSettings.from_config(
        config, num_betas=settings.num_betas_of(consts, rot_repr=config.model.rot_repr)
    )
    abstract = settings.abstract_variables(module, image_size=config.data.image_size, h_dim=h_dim)
    variables = _read_variables(path, run_dir, abstract, mesh)
    network = Network(
        module, variables, consts, runtime, int(config.data.image_size),
        float(config.data.crop_margin), mesh, int(config.train.global_batch_size),
    )  # fmt: skip
    if store.is_model_dir(run_dir) and _real(run_dir) != _real(store.SHIPPED_MODEL):
        model_config.check_outputs(network, run_dir)  # a model from elsewhere: probe it once
    return network


def _real(path: str) -> str:
    return os.path.realpath(os.path.abspath(path))


@functools.lru_cache(maxsize=8)
def _jitted_predict(module, runtime):
    def predict(variables, images, K, consts):
        return forward.predict(variables, images, consts, module=module, runtime=runtime, K=K)

    return jax.jit(predict)


def run_network(network: Network, samples, *, batch_size: int | None = None) -> dict:
    """``batches.run_predictions`` of a restored network over cropped samples.

    Args:
      network: the restored network.
      samples: cropped sample dicts at ``network.image_size``.
      batch_size: global batch (default ``network.batch_size``), rounded up to a multiple of
        the device count.
    """
    size = int(samples[0]["image"].shape[0]) if len(samples) else 0
    if size != network.image_size:
        raise ValueError(
            f"samples are {size} px crops but the network was trained on "
            f"{network.image_size} px crops"
        )
    batch = batch_size or network.batch_size
    batch = -(-batch // network.mesh.size) * network.mesh.size
    return batches.run_predictions(
        _jitted_predict(network.module, network.runtime), network.variables, samples,
        network.consts, batch_size=batch, sharding=sharding.batch_sharding(network.mesh),
    )  # fmt: skip


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
    network = restore(path, mano_path=mano_path)
    try:
        out = run_network(network, samples, batch_size=batch_size)
    except ValueError as e:
        raise ValueError(f"{path or 'the shipped model'}: {e}") from e
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
    path = store.SHIPPED_MODEL if path is None else path
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
      ``hand_jax.network.validation.compute_metrics`` of the predictions: root-relative, Z&B
      and Procrustes 3D errors and AUCs, 2D errors, mask and silhouette IoU, and the mesh's
      PVE where the samples carry MANO labels of the network's hand model.
    """
    network = restore(path, mano_path=mano_path)
    out = run_network(network, samples)
    out.update(validation.mesh_labels(samples, network.consts.hand_model))
    return validation.compute_metrics(out)


def export(run: str, out_dir: str, *, dtype=np.float16, mano_path=None) -> None:
    """Export a training run's newest (or given step's) parameters as a model directory."""
    network = restore(run, mano_path=mano_path)
    trees = jax.device_get(network.variables)
    config_path = os.path.join(find_run_dir(run), "config.json")
    store.export_model(config_path, trees, out_dir, dtype=dtype)
