"""DHPE: the full hand mesh estimator (fE2D + fE3D) and the flat hand-parameter vector.

Network outputs (batch first): fE2D ``heatmaps`` [B, H/4, W/4, K], ``mask_logits``
[B, H/4, W/4], ``keypoints2d`` [B, K, 2] input pixels, ``confidence`` [B, K]; fE3D
``refined2d`` [T, B, K, 2] ndc and ``h`` [T, B, D]. The projector fProj (MANO layer + soft
rasterizer) is not part of the Flax module: it has no weights and takes the hand model as data,
see ``hand_jax.models.project``.

The flat h vector is concat(global_rot [R], pose [45], betas [S], cam [3]); R = 4 for the
quaternion (w, x, y, z), 6 for the 6D rotation (the first two columns of the matrix).
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from hand_jax.models.heads import EvidenceHeads
from hand_jax.models.regressor import IterativeRegressor
from hand_jax.models.resnet import ResNet

ROT_DIMS = {"quat": 4, "6d": 6}
POSE_DIM = 45


def h_dim(*, rot_repr: str, num_betas: int) -> int:
    """Return D, the length of the flat h vector."""
    if rot_repr not in ROT_DIMS:
        raise ValueError(f"rot_repr={rot_repr!r}: expected one of {tuple(ROT_DIMS)}")
    return ROT_DIMS[rot_repr] + POSE_DIM + num_betas + 3


def split_h(h, *, rot_repr: str, num_betas: int):
    """Split a flat h [..., D] into (global_rot, pose, betas, cam) arrays."""
    r = ROT_DIMS[rot_repr]
    if h.shape[-1] != h_dim(rot_repr=rot_repr, num_betas=num_betas):
        raise ValueError(
            f"h: expected last axis {h_dim(rot_repr=rot_repr, num_betas=num_betas)} for "
            f"rot_repr={rot_repr!r}, num_betas={num_betas}; got shape {h.shape}"
        )
    cuts = np.cumsum([r, POSE_DIM, num_betas])
    return tuple(jnp.split(h, cuts, axis=-1))


class DHPE(nn.Module):
    """fE2D (ResNet + evidence heads) followed by fE3D (iterative regressor).

    Attributes:
      depth: ResNet depth (10, 18, 34, 50).
      width: ResNet base width.
      head_width: fE2D decoder channels.
      threshold: soft-argmax threshold (fraction of the heatmap peak).
      num_iterations: T.
      hidden: fE3D MLP width.
      conv_width: fE3D context-encoder channels.
      dtype: compute dtype of the convolutions and MLPs.
    """

    depth: int = 18
    width: int = 64
    head_width: int = 128
    threshold: float = 0.5
    num_iterations: int = 3
    hidden: int = 512
    conv_width: int = 128
    dtype: Any = jnp.float32

    def setup(self):
        self.backbone = ResNet(self.depth, self.width, self.dtype)
        self.heads = EvidenceHeads(self.head_width, threshold=self.threshold, dtype=self.dtype)
        self.regressor = IterativeRegressor(
            self.num_iterations, self.hidden, self.conv_width, self.dtype
        )

    def __call__(self, images, h_init, *, train: bool, freeze_e2d: bool = False, run_e3d=True):
        """Estimate the 2D evidence and the hand parameters.

        Args:
          images: [B, H, W, 3] RGB in [0, 1], H and W multiples of 32.
          h_init: [D] initial h (``mean_h``).
          train: batch statistics in batch norm (True) or running averages (False).
          freeze_e2d: run fE2D in inference mode and stop gradients into it (the stratified
            stage "fE3D on fE2D's evidence").
          run_e3d: False skips fE3D (the stage "fE2D alone"); its outputs are then absent.

        Returns:
          A dict of outputs (see the module docstring).
        """
        e2d_train = train and not freeze_e2d
        evidence = self.heads(self.backbone(images, train=e2d_train), train=e2d_train)
        if freeze_e2d:
            evidence = jax.tree.map(jax.lax.stop_gradient, evidence)
        out = {k: v for k, v in evidence.items() if k != "features"}
        if not run_e3d:
            return out
        size = jnp.asarray([images.shape[2], images.shape[1]], jnp.float32)
        kp_ndc = evidence["keypoints2d"] / size * 2.0 - 1.0
        refined, h = self.regressor(
            evidence["features"],
            evidence["heatmaps"],
            jax.nn.sigmoid(evidence["mask_logits"]),
            kp_ndc,
            evidence["confidence"],
            h_init,
        )
        return {**out, "refined2d": refined, "h": h}


def make_model(*, depth, width, head_width, threshold, num_iterations, hidden, conv_width, dtype):
    """Build a DHPE module from keyword hyperparameters (dtype: "float32" or "bfloat16")."""
    dtypes = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
    if dtype not in dtypes:
        raise ValueError(f"dtype={dtype!r}: expected one of {tuple(dtypes)}")
    return DHPE(
        depth=depth,
        width=width,
        head_width=head_width,
        threshold=threshold,
        num_iterations=num_iterations,
        hidden=hidden,
        conv_width=conv_width,
        dtype=dtypes[dtype],
    )
