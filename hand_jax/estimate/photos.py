"""A user's photographs: reading any common image, the crop the network sees, left hands.

- ``read_photo`` reads PNG/JPEG/... as [H, W, 3] uint8 RGB: grayscale is replicated, an alpha
  channel is composited over white, 16-bit and float images are rescaled; anything else (or a
  missing, unreadable file) is a ``PhotoError`` naming the file.
- ``photo_box``: the square the network sees. With a box ``(x, y, w, h)`` (pixels, the hand's
  bounding box) the square is centred on it with side ``max(w, h) * (1 + 2 * margin)``, as the
  training crops were cut around the labelled hand (``hand_jax.data.crop.keypoint_box``);
  without one, the largest centred square of the image.
- ``crop_photo`` resamples that square to the network's input (anti-aliased); ``to_image``
  maps crop pixels back to the photograph's pixels.
- Left hands: the crop is mirrored, a right hand estimated, and the results mirrored back
  (``mirror_*``): 2D ``u -> S - u`` in the crop, 3D ``x -> -x`` (camera frame), rotations by
  conjugation with that reflection (axis-angle ``(x, y, z) -> (x, -y, -z)``, quaternion
  ``(w, x, y, z) -> (w, x, -y, -z)``), which gives the parameters of the mirror-image (left)
  MANO hand, the convention of the MANO_LEFT model.
"""

import math
from collections.abc import Sequence

import imageio.v3 as iio
import numpy as np

from hand_jax.data import crop


class PhotoError(ValueError):
    """An input image that cannot be used; the message names the file."""


def _to_rgb_uint8(image: np.ndarray, path: str) -> np.ndarray:
    if image.dtype == np.bool_:
        image = image.astype(np.uint8) * 255
    if image.dtype.kind == "f":
        if not np.all(np.isfinite(image)):
            raise PhotoError(f"{path}: non-finite pixel values")
        peak = 255.0 if image.max(initial=0.0) > 1.0 else 1.0
        image = np.clip(image / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif image.dtype == np.uint16:
        image = ((image.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise PhotoError(f"{path}: unsupported pixel type {image.dtype} (expected 8/16-bit)")
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 2, 3, 4):
        raise PhotoError(f"{path}: expected an [H, W] or [H, W, C<=4] image, got {image.shape}")
    if image.shape[-1] in (2, 4):  # gray/colour + alpha: composite over white
        alpha = image[..., -1:].astype(np.float32) / 255.0
        colour = image[..., :-1].astype(np.float32)
        image = np.clip(colour * alpha + 255.0 * (1.0 - alpha) + 0.5, 0, 255).astype(np.uint8)
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    return np.ascontiguousarray(image)


def read_photo(path: str) -> np.ndarray:
    """Read an image file as [H, W, 3] uint8 RGB (see the module docstring)."""
    try:
        image = np.asarray(iio.imread(path))
    except FileNotFoundError as e:
        raise PhotoError(f"{path}: no such file") from e
    except Exception as e:  # imageio raises many types for undecodable files
        raise PhotoError(f"{path}: not a readable image ({type(e).__name__}: {e})") from e
    if image.ndim == 4:  # animated / multi-page: the first frame
        image = image[0]
    image = _to_rgb_uint8(image, path)
    if min(image.shape[:2]) < 8:
        raise PhotoError(f"{path}: image {image.shape[:2]} is too small")
    return image


def parse_box(text: str | None) -> tuple[float, float, float, float] | None:
    """Parse ``"x,y,w,h"`` (pixels) into a tuple; None or empty gives None."""
    if not text:
        return None
    parts = text.split(",")
    try:
        box = tuple(float(p) for p in parts)
    except ValueError:
        box = ()
    if len(box) != 4 or not all(math.isfinite(v) for v in box) or box[2] <= 0 or box[3] <= 0:
        raise ValueError(f"--box={text!r}: expected x,y,w,h in pixels with w, h > 0")
    return box


def photo_box(shape: Sequence[int], box=None, *, margin: float) -> tuple[float, float, float]:
    """The square ``(u0, v0, side)`` (pixels) the network sees in an image of ``shape``."""
    height, width = shape[:2]
    if box is None:
        side = float(min(height, width))
        return (width - side) / 2.0, (height - side) / 2.0, side
    x, y, w, h = box
    side = max(w, h) * (1.0 + 2.0 * margin)
    return x + w / 2.0 - side / 2.0, y + h / 2.0 - side / 2.0, side


def crop_photo(image: np.ndarray, square, *, size: int, mirror: bool = False) -> np.ndarray:
    """Resample ``square`` of ``image`` [H, W, 3] to [size, size, 3] uint8 (mirrored if asked)."""
    matrix = crop.box_matrix(square, out_size=size)
    supersample = int(min(8, max(1, math.ceil(square[2] / size))))
    out = crop.warp_image(image, matrix, out_size=size, supersample=supersample)
    out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    return out[:, ::-1].copy() if mirror else out


def to_image(points_crop: np.ndarray, square, *, size: int) -> np.ndarray:
    """Map [..., 2] crop pixels back to the photograph's pixels."""
    u0, v0, side = square
    return np.asarray(points_crop, np.float64) * (side / size) + np.array([u0, v0])


def mirror_points_2d(points: np.ndarray, *, size: int) -> np.ndarray:
    """Mirror [..., 2] crop pixels left-right: ``u -> S - u`` (pixel centres at + 0.5)."""
    out = np.array(points, np.float64, copy=True)
    out[..., 0] = size - out[..., 0]
    return out


def mirror_points_3d(points: np.ndarray) -> np.ndarray:
    """Mirror [..., 3] camera-frame points: ``x -> -x``."""
    out = np.array(points, np.float64, copy=True)
    out[..., 0] = -out[..., 0]
    return out


def mirror_axis_angle(pose: np.ndarray) -> np.ndarray:
    """Mirror [..., 3k] axis-angle rotations: ``(x, y, z) -> (x, -y, -z)`` per joint."""
    pose = np.asarray(pose, np.float64)
    flips = np.tile([1.0, -1.0, -1.0], pose.shape[-1] // 3)
    return pose * flips


def mirror_quaternion(q: np.ndarray) -> np.ndarray:
    """Mirror [..., 4] (w, x, y, z) rotations by conjugation with ``x -> -x``."""
    return np.asarray(q, np.float64) * np.array([1.0, 1.0, -1.0, -1.0])
