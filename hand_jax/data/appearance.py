"""The synthetic generator's image appearance: light colour, forearm, compositing, degradations.

Composes ``procedural``'s primitives into one sample's image, as configured by a
``generator_config.GeneratorConfig``. Camera frame OpenCV (+x right, +y down, +z forward),
metres; ``K`` [3, 3] in pixels; images S x S: float32 [S, S, 3] RGB in [0, 1] until ``degrade``
quantises them to uint8; masks bool [S, S]. Every function draws from the sample's
``numpy.random.Generator`` it is given, in the order its docstring states, and a feature
switched off (probability or strength 0) draws nothing; so the generator's draw order, and with
it every sample, is fixed.

The forearm is a tapered band from the wrist along the projected 3D forearm direction (wrist
minus middle-finger MCP), of elliptic cross-section, shaded, in skin or (``sleeve_prob``) with
a sleeve from a random cuff on; it lies behind the hand and never enters the masks.

Options that make the image look photographed (all off by default; ``generator_config.
PHOTO_LIKE`` turns them on): a crop of a photograph instead of the procedural background
(``photo_backgrounds``) with a depth-of-field blur, occluders textured with photographs, the
hand's and occluders' soft shadow on what lies behind, and in ``degrade`` white balance,
exposure, defocus and motion blur and shot and read noise (``camera_effects``). The skin's
shading is chosen before rendering (``skin_shading``).
"""

import functools

import numpy as np

from hand_jax.data import camera_effects, photo_backgrounds, procedural
from hand_jax.data.generator_config import GeneratorConfig

FOREARM_LENGTH = 0.35  # metres drawn from the wrist (mostly beyond the image)
FOREARM_POINTS = 9  # polyline points (the radius in pixels varies with depth)


def light_colour(rng: np.random.Generator, strength: float) -> np.ndarray:
    """Draw the [3] light colour: white if ``strength`` is 0 (no draw), else a tint."""
    tint = np.ones(3, np.float32)
    if strength > 0:
        tint = procedural.light_tint(rng, strength)
    return tint


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def _forearm_axis(rng, kp3d, K, near):
    """Sample the forearm's axis: points [N, 3] m, centres [N, 2] px, radii [N] px, s [N] m.

    Also returns the unit view direction to the wrist and the forearm axis [3]. Draw order:
    radius scale, taper.
    """
    wrist = kp3d[0]
    axis = _unit(kp3d[0] - kp3d[9])
    across_palm = kp3d[5] - kp3d[17]
    across_palm = _unit(across_palm - np.dot(across_palm, axis) * axis)
    through_palm = np.cross(axis, across_palm)
    half_a = 0.42 * np.linalg.norm(kp3d[5] - kp3d[17]) * rng.uniform(0.9, 1.15)
    half_b = 0.7 * half_a
    taper = rng.uniform(0.1, 0.5)
    view = _unit(wrist)
    view_perp = view - np.dot(view, axis) * axis
    vp = np.linalg.norm(view_perp)
    half = np.hypot(half_a * np.dot(view, through_palm), half_b * np.dot(view, across_palm))
    half = half / vp if vp > 0.2 else max(half_a, half_b)
    length = FOREARM_LENGTH
    if axis[2] < 0:  # towards the camera: stop at the near plane
        length = min(length, max((wrist[2] - near) / -axis[2], 1e-3))
    s = np.linspace(0.0, length, FOREARM_POINTS)
    points = wrist + s[:, None] * axis
    uvw = points @ K.T
    centres = uvw[:, :2] / uvw[:, 2:]
    radii_m = half * (1.0 + taper * s / FOREARM_LENGTH)
    radii = radii_m * K[0, 0] / points[:, 2]
    return points, centres, radii, s, view, axis


def _forearm_normal(points, centres, across, view, axis, K) -> np.ndarray:
    """The [S, S, 3] surface normal: towards the camera on the axis, sideways (3D) at the edge."""
    side = _unit(np.cross(view, axis))
    step = (points[1] + 1e-3 * side) @ K.T
    travel = centres[1] - centres[0]
    towards = step[:2] / step[2] - centres[1]
    if travel[0] * towards[1] - travel[1] * towards[0] < 0:
        side = -side
    return across[..., None] * side + np.sqrt(1 - across**2)[..., None] * -view


