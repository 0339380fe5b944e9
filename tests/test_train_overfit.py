"""Learning is tested by learning: the whole estimator overfits 32 synthetic images (slow).

fE2D + fE3D with the silhouette loss on, trained on 32 samples of the real synthetic generator
(natural views, forearms, occluders), must reach a small 2D and 3D error on those same samples
within a bounded number of steps. The bounds were set from a measured run and kept well above
it (the numbers are in the assertions' comments).
"""

import numpy as np
import pytest

from hand_jax import mano, network
from hand_jax.data import crop, synthetic_gen
from hand_jax.train import loop as train_loop
from tests.train_helpers import tiny_config


def _samples(n, *, seed):
    generator = synthetic_gen.Generator(
        mano.load_model(), synthetic_gen.GeneratorConfig(image_size=128), seed=seed
    )
    return [crop.crop_sample(s, out_size=64) for s in generator.samples("train", range(n))]


@pytest.mark.slow
def test_whole_model_overfits_32_synthetic_images(tmp_path):
    samples = _samples(32, seed=7)
    config = tiny_config(**{
        "model.depth": 18, "model.width": 16, "model.head_width": 32, "model.hidden": 128,
        "model.conv_width": 32, "model.num_iterations": 3, "data.image_size": 64,
        "loss.silhouette_size": 32, "loss.silhouette_gate": "always",
        "loss.silhouette_last_only": True, "train.global_batch_size": 16,
        "train.num_steps": 1500, "train.e2d_steps": 600, "train.e3d_steps": 300,
        "train.eval_every": 10_000, "optim.learning_rate": 2e-3, "optim.warmup_steps": 50,
        "optim.schedule": "cosine", "checkpoint.every": 10_000,
    })  # fmt: skip
    train_loop.train_and_evaluate(
        config, workdir=str(tmp_path), train_samples=samples, val_samples=samples[:8]
    )
    m = network.validation_metrics(str(tmp_path), samples)
    # A constant skeleton (the samples' mean root-relative hand) for scale.
    rel = np.stack([s["keypoints_3d"] - s["keypoints_3d"][0] for s in samples])
    constant_mm = 1000 * np.mean(np.linalg.norm(rel - rel.mean(axis=0), axis=-1))
    # Measured (1,500 steps, 4 min on 2 cores): 4.8 mm root-relative against 74 mm for the
    # constant skeleton, Procrustes 4.4 mm, fE2D 0.5% of the crop, mask IoU 0.86, silhouette 0.78.
    assert m["kp3d_epe_mm"] < min(15.0, 0.3 * constant_mm), (m, constant_mm)
    assert m["pa_epe_mm"] < 12.0, m
    assert m["e2d_epe_frac"] < 0.03, m
    assert m["mask_iou"] > 0.75 and m["silhouette_iou"] > 0.65, m
