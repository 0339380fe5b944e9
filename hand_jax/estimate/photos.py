"""A user's photographs: reading any common image, the crop the network sees, left hands.

- ``read_photo`` reads PNG/JPEG/GIF/BMP/TIFF/WebP/... as [H, W, 3] uint8 RGB, upright (the EXIF
  orientation of phone photos applied, so pixels are those a viewer shows). Budgets before
  bytes: the header is read first and an image of more than ``MAX_PIXELS`` (width x height) is
  refused before anything is decoded; only the first frame of an animation or multi-page file is
  decoded; anything that is not a regular file (a FIFO would block ``open`` forever, a device, a
  directory) is refused without opening it. Every mode is converted: palette (with its
  transparency), 1-bit and grayscale replicated, CMYK and YCbCr converted, alpha composited over
  white, 16/32-bit integer and float images rescaled (see ``_rescaled``). Anything else, and any
  decoder failure (truncated data, ``MemoryError``, Pillow's decompression-bomb guard), is a
  ``PhotoError`` naming the file, which ``hand_jax.estimate.job`` reports and skips.
  ``image_extensions`` are the file name endings of those formats (what a folder of photos is
  searched for).
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
import os
import stat
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageOps

from hand_jax.data import crop

MAX_PIXELS = 50_000_000
"""Largest image ``read_photo`` decodes by default (width x height, 50 Mpx: a 48 Mpx phone photo
passes). Reading one takes about 10 bytes per pixel at its peak (Pillow's image, the bytes numpy
wraps and the returned copy): 0.4-0.5 GB at the budget. Pass ``max_pixels`` to change it; Pillow's
own guard still refuses more than 2 x ``PIL.Image.MAX_IMAGE_PIXELS`` (179 Mpx by default) and
warns (``DecompressionBombWarning``) above 89 Mpx, before the budget is checked."""

# Pillow can open more, but some formats run outside programs (EPS runs Ghostscript) or are not
# photographs; these are the ones a camera, phone or image editor writes.
FORMATS = ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP", "PPM", "TGA", "JPEG2000", "AVIF", "QOI")
_ORIENTATION = 0x0112  # the EXIF tag; 1 is upright, 2-8 flips and rotations
_NUMERIC_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")  # rescaled in numpy


class PhotoError(ValueError):
    """An input image that cannot be used; the message names the file."""


def _require_regular_file(path: str) -> int:
    """Refuse a missing path or one that is not a regular file, without opening it; its bytes."""
    try:
        info = os.stat(path)
    except FileNotFoundError as e:
        raise PhotoError(f"{path}: no such file") from e
    except OSError as e:
        raise PhotoError(f"{path}: cannot be read ({type(e).__name__}: {e})") from e
    if not stat.S_ISREG(info.st_mode):
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "a FIFO, socket or device"
        raise PhotoError(f"{path}: not a regular file ({kind}); expected an image file")
    return info.st_size


def _check_size(image: Image.Image, path: str, max_pixels: int) -> None:
    """Refuse, from the header alone, an image too large to decode or too small to use."""
    width, height = image.size
    if width * height > max_pixels:
        raise PhotoError(
            f"{path}: {width} x {height} pixels ({width * height / 1e6:.1f} Mpx) is over the "
            f"budget of {max_pixels / 1e6:g} Mpx; downscale it or pass read_photo(max_pixels=...)"
        )
    if min(width, height) < 8:
        raise PhotoError(f"{path}: image {(height, width)} is too small")


def _rescaled(values: np.ndarray, path: str) -> np.ndarray:
    """[H, W] 16/32-bit integer or float pixels as [H, W] uint8.

    16-bit images span 0..65535. 32-bit integer ones (mode ``I``) span 0..255 if they fit, else
    0..65535 if they fit, else 0..max. Float ones span 0..1, or 0..255 if any value exceeds 1.
    """
    if values.dtype.kind == "f":
        if not np.all(np.isfinite(values)):
            raise PhotoError(f"{path}: non-finite pixel values")
        peak = 255.0 if values.max(initial=0.0) > 1.0 else 1.0
    elif values.dtype.itemsize == 2:
        peak = 65535.0
    else:
        top = float(values.max(initial=0))
        peak = 255.0 if top <= 255 else 65535.0 if top <= 65535 else top
    scaled = values.astype(np.float32) * np.float32(255.0 / peak) + np.float32(0.5)
    return np.clip(scaled, 0, 255).astype(np.uint8)


def _over_white(image: Image.Image) -> Image.Image:
    """Composite an image with alpha (or palette / colour-key transparency) over white, as RGB."""
    rgba = image.convert("RGBA")
    out = Image.new("RGB", image.size, (255, 255, 255))
    out.paste(rgba, mask=rgba)
    return out


def _rgb_array(image: Image.Image, path: str) -> np.ndarray:
    """[H, W, 3] uint8 RGB of a decoded image of any Pillow mode (a writable array)."""
    if image.mode in _NUMERIC_MODES:
        gray = _rescaled(np.asarray(image), path)
        return np.repeat(gray[..., None], 3, axis=-1)
    if image.has_transparency_data:  # RGBA, LA, PA, RGBa, palette or colour-key transparency
        image = _over_white(image)
    elif image.mode != "RGB":  # 1, L, P, CMYK (Adobe-inverted JPEGs included), YCbCr, LAB, ...
        image = image.convert("RGB")
    return np.array(image)


def _decode(image: Image.Image, path: str) -> np.ndarray:
    """Decode the first frame of an opened image, upright, as [H, W, 3] uint8."""
    image.load()  # the current (first) frame only; Pillow decodes other frames on seek
    try:
        orientation = image.getexif().get(_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - a damaged EXIF block should not cost the photo
        orientation = 1
    if orientation in range(2, 9):
        image = ImageOps.exif_transpose(image)
    return _rgb_array(image, path)


def _registered() -> dict:
    Image.init()  # registers every plugin once; later calls return at once
    return Image.OPEN


def _formats() -> list[str]:
    return [f for f in FORMATS if f in _registered()]


def image_extensions() -> frozenset[str]:
    """Lower-case file name endings (``".jpg"``, ...) of the formats ``read_photo`` reads."""
    formats = set(_formats())
    return frozenset(e for e, f in Image.registered_extensions().items() if f in formats)


def read_photo(path: str, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an image file as [H, W, 3] uint8 RGB, upright (see the module docstring).

    Args:
      path: the image file.
      max_pixels: the largest width x height decoded (``MAX_PIXELS``); a larger image is
        refused from its header.

    Raises:
      PhotoError: naming the file, for a missing, non-regular, unreadable, over-budget or too
        small (< 8 px) image, and for any decoder failure (``MemoryError`` included).
    """
    num_bytes = _require_regular_file(path)
    try:
        with Image.open(path, formats=_formats()) as image:
            _check_size(image, path, max_pixels)
            return _decode(image, path)
    except PhotoError:
        raise
    except Image.DecompressionBombError as e:
        raise PhotoError(f"{path}: over Pillow's decompression-bomb limit ({e})") from e
    except MemoryError as e:
        raise PhotoError(f"{path}: out of memory while decoding it") from e
    except Image.UnidentifiedImageError as e:  # its own message repeats the path
        what = (
            "an empty file"
            if num_bytes == 0
            else "contents not recognised as " + ", ".join(_formats())
        )
        raise PhotoError(f"{path}: not a readable image ({what})") from e
    except Exception as e:  # Pillow raises many types for undecodable files
        raise PhotoError(f"{path}: not a readable image ({type(e).__name__}: {e})") from e


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
