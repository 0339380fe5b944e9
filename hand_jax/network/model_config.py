"""What a trained network's ``config.json`` must hold before anything is built from it.

A model or run directory may come from anywhere, so its ``config.json`` is checked against the
schema of the keys that build the network and shape its outputs (``model.*``, ``data.image_size``,
``data.crop_margin``, ``loss.silhouette_size``/``silhouette_sigma``,
``train.global_batch_size``): types, choices and ranges that a training config could have, with
upper bounds that keep a forged file from asking for an absurd network (``num_iterations=10^6``
would hang the load). Every error names the file and the key. ``check_outputs`` refuses a network
whose outputs on a fixed probe image are not finite (finite float16 weights can still overflow).
"""

import json
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from hand_jax.network import forward, settings

# key -> (type, low, high) for numbers (bounds inclusive), or a tuple of choices.
SCHEMA = {
    "model.depth": (10, 18, 34, 50),
    "model.width": (int, 1, 1024),
    "model.head_width": (int, 1, 1024),
    "model.threshold": (float, 0.0, 0.999),
    "model.num_iterations": (int, 1, 32),
    "model.hidden": (int, 1, 8192),
    "model.conv_width": (int, 1, 2048),
    "model.dtype": ("float32", "bfloat16"),
    "model.rot_repr": ("quat", "6d"),
    "model.num_betas": (int, 0, 300),
    "model.init_fill": (float, 1e-3, 1.0),
    "model.tips": (str,),
    "data.image_size": (int, 32, 1024),
    "data.crop_margin": (float, 0.0, 10.0),
    "loss.silhouette_size": (int, 4, 1024),
    "loss.silhouette_sigma": (float, 1e-6, 1e4),
    "train.global_batch_size": (int, 1, 1 << 16),
}
OPTIONAL = {"model.camera": settings.CAMERAS}


def _value(config: dict, key: str):
    section, name = key.split(".")
    part = config.get(section)
    if not isinstance(part, dict) or name not in part:
        raise KeyError(key)
    return part[name]


def _check(path: str, key: str, value, rule) -> None:
    if len(rule) == 1 or not isinstance(rule[0], type):
        ok = isinstance(value, rule[0]) if len(rule) == 1 else value in rule
        want = "a string" if len(rule) == 1 else f"one of {rule}"
    else:
        kind, lo, hi = rule
        number = isinstance(value, int | float) and not isinstance(value, bool)
        ok = number and (kind is float or float(value).is_integer())
        ok = ok and math.isfinite(value) and lo <= value <= hi
        want = f"{'an integer' if kind is int else 'a number'} in [{lo}, {hi}]"
    if not ok:
        raise ValueError(f"{path}: {key}={value!r}: expected {want}")


def load(path: str) -> ml_collections.ConfigDict:
    """Read and check a run's or model's ``config.json`` (errors name the file and key)."""
    try:
        with open(path) as f:
            raw = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"{path}: not a readable JSON config ({type(e).__name__}: {e})") from e
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(raw).__name__}")
    for key, rule in SCHEMA.items():
        try:
            value = _value(raw, key)
        except KeyError:
            raise ValueError(f"{path}: missing key {key!r}") from None
        _check(path, key, value, rule)
    for key, rule in OPTIONAL.items():
        try:
            _check(path, key, _value(raw, key), rule)
        except KeyError:
            pass
    size, sil = raw["data"]["image_size"], raw["loss"]["silhouette_size"]
    if size % 32 or size % sil:
        raise ValueError(f"{path}: data.image_size={size} must be a multiple of 32 and of "
                         f"loss.silhouette_size={sil}")  # fmt: skip
    return ml_collections.ConfigDict(raw)


def check_outputs(network, where: str) -> None:
    """Refuse a network whose outputs on a fixed probe image are not finite."""
    s = network.image_size
    ramp = np.linspace(0.0, 1.0, s, dtype=np.float32)
    probe = np.stack([np.broadcast_to(ramp, (s, s)), np.broadcast_to(ramp[:, None], (s, s)),
                      np.full((s, s), 0.5, np.float32)], axis=-1)[None]  # fmt: skip
    K = jnp.asarray([[[1.2 * s, 0, s / 2], [0, 1.2 * s, s / 2], [0, 0, 1]]], jnp.float32)  # ~45 deg
    out = jax.jit(
        lambda v, x, c, k: forward.predict(
            v, x, c, module=network.module, runtime=network.runtime, K=k
        )
    )(network.variables, jnp.asarray(probe), network.consts, K)
    bad = [k for k in ("h", "verts", "keypoints2d", "mask") if not np.all(np.isfinite(out[k]))]
    if bad:
        raise ValueError(f"{where}: the model's outputs on a fixed probe image are not finite "
                         f"({', '.join(bad)}); refusing to use it")  # fmt: skip
