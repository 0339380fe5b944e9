"""Training losses of the hand mesh estimator (pure jax.numpy).

Every function takes one example; batch with ``jax.vmap``. Units: 3D keypoints in metres (the
loss is a mean distance in metres), 2D keypoints in input pixels converted to normalised crop
coordinates (ndc, [-1, 1] across the crop) so that the 2D losses do not depend on the input size;
heatmaps in heatmap pixels at stride s of the input. Masks and silhouettes are [H, W] in [0, 1].
Per-keypoint ``valid`` weights ([K], 1 = labelled) drop unlabelled keypoints; a loss over no valid
keypoint is 0. Distances use a smoothed norm so that gradients stay finite at zero error.
"""

import jax.numpy as jnp

_EPS = 1e-12


def _safe_norm(x, axis=-1):
    return jnp.sqrt(jnp.sum(x * x, axis=axis) + _EPS)


def _weighted_mean(per_item, valid):
    valid = valid.astype(per_item.dtype)
    return jnp.sum(per_item * valid) / jnp.maximum(jnp.sum(valid), 1.0)


def gaussian_heatmaps(keypoints, *, size, stride: int, sigma: float):
    """Render unit-peak Gaussian target heatmaps.

    Args:
      keypoints: [K, 2] (u, v) in input pixels.
      size: (h, w) heatmap size.
      stride: input pixels per heatmap pixel.
      sigma: Gaussian standard deviation in heatmap pixels.

    Returns:
      [h, w, K] targets in [0, 1], peak 1 at each keypoint's heatmap location.
    """
    h, w = size
    centres = keypoints / stride - 0.5  # heatmap pixel coordinates of pixel centres
    vs = jnp.arange(h, dtype=jnp.float32)[:, None, None]
    us = jnp.arange(w, dtype=jnp.float32)[None, :, None]
    d2 = (us - centres[:, 0]) ** 2 + (vs - centres[:, 1]) ** 2  # [h, w, K]
    return jnp.exp(-0.5 * d2 / sigma**2)


def heatmap_loss(pred, target, valid):
    """Mean squared error between heatmaps, over pixels and valid keypoints.

    Args:
      pred: [h, w, K] predicted heatmaps.
      target: [h, w, K] target heatmaps.
      valid: [K] keypoint weights.

    Returns:
      Scalar loss.
    """
    per_keypoint = jnp.mean((pred - target) ** 2, axis=(0, 1))
    return _weighted_mean(per_keypoint, valid)


def mask_loss(logits, mask):
    """Binary cross-entropy of foreground logits against a soft mask (numerically stable).

    Args:
      logits: [h, w] foreground logits.
      mask: [h, w] target foreground probability in [0, 1].

    Returns:
      Scalar mean BCE, nats per pixel.
    """
    bce = jnp.maximum(logits, 0.0) - logits * mask + jnp.log1p(jnp.exp(-jnp.abs(logits)))
    return jnp.mean(bce)


def keypoint3d_loss(pred, target, valid, *, root: int = 0):
    """Mean root-relative 3D keypoint distance.

    Args:
      pred: [K, 3] predicted keypoints, metres.
      target: [K, 3] ground-truth keypoints, metres (any frame with the same orientation).
      valid: [K] keypoint weights; the root must be valid for the example to count.
      root: index of the root keypoint (the wrist in the canonical order).

    Returns:
      Scalar mean distance in metres.
    """
    pred_rel = pred - pred[root]
    target_rel = target - target[root]
    return _weighted_mean(_safe_norm(pred_rel - target_rel), valid * valid[root])


def keypoint2d_loss(pred, target, valid, *, image_size):
    """Mean 2D keypoint distance in normalised crop units.

    Args:
      pred: [K, 2] predicted keypoints (u, v), input pixels.
      target: [K, 2] ground-truth keypoints, input pixels.
      valid: [K] keypoint weights.
      image_size: (H, W) of the input crop, pixels.

    Returns:
      Scalar mean distance in ndc units (2 = the crop's width).
    """
    scale = 2.0 / jnp.asarray([image_size[1], image_size[0]], jnp.float32)
    return _weighted_mean(_safe_norm((pred - target) * scale), valid)


