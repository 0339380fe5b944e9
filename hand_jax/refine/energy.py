"""The energy of test-time refinement (the paper's Sec. 3) and its evidence.

Given an initial estimate h0 (``HandParams``) and evidence (2D keypoints with confidences and a
foreground probability map), refinement minimises over h alone

    E(h) = w_kp * sum_k c_k |kp2d_k(h) - j2D_k|^2 / S^2             (keypoint reprojection)
         + mu * mean_p d(A_p(h), F_p)                                (silhouette, L2 or BCE)
         + w_shape * |betas|^2 + w_pose * |pose - hands_mean|^2      (priors)
         + w_prox * |h - h0|^2                                       (proximity to the estimate)

where S is the crop side in pixels (so weights do not depend on the crop size), c_k the
keypoint's confidence (the heatmap peak for network evidence: an unsure keypoint pulls less, a
zero-confidence one not at all), A(h) the soft silhouette of the posed mesh rendered at the
evidence mask's resolution (the mask may be coarser than the crop) and F the foreground evidence.
The optimiser (``hand_jax.refine.optimize``) measures the proximity in its preconditioned units
instead of raw parameters.

Non-finite evidence (NaN/inf keypoints, confidences or mask pixels) is masked: such keypoints get
zero confidence and such pixels zero weight.
"""

from typing import NamedTuple

import chex
import jax.numpy as jnp

from hand_jax import mano, render
from hand_jax.params import HandParams, default_params, hand_forward, screen_hand

__all__ = [
    "DEFAULT_WEIGHTS",
    "Evidence",
    "HandParams",
    "default_params",
    "energy_terms",
    "evidence_is_usable",
    "forward",
    "render_evidence",
    "silhouette_and_keypoints",
]

forward = hand_forward


class Evidence(NamedTuple):
    """2D evidence for one example (leading [B] when batched).

    Attributes:
      keypoints_2d: [21, 2] crop pixels (u, v), canonical order.
      confidence: [21] per-keypoint confidence in [0, 1] (heatmap peak values).
      mask: [M, M] foreground probability in [0, 1]; M may differ from the crop side S (the
        silhouette is rendered at M, the keypoints stay in crop pixels).
      K: None for the weak-perspective camera, or the crop's [3, 3] intrinsics for the
        perspective variant (then ``HandParams.cam`` is the wrist translation in metres).
    """

    keypoints_2d: chex.Array
    confidence: chex.Array
    mask: chex.Array
    K: chex.Array | None = None


def silhouette_and_keypoints(
    model: mano.HandModel, params: HandParams, *, image_size: int, sigma, K=None,
    silhouette_fn=None, mask_size: int | None = None,
):  # fmt: skip
    """Pose, project and rasterize one hand.

    Args:
      model: the hand model.
      params: ``HandParams`` of one example.
      image_size: crop side S in pixels (static).
      sigma: silhouette blur, pixels^2 at the silhouette's resolution.
      K: None (weak perspective) or [3, 3] intrinsics (perspective variant).
      silhouette_fn: the rasterizer, ``render.soft_silhouette`` by default (same signature).
      mask_size: silhouette side M in pixels (static; default S). Pixel coordinates scale by
        M / S (pixel centres at integer + 0.5 on both grids).

    Returns:
      verts [V, 3] metres (see ``params.screen_hand``), alpha [M, M], kp2d [21, 2] crop pixels.
    """
    verts, verts_px, kp2d = screen_hand(model, params, image_size=image_size, K=K)
    mask_size = image_size if mask_size is None else mask_size
    if mask_size != image_size:
        factor = mask_size / image_size
        verts_px = verts_px.at[:, :2].multiply(factor)
    alpha = (silhouette_fn or render.soft_silhouette)(
        verts_px, model.faces, image_size=(mask_size, mask_size), sigma=sigma
    )
    return verts, alpha, kp2d


def render_evidence(
    model: mano.HandModel, params: HandParams, *, image_size: int, sigma=0.5, K=None
):
    """Return exact evidence for known parameters: projected keypoints and soft silhouette.

    Args:
      model: the hand model.
      params: ``HandParams`` of one example.
      image_size: crop side in pixels (static).
      sigma: silhouette blur, pixels^2.
      K: None (weak perspective) or [3, 3] intrinsics (perspective variant).

    Returns:
      ``Evidence`` with confidence 1 for every keypoint.
    """
    _, alpha, kp2d = silhouette_and_keypoints(
        model, params, image_size=image_size, sigma=sigma, K=K
    )
    return Evidence(kp2d, jnp.ones(kp2d.shape[:1], kp2d.dtype), alpha, K)


