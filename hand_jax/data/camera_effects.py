"""Cast shadows and camera effects for synthetic images (host-side numpy).

Images are float32 [S, S, 3] RGB in [0, 1] before quantisation; coverages are [S, S] in [0, 1];
pixel centres at i + 0.5; the light direction [3] is a unit vector towards the light in the
camera frame (OpenCV: +x right, +y down, +z forward). Every function that draws takes the
sample's ``numpy.random.Generator`` and states its draw order; the pure ones (kernels, shifts,
gains) are what the tests compare against closed forms.

- ``cast_shadow``: the hand's (and occluders') coverage, shifted away from the light by the
  distance to the surface behind times the light's slant, blurred into a penumbra, darkens the
  background only (it is applied before the hand is composited over it).
- ``white_balance``: red and blue gains against green and an exposure gain, on the whole image.
- ``defocus_kernel`` (an antialiased disk) and ``motion_kernel`` (an antialiased line segment):
  normalised convolution kernels, applied with reflected edges.
- ``sensor_noise``: shot noise of variance ``a * x`` plus read noise of std ``b``.
"""

import numpy as np
from scipy import ndimage

MAX_SHIFT = 0.2  # a shadow's shift is at most this fraction of S


def shadow_shift(light: np.ndarray, distance: float) -> np.ndarray:
    """[2] (du, dv) pixels a shadow moves: away from the light's image-plane direction, by
    ``distance`` (pixels) times tan of the light's angle to the optical axis (capped at 3)."""
    slant = min(np.hypot(light[0], light[1]) / max(abs(light[2]), 1e-6), 3.0)
    planar = np.asarray(light[:2], np.float64)
    norm = np.linalg.norm(planar)
    return -planar / norm * distance * slant if norm > 1e-9 else np.zeros(2)


def shadow_mask(cover: np.ndarray, shift, sigma: float) -> np.ndarray:
    """[S, S] in [0, 1]: ``cover`` moved by ``shift`` = (du, dv) pixels (zero fill) and blurred
    by a Gaussian of std ``sigma`` pixels."""
    moved = ndimage.shift(cover.astype(np.float32), (shift[1], shift[0]), order=1, cval=0.0)
    return np.clip(ndimage.gaussian_filter(moved, sigma, mode="constant"), 0.0, 1.0)


def cast_shadow(rng: np.random.Generator, under, cover, light, cfg) -> np.ndarray:
    """Darken the background ``under`` [S, S, 3] by the shadow of ``cover`` [S, S].

    Args:
      rng: the sample's generator. Draw order: strength, distance, penumbra.
      under: [S, S, 3] what lies behind the hand (background and forearm).
      cover: [S, S] the hand's and occluders' coverage in [0, 1].
      light: [3] unit direction towards the light, camera frame.
      cfg: the generator config (``shadow_strength``, ``shadow_offset``, ``shadow_blur``).

    Returns:
      [S, S, 3] float32, ``under * (1 - strength * shadow)``: never brighter than ``under``.
    """
    size = under.shape[0]
    strength = rng.uniform(*cfg.shadow_strength)
    distance = min(rng.uniform(*cfg.shadow_offset), MAX_SHIFT) * size
    sigma = max(rng.uniform(*cfg.shadow_blur) * size, 0.3)
    shift = np.clip(shadow_shift(light, distance), -MAX_SHIFT * size, MAX_SHIFT * size)
    shadow = shadow_mask(cover, shift, sigma)
    return (under * (1.0 - strength * shadow)[..., None]).astype(np.float32)


def white_balance(image: np.ndarray, gains) -> np.ndarray:
    """Multiply the channels of [S, S, 3] ``image`` by ``gains`` [3] (float32, unclipped)."""
    return (image * np.asarray(gains, np.float32)).astype(np.float32)


def draw_gains(rng: np.random.Generator, *, balance: float, exposure: float) -> np.ndarray:
    """[3] channel gains: red and blue exp(+-``balance``) against green, times an exposure
    2^(+-``exposure``). Draw order: [red, blue] if balance > 0, [exposure] if exposure > 0."""
    gains = np.ones(3)
    if balance > 0:
        gains[[0, 2]] = np.exp(rng.uniform(-balance, balance, 2))
    if exposure > 0:
        gains = gains * 2.0 ** rng.uniform(-exposure, exposure)
    return gains


def defocus_kernel(radius: float) -> np.ndarray:
    """[k, k] normalised disk of ``radius`` pixels, edge antialiased over one pixel."""
    half = int(np.ceil(radius + 0.5))
    x = np.arange(-half, half + 1)
    r = np.hypot(*np.meshgrid(x, x))
    disk = np.clip(radius + 0.5 - r, 0.0, 1.0)
    return (disk / disk.sum()).astype(np.float32)


def motion_kernel(length: float, angle: float) -> np.ndarray:
    """[k, k] normalised line segment of ``length`` pixels at ``angle`` radians (from +u towards
    +v) through the centre, drawn by bilinear splats of points spaced a quarter pixel apart."""
    half = int(np.ceil(length / 2 + 1))
    kernel = np.zeros((2 * half + 1, 2 * half + 1))
    t = np.linspace(-length / 2, length / 2, max(int(np.ceil(length * 4)), 1) + 1)
    u, v = half + t * np.cos(angle), half + t * np.sin(angle)
    u0, v0 = np.floor(u).astype(int), np.floor(v).astype(int)
    fu, fv = u - u0, v - v0
    for du, dv, w in ((0, 0, (1 - fu) * (1 - fv)), (1, 0, fu * (1 - fv)),
                      (0, 1, (1 - fu) * fv), (1, 1, fu * fv)):  # fmt: skip
        np.add.at(kernel, (v0 + dv, u0 + du), w)
    return (kernel / kernel.sum()).astype(np.float32)


def convolve(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve each channel of [S, S, 3] ``image`` with ``kernel`` [k, k] (reflected edges)."""
    return ndimage.convolve(image, kernel[..., None], mode="reflect").astype(np.float32)


def sensor_noise(rng: np.random.Generator, image, *, shot: float, read: float) -> np.ndarray:
    """Add noise of variance ``a x + b^2``, a ~ U(0, shot), b ~ U(0, read), to [S, S, 3].

    Draw order: a, b, the [S, S, 3] standard normals.
    """
    a, b = rng.uniform(0, shot), rng.uniform(0, read)
    std = np.sqrt(a * np.clip(image, 0.0, None) + b * b)
    return (image + std * rng.normal(size=image.shape)).astype(np.float32)


def optics(rng: np.random.Generator, image: np.ndarray, cfg) -> np.ndarray:
    """White balance and exposure, then defocus and motion blur of [S, S, 3], as ``cfg`` says.

    Draw order: ``draw_gains``, defocus choice (if ``defocus_prob`` > 0), [radius], motion
    choice (if ``motion_blur_prob`` > 0), [length, angle]. Nothing is drawn for options that
    are off, and the image is returned as is.
    """
    size = image.shape[0]
    if cfg.white_balance > 0 or cfg.exposure > 0:
        gains = draw_gains(rng, balance=cfg.white_balance, exposure=cfg.exposure)
        image = white_balance(image, gains)
    if cfg.defocus_prob > 0 and rng.uniform() < cfg.defocus_prob:
        image = convolve(image, defocus_kernel(rng.uniform(*cfg.defocus_radius) * size))
    if cfg.motion_blur_prob > 0 and rng.uniform() < cfg.motion_blur_prob:
        length = rng.uniform(*cfg.motion_blur_length) * size
        image = convolve(image, motion_kernel(length, rng.uniform(0, np.pi)))
    return image
