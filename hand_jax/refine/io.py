"""Refinement inputs and outputs: evidence files, synthetic problems, result files.

Evidence file (npz), N examples, crop side S pixels:

| key | shape | meaning |
|---|---|---|
| ``keypoints_2d`` | float [N, 21, 2] | 2D evidence, crop pixels, canonical order |
| ``confidence`` | float [N, 21] | per-keypoint confidence in [0, 1] |
| ``mask`` | float [N, M, M], uint8 or bool | foreground probability (see below) |
| ``image`` (optional) | uint8 [N, S, S, 3] | the crops, for overlays |
| ``ids`` (optional) | str or int [N], unique | sample ids (output files are named after them) |
| ``K`` (optional) | float [N, 3, 3] | crop intrinsics (perspective variant: ``cam`` in metres) |
| ``global_rot``, ``pose``, ``betas``, ``cam`` (optional) | [N, ...] | initial ``HandParams`` |

Without initial parameters, refinement starts from ``params.default_params`` for every example.
Mask encodings: float probabilities in [0, 1] (NaN marks unknown pixels); bool; uint8 either
0/255 (scaled by 1/255) or 0/1 (a uint8 mask whose maximum is 1 is read as 0/1). The crop side S
is the keypoints' pixel frame; the mask's M may be smaller (the silhouette is rendered at M). Any
other content is an ``EvidenceError`` naming the file and the key; object arrays are never
loaded. Examples whose evidence is entirely non-finite have nothing to fit: the job reports them
as "no valid evidence" instead of an energy.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np

from hand_jax import mano, safe_npz
from hand_jax.params import HandParams, default_params, default_perspective_params
from hand_jax.refine.energy import Evidence, render_evidence

PARAM_KEYS = HandParams._fields


class EvidenceError(ValueError):
    """An evidence file that does not follow the format; the message names the file and key."""


PARAM_SHAPES = {"global_rot": (4, 6), "pose": tuple(range(1, 46)), "cam": (3,)}


def _read_npz(path) -> dict:
    """Every member of an npz, without pickle; any failure is an ``EvidenceError``."""
    data = safe_npz.read_npz(path, error=EvidenceError, what="refinement evidence")
    for k, v in data.items():
        if k == "ids" and v.dtype.kind in "US":
            continue
        if v.dtype.kind not in "biuf":
            raise EvidenceError(f"{path}: '{k}' has dtype {v.dtype}, expected a numeric array")
    return data


def _check_shape(path, key, value, shape):
    same = zip(shape, value.shape, strict=False)
    ok = value.ndim == len(shape) and all(s is None or s == d for s, d in same)
    if not ok:
        want = "[" + ", ".join("?" if s is None else str(s) for s in shape) + "]"
        raise EvidenceError(f"{path}: '{key}' has shape {value.shape}, expected {want}")


def _mask(path, mask, n):
    _check_shape(path, "mask", mask, (n, None, None))
    if mask.shape[1] != mask.shape[2] or mask.shape[1] < 1:
        raise EvidenceError(f"{path}: 'mask' has shape {mask.shape}, expected square [N, M, M]")
    if mask.dtype == np.bool_:
        return mask.astype(np.float32)
    if mask.dtype == np.uint8:
        peak = 1.0 if mask.size and mask.max() <= 1 else 255.0  # 0/1 or 0/255 encoding
        return mask.astype(np.float32) / peak
    if mask.dtype.kind not in "f":
        raise EvidenceError(f"{path}: 'mask' has dtype {mask.dtype}: expected float, uint8, bool")
    finite = mask[np.isfinite(mask)]
    if finite.size and (finite.min() < -1e-3 or finite.max() > 1.0 + 1e-3):
        raise EvidenceError(
            f"{path}: 'mask' values span [{finite.min():.3g}, {finite.max():.3g}], expected "
            "probabilities in [0, 1] (uint8 masks may be 0/255 or 0/1)"
        )
    return np.clip(mask, 0.0, 1.0).astype(np.float32)


def _init_params(path, data, n):
    present = [k for k in PARAM_KEYS if k in data]
    if not present:
        return None
    if len(present) != len(PARAM_KEYS):
        missing = sorted(set(PARAM_KEYS) - set(present))
        raise EvidenceError(f"{path}: initial parameters are partial, missing {missing}")
    for key in PARAM_KEYS:
        value = data[key]
        _check_shape(path, key, value, (n, None))
        allowed = PARAM_SHAPES.get(key)
        if allowed is not None and value.shape[1] not in allowed:
            raise EvidenceError(f"{path}: '{key}' has {value.shape[1]} columns, expected {allowed}")
    return HandParams(*(data[k].astype(np.float32) for k in PARAM_KEYS))


def _ids(path, data, n):
    ids = data.get("ids", np.arange(n))
    _check_shape(path, "ids", ids, (n,))
    as_text = [str(x) for x in ids.tolist()]
    if len(set(as_text)) != n:
        dup = sorted({x for x in as_text if as_text.count(x) > 1})[:5]
        raise EvidenceError(f"{path}: 'ids' are not unique (e.g. {dup})")
    return ids


def load_evidence(path):
    """Read and validate an evidence npz (format in the module docstring).

    Returns:
      (evidence, init_params or None, images or None, ids) with a leading [N] axis.

    Raises:
      EvidenceError: naming the file and the key, for anything outside the format.
    """
    data = _read_npz(path)
    for key in ("keypoints_2d", "confidence", "mask"):
        if key not in data:
            raise EvidenceError(f"{path}: missing key '{key}' (have {sorted(data)})")
    n = data["keypoints_2d"].shape[0] if data["keypoints_2d"].ndim else 0
    if n == 0:
        raise EvidenceError(f"{path}: 'keypoints_2d' holds no examples (N = 0)")
    _check_shape(path, "keypoints_2d", data["keypoints_2d"], (n, 21, 2))
    _check_shape(path, "confidence", data["confidence"], (n, 21))
    mask = _mask(path, data["mask"], n)
    K = data.get("K")
    if K is not None:
        _check_shape(path, "K", K, (n, 3, 3))
    images = data.get("image")
    if images is not None:
        if images.dtype != np.uint8:
            raise EvidenceError(f"{path}: 'image' has dtype {images.dtype}, expected uint8")
        _check_shape(path, "image", images, (n, None, None, 3))
        if images.shape[1] != images.shape[2]:
            raise EvidenceError(f"{path}: 'image' has shape {images.shape}: crops are square")
    evidence = Evidence(
        data["keypoints_2d"].astype(np.float32), data["confidence"].astype(np.float32), mask,
        None if K is None else K.astype(np.float32),
    )  # fmt: skip
    return evidence, _init_params(path, data, n), images, _ids(path, data, n)


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
