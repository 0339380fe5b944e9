"""Square crops around the hand, resized to the network input, with K and labels kept exact.

Conventions: pixels (u, v) = (column, row), continuous, pixel i's centre at i + 0.5 (so the
image spans [0, W] x [0, H]). A crop box is ``(u0, v0, side)``: the square
[u0, u0 + side] x [v0, v0 + side] in source pixels, mapped onto [0, S] x [0, S] of an S x S
output. Affine pixel maps are 3x3 matrices acting on homogeneous ``(u, v, 1)``.

An in-plane rotation of the crop is modelled as a rotation ``R`` of the camera about its
optical axis: 3D keypoints become ``R X``, the image is warped by ``K R K^-1``, and ``K`` stays
an upper-triangular pinhole matrix. So for every crop, ``project(R X, K_crop)`` equals the
warped 2D keypoints exactly (up to float rounding), whatever the scale, shift and rotation.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hand_jax.data import schema

DEFAULT_MARGIN = 0.25


def keypoint_box(
    keypoints_2d: np.ndarray,
    valid: np.ndarray | None = None,
    *,
    margin: float = DEFAULT_MARGIN,
    min_side: float = 8.0,
) -> np.ndarray:
    """Return the square box centred on the keypoints' bounding box, enlarged by a margin.

    Args:
      keypoints_2d: [K, 2] pixels.
      valid: [K] bool; only valid keypoints count (all if None).
      margin: extra space on each side as a fraction of the larger bounding-box extent:
        side = max(w, h) * (1 + 2 * margin).
      min_side: lower bound on the side, pixels (one keypoint alone still gets a box).

    Returns:
      [3] float64 box (u0, v0, side), pixels.
    """
    points = np.asarray(keypoints_2d, np.float64)
    if valid is not None:
        points = points[np.asarray(valid, bool)]
    points = points[np.all(np.isfinite(points), axis=-1)]
    if points.shape[0] == 0:
        raise ValueError("keypoint_box: no valid, finite keypoint to put a box around")
    lo, hi = points.min(axis=0), points.max(axis=0)
    centre = (lo + hi) / 2
    side = max(float(np.max(hi - lo)) * (1.0 + 2.0 * margin), min_side)
    return np.array([centre[0] - side / 2, centre[1] - side / 2, side])


def box_matrix(box: Sequence[float], *, out_size: int) -> np.ndarray:
    """Return the affine map from source pixels to crop pixels for a square box.

    Args:
      box: (u0, v0, side), pixels.
      out_size: output side S, pixels.

    Returns:
      [3, 3] float64 ``A`` with ``(u', v', 1) = A (u, v, 1)``: u' = (u - u0) * S / side.
    """
    u0, v0, side = (float(x) for x in box)
    if not side > 0:
        raise ValueError(f"box: side must be positive, got {box}")
    s = out_size / side
    return np.array([[s, 0.0, -s * u0], [0.0, s, -s * v0], [0.0, 0.0, 1.0]])


def crop_intrinsics(K: np.ndarray, box: Sequence[float], *, out_size: int) -> np.ndarray:
    """Return the intrinsics of a square crop resized to ``out_size`` (host-side numpy).

    Args:
      K: [3, 3] intrinsics of the source image.
      box: (u0, v0, side), pixels.
      out_size: output side, pixels.

    Returns:
      [3, 3] float64 intrinsics of the crop.
    """
    return box_matrix(box, out_size=out_size) @ np.asarray(K, np.float64)


def view_rotation(K: np.ndarray, *, image_size: int) -> np.ndarray:
    """Return the rotation from a crop's camera frame to the camera looking through its centre.

    A weak-perspective model of an off-centre crop sees the hand along the ray through the crop
    centre, not along the optical axis: its 3D targets belong in the frame of a virtual camera
    (same centre) whose +z is that ray. The rotation is the smallest one taking the ray to +z.

    Args:
      K: [3, 3] intrinsics of the crop (last row (0, 0, 1)).
      image_size: crop side S, pixels; the centre is (S / 2, S / 2).

    Returns:
      [3, 3] float64 R with ``X_view = R @ X_crop_camera`` and ``R @ ray = (0, 0, |ray|)``.
    """
    ray = np.linalg.solve(np.asarray(K, np.float64), [image_size / 2, image_size / 2, 1.0])
    ray = ray / np.linalg.norm(ray)
    axis = np.cross(ray, [0.0, 0.0, 1.0])
    # ray[2] > 0: the last row of K is (0, 0, 1), so a zero axis means the ray is +z.
    sin, cos = np.linalg.norm(axis), ray[2]
    if sin < 1e-12:
        return np.eye(3)
    k = axis / sin
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + sin * cross + (1 - cos) * cross @ cross


def rotation_z(angle: float) -> np.ndarray:
    """Return the [3, 3] rotation by ``angle`` radians about the camera's optical (+z) axis."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a [3, 3] affine pixel map to [N, 2] points; returns [N, 2] float64."""
    points = np.asarray(points, np.float64)
    return points @ matrix[:2, :2].T + matrix[:2, 2]


