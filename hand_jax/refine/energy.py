"""The energy of test-time refinement (the paper's Sec. 3) and its evidence.

Given an initial estimate h0 (``HandParams``) and evidence (2D keypoints with confidences, a
foreground probability map and, optionally, 3D keypoints with confidences), refinement minimises
over h alone

    E(h) = w_kp * sum_k c_k |kp2d_k(h) - j2D_k|^2 / S^2             (keypoint reprojection)
         + w_kp3d * min_{s,t} sum_k c3_k |J_k(h) - (s X_k + t)|^2 / U^2
                                                                     (3D keypoints, up to scale)
         + mu * mean_p d(A_p(h), F_p)                                (silhouette, L2 or BCE)
         + w_shape * |betas|^2 + w_pose * |pose - hands_mean|^2      (priors)
         + w_prox * |h - h0|^2                                       (proximity to the estimate)

where S is the crop side in pixels (so weights do not depend on the crop size), c_k the
keypoint's confidence (the heatmap peak for network evidence: an unsure keypoint pulls less, a
zero-confidence one not at all), A(h) the soft silhouette of the posed mesh rendered at the
evidence mask's resolution (the mask may be coarser than the crop) and F the foreground evidence.

The 3D keypoint term fits the model's 21 keypoints J (metres, camera-aligned axes: +x right, +y
down, +z away from the camera; the camera frame under the perspective camera, wrist-relative under
weak perspective, which has no depth: the term is translation-invariant, so the two agree) to
evidence X in any frame with the camera's axis directions, up to a translation t and a scale s
(a detector's "world landmarks": metric, centred anywhere, with a scale error). The inner minimum
is closed form: t = Jbar - s Xbar with c3-weighted centroids, and
s = <J - Jbar, X - Xbar>_c3 / |X - Xbar|_c3^2 clipped to ``KEYPOINTS_3D_SCALE_RANGE`` = [0.5, 2]
(so that degenerate evidence, all points at one place, cannot shrink the target to a point and
the term to the keypoints' spread). It is not rotation-invariant: the evidence fixes the
direction of every bone, depth included. s and t are differentiated through as functions of J;
at the unclipped minimum their contribution vanishes (the envelope theorem), and a clipped s is a
constant, so the gradient is that of the residual at fixed s and t either way.
U = ``KEYPOINTS_3D_UNIT`` = 0.2 m: at the default framing (``default_params``: the mean hand's
0.176 m height fills 0.8 of the crop) the crop side spans ~0.22 m of the hand's plane, so a
millimetre of 3D error costs about as much as a millimetre of image-plane error in the 2D term.
Without 3D evidence (``Evidence.keypoints_3d`` None) the term is 0 and nothing is traced for it;
its default weight is 0.

The optimiser (``hand_jax.refine.optimize``) measures the proximity in its preconditioned units
instead of raw parameters.

Non-finite evidence (NaN/inf keypoints, 2D or 3D, confidences or mask pixels) is masked: such
keypoints get zero confidence and such pixels zero weight.
"""

from typing import NamedTuple

import chex
import jax.numpy as jnp

from hand_jax import camera, mano, render
from hand_jax.params import (
    HandParams,
    default_params,
    hand_forward,
    hand_forward_perspective,
    project_verts,
)

