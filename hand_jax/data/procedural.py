"""Procedural backgrounds, shapes and occluders for synthetic images (host-side numpy).

Images are float32 [S, S, 3] RGB in [0, 1]; masks are bool [S, S]; shapes are rasterised at
pixel centres (i + 0.5). Every function draws from the ``numpy.random.Generator`` it is given,
so a sample's appearance is a pure function of its generator's seed.
"""

import numpy as np
from matplotlib.path import Path

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


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random background: gradient, noise, or either with random shapes on top, [S, S, 3]."""
    kind = rng.integers(0, 4)
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
) -> tuple[np.ndarray, np.ndarray]:
    """Draw 0..max_count shapes overlapping the hand, keeping some of the hand visible.

    Args:
      rng: random generator.
      hand_mask: [S, S] bool, the rendered hand.
      max_count: most occluders drawn.
      min_visible: an occluder that would leave less than this fraction of the hand visible is
        dropped.

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
        texture = fill(rng, size)
        if np.count_nonzero(hand_mask & ~(mask | shape)) < min_visible * us.size:
            continue
        colours = np.where(shape[..., None], texture, colours)
        mask |= shape
    return mask, colours


def skin_colours(rng: np.random.Generator, verts: np.ndarray, *, vertex_noise: float) -> np.ndarray:
    """Per-vertex skin colours: a tone, a smooth variation over the hand, per-vertex noise.

    Args:
      rng: random generator.
      verts: [V, 3] rest or posed vertices, metres (for the smooth variation).
      vertex_noise: standard deviation of the per-vertex colour noise.

    Returns:
      [V, 3] float32 RGB in [0, 1].
    """
    k = rng.integers(0, len(SKIN_TONES))
    tone = SKIN_TONES[k] * rng.uniform(0.85, 1.12) + rng.normal(0, 0.03, 3)
    centred = verts - verts.mean(axis=0)
    ramp = centred @ rng.normal(0, 1.0, 3) / max(float(np.abs(centred).max()), 1e-6)
    colours = tone[None] * (1.0 + 0.08 * ramp[:, None])
    colours = colours + rng.normal(0, vertex_noise, colours.shape)
    return np.clip(colours, 0, 1).astype(np.float32)