def draw_forearm(
    rng, image, kp3d, K, *, skin, light, ambient, tint, near, sleeve_prob
) -> np.ndarray:
    """Draw a forearm (and maybe a sleeve) over ``image`` [S, S, 3]; returns the new image.

    The forearm's axis runs from the wrist keypoint along ``kp3d[0] - kp3d[9]`` (wrist minus
    middle-finger MCP, camera frame, metres), clipped at depth ``near`` (metres). Its
    cross-section is an ellipse (half-width 0.42 x the palm's width across the palm, 0.7 of that
    through it, growing by 10 .. 50 % towards the elbow); the apparent radius is the ellipse's
    silhouette seen from the camera, projected at each point's depth. Shading: the directional
    ``light`` [3] (unit, towards the light) with ``ambient`` on a cylinder normal that turns from
    the camera at the axis to sideways at the edge; ``skin`` [3] and the sleeve are coloured by
    ``tint`` [3].

    Draw order: radius scale, taper, skin factor, sleeve choice, [cuff distance, sleeve fill].
    """
    size = image.shape[0]
    points, centres, radii, s, view, axis = _forearm_axis(rng, kp3d, K, near)
    cover, along, across = procedural.tapered_band(size, centres, radii, s)
    normal = _forearm_normal(points, centres, across, view, axis, K)
    shade = ambient + (1 - ambient) * np.maximum(normal @ light, 0.0)
    colour = np.clip(skin * rng.uniform(0.9, 1.05), 0, 1) * tint
    arm = colour * shade[..., None]
    if rng.uniform() < sleeve_prob:
        cuff = rng.uniform(0.03, 0.2)
        sleeve = procedural.fill(rng, size) * tint
        sleeve_cover, sleeve_along, _ = procedural.tapered_band(size, centres, radii * 1.2, s)
        sleeve_cover = sleeve_cover * (sleeve_along >= cuff)
        arm = np.where(sleeve_cover[..., None] > 0, sleeve * (0.55 + 0.45 * shade[..., None]), arm)
        cover = np.maximum(cover, sleeve_cover)
    return image * (1 - cover[..., None]) + arm * cover[..., None]


def backdrop(rng, kp3d, K, *, skin, light, ambient, tint, near, cfg: GeneratorConfig) -> np.ndarray:
    """Draw what lies behind the hand: a background [S, S, 3] and maybe a forearm over it.

    Args:
      rng: the sample's generator. Draw order: ``background``, forearm choice, [forearm].
      kp3d: [K, 3] float64 keypoints, camera frame, metres.
      K: [3, 3] intrinsics, pixels.
      skin: [3] mean skin colour of the hand (untinted).
      light, ambient, tint: the sample's light direction [3], ambient level and colour [3].
      near: depth of the near plane, metres; the forearm stops there.
      cfg: the generator config (``image_size``, ``pink_background_prob``, ``forearm_prob``,
        ``sleeve_prob`` and ``background``'s).
    """
    under = background(rng, cfg)
    if cfg.forearm_prob > 0 and rng.uniform() < cfg.forearm_prob:
        under = draw_forearm(
            rng, under, kp3d, K, skin=skin, light=light, ambient=ambient, tint=tint,
            near=near, sleeve_prob=cfg.sleeve_prob,
        )  # fmt: skip
    return under


def background(rng, cfg: GeneratorConfig) -> np.ndarray:
    """Draw the [S, S, 3] background: a photograph's crop or a procedural one, maybe blurred.

    Draw order: photo choice (if ``photo_background_prob`` > 0), the photograph's crop or
    ``procedural.background``, blur choice (if ``background_blur_prob`` > 0), [sigma].
    """
    size = cfg.image_size
    if cfg.photo_background_prob > 0 and rng.uniform() < cfg.photo_background_prob:
        under = photo_backgrounds.photo_background(
            rng, size, scale=cfg.photo_scale, aspect=cfg.photo_aspect, jitter=cfg.photo_jitter
        )
    else:
        under = procedural.background(rng, size, pink_prob=cfg.pink_background_prob)
    if cfg.background_blur_prob > 0 and rng.uniform() < cfg.background_blur_prob:
        under = procedural.gaussian_blur(under, rng.uniform(*cfg.background_blur_sigma) * size)
    return under


