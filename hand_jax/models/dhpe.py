"""DHPE: the full hand mesh estimator (fE2D + fE3D) and the flat hand-parameter vector.

Network outputs (batch first): fE2D ``heatmaps`` [B, H/4, W/4, K], ``mask_logits``
[B, H/4, W/4], ``keypoints2d`` [B, K, 2] input pixels, ``confidence`` [B, K]; fE3D
``refined2d`` [T, B, K, 2] ndc and ``h`` [T, B, D]. The projector fProj (MANO layer + soft
rasterizer) is not part of the Flax module: it has no weights and takes the hand model as data,
see ``hand_jax.models.project``.

The flat h vector is concat(global_rot [R], pose [45], betas [S], cam [3]); R = 4 for the
quaternion (w, x, y, z), 6 for the 6D rotation (the first two columns of the matrix). The camera
part of h is ``(log s, t_u, t_v)``: a log weak-perspective scale and a translation in normalised
crop units (ndc), so that ``x_ndc = s * X + t`` for root-relative keypoints X in metres;
``to_hand_params`` converts it to ``HandParams.cam = (s, t_u / s, t_v / s)``. The regressor
steps in a normalised space ``h = h_init + H_SCALE * z`` (``h_scale``) in which one unit of every
coordinate moves the mean hand's keypoints by a few pixels of a 64 px crop (see ``h_scale``).
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from hand_jax import params as hand_params
from hand_jax.models.heads import EvidenceHeads
from hand_jax.models.regressor import IterativeRegressor
from hand_jax.models.resnet import ResNet

ROT_DIMS = {"quat": 4, "6d": 6}
POSE_DIM = 45
# Units of the regressor's steps per group of h (``hand_jax.params``: one unit of every group
# moves the mean hand's keypoints ~1.5-3 px on a 64 px crop).
ROT_SCALE, POSE_SCALE, BETA_SCALE = (
    hand_params.ROT_UNIT,
    hand_params.POSE_UNIT,
    hand_params.BETA_UNIT,
)
LOG_SCALE_SCALE, SHIFT_SCALE = hand_params.LOG_SCALE_UNIT, hand_params.SHIFT_UNIT


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


def h_scale(*, rot_repr: str, num_betas: int) -> np.ndarray:
    """Return the [D] step units of h (``h = h_init + h_scale * z``, z the regressor's space)."""
    r = ROT_DIMS[rot_repr]
    groups = [
        np.full(r, ROT_SCALE),
        np.full(POSE_DIM, POSE_SCALE),
        np.full(num_betas, BETA_SCALE),
        [LOG_SCALE_SCALE, SHIFT_SCALE, SHIFT_SCALE],
    ]
    return np.concatenate(groups).astype(np.float32)


def weak_perspective_cam(cam_h):
    """Convert h's camera ``(log s, t_u, t_v)`` [..., 3] to ``HandParams.cam`` (s, tx, ty)."""
    s = jnp.exp(cam_h[..., :1])
    return jnp.concatenate([s, cam_h[..., 1:] / s], axis=-1)


def camera_h(cam):
    """Inverse of ``weak_perspective_cam``: (s, tx, ty) [..., 3] -> (log s, s tx, s ty)."""
    s = cam[..., :1]
    return jnp.concatenate([jnp.log(s), s * cam[..., 1:]], axis=-1)


def to_hand_params(h, *, rot_repr: str, num_betas: int) -> hand_params.HandParams:
    """Split a flat h [..., D] into ``HandParams`` (weak-perspective camera (s, tx, ty))."""
    rot, pose, betas, cam = split_h(h, rot_repr=rot_repr, num_betas=num_betas)
    return hand_params.HandParams(rot, pose, betas, weak_perspective_cam(cam))


def from_hand_params(p: hand_params.HandParams):
    """Flatten ``HandParams`` (weak-perspective camera) into h [..., D]."""
    return jnp.concatenate([p.global_rot, p.pose, p.betas, camera_h(p.cam)], axis=-1)


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
      rot_repr: "quat" or "6d", the global rotation's layout in h.
    """

    depth: int = 18
    width: int = 64
    head_width: int = 128
    threshold: float = 0.5
    num_iterations: int = 3
    hidden: int = 512
    conv_width: int = 128
    dtype: Any = jnp.float32
    rot_repr: str = "quat"

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
          h_init: [D] initial h (the mean hand).
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
        num_betas = h_init.shape[-1] - h_dim(rot_repr=self.rot_repr, num_betas=0)
        refined, h = self.regressor(
            evidence["features"],
            evidence["heatmaps"],
            jax.nn.sigmoid(evidence["mask_logits"]),
            kp_ndc,
            evidence["confidence"],
            h_init,
            jnp.asarray(h_scale(rot_repr=self.rot_repr, num_betas=num_betas)),
        )
        return {**out, "refined2d": refined, "h": h}


def make_model(
    *, depth, width, head_width, threshold, num_iterations, hidden, conv_width, dtype, rot_repr
):
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
        rot_repr=rot_repr,
    )
