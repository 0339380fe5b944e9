"""Procedural appearance for synthetic images (host-side numpy): skin, backgrounds, occluders,
forearms and camera degradations (blur, JPEG).

Images are float32 [S, S, 3] RGB in [0, 1] (``jpeg_roundtrip``: uint8); masks are bool [S, S];
shapes are rasterised at pixel centres (i + 0.5). Every function draws from the
``numpy.random.Generator`` it is given, so a sample's appearance is a pure function of its
generator's seed. A feature switched off (probability or amplitude 0) draws nothing.
"""

import io

import numpy as np
from matplotlib.path import Path
from PIL import Image
from scipy import ndimage

SKIN_TONES = np.array(
    [
        [0.96, 0.80, 0.69],
        [0.92, 0.72, 0.58],
        [0.84, 0.62, 0.48],
        [0.72, 0.50, 0.36],
        [0.55, 0.37, 0.25],
        [0.40, 0.26, 0.17],
        [0.30, 0.19, 0.12],
    ],
    np.float32,
)  # light to dark, linear-ish RGB in [0, 1]
# A wider, denser range (very fair pinkish .. very dark), interpolated continuously.
WIDE_SKIN_TONES = np.array(
    [
        [0.98, 0.86, 0.78],
        [0.96, 0.78, 0.70],
        [0.93, 0.75, 0.60],
        [0.87, 0.68, 0.52],
        [0.80, 0.60, 0.45],
        [0.72, 0.52, 0.36],
        [0.62, 0.43, 0.29],
        [0.50, 0.33, 0.22],
        [0.38, 0.25, 0.16],
        [0.26, 0.17, 0.11],
    ],
    np.float32,
)


def pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (u, v) [S, S] pixel-centre coordinates."""
    c = np.arange(size, dtype=np.float32) + 0.5
    return np.meshgrid(c, c)


def random_colour(rng: np.random.Generator) -> np.ndarray:
    """A random saturated-or-grey colour, [3] in [0, 1]."""
    grey = rng.uniform(0.05, 0.95)
    colour = rng.uniform(0.0, 1.0, 3)
    mix = rng.uniform(0.0, 1.0)
    return (mix * colour + (1 - mix) * grey).astype(np.float32)


def gradient(rng: np.random.Generator, size: int) -> np.ndarray:
    """A linear colour gradient in a random direction, [S, S, 3]."""
    u, v = pixel_grid(size)
    angle = rng.uniform(0, 2 * np.pi)
    t = (np.cos(angle) * u + np.sin(angle) * v) / size
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    a, b = random_colour(rng), random_colour(rng)
    return (a * (1 - t[..., None]) + b * t[..., None]).astype(np.float32)


def _interp_matrix(cells: int, size: int) -> np.ndarray:
    """[S, cells] linear interpolation weights from cell centres to pixel centres (clamped)."""
    x = (np.arange(size) + 0.5) * cells / size - 0.5
    lo = np.clip(np.floor(x).astype(int), 0, cells - 1)
    hi = np.clip(lo + 1, 0, cells - 1)
    t = np.clip(x - lo, 0.0, 1.0)[:, None]
    m = np.zeros((size, cells), np.float32)
    np.add.at(m, (np.arange(size), lo), 1.0 - t[:, 0])
    np.add.at(m, (np.arange(size), hi), t[:, 0])
    return m


def noise_texture(rng: np.random.Generator, size: int, *, octaves: int = 3) -> np.ndarray:
    """Multi-octave value noise in random colours, [S, S, 3]."""
    out = np.zeros((size, size, 3), np.float32)
    total = 0.0
    for octave in range(octaves):
        cells = int(rng.integers(2, 5)) * 2**octave
        grid = rng.uniform(0, 1, (cells, cells, 3)).astype(np.float32)
        m = _interp_matrix(cells, size)
        weight = 0.5**octave
        out += weight * np.einsum("ic,cdk,jd->ijk", m, grid, m, optimize=True)
        total += weight
    out /= total
    a, b = random_colour(rng), random_colour(rng)
    t = out.mean(axis=-1, keepdims=True)
    return np.clip(a * (1 - t) + b * t + (out - t) * 0.6, 0, 1).astype(np.float32)


def shape_mask(rng: np.random.Generator, size: int, *, centre, radius: float, kind: str):
    """Rasterise one random shape.

    Args:
      rng: random generator.
      size: image side S.
      centre: (u, v) pixels.
      radius: rough size, pixels.
      kind: ``ellipse``, ``polygon`` (star-shaped, 3-8 corners) or ``stick`` (a thick bar).

    Returns:
      [S, S] bool mask.
    """
    u, v = pixel_grid(size)
    cu, cv = centre
    angle = rng.uniform(0, np.pi)
    c, s = np.cos(angle), np.sin(angle)
    x, y = c * (u - cu) + s * (v - cv), -s * (u - cu) + c * (v - cv)
    if kind == "ellipse":
        a, b = radius * rng.uniform(0.5, 1.2), radius * rng.uniform(0.3, 1.0)
        return (x / a) ** 2 + (y / b) ** 2 <= 1.0
    if kind == "stick":
        length, width = radius * rng.uniform(1.5, 3.0), radius * rng.uniform(0.12, 0.35)
        return (np.abs(x) <= length) & (np.abs(y) <= width)
    if kind == "polygon":
        n = int(rng.integers(3, 9))
        theta = np.sort(rng.uniform(0, 2 * np.pi, n))
        r = radius * rng.uniform(0.5, 1.2, n)
        corners = np.stack([cu + r * np.cos(theta), cv + r * np.sin(theta)], axis=-1)
        inside = Path(corners).contains_points(np.stack([u.ravel(), v.ravel()], axis=-1))
        return inside.reshape(size, size)
    raise ValueError(f"shape_mask: unknown {kind=}; expected ellipse, polygon or stick")


def fill(rng: np.random.Generator, size: int) -> np.ndarray:
    """A fill for a shape: flat colour (half the time) or a noise texture, [S, S, 3]."""
    if rng.uniform() < 0.5:
        return np.broadcast_to(random_colour(rng), (size, size, 3)).astype(np.float32)
    return noise_texture(rng, size, octaves=2)


def pink_noise_texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A 1/f^a noise texture (natural-image spectrum, a in [1.0, 1.8]) in random colours, [S, S, 3].

    A luminance field maps between two random colours; a second, weaker field shifts the hue.
    """
    exponent = rng.uniform(1.0, 1.8)
    fy, fx = np.fft.fftfreq(size)[:, None], np.fft.rfftfreq(size)[None]
    freq = np.sqrt(fx**2 + fy**2)
    amp = np.where(freq > 0, np.maximum(freq, 1e-6) ** -exponent, 0.0)
    spec = rng.normal(size=(2, size, size // 2 + 1)) + 1j * rng.normal(
        size=(2, size, size // 2 + 1)
    )
    fields = np.fft.irfft2(spec * amp, s=(size, size))  # [2, S, S]
    fields = (fields - fields.mean(axis=(1, 2), keepdims=True)) / (
        fields.std(axis=(1, 2), keepdims=True) + 1e-9
    )
    t = np.clip(0.5 + rng.uniform(0.12, 0.3) * fields[0], 0, 1)[..., None]
    a, b, c = random_colour(rng), random_colour(rng), random_colour(rng)
    image = a * (1 - t) + b * t + 0.08 * fields[1][..., None] * (c - c.mean())
    return np.clip(image, 0, 1).astype(np.float32)


def background(rng: np.random.Generator, size: int, *, pink_prob: float = 0.0) -> np.ndarray:
    """A random background, [S, S, 3]: gradient, noise, or either with random shapes on top.

    With probability ``pink_prob`` the base (under the shapes) is a 1/f noise texture mixed with a
    gradient (70/30) instead.
    """
    kind = rng.integers(0, 4)
    if pink_prob > 0 and rng.uniform() < pink_prob:
        image = 0.7 * pink_noise_texture(rng, size) + 0.3 * gradient(rng, size)
    else:
        image = gradient(rng, size) if kind in (0, 2) else noise_texture(rng, size)
    if kind >= 2:
        for _ in range(int(rng.integers(2, 9))):
            centre = rng.uniform(0, size, 2)
            shape = str(rng.choice(["ellipse", "polygon", "stick"]))
            mask = shape_mask(rng, size, centre=centre, radius=rng.uniform(0.05, 0.35) * size,
                              kind=shape)  # fmt: skip
            image = np.where(mask[..., None], fill(rng, size), image)
    return image.astype(np.float32)


def occluders(
    rng: np.random.Generator,
    hand_mask: np.ndarray,
    *,
    max_count: int,
    min_visible: float = 0.4,
    texture=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw 0..max_count shapes overlapping the hand, keeping some of the hand visible.

    Args:
      rng: random generator.
      hand_mask: [S, S] bool, the rendered hand.
      max_count: most occluders drawn.
      min_visible: an occluder that would leave less than this fraction of the hand visible is
        dropped.
      texture: ``texture(rng) -> [S, S, 3]``, an occluder's fill; None: ``fill(rng, S)``.

    Returns:
      (occluder mask [S, S] bool, occluder colours [S, S, 3] float32, valid where the mask is).
    """
    size = hand_mask.shape[0]
    mask = np.zeros_like(hand_mask, dtype=bool)
    colours = np.zeros((size, size, 3), np.float32)
    vs, us = np.nonzero(hand_mask)
    if us.size == 0 or max_count <= 0:
        return mask, colours
    extent = max(np.ptp(us), np.ptp(vs), 1)
    for _ in range(int(rng.integers(1, max_count + 1))):
        k = rng.integers(0, us.size)
        centre = (
            us[k] + 0.5 + rng.normal(0, 0.1 * extent),
            vs[k] + 0.5 + rng.normal(0, 0.1 * extent),
        )
        kind = str(rng.choice(["ellipse", "polygon", "stick"]))
        shape = shape_mask(rng, size, centre=centre, radius=rng.uniform(0.12, 0.35) * extent,
                           kind=kind)  # fmt: skip
        pattern = fill(rng, size) if texture is None else texture(rng)
        if np.count_nonzero(hand_mask & ~(mask | shape)) < min_visible * us.size:
            continue
        colours = np.where(shape[..., None], pattern, colours)
        mask |= shape
    return mask, colours


def skin_colours(
    rng: np.random.Generator,
    verts: np.ndarray,
    *,
    vertex_noise: float,
    wide_tones: bool = False,
    texture: float = 0.0,
) -> np.ndarray:
    """Per-vertex skin colours: a tone, a smooth variation over the hand, per-vertex noise.

    Args:
      rng: random generator.
      verts: [V, 3] rest or posed vertices, metres (for the smooth variation).
      vertex_noise: standard deviation of the per-vertex colour noise.
      wide_tones: draw the tone continuously along ``WIDE_SKIN_TONES`` (else one of
        ``SKIN_TONES``).
      texture: amplitude of a low-frequency mottling (three random 3D plane waves, wavelengths
        2 .. 8 cm, slightly redder where brighter); 0: none.

    Returns:
      [V, 3] float32 RGB in [0, 1].
    """
    if wide_tones:
        x = rng.uniform(0, len(WIDE_SKIN_TONES) - 1)
        k = min(int(x), len(WIDE_SKIN_TONES) - 2)
        base = WIDE_SKIN_TONES[k] + (x - k) * (WIDE_SKIN_TONES[k + 1] - WIDE_SKIN_TONES[k])
    else:
        base = SKIN_TONES[rng.integers(0, len(SKIN_TONES))]
    tone = base * rng.uniform(0.85, 1.12) + rng.normal(0, 0.03, 3)
    centred = verts - verts.mean(axis=0)
    ramp = centred @ rng.normal(0, 1.0, 3) / max(float(np.abs(centred).max()), 1e-6)
    colours = tone[None] * (1.0 + 0.08 * ramp[:, None])
    if texture > 0:
        waves = rng.normal(size=(3, 3))
        waves *= (2 * np.pi / rng.uniform(0.02, 0.08, 3) / np.linalg.norm(waves, axis=1))[:, None]
        mottle = np.sin(centred @ waves.T + rng.uniform(0, 2 * np.pi, 3)).mean(axis=1)
        colours = colours * (1.0 + texture * mottle[:, None] * np.array([1.0, 0.7, 0.6]))
    colours = colours + rng.normal(0, vertex_noise, colours.shape)
    return np.clip(colours, 0, 1).astype(np.float32)


def light_tint(rng: np.random.Generator, strength: float) -> np.ndarray:
    """A light colour [3] near white: warm/cool (``strength`` * U(-1, 1)) plus a weaker
    green/magenta shift, scaled to unit mean."""
    warm = strength * rng.uniform(-1.0, 1.0)
    green = 0.3 * strength * rng.uniform(-1.0, 1.0)
    tint = np.array([1.0 + warm, 1.0 + green, 1.0 - warm])
    return (tint / tint.mean()).astype(np.float32)


def tapered_band(
    size: int, centres: np.ndarray, radii: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rasterise a band along a polyline whose radius varies linearly along each segment.

    Args:
      size: image side S.
      centres: [N, 2] polyline points, pixels (N >= 2).
      radii: [N] band radius at each point, pixels.
      lengths: [N] a quantity interpolated along the band (e.g. metres from its start).

    Returns:
      coverage [S, S] float32 in [0, 1] (one-pixel antialiased edge), along [S, S] (``lengths``
      at the nearest point of the axis), across [S, S] in [-1, 1] (signed distance from the
      axis over the local radius; positive to the right of the direction of travel, +y down).
    """
    u, v = pixel_grid(size)
    q = np.stack([u, v], axis=-1)[None]  # [1, S, S, 2]
    p0, p1 = centres[:-1, None, None], centres[1:, None, None]  # [N-1, 1, 1, 2]
    d = p1 - p0
    t = np.clip(((q - p0) * d).sum(-1) / np.maximum((d * d).sum(-1), 1e-9), 0, 1)  # [N-1, S, S]
    offset = q - (p0 + t[..., None] * d)
    dist = np.linalg.norm(offset, axis=-1)
    r = radii[:-1, None, None] + t * (radii[1:] - radii[:-1])[:, None, None]
    best = np.argmin(dist - r, axis=0)[None]  # the segment the pixel is most inside
    take = lambda x: np.take_along_axis(x, best, axis=0)[0]  # noqa: E731
    dist_b, r_b, t_b = take(dist), take(r), take(t)
    side = np.sign(take(d[..., 0] * offset[..., 1] - d[..., 1] * offset[..., 0]))
    coverage = np.clip(r_b - dist_b + 0.5, 0, 1).astype(np.float32)
    along = np.take(lengths, best[0]) + t_b * (
        np.take(lengths, best[0] + 1) - np.take(lengths, best[0])
    )
    across = np.clip(side * dist_b / np.maximum(r_b, 1e-6), -1, 1)
    return coverage, along.astype(np.float32), across.astype(np.float32)


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Blur [S, S, 3] with an isotropic Gaussian of std ``sigma`` pixels (edges reflected)."""
    return ndimage.gaussian_filter(image, sigma=(sigma, sigma, 0), mode="reflect")


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode a uint8 [S, S, 3] image as JPEG at ``quality`` (1 .. 95) and decode it back."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"))