def warp_image(
    image: np.ndarray,
    matrix: np.ndarray,
    *,
    out_size: int,
    supersample: int = 1,
) -> np.ndarray:
    """Resample an image through an affine pixel map, bilinearly, zero outside the source.

    Args:
      image: [H, W] or [H, W, C] any numeric dtype.
      matrix: [3, 3] affine map from source pixels to output pixels.
      out_size: output side S.
      supersample: n: average n x n bilinear samples per output pixel (anti-aliasing when the
        map shrinks the image).

    Returns:
      [S, S] or [S, S, C] float32.
    """
    src = np.asarray(image, np.float32)
    flat = src.reshape(src.shape[0], src.shape[1], -1)
    height, width = flat.shape[:2]
    inv = np.linalg.inv(matrix)
    offsets = (np.arange(supersample) + 0.5) / supersample
    grid = (np.arange(out_size)[:, None] + offsets[None, :]).reshape(-1)  # [S * n]
    uu, vv = np.meshgrid(grid, grid)
    x = inv[0, 0] * uu + inv[0, 1] * vv + inv[0, 2] - 0.5  # source index coordinates
    y = inv[1, 0] * uu + inv[1, 1] * vv + inv[1, 2] - 0.5
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    out = np.zeros(x.shape + (flat.shape[2],), np.float32)
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)),
                      (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):  # fmt: skip
        xi, yi = x0 + dx, y0 + dy
        inside = (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
        vals = flat[np.clip(yi, 0, height - 1), np.clip(xi, 0, width - 1)]
        out += np.where(inside[..., None], vals * w, 0.0)
    n = supersample
    out = out.reshape(out_size, n, out_size, n, -1).mean(axis=(1, 3))
    return out.reshape((out_size, out_size) + src.shape[2:])


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def crop_transform(
    sample: Mapping[str, Any],
    *,
    out_size: int,
    margin: float = DEFAULT_MARGIN,
    rotation: float = 0.0,
    scale: float = 1.0,
    shift: Sequence[float] = (0.0, 0.0),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Compute the crop of a sample: box, camera rotation and new intrinsics.

    Args:
      sample: a sample dict (``keypoints_2d``, ``keypoint_valid``, ``K`` are read).
      out_size: output side S, pixels.
      margin: box margin (see ``keypoint_box``).
      rotation: in-plane rotation of the crop, radians (camera roll about the optical axis).
      scale: multiplies the box side (> 1 zooms out).
      shift: box centre offset, as a fraction of the box side, (du, dv).

    Returns:
      (matrix [3, 3] source pixels -> crop pixels, R [3, 3] camera rotation, K_crop [3, 3]),
      float64.
    """
    K = np.asarray(sample["K"], np.float64)
    K = K / K[2, 2]
    if not np.allclose(K[2, :2], 0.0):
        raise ValueError(f"{sample.get('id')}: K must have last row (0, 0, 1), got {K[2]}")
    R = rotation_z(rotation)
    rot_pixels = K @ R @ np.linalg.inv(K)
    uv = apply_affine(rot_pixels, sample["keypoints_2d"])
    u0, v0, side = keypoint_box(uv, sample["keypoint_valid"], margin=margin)
    new_side = side * scale
    cu = u0 + side / 2 + shift[0] * new_side
    cv = v0 + side / 2 + shift[1] * new_side
    box = (cu - new_side / 2, cv - new_side / 2, new_side)
    K_crop = crop_intrinsics(K, box, out_size=out_size)
    return box_matrix(box, out_size=out_size) @ rot_pixels, R, K_crop


def crop_sample(
    sample: Mapping[str, Any],
    *,
    out_size: int,
    margin: float = DEFAULT_MARGIN,
    rotation: float = 0.0,
    scale: float = 1.0,
    shift: Sequence[float] = (0.0, 0.0),
    antialias: bool = True,
) -> dict:
    """Crop a sample to an ``out_size`` square around its hand; labels and K follow exactly.

    Args:
      sample: a sample dict (see ``schema``).
      out_size: output side S, pixels.
      margin, rotation, scale, shift: see ``crop_transform``; the defaults are the plain crop
        used for evaluation, the others are augmentation.
      antialias: supersample when shrinking by more than 1.5x.

    Returns:
      A new sample of image size S x S, with ``crop_matrix`` [3, 3] (source pixels -> crop
      pixels) and ``camera_rotation`` [3, 3] (source camera frame -> crop camera frame) added.
    """
    matrix, R, K_crop = crop_transform(
        sample, out_size=out_size, margin=margin, rotation=rotation, scale=scale, shift=shift
    )
    shrink = 1.0 / np.sqrt(abs(np.linalg.det(matrix[:2, :2])))
    n = int(min(4, np.ceil(shrink - 0.5))) if antialias and shrink > 1.5 else 1
    out = dict(sample)
    out["image"] = _to_uint8(warp_image(sample["image"], matrix, out_size=out_size, supersample=n))
    for key in ("mask", "mask_full"):
        if key in sample:
            warped = warp_image(sample[key], matrix, out_size=out_size, supersample=n)
            out[key] = (warped >= 0.5).astype(np.uint8)
    out["keypoints_2d"] = apply_affine(matrix, sample["keypoints_2d"]).astype(np.float32)
    out["keypoints_3d"] = (sample["keypoints_3d"].astype(np.float64) @ R.T).astype(np.float32)
    out["K"] = K_crop.astype(np.float32)
    out["crop_matrix"] = matrix.astype(np.float32)
    out["camera_rotation"] = R.astype(np.float32)
    schema.validate_sample(out)
    return out