__all__ = [
    "DEFAULT_WEIGHTS",
    "KEYPOINTS_3D_SCALE_RANGE",
    "KEYPOINTS_3D_UNIT",
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

KEYPOINTS_3D_UNIT = 0.2  # metres: the 3D keypoint term's normaliser U (module docstring)
KEYPOINTS_3D_SCALE_RANGE = (0.5, 2.0)  # the clip of the 3D evidence's fitted scale s
_TINY = 1e-12  # guards the 3D fit's divisions when every confidence or the evidence's spread is 0


class Evidence(NamedTuple):
    """Evidence for one example (leading [B] when batched).

    Attributes:
      keypoints_2d: [21, 2] crop pixels (u, v), canonical order.
      confidence: [21] per-keypoint confidence in [0, 1] (heatmap peak values).
      mask: [M, M] foreground probability in [0, 1]; M may differ from the crop side S (the
        silhouette is rendered at M, the keypoints stay in crop pixels).
      K: None for the weak-perspective camera, or the crop's [3, 3] intrinsics for the
        perspective variant (then ``HandParams.cam`` is the wrist translation in metres).
      keypoints_3d: None, or [21, 3] metres, canonical order, in any frame with the camera's
        axis directions (+x right, +y down, +z away), up to a translation and a scale error
        (e.g. a detector's world landmarks); fitted by the ``keypoints_3d`` term.
      confidence_3d: None (every finite 3D keypoint counts fully), or [21] per-keypoint
        confidence in [0, 1] of ``keypoints_3d``.
    """

    keypoints_2d: chex.Array
    confidence: chex.Array
    mask: chex.Array
    K: chex.Array | None = None
    keypoints_3d: chex.Array | None = None
    confidence_3d: chex.Array | None = None


def _pose(model: mano.HandModel, params: HandParams, *, image_size: int, K=None):
    """``params.screen_hand`` that also returns the 3D keypoints of the same forward pass.

    Returns:
      verts [V, 3] and kp3d [21, 3] metres (wrist-relative under weak perspective, camera frame
      under the perspective camera), verts_px [V, 2] or [V, 3] and kp2d [21, 2] crop pixels.
    """
    if K is None:
        verts, kp3d, kp2d = hand_forward(model, params, image_size=image_size)
        return verts, kp3d, project_verts(verts, params.cam, image_size=image_size), kp2d
    verts, kp3d, kp2d = hand_forward_perspective(model, params, K)
    return verts, kp3d, camera.project_perspective(verts, K, with_depth=True), kp2d


def _rasterize(model, verts_px, *, image_size: int, sigma, silhouette_fn, mask_size):
    """The [M, M] soft silhouette of screen-space vertices at the mask's resolution M."""
    mask_size = image_size if mask_size is None else mask_size
    if mask_size != image_size:
        factor = mask_size / image_size
        verts_px = verts_px.at[:, :2].multiply(factor)
    return (silhouette_fn or render.soft_silhouette)(
        verts_px, model.faces, image_size=(mask_size, mask_size), sigma=sigma
    )


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
    verts, _, verts_px, kp2d = _pose(model, params, image_size=image_size, K=K)
    alpha = _rasterize(
        model, verts_px, image_size=image_size, sigma=sigma, silhouette_fn=silhouette_fn,
        mask_size=mask_size,
    )  # fmt: skip
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


def _sanitize_3d(evidence: Evidence):
    """Mask non-finite 3D evidence; return (keypoints [21, 3], confidence [21]) or None."""
    if evidence.keypoints_3d is None:
        if evidence.confidence_3d is not None:
            raise ValueError("evidence.confidence_3d is given without evidence.keypoints_3d")
        return None
    kp3d = jnp.asarray(evidence.keypoints_3d)
    conf = evidence.confidence_3d
    conf = jnp.ones(kp3d.shape[:-1], kp3d.dtype) if conf is None else jnp.asarray(conf)
    ok = jnp.all(jnp.isfinite(kp3d), axis=-1) & jnp.isfinite(conf)
    conf = jnp.where(ok, jnp.clip(conf, 0.0, 1.0), 0.0)
    return jnp.where(ok[..., None], kp3d, 0.0), conf


def _keypoints_3d_discrepancy(kp3d, target, conf):
    """min over s in ``KEYPOINTS_3D_SCALE_RANGE``, t of sum_k c_k |J_k - s X_k - t|^2 / U^2.

    Args:
      kp3d: [K, 3] the model's keypoints J, metres.
      target: [K, 3] the evidence X, metres, any origin, the camera's axis directions.
      conf: [K] weights c >= 0 (0 for masked keypoints).
    """
    w = conf[:, None]
    total = jnp.maximum(jnp.sum(conf), _TINY)
    dj = kp3d - jnp.sum(w * kp3d, axis=0) / total
    dx = target - jnp.sum(w * target, axis=0) / total
    spread = jnp.maximum(jnp.sum(w * dx * dx), _TINY)
    scale = jnp.clip(jnp.sum(w * dj * dx) / spread, *KEYPOINTS_3D_SCALE_RANGE)
    # With t = Jbar - s Xbar the residual J - s X - t is dj - s dx.
    residual = jnp.sum((dj - scale * dx) ** 2, axis=-1)  # [K]
    return jnp.sum(conf * residual) / KEYPOINTS_3D_UNIT**2


def _check_silhouette_loss(kind: str):
    if kind not in ("l2", "bce"):
        raise ValueError(f"silhouette_loss: expected 'l2' or 'bce', got {kind!r}")


def _silhouette_discrepancy(alpha, mask, weight, kind: str):
    _check_silhouette_loss(kind)
    if kind == "l2":
        per_pixel = (alpha - mask) ** 2
    else:
        eps = 1e-6
        a = jnp.clip(alpha, eps, 1.0 - eps)
        per_pixel = -(mask * jnp.log(a) + (1.0 - mask) * jnp.log1p(-a))
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
    with_silhouette: bool = True,
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
      with_silhouette: False skips the rasterizer (static): the silhouette term is then 0, and
        ``evidence.mask`` may be a dummy of any shape (all NaN, so that ``evidence_is_usable``
        does not count it). The rasterizer dominates the cost of the energy.

    Returns:
      dict with ``keypoints``, ``keypoints_3d`` (0 without 3D evidence), ``silhouette``,
      ``shape``, ``pose``, ``proximity``.
    """
    kp, conf, mask, weight = _sanitize(evidence)
    evidence_3d = _sanitize_3d(evidence)
    _, kp3d, verts_px, kp2d = _pose(model, params, image_size=image_size, K=evidence.K)
    zero = jnp.zeros((), kp2d.dtype)
    if with_silhouette:
        alpha = _rasterize(
            model, verts_px, image_size=image_size, sigma=sigma,
            silhouette_fn=silhouette_fn, mask_size=evidence.mask.shape[-1],
        )  # fmt: skip
        silhouette = _silhouette_discrepancy(alpha, mask, weight, silhouette_loss)
    else:
        _check_silhouette_loss(silhouette_loss)
        silhouette = zero
    kp_err = jnp.sum((kp2d - kp) ** 2, axis=-1) / float(image_size) ** 2
    kp3d_err = zero if evidence_3d is None else _keypoints_3d_discrepancy(kp3d, *evidence_3d)
    pose_mean = model.hands_mean if params.pose.shape[-1] == 45 else 0.0
    return {
        "keypoints": jnp.sum(conf * kp_err),
        "keypoints_3d": kp3d_err,
        "silhouette": silhouette,
        "shape": jnp.sum(params.betas**2),
        "pose": jnp.sum((params.pose - pose_mean) ** 2),
        "proximity": _sq_dist(params, init_params),
    }


DEFAULT_WEIGHTS = {
    "keypoints": 1.0,
    "keypoints_3d": 0.0,  # no 3D evidence by default; set it when giving some
    "silhouette": 1.0,
    "shape": 1e-3,
    "pose": 1e-3,
    "proximity": 1e-3,
}


def evidence_is_usable(evidence: Evidence):
    """[] bool for one example: some 2D or 3D keypoint has positive finite confidence, or the
    mask has a finite pixel. Examples without usable evidence have nothing to refine against
    (their energy is only the priors), which callers report instead of a spuriously perfect fit."""
    _, conf, _, weight = _sanitize(evidence)
    usable = (jnp.sum(conf) > 0) | (jnp.sum(weight) > 0)
    evidence_3d = _sanitize_3d(evidence)
    return usable if evidence_3d is None else usable | (jnp.sum(evidence_3d[1]) > 0)
