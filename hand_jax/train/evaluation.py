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

from hand_jax.data import pipeline
from hand_jax.eval import metrics
from hand_jax.models import dhpe
from hand_jax.train import step as tr


def hard_argmax(heatmaps, stride: int):
    """The centre of each heatmap's highest pixel: [h, w, K] -> [K, 2] (u, v) input pixels."""
    h, w, k = heatmaps.shape
    flat = jnp.argmax(heatmaps.reshape(h * w, k), axis=0)
    return (jnp.stack([flat % w, flat // w], axis=-1) + 0.5) * stride


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
      dict: ``keypoints2d`` [B, K, 2] (fE2D, pixels), ``keypoints2d_hard`` [B, K, 2] (the
      heatmaps' hard argmax, pixels), ``confidence`` [B, K], ``mask`` [B, h, w]
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
    cam = dhpe.to_hand_params(h, rot_repr=settings.rot_repr, num_betas=settings.num_betas).cam
    alpha = jax.vmap(functools.partial(tr.silhouette, consts, settings=settings))(verts, cam)
    return {
        "keypoints2d": outputs["keypoints2d"],
        "keypoints2d_hard": jax.vmap(
            functools.partial(hard_argmax, stride=size // outputs["heatmaps"].shape[1])
        )(outputs["heatmaps"]),
        "confidence": outputs["confidence"],
        "mask": jax.nn.sigmoid(outputs["mask_logits"]),
        "h": h,
        "verts": verts,
        "kp3d": kp3d,
        "kp2d": kp2d,
        "silhouette": alpha,
    }


BATCH_FIELDS = (
    "image", "mask", "mask_full", "mask_amodal", "mask_valid", "keypoints_2d", "keypoints_3d",
    "keypoint_valid", "keypoint_visible", "view_rotation",
)  # fmt: skip


def batch_fields(sample) -> dict:
    """The ``BATCH_FIELDS`` of one cropped sample dict (schema or pipeline example).

    Fields a sample lacks are derived as the input pipeline derives them
    (``hand_jax.data.pipeline.derived_fields``).
    """
    derived = pipeline.derived_fields(sample)
    return {k: sample[k] if k in sample else derived[k] for k in BATCH_FIELDS}


def stack_samples(samples) -> dict:
    """Stack the batch fields of sample dicts into arrays with a leading batch axis."""
    fields = [batch_fields(s) for s in samples]
    return {k: np.stack([f[k] for f in fields]) for k in BATCH_FIELDS}


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
    # The network predicts in the view frame (see hand_jax.train): back to the crop camera's,
    # keypoints and vertices alike (``*_view`` keep the frame the weak-perspective camera and
    # ``h`` refer to).
    for key in ("kp3d", "verts"):
        if key not in merged:
            continue
        merged[f"{key}_view"] = merged[key]
        merged[key] = np.einsum("nji,nkj->nki", labels["view_rotation"], merged[f"{key}_view"])
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


_AUC_20_50 = metrics.AUC_20_50_GRIDS["linspace_20_50_20"]  # metres
_AUC_0_50 = metrics.make_thresholds(0.0, 0.05, 20)  # metres (evaluate.py's auc_0_50)
_AUC_0_30_PX = metrics.make_thresholds(0.0, 30.0, 20)  # pixels


def _epe_auc(pred, gt, valid, *, thresholds) -> tuple[float, float]:
    """Mean EPE (hand3d: per keypoint over its valid samples, then over keypoints) and AUC.

    Args:
      pred, gt: [N, K, D] keypoints, same units; ``gt`` finite everywhere.
      valid: [N, K] bool, the pairs that count.
      thresholds: [T] AUC thresholds, units of the keypoints.

    Returns:
      (epe, auc), both NaN when no pair is valid.
    """
    if not np.any(valid):
        return float("nan"), float("nan")
    m = metrics.keypoint_metrics(pred, gt, valid, thresholds=thresholds)
    return m.epe_mean, m.auc


def _alignment_valid(valid, gt) -> dict:
    """[N, K] pairs usable under each 3D alignment (as ``hand_jax.eval.evaluate``).

    Root alignments need a labelled root; Z&B also a labelled, non-degenerate reference bone;
    Procrustes three labelled keypoints. Samples that lack them are left out entirely.
    """
    a, b = metrics.REF_BONE
    rooted = valid[:, 0]
    bone = valid[:, a] & valid[:, b] & (np.linalg.norm(gt[:, b] - gt[:, a], axis=-1) > 0)
    return {
        "root": valid & rooted[:, None],
        "root_scale": valid & (rooted & bone)[:, None],
        "procrustes": valid & (valid.sum(1) >= 3)[:, None],
    }


def compute_metrics(p: dict) -> dict:
    """Validation metrics from ``run_predictions`` output, under the published protocols.

    3D errors follow ``hand_jax.eval.metrics`` (hand3d EPE: per keypoint, then mean over
    keypoints; AUC normalised by the threshold range) over every given example, each under one
    alignment of the prediction to the ground truth: root-relative (STB/RHD tables' "GT root"),
    root + reference-bone scale (Zimmermann & Brox, the STB/RHD primary protocol) and Procrustes
    (FreiHAND). Unlabelled keypoints never count; a sample without the labels an alignment needs
    (the root, the reference bone, three keypoints) is left out of that alignment. A metric with
    nothing to average over is NaN.

    Args:
      p: ``kp3d`` [N, K, 3] metres (root-relative prediction, frame of ``gt_keypoints_3d``),
        ``kp2d`` [N, K, 2] reprojected mesh keypoints and ``keypoints2d`` [N, K, 2] fE2D
        soft-argmax keypoints, crop pixels; ``mask`` [N, h, w] and ``silhouette`` [N, S, S]
        probabilities; ``gt_keypoints_3d``, ``gt_keypoints_2d``, ``gt_keypoint_valid`` bool
        [N, K], ``gt_image`` [N, H, W, 3], ``gt_mask`` [N, H, W], ``gt_mask_valid`` [N].
        Optional: ``gt_keypoint_visible`` bool [N, K], ``keypoints2d_hard`` [N, K, 2] (fE2D
        hard-argmax keypoints), ``gt_mask_full`` [N, H, W] (the amodal hand mask, occluded parts
        included).

    Returns:
      dict of floats:
      ``kp3d_epe_mm``, ``kp3d_auc_20_50``: root-relative (AUC on linspace 20-50 mm, 20 steps);
      ``zb_epe_mm``, ``zb_auc_20_50``: root and scale of the ground truth's reference bone;
      ``pa_epe_mm``, ``pa_auc_0_50``: Procrustes with scale (AUC 0-50 mm, 20 steps);
      ``kp2d_epe_px``, ``kp2d_auc_0_30``: reprojected mesh keypoints (AUC 0-30 px);
      ``e2d_epe_px`` and ``e2d_epe_frac`` (the same as a fraction of the crop side H): fE2D
      keypoints; with ``gt_keypoint_visible``, ``e2d_epe_visible_px`` and
      ``e2d_epe_occluded_px`` over the visible / occluded labelled keypoints; with
      ``keypoints2d_hard``, ``e2d_hard_epe_px``;
      ``mask_iou`` (fE2D mask) and ``silhouette_iou`` (rendered mesh), soft IoU over examples
      with a labelled mask, against ``gt_mask_full`` where ``p`` has it, else ``gt_mask``: the
      mesh is rendered without occluders and the mask head is trained on the full-hand mask,
      so an occluded hand is not counted against them where the amodal label exists.
    """
    valid = np.asarray(p["gt_keypoint_valid"], bool)
    # Unlabelled entries may hold anything (NaN, sentinels): zero them before aligning.
    gt3 = np.where(valid[..., None], np.asarray(p["gt_keypoints_3d"], np.float64), 0.0)
    gt2 = np.where(valid[..., None], np.asarray(p["gt_keypoints_2d"], np.float64), 0.0)
    pred3 = np.asarray(p["kp3d"], np.float64)
    usable = _alignment_valid(valid, gt3)
    aligned = {
        "root": metrics.align_root(pred3, gt3),
        "root_scale": metrics.align_root_scale(pred3, gt3),
        "procrustes": metrics.align_procrustes(pred3, gt3, usable["procrustes"]),
    }
    rel = _epe_auc(aligned["root"], gt3, usable["root"], thresholds=_AUC_20_50)
    zb = _epe_auc(aligned["root_scale"], gt3, usable["root_scale"], thresholds=_AUC_20_50)
    pa = _epe_auc(aligned["procrustes"], gt3, usable["procrustes"], thresholds=_AUC_0_50)
    kp2d = _epe_auc(p["kp2d"], gt2, valid, thresholds=_AUC_0_30_PX)
    e2d = _epe_auc(p["keypoints2d"], gt2, valid, thresholds=_AUC_0_30_PX)[0]
    out = {
        "kp3d_epe_mm": 1000.0 * rel[0],
        "kp3d_auc_20_50": rel[1],
        "zb_epe_mm": 1000.0 * zb[0],
        "zb_auc_20_50": zb[1],
        "pa_epe_mm": 1000.0 * pa[0],
        "pa_auc_0_50": pa[1],
        "kp2d_epe_px": kp2d[0],
        "kp2d_auc_0_30": kp2d[1],
        "e2d_epe_px": e2d,
        "e2d_epe_frac": e2d / p["gt_image"].shape[1],
    }
    if "gt_keypoint_visible" in p:
        visible = np.asarray(p["gt_keypoint_visible"], bool)
        for name, sel in (("visible", valid & visible), ("occluded", valid & ~visible)):
            out[f"e2d_epe_{name}_px"] = _epe_auc(
                p["keypoints2d"], gt2, sel, thresholds=_AUC_0_30_PX
            )[0]
    if "keypoints2d_hard" in p:
        out["e2d_hard_epe_px"] = _epe_auc(
            p["keypoints2d_hard"], gt2, valid, thresholds=_AUC_0_30_PX
        )[0]
    gt_mask = np.asarray(p["gt_mask_full"] if "gt_mask_full" in p else p["gt_mask"], np.float32)
    mask_valid = np.asarray(p["gt_mask_valid"], np.float32)
    out["mask_iou"] = _iou(p["mask"], _downsample(gt_mask, p["mask"].shape[1]), mask_valid)
    out["silhouette_iou"] = _iou(
        p["silhouette"], _downsample(gt_mask, p["silhouette"].shape[1]), mask_valid
    )
    return {k: float(v) for k, v in out.items()}


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
