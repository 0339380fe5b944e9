"""The synthetic generator's configuration: ``GeneratorConfig`` and its validation.

Holds the parameters of the synthetic distribution (``GeneratorConfig``, recorded in a
dataset's manifest), the recognised global-rotation distributions (``VIEWS``), the image size
bounds (``MIN_IMAGE_SIZE``, ``MAX_IMAGE_SIZE``), the field checks shared with other config
dataclasses (``is_int``, ``check_fields``) and the options that reproduce generator 1.0
(``LEGACY``, ``legacy_config``) and the named appearance presets (``APPEARANCES``,
``appearance_config``: ``"photo"`` turns on photographic backgrounds, skin shading beyond
Lambertian, cast shadows and camera effects). What the parameters mean is described in
``hand_jax.data.synthetic_gen``; how the appearance ones are used in ``hand_jax.data.appearance``
(photographs: ``photo_backgrounds``, skin: ``skin_shading``, shadows and camera:
``camera_effects``). Every option added after generator 2.0 is off by default, so the default
config's samples are those of generator 2.0, byte for byte.
"""

import dataclasses

import numpy as np

MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 8, 4096  # pixels: smaller is no image, larger no hand crop


def is_int(value) -> bool:
    """Whether ``value`` is a Python or numpy integer (not a bool)."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class GeneratorConfig:
    """Parameters of the synthetic distribution (all recorded in the manifest).

    Attributes:
      image_size: output side S, pixels.
      views: global rotations: ``"natural"`` (photograph-like mixture of canonical views, see
        ``hand_jax.data.synthetic_gen``) or ``"uniform"`` (uniform over SO(3)).
      view_tilt_deg: natural views: max out-of-plane tilt from the canonical view, degrees
        (``tilt * sqrt(u)``, about uniform over the cap of view directions).
      view_roll_std_deg: natural views: std of the wrapped-normal in-plane roll around
        "fingers up", degrees.
      view_any_roll_prob: natural views: probability of a uniform in-plane roll instead.
      narrow_tilt_deg, narrow_roll_std_deg: narrow views: max tilt and roll std, degrees.
      fov_deg: (lo, hi) horizontal field of view, degrees.
      fill: (lo, hi) fraction of the image side spanned by the hand's larger x/y extent.
      max_offset: max |offset| of the hand's centre from the image centre, fraction of S.
      betas_std, betas_clip: betas ~ N(0, std) clipped to +-clip.
      independent_prob: pose prior: probability of independent finger curls.
      ambient: (lo, hi) ambient light level; the directional light gets 1 - ambient.
      vertex_noise: per-vertex skin colour noise (std, RGB in [0, 1]).
      wide_skin: draw skin tones continuously over ``procedural.WIDE_SKIN_TONES`` (very fair to
        very dark); False: the 7 tones of generator 1.0.
      skin_texture: amplitude of a smooth low-frequency skin mottling (0: none).
      light_tint: strength of the light's warm/cool colour (0: white light); applies to the
        hand and forearm.
      pink_background_prob: probability that the background base is 1/f noise (natural-image
        spectrum) mixed with a gradient instead of a gradient or value noise.
      forearm_prob: probability of a forearm (never in the masks).
      sleeve_prob: probability that a forearm wears a sleeve from a cuff 3 .. 20 cm from the
        wrist.
      blur_prob: probability of a Gaussian blur of std ``blur_sigma`` (lo, hi) pixels.
      jpeg_prob: probability of a JPEG round trip at a quality in ``jpeg_quality`` (lo, hi).
      pixel_noise: max std of the additive image noise.
      occluder_prob: probability that a sample has occluders.
      max_occluders: most occluding shapes per sample.
      visibility_tolerance: metres a keypoint may lie behind the rendered surface and still
        count as visible (joints sit inside the skin).
      supersample: antialiasing: s x s render samples per pixel.
      chunk: samples per jitted MANO/render call (fixed, so results do not depend on it).
      photo_background_prob: probability that the background is a crop of a photograph
        (``photo_backgrounds.PHOTOS``) instead of a procedural one (0: never, no draw).
      photo_scale: (lo, hi) crop side as a fraction of the photograph's shorter side.
      photo_aspect: (lo, hi) crop width over height (log-uniform; the crop is stretched square).
      photo_jitter: strength of the photograph's recolouring (hue, saturation, colour cast,
        contrast, brightness), 1: the documented ranges of ``photo_backgrounds.draw_recolour``.
      photo_occluder_prob: probability that an occluder is filled with a photograph's crop
        instead of a flat colour or noise (0: never, no draw).
      background_blur_prob: probability of a depth-of-field blur of the background only, std
        ``background_blur_sigma`` (lo, hi) as a fraction of S.
      specular: (lo, hi) strength of a Blinn-Phong highlight in the light's colour (0, 0: none).
      shininess: (lo, hi) the highlight's Blinn-Phong exponent.
      subsurface: (lo, hi) strength of the red translucency where the hand is thin (0, 0: none).
      nail_crease: strength of the nails, flexion creases and cavity darkening (0: none).
      skin_blotch: amplitude of a smooth, blotchy per-vertex albedo noise (0: none).
      shadow_prob: probability that the hand and occluders cast a soft shadow on the background.
      shadow_strength: (lo, hi) darkening at the shadow's core, fraction of the light.
      shadow_offset: (lo, hi) distance from the hand to the surface behind it, fraction of S
        (the shadow's shift is this times the light's slant).
      shadow_blur: (lo, hi) std of the shadow's penumbra, fraction of S.
      white_balance: max |log| gain of the red and blue channels against green (0: none).
      exposure: max |log2| exposure gain (0: none).
      defocus_prob, defocus_radius: probability of a disk (defocus) blur of radius (lo, hi),
        fraction of S.
      motion_blur_prob, motion_blur_length: probability of a linear motion blur of length
        (lo, hi), fraction of S, in a uniform direction.
      shot_noise: max gain a of the signal-dependent noise variance a * x (0: none).
      read_noise: max std of the signal-independent sensor noise (0: none; on top of
        ``pixel_noise``).
    """

    image_size: int = 128
    views: str = "natural"
    view_tilt_deg: float = 40.0
    view_roll_std_deg: float = 45.0
    view_any_roll_prob: float = 0.1
    narrow_tilt_deg: float = 30.0
    narrow_roll_std_deg: float = 20.0
    fov_deg: tuple[float, float] = (35.0, 65.0)
    fill: tuple[float, float] = (0.45, 0.85)
    max_offset: float = 0.12
    betas_std: float = 1.0
    betas_clip: float = 2.5
    independent_prob: float = 0.3
    ambient: tuple[float, float] = (0.3, 0.65)
    vertex_noise: float = 0.035
    wide_skin: bool = True
    skin_texture: float = 0.06
    light_tint: float = 0.12
    pink_background_prob: float = 0.5
    forearm_prob: float = 0.85
    sleeve_prob: float = 0.5
    blur_prob: float = 0.3
    blur_sigma: tuple[float, float] = (0.3, 1.1)
    jpeg_prob: float = 0.4
    jpeg_quality: tuple[int, int] = (50, 95)
    pixel_noise: float = 0.02
    occluder_prob: float = 0.5
    max_occluders: int = 2
    visibility_tolerance: float = 0.025
    supersample: int = 2
    chunk: int = 8
    photo_background_prob: float = 0.0
    photo_scale: tuple[float, float] = (0.15, 0.8)
    photo_aspect: tuple[float, float] = (0.75, 1.33)
    photo_jitter: float = 1.0
    photo_occluder_prob: float = 0.0
    background_blur_prob: float = 0.0
    background_blur_sigma: tuple[float, float] = (0.004, 0.02)
    specular: tuple[float, float] = (0.0, 0.0)
    shininess: tuple[float, float] = (6.0, 30.0)
    subsurface: tuple[float, float] = (0.0, 0.0)
    nail_crease: float = 0.0
    skin_blotch: float = 0.0
    shadow_prob: float = 0.0
    shadow_strength: tuple[float, float] = (0.25, 0.6)
    shadow_offset: tuple[float, float] = (0.02, 0.1)
    shadow_blur: tuple[float, float] = (0.01, 0.04)
    white_balance: float = 0.0
    exposure: float = 0.0
    defocus_prob: float = 0.0
    defocus_radius: tuple[float, float] = (0.004, 0.015)
    motion_blur_prob: float = 0.0
    motion_blur_length: tuple[float, float] = (0.01, 0.05)
    shot_noise: float = 0.0
    read_noise: float = 0.0

    def __post_init__(self):
        if self.views not in VIEWS:
            raise ValueError(f"GeneratorConfig: unknown views={self.views!r}; expected {VIEWS}")
        for key, lo, hi in (("image_size", MIN_IMAGE_SIZE, MAX_IMAGE_SIZE), ("chunk", 1, None),
                            ("supersample", 1, 8), ("max_occluders", 0, None)):  # fmt: skip
            value = getattr(self, key)
            if not is_int(value) or value < lo or (hi is not None and value > hi):
                raise ValueError(
                    f"GeneratorConfig: {key}={value!r}: expected an int in [{lo}, {hi or 'inf'}]"
                )
        check_fields(self)
        _check_appearance(self)


# Appearance options that must be >= 0, and (lo, hi) options whose lo must be > 0.
_NON_NEGATIVE = (
    "photo_jitter", "nail_crease", "skin_blotch", "white_balance", "exposure", "shot_noise",
    "read_noise", "specular", "subsurface", "shadow_offset", "shadow_blur",
    "background_blur_sigma", "defocus_radius", "motion_blur_length",
)  # fmt: skip
_POSITIVE = ("photo_scale", "photo_aspect", "shininess")


def _check_appearance(cfg: "GeneratorConfig") -> None:
    """Raise ``ValueError`` naming an appearance option out of its range."""
    for key in _NON_NEGATIVE + _POSITIVE:
        lo = np.min(getattr(cfg, key))
        if lo < 0 or (key in _POSITIVE and lo <= 0):
            bound = "> 0" if key in _POSITIVE else ">= 0"
            raise ValueError(f"GeneratorConfig: {key}={getattr(cfg, key)!r}: expected {bound}")
    if cfg.photo_scale[1] > 1 or not 0 <= cfg.shadow_strength[0] <= cfg.shadow_strength[1] <= 1:
        raise ValueError(
            f"GeneratorConfig: photo_scale={cfg.photo_scale!r} and shadow_strength="
            f"{cfg.shadow_strength!r}: expected fractions in (0, 1] and [0, 1]"
        )


def check_fields(config) -> None:
    """Raise ``ValueError`` naming the field of a config dataclass that is out of range:
    ``*_prob`` fields must lie in [0, 1] and (lo, hi) tuple fields must have lo <= hi."""
    name = type(config).__name__
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if field.name.endswith("_prob") and not 0.0 <= value <= 1.0:
            raise ValueError(f"{name}: {field.name}={value!r}: expected in [0, 1]")
        if isinstance(value, tuple) and not value[0] <= value[1]:
            raise ValueError(f"{name}: {field.name}={value!r}: expected (lo, hi)")


VIEWS = ("natural", "uniform", "narrow")
# The options that, switched off, reproduce generator 1.0's draws.
LEGACY = dict(
    views="uniform", wide_skin=False, skin_texture=0.0, light_tint=0.0,
    pink_background_prob=0.0, forearm_prob=0.0, blur_prob=0.0, jpeg_prob=0.0,
)  # fmt: skip


def legacy_config(**overrides) -> GeneratorConfig:
    """A config whose samples are generator 1.0's (same draws, same order)."""
    return GeneratorConfig(**{**LEGACY, **overrides})


# The appearance a camera would produce: photographs behind the hand, skin beyond Lambertian,
# cast shadows, white balance, exposure, defocus and motion blur, shot and read noise.
PHOTO_LIKE = dict(
    photo_background_prob=0.7, photo_occluder_prob=0.6, background_blur_prob=0.4,
    specular=(0.05, 0.3), subsurface=(0.2, 0.6), nail_crease=0.8, skin_blotch=0.03,
    shadow_prob=0.6, white_balance=0.12, exposure=0.3, defocus_prob=0.15, motion_blur_prob=0.15,
    shot_noise=0.001, read_noise=0.005,
)  # fmt: skip
APPEARANCES = {"default": {}, "photo": PHOTO_LIKE}


def appearance_config(name: str, **overrides) -> GeneratorConfig:
    """The config of a named appearance preset (``APPEARANCES``), with ``overrides`` on top.

    ``"default"`` is ``GeneratorConfig()``; ``"photo"`` is ``PHOTO_LIKE``.
    """
    if name not in APPEARANCES:
        raise ValueError(f"unknown appearance {name!r}; expected one of {list(APPEARANCES)}")
    return GeneratorConfig(**{**APPEARANCES[name], **overrides})
