"""fE3D: the iterative regressor of the hand parameters h.

h is carried as one flat vector [D] = concat(global_rot [R], pose [45], betas [S], cam [3]) with
R = 4 (quaternion w, x, y, z) or 6 (6D rotation, two matrix columns); ``hand_jax.models.dhpe``
converts it to ``hand_jax.params.HandParams``. 2D keypoints inside the regressor are in normalised
crop coordinates (ndc, [-1, 1] across the crop).

The regressor steps in a normalised space: ``h = h_init + h_scale * z`` with z = 0 at the
start, where ``h_scale`` [D] makes one unit of every coordinate move the keypoints by a
comparable number of pixels (``hand_jax.models.dhpe.h_scale``). Each of T iterations (HMR
style, weights shared across iterations) runs
  1. the 2D-pose refiner: j2d_t = j2d_{t-1} + REFINE_SCALE * MLP_r(e, j2d_{t-1}, confidence, z);
  2. the mesh regressor:  z_t   = z_{t-1}   + MLP_m(e, j2d_t, z_{t-1});
where e is a context vector pooled from (image features, heatmaps, mask). The output layers start
at zero, so the first estimate is exactly the initial h (the mean hand) and fE2D's keypoints.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

REFINE_SCALE = 0.05  # ndc per unit of the 2D refiner's output (1.6 px of a 64 px crop)


class ResidualMLP(nn.Module):
    """Two hidden layers and a zero-initialised output layer: a residual update."""

    hidden: int
    out: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        for i in range(2):
            x = nn.relu(nn.Dense(self.hidden, dtype=self.dtype, name=f"hidden{i}")(x))
        x = nn.Dense(self.out, kernel_init=nn.initializers.zeros, dtype=self.dtype, name="out")(x)
        return x.astype(jnp.float32)


class ContextEncoder(nn.Module):
    """Pool (image features, heatmaps, mask) into one context vector per example."""

    width: int
    out: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, features, heatmaps, mask_prob):
        """Encode the evidence.

        Args:
          features: [B, h, w, C] decoder features.
          heatmaps: [B, h, w, K].
          mask_prob: [B, h, w] foreground probability.

        Returns:
          [B, out] context vectors.
        """
        x = jnp.concatenate(
            [
                features,
                heatmaps.astype(features.dtype),
                mask_prob[..., None].astype(features.dtype),
            ],
            axis=-1,
        )
        for i in range(2):
            x = nn.Conv(self.width, (3, 3), strides=2, dtype=self.dtype, name=f"conv{i}")(x)
            x = nn.relu(x)
        x = jnp.mean(x, axis=(1, 2))
        return nn.relu(nn.Dense(self.out, dtype=self.dtype, name="proj")(x))


class IterativeRegressor(nn.Module):
    """fE3D: T alternating 2D-refiner / mesh-regressor iterations.

    Attributes:
      num_iterations: T.
      hidden: width of the MLPs and of the context vector.
      conv_width: channels of the context encoder's convolutions.
      dtype: compute dtype (the estimates are float32).
    """

    num_iterations: int = 3
    hidden: int = 512
    conv_width: int = 128
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, features, heatmaps, mask_prob, keypoints2d, confidence, h_init, h_scale):
        """Run the iterations.

        Args:
          features: [B, h, w, C] decoder features.
          heatmaps: [B, h, w, K] fE2D heatmaps.
          mask_prob: [B, h, w] fE2D foreground probability.
          keypoints2d: [B, K, 2] fE2D keypoints, ndc.
          confidence: [B, K] fE2D keypoint confidences in [0, 1].
          h_init: [D] initial hand parameters (the mean hand), shared by the batch.
          h_scale: [D] step unit of each coordinate of h.

        Returns:
          keypoints2d: [T, B, K, 2] refined 2D keypoints per iteration, ndc.
          h: [T, B, D] hand parameters per iteration.
        """
        b, k, _ = keypoints2d.shape
        d = h_init.shape[-1]
        context = ContextEncoder(self.conv_width, self.hidden, self.dtype, name="context")(
            features, heatmaps, mask_prob
        )
        refiner = ResidualMLP(self.hidden, k * 2, self.dtype, name="refiner")
        regressor = ResidualMLP(self.hidden, d, self.dtype, name="regressor")
        j2d = keypoints2d.astype(jnp.float32)
        z = jnp.zeros((b, d), jnp.float32)
        conf = confidence.astype(jnp.float32)
        j2ds, hs = [], []
        for _ in range(self.num_iterations):
            step = refiner(jnp.concatenate([context, j2d.reshape(b, -1), conf, z], -1))
            j2d = j2d + REFINE_SCALE * step.reshape(b, k, 2)
            z = z + regressor(jnp.concatenate([context, j2d.reshape(b, -1), z], -1))
            j2ds.append(j2d)
            hs.append(h_init.astype(jnp.float32) + h_scale * z)
        return jnp.stack(j2ds), jnp.stack(hs)
