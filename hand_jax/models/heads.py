"""fE2D: keypoint heatmaps and a foreground mask at 1/4 input resolution.

A small top-down decoder (FPN style) merges the backbone stages at strides 4..32 into one map at
stride 4; 1x1 convolutions read out K = 21 keypoint heatmaps (trained towards unit-peak Gaussians)
and one foreground-mask logit. Keypoints are read from the heatmaps by ``soft_argmax``.

Coordinates: heatmap pixel (i, j) covers input pixels [j * s, (j + 1) * s) horizontally with
s = the stride (4); its centre is at (j + 0.5) * s input pixels, consistent with the project's
pixel convention (pixel centres at integer + 0.5). ``soft_argmax`` returns keypoints in input
pixels (u, v) = (column, row).
"""

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

NUM_KEYPOINTS = 21


def soft_argmax(heatmaps, *, stride: int, threshold: float):
    """Read keypoints and confidences from heatmaps with a background-free soft-argmax.

    Each heatmap is rescaled to [0, 1] (min to max) and the keypoint is the expectation of the
    pixel centres under the weights ``relu(rescaled - threshold)``: differentiable almost
    everywhere, sub-pixel accurate on a Gaussian peak, and (unlike a softmax over the whole map)
    not pulled towards the map centre by the background, whatever the map size. A constant map
    gives its centre. The confidence is the heatmap's peak value clipped to [0, 1]: heatmaps are
    trained towards Gaussians with peak 1 at labelled keypoints.

    Args:
      heatmaps: [h, w, K] heatmaps (float).
      stride: input pixels per heatmap pixel.
      threshold: fraction of the peak below which pixels do not count, in [0, 1).

    Returns:
      keypoints: [K, 2] (u, v) in input pixels.
      confidence: [K] in [0, 1].
    """
    h, w, k = heatmaps.shape
    flat = heatmaps.astype(jnp.float32).reshape(h * w, k)
    lo, hi = jnp.min(flat, axis=0), jnp.max(flat, axis=0)
    rescaled = (flat - lo) / jnp.maximum(hi - lo, 1e-6)
    weights = jax.nn.relu(rescaled - threshold) + 1e-9  # [h*w, K]
    weights = weights / jnp.sum(weights, axis=0)
    vs, us = jnp.meshgrid(jnp.arange(h), jnp.arange(w), indexing="ij")
    grid = (jnp.stack([us, vs], axis=-1).reshape(h * w, 2) + 0.5) * stride  # [h*w, 2]
    keypoints = weights.T @ grid
    confidence = jnp.clip(hi, 0.0, 1.0)
    return keypoints, confidence


def _upsample(x, shape):
    return jax.image.resize(x, (x.shape[0], *shape, x.shape[-1]), method="bilinear")


class EvidenceHeads(nn.Module):
    """fE2D heads over a backbone feature pyramid.

    Attributes:
      width: decoder channels.
      num_keypoints: K heatmap channels.
      threshold: soft-argmax threshold (fraction of the peak).
      stride: input pixels per pixel of the finest feature map (4 for the ResNets here).
      dtype: compute dtype (heatmaps and mask are returned in float32).
    """

    width: int = 128
    num_keypoints: int = NUM_KEYPOINTS
    threshold: float = 0.5
    stride: int = 4
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, features: Sequence[jnp.ndarray], *, train: bool):
        """Decode the pyramid into heatmaps, a mask and soft-argmax keypoints.

        Args:
          features: backbone stages [B, H / s, W / s, C_s], s = 4, 8, 16, 32 (finest first).
          train: batch statistics (True) or running averages (False) in batch norm.

        Returns:
          A dict with ``features`` [B, H/4, W/4, width] decoder features, ``heatmaps``
          [B, H/4, W/4, K], ``mask_logits`` [B, H/4, W/4], ``keypoints2d`` [B, K, 2] input pixels,
          ``confidence`` [B, K].
        """
        x = None
        for i, f in enumerate(reversed(features)):
            lateral = nn.Conv(self.width, (1, 1), dtype=self.dtype, name=f"lateral{i}")(f)
            x = lateral if x is None else lateral + _upsample(x, lateral.shape[1:3])
        for i in range(2):
            x = nn.Conv(self.width, (3, 3), use_bias=False, dtype=self.dtype, name=f"conv{i}")(x)
            x = nn.BatchNorm(
                use_running_average=not train, momentum=0.9, dtype=self.dtype, name=f"norm{i}"
            )(x)
            x = nn.relu(x)
        heatmaps = nn.Conv(self.num_keypoints, (1, 1), dtype=self.dtype, name="heatmap")(x)
        mask_logits = nn.Conv(1, (1, 1), dtype=self.dtype, name="mask")(x)[..., 0]
        heatmaps = heatmaps.astype(jnp.float32)
        keypoints, confidence = jax.vmap(
            lambda hm: soft_argmax(hm, stride=self.stride, threshold=self.threshold)
        )(heatmaps)
        return {
            "features": x,
            "heatmaps": heatmaps,
            "mask_logits": mask_logits.astype(jnp.float32),
            "keypoints2d": keypoints,
            "confidence": confidence,
        }