def _sanitize(evidence: Evidence):
    """Mask non-finite evidence; return (keypoints, confidence, mask, pixel weights)."""
    kp_ok = jnp.all(jnp.isfinite(evidence.keypoints_2d), axis=-1) & jnp.isfinite(
        evidence.confidence
    )
    conf = jnp.where(kp_ok, jnp.clip(evidence.confidence, 0.0, 1.0), 0.0)
    kp = jnp.where(kp_ok[:, None], evidence.keypoints_2d, 0.0)
    px_ok = jnp.isfinite(evidence.mask)
    mask = jnp.where(px_ok, jnp.clip(evidence.mask, 0.0, 1.0), 0.0)
    return kp, conf, mask, px_ok.astype(mask.dtype)


def _silhouette_discrepancy(alpha, mask, weight, kind: str):
    if kind == "l2":
        per_pixel = (alpha - mask) ** 2
    elif kind == "bce":
        eps = 1e-6
        a = jnp.clip(alpha, eps, 1.0 - eps)
        per_pixel = -(mask * jnp.log(a) + (1.0 - mask) * jnp.log1p(-a))
    else:
        raise ValueError(f"silhouette_loss: expected 'l2' or 'bce', got {kind!r}")
    return jnp.sum(weight * per_pixel) / jnp.maximum(jnp.sum(weight), 1.0)


def _sq_dist(a: HandParams, b: HandParams):
    return sum(jnp.sum((x - y) ** 2) for x, y in zip(a, b, strict=True))


def energy_terms(
    model: mano.HandModel,
    params: HandParams,
    evidence: Evidence,
    init_params: HandParams,
    *,
    image_size: int,
    sigma: float = 1.0,
    silhouette_loss: str = "l2",
    silhouette_fn=None,
):
    """Return the unweighted energy terms for one example as a dict of scalars.

    Args:
      model: the hand model.
      params: current ``HandParams``.
      evidence: ``Evidence`` (non-finite entries are masked).
      init_params: the initial estimate, for the proximity term.
      image_size: crop side in pixels (static).
      sigma: silhouette blur, pixels^2 at the evidence mask's resolution.
      silhouette_loss: ``"l2"`` or ``"bce"``.
      silhouette_fn: the rasterizer, ``render.soft_silhouette`` by default (same signature).

    Returns:
      dict with ``keypoints``, ``silhouette``, ``shape``, ``pose``, ``proximity``.
    """
    kp, conf, mask, weight = _sanitize(evidence)
    _, alpha, kp2d = silhouette_and_keypoints(
        model, params, image_size=image_size, sigma=sigma, K=evidence.K,
        silhouette_fn=silhouette_fn, mask_size=evidence.mask.shape[-1],
    )  # fmt: skip
    kp_err = jnp.sum((kp2d - kp) ** 2, axis=-1) / float(image_size) ** 2
    pose_mean = model.hands_mean if params.pose.shape[-1] == 45 else 0.0
    return {
        "keypoints": jnp.sum(conf * kp_err),
        "silhouette": _silhouette_discrepancy(alpha, mask, weight, silhouette_loss),
        "shape": jnp.sum(params.betas**2),
        "pose": jnp.sum((params.pose - pose_mean) ** 2),
        "proximity": _sq_dist(params, init_params),
    }


DEFAULT_WEIGHTS = {
    "keypoints": 1.0,
    "silhouette": 1.0,
    "shape": 1e-3,
    "pose": 1e-3,
    "proximity": 1e-3,
}


def evidence_is_usable(evidence: Evidence):
    """[] bool for one example: some keypoint has positive finite confidence, or the mask has a
    finite pixel. Examples without usable evidence have nothing to refine against (their energy
    is only the priors), which callers report instead of a spuriously perfect fit."""
    _, conf, _, weight = _sanitize(evidence)
    return (jnp.sum(conf) > 0) | (jnp.sum(weight) > 0)
