"""Validation metrics of a network's predictions on labelled crops, under the published protocols.

Host-side numpy over ``hand_jax.network.batches.run_predictions`` output (predictions and the
stacked labels under ``gt_*``). Reported units: millimetres for 3D errors (``*_mm``), crop pixels
for 2D (``*_px``). 3D keypoints are compared root-relative (the network's weak-perspective
output has no depth). Used by in-training validation, model export and split scoring alike.

Mesh metrics: where the samples carry MANO labels of the network's own hand model (the synthetic
data), ``mesh_labels`` poses the true mesh and ``compute_metrics`` adds the mean per-vertex error
(PVE) root-relative and after Procrustes alignment of the whole mesh.
"""

import jax
import numpy as np

from hand_jax import mano
from hand_jax.eval import metrics


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


def _has_mano(sample, num_betas: int) -> bool:
    pose, betas = sample.get("mano_pose"), sample.get("mano_betas")
    return (pose is not None and np.shape(pose) == (48,) and betas is not None
            and np.ndim(betas) == 1 and np.shape(betas)[0] <= num_betas)  # fmt: skip


def mesh_labels(samples, hand_model, *, batch: int = 256) -> dict:
    """The true mesh of every cropped sample with MANO labels of ``hand_model``.

    Args:
      samples: cropped sample dicts (``mano_pose`` [48], ``mano_betas`` [<= S],
        ``camera_rotation`` [3, 3] where cropping rolled the camera).
      hand_model: the ``mano.HandModel`` the labels (and the network) use.
      batch: hands posed per compiled call.

    Returns:
      ``gt_verts`` [N, V, 3] float32 metres, relative to the wrist keypoint, crop camera frame
      (zeros where unlabelled) and ``gt_verts_valid`` [N] bool.
    """
    n, num_betas = len(samples), hand_model.num_betas
    valid = np.array([_has_mano(s, num_betas) for s in samples], bool)
    poses, betas = np.zeros((n, 48), np.float32), np.zeros((n, num_betas), np.float32)
    rots = np.repeat(np.eye(3, dtype=np.float32)[None], n, axis=0)
    for i in np.flatnonzero(valid):
        s = samples[i]
        poses[i], betas[i, : len(s["mano_betas"])] = s["mano_pose"], s["mano_betas"]
        rots[i] = s.get("camera_rotation", rots[i])
    pose_fn = jax.jit(jax.vmap(lambda p, b: mano.forward(hand_model, p, b)))
    verts = np.zeros((n, hand_model.num_verts, 3), np.float32)
    for lo in range(0, n, batch):
        out = pose_fn(poses[lo : lo + batch], betas[lo : lo + batch])
        rel = np.asarray(out.verts) - np.asarray(out.keypoints)[:, :1]
        verts[lo : lo + batch] = np.einsum("nij,nvj->nvi", rots[lo : lo + batch], rel)
    return {"gt_verts": np.where(valid[:, None, None], verts, 0.0), "gt_verts_valid": valid}


def _mesh_metrics(p: dict) -> dict:
    """PVE and Procrustes PVE (mm) over the examples with a true mesh of the predicted topology."""
    pred, gt = np.asarray(p["verts"], np.float64), np.asarray(p["gt_verts"], np.float64)
    valid = np.asarray(p["gt_verts_valid"], bool)
    if pred.shape != gt.shape or not np.any(valid):
        return {}
    pred, gt = pred[valid], gt[valid]
    aligned = metrics.align_procrustes(pred, gt)
    per = lambda x: np.linalg.norm(x - gt, axis=-1).mean()  # noqa: E731
    return {"pve_mm": 1000.0 * per(pred), "pa_pve_mm": 1000.0 * per(aligned)}


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
        included); ``verts`` [N, V, 3] with ``mesh_labels``' ``gt_verts`` and ``gt_verts_valid``.

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
      so an occluded hand is not counted against them where the amodal label exists;
      with mesh labels, ``pve_mm`` (root-relative) and ``pa_pve_mm`` (Procrustes on the mesh).
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
    if "gt_verts" in p and "verts" in p:
        out.update(_mesh_metrics(p))
    return {k: float(v) for k, v in out.items()}
