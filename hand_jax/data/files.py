"""Reading the files of the data sources, with errors that name the file and what was expected."""

import json
import os
from collections.abc import Sequence
from typing import Any

import imageio.v3 as iio
import numpy as np


class DataError(ValueError):
    """A data file is missing, unreadable, or does not hold what its format promises."""


def require_file(path: str, what: str) -> str:
    """Return ``path`` if it is a file, else raise a ``DataError`` saying what was expected."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: file not found; expected {what}")
    return path


def require_dir(path: str, what: str) -> str:
    """Return ``path`` if it is a directory, else raise a ``DataError``."""
    if not os.path.isdir(path):
        raise DataError(f"{path}: directory not found; expected {what}")
    return path


def read_image(path: str) -> np.ndarray:
    """Read an RGB image.

    Args:
      path: a PNG or JPEG file.

    Returns:
      [H, W, 3] uint8 (grey images are repeated over the channels, alpha is dropped).

    Raises:
      DataError: the file is missing, truncated or not an image.
    """
    require_file(path, "an RGB image (PNG or JPEG)")
    try:
        image = np.asarray(iio.imread(path))
    except Exception as e:  # decoders raise OSError, SyntaxError, ValueError, ...
        raise DataError(f"{path}: cannot decode image ({type(e).__name__}: {e})") from e
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] not in (3, 4) or image.dtype != np.uint8:
        raise DataError(
            f"{path}: expected an 8-bit RGB image, got shape {image.shape} dtype {image.dtype}"
        )
    return np.ascontiguousarray(image[..., :3])


def read_label_image(path: str) -> np.ndarray:
    """Read a single-channel 8-bit label image (a mask or a part-id map).

    Args:
      path: a PNG or JPEG file; for an RGB file the first channel is returned.

    Returns:
      [H, W] uint8 raw values.

    Raises:
      DataError: the file is missing, truncated or not an 8-bit image.
    """
    require_file(path, "a mask image (PNG or JPEG)")
    try:
        image = np.asarray(iio.imread(path))
    except Exception as e:
        raise DataError(f"{path}: cannot decode image ({type(e).__name__}: {e})") from e
    if image.ndim == 3:
        image = image[..., 0]
    if image.ndim != 2 or image.dtype != np.uint8:
        raise DataError(f"{path}: expected an 8-bit mask, got shape {image.shape} {image.dtype}")
    return image


def check_image_size(image: np.ndarray, path: str, shape: Sequence[int]) -> None:
    """Raise a ``DataError`` if the image's [H, W] differ from ``shape``."""
    if tuple(image.shape[:2]) != tuple(shape):
        raise DataError(f"{path}: expected an image of size {tuple(shape)}, got {image.shape[:2]}")


def read_json(path: str, what: str) -> Any:
    """Read a JSON file; ``what`` says what it should hold (used in errors)."""
    require_file(path, what)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:  # deep nesting too
        raise DataError(f"{path}: not valid JSON ({type(e).__name__}: {e}); expected {what}") from e


def as_array(value: Any, path: str, shape: Sequence[int | None], what: str) -> np.ndarray:
    """Convert to a float64 array and check its shape (None matches any size).

    Raises:
      DataError: naming the file, what was expected, and what was found.
    """
    try:
        array = np.asarray(value, np.float64)
    except (ValueError, TypeError, OverflowError, RecursionError) as e:  # 10**400, deep nesting
        raise DataError(f"{path}: expected {what} of shape {tuple(shape)}; {e}") from e
    ok = array.ndim == len(shape) and all(
        w is None or w == g for w, g in zip(shape, array.shape, strict=False)
    )
    if not ok:
        raise DataError(f"{path}: expected {what} of shape {tuple(shape)}, got {array.shape}")
    return array


def count_files(directory: str, *, suffixes: Sequence[str], prefix: str = "") -> int:
    """Count the files in a directory whose names start with ``prefix`` and end with a suffix."""
    with os.scandir(directory) as entries:
        return sum(
            1
            for e in entries
            if e.name.startswith(prefix) and e.name.lower().endswith(tuple(suffixes))
        )


def check_count(*, found: int, expected: int, path: str, what: str) -> None:
    """Raise a ``DataError`` when a label count and an image count disagree."""
    if found != expected:
        raise DataError(f"{path}: found {found} {what}, expected {expected} to match the labels")


def project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Project [N, 3] camera-frame points with [3, 3] intrinsics to [N, 2] pixels (numpy)."""
    h = np.asarray(points, np.float64) @ np.asarray(K, np.float64).T
    with np.errstate(divide="ignore", invalid="ignore"):
        return h[:, :2] / h[:, 2:3]
