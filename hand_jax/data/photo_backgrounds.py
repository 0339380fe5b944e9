"""Photographic backgrounds: random crops of public-domain / CC0 photographs shipped in a wheel.

The photographs are sample images that scikit-image 0.26 ships inside its wheel
(``skimage/data/``); nothing is downloaded, and scikit-image itself is never imported (the files
are found with ``importlib.util.find_spec``). ``PHOTOS`` lists each one with its licence as the
package documents it (``skimage.data.<name>.__doc__``). Left out: photographs that show hands
(``camera``), that carry no stated licence (``moon``, ``page``, ``motorcycle_*``), that are not
scenes (microscopy, logos), and JPEG files (``rocket``, ``hubble_deep_field``: decoders may
round differently), so the pixels are the same everywhere. Each photograph's decoded pixels are
checked against a recorded SHA-256, so a different file (another scikit-image release) fails
loudly instead of silently changing every sample. The decoded photographs are cached once per
process (about 5 MB).

A background is one crop: a random source, a random box (side ``scale`` x the source's shorter
side, aspect ``aspect`` log-uniform, uniform position), resampled to S x S with PIL's
antialiased bilinear filter (a triangle filter widened by the downscale factor), flipped left to
right with probability 1/2, rotated by a uniform multiple of 90 degrees and recoloured (hue
rotation about the grey axis, saturation, colour cast, contrast, brightness). Images are float32
[S, S, 3] RGB in [0, 1]; boxes are (x0, y0, x1, y1) in source pixels, edges at integers.
"""

import dataclasses
import functools
import hashlib
import importlib.util
import os

import numpy as np
from PIL import Image

PACKAGE, PACKAGE_VERSION = "skimage", "scikit-image 0.26.0"
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # Rec. 601 luma weights


@dataclasses.dataclass(frozen=True)
class Photo:
    """One shipped photograph: its file inside ``PACKAGE``, licence and pixel checksum."""

    name: str
    path: str
    licence: str
    sha256: str  # of the decoded RGB uint8 pixels, shape included


PHOTOS = (
    Photo("astronaut", "data/astronaut.png", "public domain (NASA)", "7605af19ba2b9758"),
    Photo("chelsea", "data/chelsea.png", "CC0 (Stefan van der Walt)", "2a48da897e30584d"),
    Photo("coffee", "data/coffee.png", "CC0 (Rachel Michetti)", "013a8175a6f60538"),
    Photo("brick", "data/brick.png", "CC0 (CC0Textures)", "99a19145a42e52da"),
    Photo("grass", "data/grass.png", "CC0 (linolafett, DeviantArt)", "4893a5041b9268d1"),
    Photo("gravel", "data/gravel.png", "CC0 (CC0Textures)", "53724b7da1e0a011"),
    Photo("coins", "data/coins.png", "no known copyright (Brooklyn Museum)", "8b1c53f5b1e77771"),
    Photo("clock", "data/clock_motion.png", "public domain (S. van der Walt)", "434250d9ca2cdd80"),
    Photo("text", "data/text.png", "public domain (Wikipedia, Corner.png)", "09521942bc161daf"),
)  # fmt: skip


def pixel_digest(pixels: np.ndarray) -> str:
    """The first 16 hex digits of the SHA-256 of a uint8 image's shape and bytes."""
    digest = hashlib.sha256(str(pixels.shape).encode())
    digest.update(np.ascontiguousarray(pixels).tobytes())
    return digest.hexdigest()[:16]


