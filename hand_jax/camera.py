"""Cameras: perspective and weak-perspective projection, pixel <-> ndc, crops of intrinsics.

Conventions (stated once, used by every module of the project):

- Camera frame: OpenCV, +x right, +y down, +z forward (depth); metres.
- Pixels: continuous coordinates (u, v) = (column, row); pixel ``i``'s centre is at ``i + 0.5``,
  so an image of width W spans u in [0, W] edge to edge. Intrinsics ``K`` map camera points to
  these coordinates: an OpenCV ``K`` (pixel centres at integers) needs ``cx + 0.5, cy + 0.5``.
- Normalised crop coordinates (ndc): [-1, 1] across the image, -1 at the top/left image edge and
  +1 at the bottom/right edge: ``u = (x_ndc + 1) / 2 * W``, ``v = (y_ndc + 1) / 2 * H``.
- Weak perspective (HMR convention): ``x_ndc = s * (X + tx)``, ``y_ndc = s * (Y + ty)`` with
  ``cam = (s, tx, ty)``; depth is ignored (an orthographic view scaled by ``s``).
- ``image_size`` is ``(H, W)`` or a single int for a square image; it is static (Python ints).
- View frame of a crop: the frame of a virtual camera with the same centre whose +z is the ray
  through the crop's centre pixel (``view_rotation``). A network that sees only the crop
  predicts the hand's rotation in this frame; for a crop at the image centre it is the camera
  frame.

Because pixel edges (not centres) sit at integers, cropping and resizing are exact affine maps:
a square box ``(u0, v0, side)`` resized to ``out_size`` pixels maps ``u -> (u - u0) * out_size /
side`` with no half-pixel terms.
"""

from collections.abc import Sequence

import jax.numpy as jnp

# Depths smaller than this (in the units of the points) are clamped before dividing, so that
# points on the camera plane give large but finite pixels and finite gradients; renderers cull
# faces with depth <= near anyway.
_MIN_DEPTH = 1e-8


def image_hw(image_size: int | Sequence[int]) -> tuple[int, int]:
    """Return ``(H, W)`` as Python ints from an int or an ``(H, W)`` pair."""
    if isinstance(image_size, int):
        hw = (image_size, image_size)
    else:
        hw = tuple(int(s) for s in image_size)
    if len(hw) != 2 or min(hw) <= 0:
        raise ValueError(f"image_size must be a positive int or (H, W); got {image_size!r}")
    return hw


def _check_points(points, dims: int, name: str):
    points = jnp.asarray(points)
    if points.ndim != 2 or points.shape[-1] != dims:
        raise ValueError(f"{name} must have shape [N, {dims}]; got {points.shape}")
    return points


def _safe_depth(z):
    """Clamp |z| away from 0 keeping its sign (z = 0 counts as in front)."""
    sign = jnp.where(z < 0, -1.0, 1.0).astype(z.dtype)
    return sign * jnp.maximum(jnp.abs(z), _MIN_DEPTH)


def project_perspective(points, K, *, with_depth: bool = False):
    """Project camera-frame points with a pinhole camera.

    ``u = (K @ p)_x / z``, ``v = (K @ p)_y / z`` (skew supported). Points at z = 0 are projected
    with z clamped to 1e-8 (finite, so gradients stay finite; renderers cull them).

    Args:
      points: [N, 3] camera-frame points (OpenCV frame), any length unit.
      K: [3, 3] intrinsics mapping to pixels with centres at integer + 0.5.
      with_depth: also return the camera depth z as a third column.

    Returns:
      [N, 2] pixels (u, v), or [N, 3] (u, v, z) if ``with_depth``.
    """
    points = _check_points(points, 3, "points")
    K = jnp.asarray(K, points.dtype)
    if K.shape != (3, 3):
        raise ValueError(f"K must have shape [3, 3]; got {K.shape}")
    z = points[:, 2]
    xy = points[:, :2] / _safe_depth(z)[:, None]
    uv = xy @ K[:2, :2].T + K[:2, 2]
    if with_depth:
        return jnp.concatenate([uv, z[:, None]], axis=-1)
    return uv


def project_weak_perspective(points, cam, *, image_size, with_depth: bool = False):
    """Project points with a weak-perspective camera (HMR convention) to pixels.

    Args:
      points: [N, 3] points (model frame, OpenCV axes), metres.
      cam: [3] weak perspective ``(s, tx, ty)``; ndc = s * (XY + t).
      image_size: ``(H, W)`` or int, pixels (static).
      with_depth: also return the points' Z (unchanged, metres) as a third column; smaller is
        nearer. Render it with ``perspective_correct=False`` and ``near=None``.

    Returns:
      [N, 2] pixels (u, v), or [N, 3] (u, v, Z) if ``with_depth``.
    """
    points = _check_points(points, 3, "points")
    cam = jnp.asarray(cam, points.dtype)
    if cam.shape != (3,):
        raise ValueError(f"cam must have shape [3] (s, tx, ty); got {cam.shape}")
    ndc = cam[0] * (points[:, :2] + cam[1:])
    uv = ndc_to_pixels(ndc, image_size=image_size)
    if with_depth:
        return jnp.concatenate([uv, points[:, 2:]], axis=-1)
    return uv


