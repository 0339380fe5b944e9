"""Fitting hands to training samples: the estimator, refined against labels where there are any.

Self-data augmentation first fits h to every training crop with the estimation function
(``hand_jax.estimate``: the network, then test-time refinement). Where a sample is labelled,
refinement runs against the labels instead of the network's own evidence: the 2D keypoints
(weight 1 where labelled, 0 elsewhere) and the hand mask (the amodal ``mask_full`` where the
source has it, else the visible ``mask``; none where ``mask_valid`` is False). A fit is kept only
if its reprojected keypoints lie within ``max_keypoint_px`` of the evidence (mean over weighted
keypoints, crop pixels) and its silhouette overlaps the evidence mask with IoU >=
``min_silhouette_iou``; the others are skipped and counted.

A fitted hand (``fitted_hands``) is the input of ``hand_jax.augment.views``: its global rotation
in the network's view frame (the camera looking through the crop centre), 45 articulation
values, betas padded to the hand model's count, and its screen vertices in the crop for
texturing (weak perspective: u, v crop pixels and a depth column of root-relative z + 1 m).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from hand_jax import camera, params, refine
from hand_jax.models import dhpe
from hand_jax.network import forward

EVIDENCE = ("labels", "network")


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """How hands are fitted (recorded in the augmented dataset's manifest).

    Attributes:
      evidence: ``"labels"`` (refine against a sample's labels when it has them, the network's
        evidence otherwise) or ``"network"`` (always the network's own evidence).
      refine_steps, learning_rate: the refinement (``hand_jax.estimate.make_estimate_fn``).
      max_keypoint_px: skip fits whose mean 2D residual exceeds this (crop pixels).
      min_silhouette_iou: skip fits whose silhouette IoU with the evidence mask is lower.
    """

    evidence: str = "labels"
    refine_steps: int = 60
    learning_rate: float = 0.05
    max_keypoint_px: float = 4.0
    min_silhouette_iou: float = 0.6

    def __post_init__(self):
        if self.evidence not in EVIDENCE:
            raise ValueError(f"FitConfig: evidence={self.evidence!r}; expected one of {EVIDENCE}")
        if not isinstance(self.refine_steps, int) or self.refine_steps < 0:
            raise ValueError(f"FitConfig: refine_steps={self.refine_steps!r}: expected an int >= 0")
        if not self.learning_rate > 0 or not self.max_keypoint_px > 0:
            raise ValueError("FitConfig: learning_rate and max_keypoint_px must be > 0")
        if not 0.0 <= self.min_silhouette_iou <= 1.0:
            raise ValueError(f"FitConfig: min_silhouette_iou={self.min_silhouette_iou!r}: [0, 1]")


def _resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Area-average an [S, S] mask to [size, size] (S a multiple of size) or resize bilinearly."""
    s = mask.shape[0]
    if s % size == 0:
        f = s // size
        return mask.reshape(size, f, size, f).mean(axis=(1, 3))
    out = jax.image.resize(jnp.asarray(mask, jnp.float32), (size, size), "bilinear")
    return np.asarray(out, np.float64)


def label_evidence(samples, *, mask_size: int) -> refine.Evidence:
    """Refinement evidence [B] from labelled crops (numpy arrays).

    Keypoints are the labels (crop pixels) with confidence 1 where ``keypoint_valid``; the mask
    is ``mask_full`` if present else ``mask``, area-averaged to ``mask_size``, and NaN (no
    silhouette term) where ``mask_valid`` is False.
    """
    kp, conf, masks = [], [], []
    for s in samples:
        kp.append(np.asarray(s["keypoints_2d"], np.float32))
        conf.append(np.asarray(s["keypoint_valid"], np.float32))
        m = np.asarray(s.get("mask_full", s["mask"]), np.float64)
        m = _resize_mask(np.minimum(m, 1.0), mask_size)
        masks.append(m if bool(s.get("mask_valid", True)) else np.full_like(m, np.nan))
    return refine.Evidence(np.stack(kp), np.stack(conf), np.stack(masks).astype(np.float32))


def has_labels(sample) -> bool:
    """Whether a crop carries labels to fit against (any labelled keypoint or a valid mask)."""
    return bool(np.any(sample["keypoint_valid"])) or bool(sample.get("mask_valid", False))


def fit_quality(est, evidence: refine.Evidence) -> tuple[np.ndarray, np.ndarray]:
    """Per example: mean weighted 2D residual (crop pixels) and silhouette IoU with the mask.

    The estimate's silhouette is resized to the evidence mask's resolution first.

    Examples without weighted keypoints get residual 0; without a finite mask, IoU 1 (neither
    can be judged, so neither skips the fit).
    """
    kp = np.asarray(est.keypoints_2d, np.float64)
    target = np.asarray(evidence.keypoints_2d, np.float64)
    w = np.nan_to_num(np.asarray(evidence.confidence, np.float64)) * np.isfinite(target).all(-1)
    dist = np.linalg.norm(kp - np.nan_to_num(target), axis=-1)
    residual = np.sum(w * dist, axis=1) / np.maximum(np.sum(w, axis=1), 1e-9)
    mask = np.asarray(evidence.mask, np.float64)
    finite = np.isfinite(mask).all(axis=(1, 2))
    sil = np.asarray(est.silhouette, np.float32)
    if sil.shape != mask.shape:  # the estimate's silhouette at the evidence's resolution
        sil = np.asarray(jax.image.resize(sil, mask.shape, method="linear", antialias=True))
    sil, target_mask = sil > 0.5, np.nan_to_num(mask) > 0.5
    inter = np.sum(sil & target_mask, axis=(1, 2))
    union = np.maximum(np.sum(sil | target_mask, axis=(1, 2)), 1)
    return residual, np.where(finite, inter / union, 1.0)


def _screen(est, network, K) -> np.ndarray:
    """[B, V, 3] screen vertices of the fits: crop pixels (u, v) and a depth column."""
    size = network.image_size
    verts, cam_h = jnp.asarray(est.verts), jnp.asarray(est.h)[:, -3:]
    if network.runtime.camera == "weak":
        cam = dhpe.weak_perspective_cam(cam_h)
        uv = jax.vmap(lambda v, c: camera.project_weak_perspective(v, c, image_size=size))(
            verts, cam
        )
        return np.concatenate([np.asarray(uv), np.asarray(verts[..., 2:]) + 1.0], axis=-1)

    def one(v, c, k):
        view, wrist = forward.perspective_camera(c, k, image_size=size)
        return camera.project_perspective(v @ view + wrist, k, with_depth=True)

    return np.asarray(jax.vmap(one)(verts, cam_h, jnp.asarray(K, jnp.float32)))


def fitted_hands(est, network, *, num_betas: int, K=None) -> list[dict]:
    """Fitted hands [B] from an ``Estimate``: rotation, articulation, betas, screen vertices.

    ``K`` [B, 3, 3]: the crops' intrinsics (a perspective network's screen vertices need them).
    """
    settings = network.runtime
    model = network.consts.hand_model
    p = dhpe.to_hand_params(
        jnp.asarray(est.h), rot_repr=settings.rot_repr, num_betas=settings.num_betas
    )
    mats = np.asarray(jax.vmap(params.global_rotation_matrix)(p.global_rot), np.float64)
    arts = np.asarray(jax.vmap(lambda x: params.articulation(model, x))(p.pose), np.float64)
    betas = np.asarray(p.betas, np.float64)
    betas = np.pad(betas, ((0, 0), (0, max(0, num_betas - betas.shape[1]))))[:, :num_betas]
    screen = _screen(est, network, K).astype(np.float64)
    return [
        {"global_mat": mats[i], "articulation": arts[i], "betas": betas[i], "screen": screen[i]}
        for i in range(len(mats))
    ]
