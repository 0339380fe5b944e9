"""Input tensors of the detector networks: affine crops of a photograph, on the host in numpy.

Coordinates are continuous pixels with pixel centres at integer + 0.5 (the top-left corner of
the image is (0, 0)), in both the photograph and the crop. An affine ``A`` [2, 3] maps a crop
point (x, y) to the photograph point ``A @ (x, y, 1)``. Crops are computed on the host so that
photographs of any size share one compiled network; they are small (192 or 224 pixels).

Sampling is bilinear. A crop that shrinks the photograph by more than 2x first averages the
photograph over f x f blocks (f the integer shrink factor below the scale / 1.5), so small
crops of large photographs do not alias; the affine is adjusted accordingly.
"""

import numpy as np

__all__ = ["apply_affine", "crop_scale", "invert_affine", "warp_affine"]

BORDERS = ("zero", "replicate")


def apply_affine(A, points) -> np.ndarray:
    """Map [..., 2] points by the [2, 3] affine ``A``."""
    A, points = np.asarray(A, np.float64), np.asarray(points, np.float64)
    return points @ A[:, :2].T + A[:, 2]


def invert_affine(A) -> np.ndarray:
    """The [2, 3] inverse of an invertible [2, 3] affine."""
    A = np.asarray(A, np.float64)
    inv = np.linalg.inv(A[:, :2])
    return np.concatenate([inv, -inv @ A[:, 2:]], axis=1)


def crop_scale(A) -> float:
    """Photograph pixels per crop pixel (the geometric mean of the two axes' scales)."""
    return float(np.sqrt(abs(np.linalg.det(np.asarray(A, np.float64)[:, :2]))))


def _shrink(image: np.ndarray, factor: int) -> np.ndarray:
    """Average f x f blocks (the ragged last row and column of blocks are dropped)."""
    h, w = image.shape[0] // factor, image.shape[1] // factor
    blocks = image[: h * factor, : w * factor].reshape(h, factor, w, factor, -1)
    return blocks.mean(axis=(1, 3), dtype=np.float32)


def _sample(image: np.ndarray, x: np.ndarray, y: np.ndarray, border: str) -> np.ndarray:
    """Bilinear samples at continuous pixel coordinates (centres at integer + 0.5)."""
    h, w = image.shape[:2]
    u, v = x - 0.5, y - 0.5  # index space: pixel i's centre at i
    u0, v0 = np.floor(u), np.floor(v)
    fu, fv = (u - u0)[..., None], (v - v0)[..., None]
    out = 0.0
    for du, dv, wt in ((0, 0, (1 - fu) * (1 - fv)), (1, 0, fu * (1 - fv)),
                       (0, 1, (1 - fu) * fv), (1, 1, fu * fv)):  # fmt: skip
        iu, iv = (u0 + du).astype(np.int64), (v0 + dv).astype(np.int64)
        value = image[np.clip(iv, 0, h - 1), np.clip(iu, 0, w - 1)]
        if border == "zero":
            inside = (iu >= 0) & (iu < w) & (iv >= 0) & (iv < h)
            value = value * inside[..., None]
        out = out + wt * value
    return out


def warp_affine(image, A, *, size: int, border: str = "zero") -> np.ndarray:
    """Sample a [size, size] crop of ``image`` through the affine ``A`` (crop -> photograph).

    Args:
      image: [H, W, 3] uint8 (0-255) or float (0-1) photograph.
      A: [2, 3] affine from crop pixels to photograph pixels.
      size: the crop side in pixels.
      border: ``"zero"`` (black outside the photograph) or ``"replicate"`` (edge pixels).

    Returns:
      [size, size, 3] float32 in [0, 1].
    """
    if border not in BORDERS:
        raise ValueError(f"border: expected one of {BORDERS}, got {border!r}")
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image: expected [H, W, 3], got shape {image.shape}")
    scale = 255.0 if image.dtype == np.uint8 else 1.0
    A = np.asarray(A, np.float64)
    factor = int(crop_scale(A) / 1.5)
    if factor >= 2 and min(image.shape[:2]) >= 2 * factor:
        image, A = _shrink(image, factor), A / factor
    grid = np.arange(size, dtype=np.float64) + 0.5
    x, y = np.meshgrid(grid, grid)
    points = apply_affine(A, np.stack([x, y], axis=-1))
    out = _sample(image.astype(np.float32), points[..., 0], points[..., 1], border)
    return (out / scale).astype(np.float32)
