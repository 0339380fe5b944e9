"""Validation of the training config: every key declared, right types, sane values.

Runs before any JAX computation, so that a typo or a wrong type in a config file or an override
(``--config.train.num_stpes=10``) is a clear error naming the key, not a failure minutes later.
The reference is ``launch/configs/default.py:get_config()``, which declares every key.
"""

import jax

_CHOICES = {
    ("model", "depth"): (10, 18, 34, 50),
    ("model", "dtype"): ("float32", "bfloat16"),
    ("model", "rot_repr"): ("quat", "6d"),
    ("loss", "silhouette_gate"): ("always", "never", "threshold", "step", "threshold_or_step"),
    ("optim", "schedule"): ("cosine", "constant"),
}


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
    for section, key in (("train", "num_steps"), ("train", "log_every"), ("train", "eval_every"),
                         ("train", "global_batch_size"), ("checkpoint", "every"),
                         ("checkpoint", "keep"), ("model", "num_iterations")):  # fmt: skip
        if config[section][key] <= 0:
            raise ValueError(f"config: {section}.{key}={config[section][key]} must be positive")


def check_devices(config) -> None:
    """Raise ``ValueError`` if the global batch does not split evenly over devices and hosts."""
    batch = config.train.global_batch_size
    if batch % jax.device_count():
        raise ValueError(
            f"config: train.global_batch_size={batch} must be divisible by the device count "
            f"{jax.device_count()}"
        )
