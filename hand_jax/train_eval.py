"""Evaluation during training: validation metrics and a PNG of predictions.

Every process computes predictions for its share of each validation batch; the predictions are
gathered to every process and process 0 computes the metrics (``hand_jax.eval.metrics``) and draws
the PNG. Reported units: millimetres for 3D errors (``*_mm``), crop pixels for 2D (``*_px``).
3D keypoints are compared root-relative (the network's weak-perspective output has no depth).
"""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from hand_jax import train as tr
from hand_jax.eval import metrics
from hand_jax.models import dhpe


def predict(
    state: tr.TrainState, images, consts: tr.Constants, *, model, settings: tr.LossSettings
):
    """Run the network and fProj in inference mode.

    Args:
      state: the train state.
      images: [B, H, W, 3] crops, uint8 or float in [0, 1].
      consts: step constants.
      model: the module.
      settings: loss settings (h layout, silhouette size).

    Returns:
      dict: ``keypoints2d`` [B, K, 2] (fE2D, pixels), ``confidence`` [B, K], ``mask`` [B, h, w]
      probability, ``h`` [B, D] (last iteration), ``verts`` [B, V, 3] and ``kp3d`` [B, K, 3]
      metres, ``kp2d`` [B, K, 2] reprojected pixels, ``silhouette`` [B, S, S].
    """
    size = images.shape[1]
    outputs = model.apply(
        {"params": state.params, "batch_stats": state.batch_stats},
        images.astype(jnp.float32) / (255.0 if images.dtype == jnp.uint8 else 1.0),
        consts.h_init,
        train=False,
    )
    h = outputs["h"][-1]
    verts, kp3d, kp2d = jax.vmap(
        lambda x: tr.project(consts, x, settings=settings, image_size=size)
    )(h)
    cam = dhpe.split_h(h, rot_repr=settings.rot_repr, num_betas=settings.num_betas)[3]
    alpha = jax.vmap(functools.partial(tr.silhouette, consts, settings=settings))(verts, cam)
    return {
        "keypoints2d": outputs["keypoints2d"],
        "confidence": outputs["confidence"],
        "mask": jax.nn.sigmoid(outputs["mask_logits"]),
        "h": h,
        "verts": verts,
        "kp3d": kp3d,
        "kp2d": kp2d,
        "silhouette": alpha,
    }


BATCH_FIELDS = ("image", "mask", "mask_valid", "keypoints_2d", "keypoints_3d", "keypoint_valid")


def stack_samples(samples) -> dict:
    """Stack the batch fields of sample dicts into arrays with a leading batch axis."""
    return {k: np.stack([s[k] for s in samples]) for k in BATCH_FIELDS}


def local_rows(global_rows: int) -> slice:
    """The rows of a global batch that this process feeds."""
    n = jax.process_count()
    if global_rows % n:
        raise ValueError(f"global batch {global_rows} is not divisible by {n} processes")
    local = global_rows // n
    return slice(jax.process_index() * local, (jax.process_index() + 1) * local)


def to_global(local_batch: dict, sharding) -> dict:
    """Assemble per-process numpy rows into global arrays sharded on the data axis."""
    return {
        k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
        for k, v in local_batch.items()
    }


def run_predictions(predict_fn, state, samples, consts, *, batch_size: int, sharding) -> dict:
    """Predict every sample (padded to whole global batches) and gather to every process.

    Args:
      predict_fn: jitted ``(state, images, consts) -> dict of [B, ...]``.
      state: the train state.
      samples: a sequence of cropped sample dicts (the same on every process).
      batch_size: global batch size (divisible by the device count).
      sharding: the batch sharding.

    Returns:
      dict of numpy [N, ...] predictions and the stacked labels under ``gt_<field>``.
    """
    n = len(samples)
    outputs = []
    for start in range(0, n, batch_size):
        idx = [min(i, n - 1) for i in range(start, start + batch_size)]
        batch = stack_samples([samples[i] for i in idx])
        images = to_global({"image": batch["image"][local_rows(batch_size)]}, sharding)["image"]
        pred = predict_fn(state, images, consts)
        pred = multihost_utils.process_allgather(pred, tiled=True)
        outputs.append(jax.tree.map(np.asarray, pred))
    merged = {k: np.concatenate([o[k] for o in outputs])[:n] for k in outputs[0]}
    labels = stack_samples([samples[i] for i in range(n)])
    merged.update({f"gt_{k}": v for k, v in labels.items()})
    return merged


def _iou(pred, target, valid):
    inter = np.sum(np.minimum(pred, target), axis=(1, 2))
    union = np.sum(np.maximum(pred, target), axis=(1, 2))
    iou = inter / np.maximum(union, 1e-9)
    return float(np.sum(iou * valid) / max(np.sum(valid), 1))


def _downsample(mask, size):
    f = mask.shape[1] // size
    return mask.reshape(mask.shape[0], size, f, size, f).mean(axis=(2, 4))


def compute_metrics(p: dict) -> dict:
    """Validation metrics from ``run_predictions`` output.

    Returns:
      dict: ``kp3d_epe_mm``, ``kp3d_auc_20_50`` (root-relative, linspace 20-50 mm grid),
      ``kp2d_epe_px`` and ``kp2d_auc_0_30`` for the reprojected keypoints, ``e2d_epe_px`` for
      fE2D's soft-argmax keypoints, ``mask_iou`` (fE2D) and ``silhouette_iou`` (rendered mesh),
      over examples with a labelled mask.
    """
    valid = p["gt_keypoint_valid"]
    pred3 = metrics.align_root(p["kp3d"], p["gt_keypoints_3d"])
    grid = metrics.AUC_20_50_GRIDS["linspace_20_50_20"]
    m3 = metrics.keypoint_metrics(pred3, p["gt_keypoints_3d"], valid, thresholds=grid)
    m2 = metrics.keypoint_metrics(p["kp2d"], p["gt_keypoints_2d"], valid, lo=0.0, hi=30.0)
    e2 = metrics.keypoint_metrics(p["keypoints2d"], p["gt_keypoints_2d"], valid, lo=0.0, hi=30.0)
    gt_mask = p["gt_mask"].astype(np.float32)
    mask_valid = p["gt_mask_valid"].astype(np.float32)
    return {
        "kp3d_epe_mm": 1000.0 * m3.epe_mean,
        "kp3d_auc_20_50": m3.auc,
        "kp2d_epe_px": m2.epe_mean,
        "kp2d_auc_0_30": m2.auc,
        "e2d_epe_px": e2.epe_mean,
        "mask_iou": _iou(p["mask"], _downsample(gt_mask, p["mask"].shape[1]), mask_valid),
        "silhouette_iou": _iou(
            p["silhouette"], _downsample(gt_mask, p["silhouette"].shape[1]), mask_valid
        ),
    }


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
