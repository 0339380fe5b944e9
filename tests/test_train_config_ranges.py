"""Training config ranges: type-correct but meaningless values are errors naming the key."""

import math

import ml_collections
import pytest

from hand_jax.train import config as train_config
from launch.configs import default, synthetic


def _with(section, key, value):
    d = default.get_config().to_dict()
    d[section][key] = value
    return ml_collections.ConfigDict(d)


BAD = [
    ("optim", "learning_rate", -1e-3),
    ("optim", "learning_rate", 0.0),
    ("optim", "learning_rate", math.nan),
    ("optim", "learning_rate", math.inf),
    ("optim", "weight_decay", -1e-4),
    ("optim", "grad_clip_norm", -1.0),
    ("optim", "warmup_steps", -5),
    ("optim", "end_factor", 1.5),
    ("loss", "heatmap", -100.0),
    ("loss", "kp3d", -10.0),
    ("loss", "silhouette", -1.0),
    ("loss", "pose_prior", -1e-2),
    ("loss", "rot_reg", math.nan),
    ("loss", "heatmap_sigma", -1.5),
    ("loss", "heatmap_sigma", 0.0),
    ("loss", "silhouette_sigma", -1.0),
    ("loss", "skeleton_ema", 7.0),
    ("loss", "skeleton_ema", 1.0),
    ("loss", "skeleton_ema", -0.1),
    ("loss", "silhouette_threshold", -0.01),
    ("loss", "silhouette_start_step", -1),
    ("model", "threshold", 1.0),
    ("model", "width", 0),
    ("model", "num_betas", -1),
    ("model", "init_fill", 0.0),
    ("data", "crop_margin", -0.25),
    ("data", "num_workers", -1),
    ("data", "crop_shift", -0.1),
    ("data", "crop_shift", 1.0),
    ("train", "e2d_steps", -1),
    ("train", "color_jitter", 2.0),
    ("train", "eval_examples", -1),
    ("train", "num_steps", 0),
    ("checkpoint", "keep", 0),
]


@pytest.mark.parametrize("section, key, value", BAD)
def test_out_of_range_value_is_an_error_naming_the_key(section, key, value):
    with pytest.raises(ValueError, match=rf"config: {section}\.{key}=.* out of range"):
        train_config.validate_config(_with(section, key, value), reference=default.get_config())


@pytest.mark.parametrize(
    "section, key, value",
    [
        ("loss", "silhouette", 0.0),  # a loss switched off
        ("loss", "skeleton_ema", 0.0),
        ("optim", "grad_clip_norm", 0.0),  # clipping disabled
        ("optim", "end_factor", 1.0),
        ("train", "eval_examples", 0),  # the whole split
        ("train", "e2d_steps", 0),
        ("optim", "learning_rate", 3),  # an int where the default is a float
    ],
)
def test_boundary_values_that_mean_something_pass(section, key, value):
    train_config.validate_config(_with(section, key, value), reference=default.get_config())


@pytest.mark.parametrize("preset", ["", "cpu", "cpu_small", "tpu"])
def test_shipped_configs_pass(preset):
    train_config.validate_config(synthetic.get_config(preset), reference=default.get_config())


@pytest.mark.parametrize("value", [(1.5, 0.7), (0.0, 1.0), (0.9,), (0.9, math.nan), (0.9, "1.1")])
def test_a_bad_crop_scale_is_an_error_naming_the_key(value):
    config = default.get_config()
    config.data.crop_scale = value
    with pytest.raises(ValueError, match=r"data\.crop_scale"):
        train_config.validate_config(config)


def test_the_training_crops_take_the_configured_jitter(monkeypatch):
    from hand_jax.data import pipeline
    from hand_jax.train import loop

    seen = {}

    def fake_dataset(samples, **kw):
        seen.update(kw)
        raise RuntimeError("stop")

    monkeypatch.setattr(pipeline, "make_dataset", fake_dataset)
    config = synthetic.get_config("cpu_small")
    config.data.crop_scale, config.data.crop_shift = (0.7, 1.5), 0.15
    with pytest.raises(RuntimeError, match="stop"):
        loop.GrainBatches([], config=config)
    assert seen["augmentation"].scale == (0.7, 1.5) and seen["augmentation"].shift == 0.15
    config.data.augment = False
    with pytest.raises(RuntimeError, match="stop"):
        loop.GrainBatches([], config=config)
    assert seen["augmentation"] == pipeline.NO_AUGMENTATION
