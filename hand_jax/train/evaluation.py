"""Evaluation during training: the predict step over a train state, and a PNG of predictions.

Every process computes predictions for its share of each validation batch
(``hand_jax.network.batches.run_predictions``); the predictions are gathered to every process
and process 0 computes the metrics (``hand_jax.network.validation``) and draws the PNG. Reported
units: millimetres for 3D errors (``*_mm``), crop pixels for 2D (``*_px``).
"""

import functools
import os

import jax
import numpy as np

from hand_jax.network import forward
from hand_jax.network.settings import RuntimeSettings


def predict_state(state, images, K, consts, *, model, runtime: RuntimeSettings) -> dict:
    """``hand_jax.network.forward.predict`` with a train state's parameters and statistics."""
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    return forward.predict(variables, images, consts, module=model, runtime=runtime, K=K)


def make_predict(*, model, runtime: RuntimeSettings):
    """Jit ``predict_state(state, images, K, consts)`` with the module and settings bound."""
    return jax.jit(functools.partial(predict_state, model=model, runtime=runtime))


def save_png(p: dict, path: str, *, num: int) -> None:
    """Draw ``num`` validation crops: GT keypoints (green), reprojected mesh keypoints (red),
    fE2D keypoints (blue crosses) and the rendered silhouette (contour)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    num = min(num, p["gt_image"].shape[0])
    if num <= 0:
        return
    size = p["gt_image"].shape[1]
    fig, axes = plt.subplots(1, num, figsize=(2.2 * num, 2.4), squeeze=False)
    for i, ax in enumerate(axes[0]):
        ax.imshow(p["gt_image"][i], extent=(0, size, size, 0))
        sil = p["silhouette"][i]
        ax.contour(
            np.linspace(0, size, sil.shape[1]),
            np.linspace(0, size, sil.shape[0]),
            sil,
            levels=[0.5],
            colors="yellow",
            linewidths=0.8,
        )
        ok = p["gt_keypoint_valid"][i]
        ax.scatter(*p["gt_keypoints_2d"][i][ok].T, s=6, c="lime")
        ax.scatter(*p["kp2d"][i].T, s=6, c="red")
        ax.scatter(*p["keypoints2d"][i].T, s=10, c="deepskyblue", marker="x", linewidths=0.6)
        ax.set_xlim(0, size)
        ax.set_ylim(size, 0)
        ax.axis("off")
    fig.suptitle("green GT, red mesh, blue fE2D, yellow silhouette", fontsize=7)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
