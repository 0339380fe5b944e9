"""Validation of the training config: every key declared, right types, sane values.

Runs before any JAX computation, so that a typo or a wrong type in a config file or an override
(``--config.train.num_stpes=10``) is a clear error naming the key, not a failure minutes later.
The reference is ``launch/configs/default.py:get_config()``, which declares every key.
"""

import math

import jax

from hand_jax.train.losses import GATE_MODES

_CHOICES = {
    ("model", "depth"): (10, 18, 34, 50),
    ("model", "dtype"): ("float32", "bfloat16"),
    ("model", "rot_repr"): ("quat", "6d"),
    ("model", "camera"): ("weak", "perspective"),
    ("loss", "silhouette_gate"): GATE_MODES,
    ("optim", "schedule"): ("cosine", "constant"),
}


# (low, high, low_inclusive, high_inclusive); None: unbounded on that side. Ranges, not only
# types: a negative learning rate or loss weight, a negative sigma or an EMA decay of 7 are
# type-correct and would train silently towards nonsense.
_POSITIVE = (0, None, False, False)
_NON_NEGATIVE = (0, None, True, False)
_UNIT = (0, 1, True, True)
_DECAY = (0, 1, True, False)
_LOSS_WEIGHTS = ("heatmap", "e2d_keypoints", "mask", "kp3d", "kp2d", "refine2d", "silhouette",
                 "pose_prior", "shape_prior", "rot_reg")  # fmt: skip
_RANGES = {
    ("model", "width"): _POSITIVE,
    ("model", "head_width"): _POSITIVE,
    ("model", "threshold"): _DECAY,
    ("model", "num_iterations"): _POSITIVE,
    ("model", "hidden"): _POSITIVE,
    ("model", "conv_width"): _POSITIVE,
    ("model", "num_betas"): _NON_NEGATIVE,
    ("model", "init_fill"): (0, 1, False, True),
    ("data", "num_workers"): _NON_NEGATIVE,
    ("data", "crop_margin"): _NON_NEGATIVE,
    ("data", "crop_shift"): (0, 1, True, False),
    **{("loss", k): _NON_NEGATIVE for k in _LOSS_WEIGHTS},
    ("loss", "heatmap_sigma"): _POSITIVE,
    ("loss", "silhouette_threshold"): _NON_NEGATIVE,
    ("loss", "silhouette_start_step"): _NON_NEGATIVE,
    ("loss", "skeleton_ema"): _DECAY,
    ("loss", "silhouette_sigma"): _POSITIVE,
    ("optim", "learning_rate"): _POSITIVE,
    ("optim", "warmup_steps"): _NON_NEGATIVE,
    ("optim", "end_factor"): _UNIT,
    ("optim", "weight_decay"): _NON_NEGATIVE,
    ("optim", "grad_clip_norm"): _NON_NEGATIVE,
    ("train", "global_batch_size"): _POSITIVE,
    ("train", "num_steps"): _POSITIVE,
    ("train", "e2d_steps"): _NON_NEGATIVE,
    ("train", "e3d_steps"): _NON_NEGATIVE,
    ("train", "color_jitter"): _UNIT,
    ("train", "log_every"): _POSITIVE,
    ("train", "eval_every"): _POSITIVE,
    ("train", "eval_examples"): _NON_NEGATIVE,
    ("train", "png_examples"): _NON_NEGATIVE,
    ("checkpoint", "every"): _POSITIVE,
    ("checkpoint", "keep"): _POSITIVE,
}


def _check_range(section: str, key: str, value, bounds) -> None:
    lo, hi, lo_in, hi_in = bounds
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (lo is None or value > lo or (lo_in and value == lo))
    ok = ok and (hi is None or value < hi or (hi_in and value == hi))
    if not ok:
        interval = f"{'[' if lo_in else '('}{lo if lo is not None else '-inf'}, " + (
            f"{hi if hi is not None else 'inf'}{']' if hi_in else ')'}"
        )
        raise ValueError(
            f"config: {section}.{key}={value!r} is out of range: expected a finite number in "
            f"{interval}"
        )