def silhouette_loss(alpha, mask):
    """Mean squared difference between a rendered silhouette and a mask.

    Args:
      alpha: [H, W] rendered soft silhouette in [0, 1].
      mask: [H, W] target foreground in [0, 1], same size.

    Returns:
      Scalar loss.
    """
    return jnp.mean((alpha - mask) ** 2)


def visible_silhouette_loss(alpha, visible_mask):
    """One-sided silhouette loss against a visible-only mask.

    Where only the visible part of the hand is labelled, an occluder may hide any rendered pixel
    outside the mask, so only labelled hand pixels that the render misses are penalised.

    Args:
      alpha: [H, W] rendered (amodal) soft silhouette in [0, 1].
      visible_mask: [H, W] visible-hand mask in [0, 1], same size.

    Returns:
      Scalar loss: mean over pixels of ``visible_mask * (1 - alpha)^2``.
    """
    return jnp.mean(visible_mask * (1.0 - alpha) ** 2)


def pose_prior(pose, mean_pose):
    """Mean squared deviation of the articulation from the mean hand ([45] each, radians)."""
    return jnp.mean((pose - mean_pose) ** 2)


def shape_prior(betas):
    """Mean squared shape coefficient ([S])."""
    return jnp.mean(betas**2)


def rotation_regulariser(rot):
    """Keep a rotation parameter near its manifold.

    Args:
      rot: [4] quaternion (w, x, y, z): penalise (|q| - 1)^2; or [6] two matrix columns: penalise
        their deviation from unit length and orthogonality.

    Returns:
      Scalar penalty.
    """
    if rot.shape[-1] == 4:
        return (_safe_norm(rot) - 1.0) ** 2
    if rot.shape[-1] != 6:
        raise ValueError(f"rot: expected last axis 4 or 6, got shape {rot.shape}")
    a, b = rot[:3], rot[3:]
    return (_safe_norm(a) - 1.0) ** 2 + (_safe_norm(b) - 1.0) ** 2 + jnp.dot(a, b) ** 2


def area_downsample(image, factor: int):
    """Average non-overlapping factor x factor blocks: [H, W, ...] -> [H / f, W / f, ...]."""
    h, w = image.shape[:2]
    if h % factor or w % factor:
        raise ValueError(f"area_downsample: size {(h, w)} is not a multiple of {factor}")
    blocks = image.reshape(h // factor, factor, w // factor, factor, *image.shape[2:])
    return jnp.mean(blocks, axis=(1, 3))


def running_skeleton_loss(ema, loss, *, decay: float):
    """Update the running 3D keypoint loss of the silhouette gate (``ema`` < 0: first value)."""
    return jnp.where(ema < 0, loss, decay * ema + (1.0 - decay) * loss)


GATE_MODES = ("always", "never", "threshold", "step", "threshold_or_step")


def silhouette_gate(active, skeleton_loss, step, *, mode: str, threshold: float, start_step: int):
    """Decide whether the silhouette loss is on (latched once on).

    The paper switches the mask loss on once the skeleton losses have converged: "threshold"
    opens when the running 3D keypoint loss falls below ``threshold``; "threshold_or_step"
    also opens at ``start_step`` at the latest, so that a threshold the run never reaches
    cannot keep the loss off for the whole run.

    Args:
      active: [] bool, whether the loss was already on.
      skeleton_loss: [] running average of the 3D keypoint loss, metres (negative: not yet
        measured, never below the threshold).
      step: [] int training step.
      mode: one of ``GATE_MODES``: "always", "never", "threshold", "step" (on from
        ``start_step``) or "threshold_or_step".
      threshold: skeleton-loss threshold, metres.
      start_step: first step of the silhouette loss in modes "step" and "threshold_or_step".

    Returns:
      [] bool.
    """
    if mode == "always":
        return jnp.ones((), bool)
    if mode == "never":
        return jnp.zeros((), bool)
    below = jnp.logical_and(skeleton_loss >= 0, skeleton_loss < threshold)
    if mode == "threshold":
        return jnp.logical_or(active, below)
    if mode == "step":
        return jnp.logical_or(active, step >= start_step)
    if mode == "threshold_or_step":
        return jnp.logical_or(active, jnp.logical_or(below, step >= start_step))
    raise ValueError(f"mode={mode!r}: expected one of {GATE_MODES}")
