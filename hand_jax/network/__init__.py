"""The network's runtime: restore a trained estimator and run it, with nothing of training.

``settings`` (the module a config builds, ``RuntimeSettings``: the h layout and silhouette,
``Constants``: hand model and mean-hand h), ``forward`` (the inference forward pass ``predict``
and fProj: ``project``, ``silhouette``), ``batches`` (samples to sharded global batches,
``run_predictions``), ``validation`` (validation metrics of predictions on labelled crops),
``store`` (exported model directories: the shipped model, float16 params npz) and ``trained``
(``restore`` a run or model directory as a ``Network``, ``predict_samples``, ``export``).

Training (``hand_jax.train``) builds on this package, never the other way round; estimation,
evaluation jobs, augmentation and the reproduction use it to run a trained network.
"""

from hand_jax.network.batches import run_predictions
from hand_jax.network.forward import predict, project, silhouette
from hand_jax.network.settings import Constants, RuntimeSettings
from hand_jax.network.store import SHIPPED_MODEL
from hand_jax.network.trained import (
    Network,
    export,
    find_run_dir,
    load_run_config,
    predict_samples,
    predict_split,
    restore,
    run_network,
    validation_metrics,
)

__all__ = [
    "SHIPPED_MODEL",
    "Constants",
    "Network",
    "RuntimeSettings",
    "export",
    "find_run_dir",
    "load_run_config",
    "predict",
    "predict_samples",
    "predict_split",
    "project",
    "restore",
    "run_network",
    "run_predictions",
    "silhouette",
    "validation_metrics",
]