def package_dir() -> str:
    """The installed ``PACKAGE``'s directory; ``ModuleNotFoundError`` naming the pip package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"photographic backgrounds need {PACKAGE_VERSION}'s sample photographs: "
            "pip install -r requirements.txt (scikit-image)"
        )
    return list(spec.submodule_search_locations)[0]


@functools.lru_cache(maxsize=1)
def load_photos() -> tuple[Image.Image, ...]:
    """Decode ``PHOTOS`` once per process as RGB PIL images, each checked against its digest."""
    root, out = package_dir(), []
    for photo in PHOTOS:
        image = Image.open(os.path.join(root, photo.path)).convert("RGB")
        got = pixel_digest(np.asarray(image))
        if got != photo.sha256:
            raise ValueError(
                f"photograph {photo.name} ({photo.path}) has pixel digest {got}, expected "
                f"{photo.sha256} ({PACKAGE_VERSION}): samples would not be reproducible"
            )
        out.append(image)
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class Crop:
    """Where a background comes from: source index, box, left-right flip, quarter turns."""

    source: int
    box: tuple[float, float, float, float]
    flip: bool
    turns: int


def draw_crop(rng: np.random.Generator, sizes, *, scale, aspect) -> Crop:
    """Draw a crop of one of the sources, whose (width, height) in pixels are ``sizes``.

    Draw order: source, side, aspect, x0, y0, flip, turns.
    """
    source = int(rng.integers(0, len(sizes)))
    width, height = sizes[source]
    side = rng.uniform(*scale) * min(width, height)
    ratio = np.exp(rng.uniform(np.log(aspect[0]), np.log(aspect[1])))
    w, h = min(side * np.sqrt(ratio), width), min(side / np.sqrt(ratio), height)
    x0, y0 = rng.uniform(0, width - w), rng.uniform(0, height - h)
    flip = bool(rng.uniform() < 0.5)
    return Crop(source, (x0, y0, x0 + w, y0 + h), flip, int(rng.integers(0, 4)))


def crop_image(photo: Image.Image, crop: Crop, size: int) -> np.ndarray:
    """Resample ``crop.box`` of ``photo`` to [S, S, 3] float32 in [0, 1], then flip and turn."""
    box = tuple(float(b) for b in crop.box)
    pixels = np.asarray(photo.resize((size, size), Image.Resampling.BILINEAR, box=box))
    image = pixels.astype(np.float32) / 255.0
    if crop.flip:
        image = image[:, ::-1]
    return np.ascontiguousarray(np.rot90(image, crop.turns))


@dataclasses.dataclass(frozen=True)
class Recolour:
    """A photograph's recolouring: hue (radians), saturation, cast [3], contrast, brightness."""

    hue: float
    saturation: float
    cast: tuple[float, float, float]
    contrast: float
    brightness: float


def draw_recolour(rng: np.random.Generator, jitter: float) -> Recolour:
    """Draw a recolouring of strength ``jitter`` (1: hue +-60 degrees, saturation, contrast
    and brightness x exp(+-0.5), a colour cast of +-20 % per channel at unit mean).

    Draw order: hue, saturation, cast [3], contrast, brightness.
    """
    hue = rng.uniform(-1, 1) * np.pi / 3 * jitter
    saturation = np.exp(rng.uniform(-0.5, 0.5) * jitter)
    cast = 1.0 + 0.2 * jitter * rng.uniform(-1, 1, 3)
    cast = tuple(float(c) for c in cast / cast.mean())
    contrast = np.exp(rng.uniform(-0.5, 0.5) * jitter)
    brightness = np.exp(rng.uniform(-0.5, 0.5) * jitter)
    return Recolour(float(hue), float(saturation), cast, float(contrast), float(brightness))


def hue_matrix(angle: float) -> np.ndarray:
    """[3, 3] rotation by ``angle`` radians about the grey axis (1, 1, 1) / sqrt(3)."""
    k = np.full(3, 1 / np.sqrt(3))
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.cos(angle) * np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * np.outer(k, k)


def recolour(image: np.ndarray, r: Recolour) -> np.ndarray:
    """Apply ``r`` to [S, S, 3] float RGB in [0, 1]: hue, saturation (about the pixel's luma),
    cast, contrast (about the image mean), brightness; clipped to [0, 1], float32."""
    x = image @ hue_matrix(r.hue).T.astype(np.float32)
    luma = x @ LUMA
    x = luma[..., None] + r.saturation * (x - luma[..., None])
    x = x * np.asarray(r.cast, np.float32)
    x = x.mean() + r.contrast * (x - x.mean())
    return np.clip(x * r.brightness, 0.0, 1.0).astype(np.float32)


def photo_background(
    rng: np.random.Generator, size: int, *, scale, aspect, jitter: float, photos=None
) -> np.ndarray:
    """A background [S, S, 3] float32 cut from a photograph.

    Args:
      rng: the sample's generator. Draw order: ``draw_crop``, then ``draw_recolour``.
      size: image side S.
      scale: (lo, hi) crop side, fraction of the source's shorter side.
      aspect: (lo, hi) crop width over height.
      jitter: recolouring strength (``draw_recolour``).
      photos: source PIL RGB images; None: ``load_photos()``.
    """
    photos = load_photos() if photos is None else photos
    crop = draw_crop(rng, [p.size for p in photos], scale=scale, aspect=aspect)
    return recolour(crop_image(photos[crop.source], crop, size), draw_recolour(rng, jitter))