def pixels_to_ndc(uv, *, image_size):
    """Convert pixels (u, v) to normalised crop coordinates in [-1, 1].

    Args:
      uv: [..., 2] pixels (u, v), centres at integer + 0.5.
      image_size: ``(H, W)`` or int (static).

    Returns:
      [..., 2] ndc, -1 at the top/left edge, +1 at the bottom/right edge.
    """
    h, w = image_hw(image_size)
    uv = jnp.asarray(uv)
    size = jnp.asarray([w, h], uv.dtype if jnp.issubdtype(uv.dtype, jnp.floating) else None)
    return uv * (2.0 / size) - 1.0


def ndc_to_pixels(ndc, *, image_size):
    """Convert normalised crop coordinates to pixels (inverse of ``pixels_to_ndc``).

    Args:
      ndc: [..., 2] normalised crop coordinates.
      image_size: ``(H, W)`` or int (static).

    Returns:
      [..., 2] pixels (u, v).
    """
    h, w = image_hw(image_size)
    ndc = jnp.asarray(ndc)
    size = jnp.asarray([w, h], ndc.dtype if jnp.issubdtype(ndc.dtype, jnp.floating) else None)
    return (ndc + 1.0) * (0.5 * size)


def _box_affine(box, out_size, dtype):
    box = jnp.asarray(box, dtype)
    if box.shape != (3,):
        raise ValueError(f"box must be (u0, v0, side) in pixels, shape [3]; got {box.shape}")
    if not isinstance(out_size, int) or out_size <= 0:
        raise ValueError(f"out_size must be a positive int (pixels); got {out_size!r}")
    scale = out_size / box[2]
    return box[:2], scale


def crop_points(uv, box, *, out_size: int):
    """Map pixels of the full image into a square crop resized to ``out_size`` pixels.

    Args:
      uv: [..., 2] pixels in the full image.
      box: [3] ``(u0, v0, side)``: the crop's top-left corner and side, full-image pixels.
      out_size: crop resolution, pixels (static).

    Returns:
      [..., 2] pixels in the crop.
    """
    uv = jnp.asarray(uv)
    origin, scale = _box_affine(box, out_size, uv.dtype)
    return (uv - origin) * scale


def crop_intrinsics(K, box, *, out_size: int):
    """Intrinsics of a square crop ``box`` of an image, resized to ``out_size`` pixels.

    ``project_perspective(p, crop_intrinsics(K, box, out_size=S)) ==
    crop_points(project_perspective(p, K), box, out_size=S)``.

    Args:
      K: [3, 3] intrinsics of the full image.
      box: [3] ``(u0, v0, side)`` square crop in full-image pixels.
      out_size: crop resolution, pixels (static).

    Returns:
      [3, 3] intrinsics of the crop.
    """
    K = jnp.asarray(K)
    if K.shape != (3, 3):
        raise ValueError(f"K must have shape [3, 3]; got {K.shape}")
    origin, scale = _box_affine(box, out_size, K.dtype)
    shift = jnp.eye(3, dtype=K.dtype).at[:2, 2].set(-origin)
    resize = jnp.diag(jnp.stack([scale, scale, jnp.ones_like(scale)]))
    return resize @ shift @ K


def uncrop_intrinsics(K_crop, box, *, out_size: int):
    """Invert ``crop_intrinsics``: the full image's intrinsics from a crop's.

    Args:
      K_crop: [3, 3] intrinsics of the crop.
      box: [3] ``(u0, v0, side)`` the crop box in full-image pixels.
      out_size: the crop's resolution, pixels (static).

    Returns:
      [3, 3] intrinsics of the full image.
    """
    K_crop = jnp.asarray(K_crop)
    if K_crop.shape != (3, 3):
        raise ValueError(f"K_crop must have shape [3, 3]; got {K_crop.shape}")
    origin, scale = _box_affine(box, out_size, K_crop.dtype)
    shift = jnp.eye(3, dtype=K_crop.dtype).at[:2, 2].set(origin)
    resize = jnp.diag(jnp.stack([1.0 / scale, 1.0 / scale, jnp.ones_like(scale)]))
    return shift @ resize @ K_crop


def view_rotation(K, *, image_size: int):
    """The rotation from a crop's camera frame to its view frame (jnp, differentiable).

    The smallest rotation taking the unit ray ``r`` through the crop centre ``(S / 2, S / 2)`` to
    +z: ``R = I + [w]x + [w]x^2 / (1 + c)`` with ``w = r x e_z`` and ``c = r . e_z`` (the ray is
    in front of the camera, so ``c > 0``).

    Args:
      K: [3, 3] intrinsics of the crop (last row (0, 0, 1)).
      image_size: the crop side S, pixels (static).

    Returns:
      [3, 3] ``R`` with ``X_view = R @ X_camera``; its last row is the view axis in the camera
      frame.
    """
    K = jnp.asarray(K)
    if K.shape != (3, 3):
        raise ValueError(f"K must have shape [3, 3]; got {K.shape}")
    centre = jnp.asarray([image_size / 2.0, image_size / 2.0, 1.0], K.dtype)
    ray = jnp.linalg.solve(K, centre)
    ray = ray / jnp.linalg.norm(ray)
    wx, wy = ray[1], -ray[0]  # r x e_z = (r_y, -r_x, 0)
    zero = jnp.zeros_like(wx)
    cross = jnp.stack(
        [jnp.stack([zero, zero, wy]), jnp.stack([zero, zero, -wx]), jnp.stack([-wy, wx, zero])]
    )
    return jnp.eye(3, dtype=K.dtype) + cross + cross @ cross / (1.0 + ray[2])