def _texture(rng, *, cfg: GeneratorConfig) -> np.ndarray:
    """An occluder's [S, S, 3] fill: a photograph's crop with probability
    ``photo_occluder_prob``, else ``procedural.fill``. Draw order: choice, fill."""
    if rng.uniform() < cfg.photo_occluder_prob:
        return photo_backgrounds.photo_background(
            rng, cfg.image_size, scale=cfg.photo_scale, aspect=cfg.photo_aspect,
            jitter=cfg.photo_jitter,
        )  # fmt: skip
    return procedural.fill(rng, cfg.image_size)


def compose(rng, rgb, alpha, under, full, cfg: GeneratorConfig, *, light=None):
    """Composite the rendered hand over ``under`` (maybe shadowed) and add occluders.

    Args: as ``composite``. Draw order: occluder choice, [occluders, each filled by
    ``_texture`` if ``photo_occluder_prob`` > 0], shadow choice (if ``shadow_prob`` > 0),
    [``camera_effects.cast_shadow``].

    Returns:
      (image float [S, S, 3], occluded bool [S, S]).
    """
    occluded, colours = np.zeros_like(full), None
    if rng.uniform() < cfg.occluder_prob:
        texture = None if cfg.photo_occluder_prob == 0 else functools.partial(_texture, cfg=cfg)
        occluded, colours = procedural.occluders(
            rng, full, max_count=cfg.max_occluders, texture=texture
        )
    if cfg.shadow_prob > 0 and rng.uniform() < cfg.shadow_prob:
        if light is None:
            raise ValueError("compose: shadows need the light direction (light=None)")
        cover = np.maximum(alpha, occluded)
        under = camera_effects.cast_shadow(rng, under, cover, light, cfg)
    # rgb is composited over black: what lies behind shows where the hand does not cover.
    image = rgb + (1.0 - alpha[..., None]) * under
    if colours is not None:
        image = np.where(occluded[..., None], colours, image)
    return image, occluded


def composite(rng, rgb, alpha, under, full, cfg: GeneratorConfig, *, light=None):
    """Composite the rendered hand over ``under``, add occluders and degrade the image.

    Args:
      rng: the sample's generator. Draw order: ``compose``, then ``degrade``.
      rgb: [S, S, 3] rendered hand, premultiplied (composited over black).
      alpha: [S, S] the hand's coverage in [0, 1].
      under: [S, S, 3] what lies behind the hand (``backdrop``).
      full: [S, S] bool, the hand's mask.
      cfg: the generator config (``occluder_prob``, ``max_occluders``, ``shadow_*`` and
        ``degrade``'s).
      light: [3] unit direction towards the light, camera frame (needed for shadows only).

    Returns:
      (image uint8 [S, S, 3], occluded bool [S, S]).
    """
    image, occluded = compose(rng, rgb, alpha, under, full, cfg, light=light)
    return degrade(rng, image, cfg), occluded


def degrade(rng, image, cfg: GeneratorConfig) -> np.ndarray:
    """Apply the camera to an [S, S, 3] image, as ``cfg`` says: white balance, exposure,
    defocus and motion blur, Gaussian blur, shot and read noise, pixel noise, quantisation to
    uint8 and a JPEG round trip.

    Draw order: ``camera_effects.optics``, blur choice, [sigma], [``camera_effects.
    sensor_noise`` if ``shot_noise`` or ``read_noise`` > 0], noise std, noise, JPEG choice,
    [quality].
    """
    image = camera_effects.optics(rng, image, cfg)
    if cfg.blur_prob > 0 and rng.uniform() < cfg.blur_prob:
        image = procedural.gaussian_blur(image, rng.uniform(*cfg.blur_sigma))
    if cfg.shot_noise > 0 or cfg.read_noise > 0:
        image = camera_effects.sensor_noise(rng, image, shot=cfg.shot_noise, read=cfg.read_noise)
    image = image + rng.normal(0, rng.uniform(0, cfg.pixel_noise), image.shape)
    image = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
    if cfg.jpeg_prob > 0 and rng.uniform() < cfg.jpeg_prob:
        lo, hi = cfg.jpeg_quality
        image = procedural.jpeg_roundtrip(image, int(rng.integers(lo, hi + 1)))
    return image
