"""Refinement inputs and outputs: evidence files, synthetic problems, result files.

Evidence file (npz), N examples, crop side S pixels:

| key | shape | meaning |
|---|---|---|
| ``keypoints_2d`` | float [N, 21, 2] | 2D evidence, crop pixels, canonical order |
| ``confidence`` | float [N, 21] | per-keypoint confidence in [0, 1] |
| ``mask`` | float [N, S, S] or uint8 | foreground probability (uint8 is scaled by 1/255) |
| ``image`` (optional) | uint8 [N, S, S, 3] | the crops, for overlays |
| ``ids`` (optional) | str or int [N] | sample ids |
| ``K`` (optional) | float [N, 3, 3] | crop intrinsics (perspective variant: ``cam`` in metres) |
| ``global_rot``, ``pose``, ``betas``, ``cam`` (optional) | [N, ...] | initial ``HandParams`` |

Without initial parameters, refinement starts from ``params.default_params`` for every example.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np

from hand_jax import mano
from hand_jax.params import HandParams, default_params, default_perspective_params
from hand_jax.refine.energy import Evidence, render_evidence

PARAM_KEYS = HandParams._fields


def load_evidence(path):
    """Read an evidence npz.

    Args:
      path: the npz file (format in the module docstring).

    Returns:
      (evidence, init_params or None, images or None, ids) with a leading [N] axis.
    """
    with np.load(path, allow_pickle=False) as f:
        data = {k: f[k] for k in f.files}
    for key in ("keypoints_2d", "confidence", "mask"):
        if key not in data:
            raise KeyError(f"{path}: missing key '{key}' (have {sorted(data)})")
    n = data["keypoints_2d"].shape[0]
    expected = {"keypoints_2d": (n, 21, 2), "confidence": (n, 21)}
    for key, shape in expected.items():
        if data[key].shape != shape:
            raise ValueError(f"{path}: '{key}' has shape {data[key].shape}, expected {shape}")
    mask = data["mask"]
    if mask.ndim != 3 or mask.shape[0] != n or mask.shape[1] != mask.shape[2]:
        raise ValueError(f"{path}: 'mask' has shape {mask.shape}, expected [{n}, S, S]")
    if mask.dtype == np.uint8:
        mask = mask.astype(np.float32) / 255.0
    K = data.get("K")
    if K is not None and K.shape != (n, 3, 3):
        raise ValueError(f"{path}: 'K' has shape {K.shape}, expected ({n}, 3, 3)")
    evidence = Evidence(
        data["keypoints_2d"].astype(np.float32), data["confidence"].astype(np.float32), mask,
        None if K is None else K.astype(np.float32),
    )  # fmt: skip
    present = [k for k in PARAM_KEYS if k in data]
    if present and len(present) != len(PARAM_KEYS):
        missing = sorted(set(PARAM_KEYS) - set(present))
        raise KeyError(f"{path}: initial parameters are partial, missing {missing}")
    init = HandParams(*(data[k].astype(np.float32) for k in PARAM_KEYS)) if present else None
    ids = data.get("ids", np.arange(n))
    return evidence, init, data.get("image"), ids


def save_evidence(path, evidence: Evidence, *, init_params=None, images=None, ids=None):
    """Write an evidence npz (the format of the module docstring); refuses to overwrite."""
    if os.path.exists(path):
        raise FileExistsError(f"{path}: exists; refusing to overwrite")
    arrays = {k: np.asarray(v) for k, v in evidence._asdict().items() if v is not None}
    if init_params is not None:
        arrays.update({k: np.asarray(v) for k, v in init_params._asdict().items()})
    if images is not None:
        arrays["image"] = np.asarray(images, np.uint8)
    if ids is not None:
        arrays["ids"] = np.asarray(ids)
    np.savez_compressed(path, **arrays)


def tile_params(params: HandParams, num: int) -> HandParams:
    """Repeat one example's parameters into a batch of ``num``."""
    return jax.tree.map(lambda x: jnp.broadcast_to(x, (num, *x.shape)), params)


def quaternion_multiply(q1, q2):
    """Hamilton product ``q1 * q2`` of [..., 4] ``(w, x, y, z)`` quaternions (q2 applied first)."""
    w1, v1 = q1[..., :1], q1[..., 1:]
    w2, v2 = q2[..., :1], q2[..., 1:]
    w = w1 * w2 - jnp.sum(v1 * v2, axis=-1, keepdims=True)
    return jnp.concatenate([w, w1 * v2 + w2 * v1 + jnp.cross(v1, v2)], axis=-1)


def _random_quaternion(key, num, max_angle):
    k_axis, k_angle = jax.random.split(key)
    axis = jax.random.normal(k_axis, (num, 3))
    axis = axis / jnp.linalg.norm(axis, axis=-1, keepdims=True)
    angle = jax.random.uniform(k_angle, (num, 1), minval=-max_angle, maxval=max_angle)
    return jnp.concatenate([jnp.cos(angle / 2), jnp.sin(angle / 2) * axis], axis=-1)


def synthetic_problems(
    key,
    model: mano.HandModel,
    *,
    num: int,
    image_size: int,
    pose_std: float = 0.3,
    betas_std: float = 0.5,
    cam_rel: float = 0.05,
    rot_range: float = 0.6,
    sigma: float = 0.5,
    K=None,
):
    """Draw ground-truth hands, their exact evidence, and perturbed initial estimates.

    Ground truth: the default framing turned by a random rotation (up to ``rot_range`` rad),
    articulation ``hands_mean + N(0, (pose_std/2)^2)``, betas ``N(0, 0.5^2)``. The initial estimate
    adds articulation noise ``N(0, pose_std^2)``, betas noise ``N(0, betas_std^2)`` and a relative
    camera perturbation of ``cam_rel`` (scale and translation, in units of the hand's framing).
    With ``K`` ([3, 3] crop intrinsics) the problems use the perspective variant: ``cam`` is the
    wrist translation (perturbed by ``cam_rel`` times the depth) and the evidence carries K.

    Returns:
      (gt_params, init_params, evidence), each with a leading [num] axis.
    """
    if K is None:
        base = default_params(model)
    else:
        K = jnp.asarray(K, jnp.float32)
        base = default_perspective_params(model, K, image_size=image_size)
    keys = jax.random.split(key, 7)
    n_betas = base.betas.shape[0]
    gt = tile_params(base, num)._replace(
        global_rot=quaternion_multiply(
            _random_quaternion(keys[0], num, rot_range), base.global_rot
        ),
        pose=base.pose + 0.5 * pose_std * jax.random.normal(keys[1], (num, 45)),
        betas=0.5 * jax.random.normal(keys[2], (num, n_betas)),
    )
    cam_noise = cam_rel * jax.random.normal(keys[3], (num, 3))
    if K is None:
        s = gt.cam[:, :1]
        cam = jnp.concatenate([s * (1 + cam_noise[:, :1]), gt.cam[:, 1:] + cam_noise[:, 1:] / s], 1)
    else:
        cam = gt.cam + cam_noise * gt.cam[:, 2:3]
    init = gt._replace(
        pose=gt.pose + pose_std * jax.random.normal(keys[4], (num, 45)),
        betas=gt.betas + betas_std * jax.random.normal(keys[5], (num, n_betas)),
        cam=cam,
    )

    def render_one(p):
        return render_evidence(model, p, image_size=image_size, sigma=sigma, K=K)

    evidence = jax.jit(jax.vmap(render_one))(gt)
    if K is not None:
        evidence = evidence._replace(K=jnp.broadcast_to(K, (num, 3, 3)))
    return gt, init, evidence