def _check_structure(config, reference, path=()):
    for key in sorted(set(config.keys()) | set(reference.keys())):
        where = ".".join((*path, key))
        if key not in reference:
            raise ValueError(f"config: unknown key {where!r} (not declared in the default config)")
        if key not in config:
            raise ValueError(f"config: missing key {where!r}")
        value, ref = config[key], reference[key]
        if hasattr(ref, "keys"):
            if not hasattr(value, "keys"):
                raise ValueError(f"config: {where!r} must be a section, got {value!r}")
            _check_structure(value, ref, (*path, key))
        elif not _same_type(value, ref):
            raise ValueError(
                f"config: {where!r} must be of type {type(ref).__name__} (like the default "
                f"{ref!r}), got {type(value).__name__} {value!r}"
            )


def _same_type(value, ref) -> bool:
    if isinstance(ref, bool) or isinstance(value, bool):
        return type(value) is type(ref)
    if isinstance(ref, float):
        return isinstance(value, int | float)
    return isinstance(value, type(ref))


def validate_config(config, *, reference=None) -> None:
    """Raise ``ValueError`` naming the key if the config is malformed (no JAX computation).

    Checks the structure against ``reference``, the choices of enumerated keys, the image and
    silhouette sizes, and the range of every numeric hyperparameter (``_RANGES``: positive
    learning rate and sigmas, non-negative loss weights, decays in [0, 1), ...).

    Args:
      config: the training config.
      reference: the default config declaring every key and its type; when given, unknown keys,
        missing keys and wrong types are errors.
    """
    if reference is not None:
        _check_structure(config, reference)
    for (section, key), choices in _CHOICES.items():
        if config[section][key] not in choices:
            raise ValueError(
                f"config: {section}.{key}={config[section][key]!r}: expected {choices}"
            )
    size = config.data.image_size
    if size % 32 or size <= 0:
        raise ValueError(f"config: data.image_size={size} must be a positive multiple of 32")
    if config.loss.silhouette_size <= 0 or size % config.loss.silhouette_size:
        raise ValueError(
            f"config: loss.silhouette_size={config.loss.silhouette_size} must divide "
            f"data.image_size={size}"
        )
    _check_crop_scale(config.data.get("crop_scale", (1.0, 1.0)))
    mixture(config)
    for (section, key), bounds in _RANGES.items():
        if section in config and key in config[section]:
            _check_range(section, key, config[section][key], bounds)


def _check_crop_scale(value) -> None:
    ok = isinstance(value, tuple | list) and len(value) == 2
    ok = ok and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ok = ok and all(math.isfinite(v) for v in value) and 0 < value[0] <= value[1]
    if not ok:
        raise ValueError(
            f"config: data.crop_scale={value!r}: expected (lo, hi) with 0 < lo <= hi, the range "
            "of the training crop's box side as a multiple of the keypoints' box"
        )


def mixture(config) -> list[tuple[str, float]]:
    """The extra training sources, ``(dir, weight)``, of ``data.extra_dirs``/``extra_weights``."""
    data = config.get("data", {})
    dirs = [d.strip() for d in str(data.get("extra_dirs", "")).split(",") if d.strip()]
    weights = [w.strip() for w in str(data.get("extra_weights", "")).split(",") if w.strip()]
    if len(dirs) != len(weights):
        raise ValueError(
            f"config: data.extra_dirs lists {len(dirs)} dirs and data.extra_weights "
            f"{len(weights)} weights; give one weight (relative to the main data's 1.0) per dir"
        )
    out = []
    for d, w in zip(dirs, weights, strict=True):
        try:
            weight = float(w)
        except ValueError:
            weight = float("nan")
        if not (math.isfinite(weight) and weight > 0):
            raise ValueError(f"config: data.extra_weights: {w!r} for {d}: expected a number > 0")
        out.append((d, weight))
    return out


def check_devices(config) -> None:
    """Raise ``ValueError`` if the global batch does not split evenly over devices and hosts."""
    batch = config.train.global_batch_size
    if batch % jax.device_count():
        raise ValueError(
            f"config: train.global_batch_size={batch} must be divisible by the device count "
            f"{jax.device_count()}"
        )
