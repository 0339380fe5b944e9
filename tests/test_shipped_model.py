"""The shipped model loads from the repository alone and estimates hands it has never seen.

Fresh synthetic samples (a seed no training or validation set used) are rendered here; the
model's root-relative 3D error must be far below that of the best constant skeleton for the same
samples (computed here, not a number from the training run).
"""

import os

import numpy as np
import pytest

from hand_jax import mano, network
from hand_jax.data import crop, synthetic_gen
from hand_jax.network import store as model_store


@pytest.fixture(scope="module")
def samples():
    config = network.load_run_config(model_store.SHIPPED_MODEL)
    generator = synthetic_gen.Generator(
        mano.load_model(), synthetic_gen.GeneratorConfig(image_size=128), seed=20261201
    )
    size = config.data.image_size
    return [
        crop.crop_sample(s, out_size=size, margin=config.data.crop_margin)
        for s in generator.samples("test", range(16))
    ]


def test_the_shipped_model_is_in_the_repository_with_its_card():
    for name in ("config.json", model_store.PARAMS_FILE, "MODEL_CARD.md"):
        path = os.path.join(model_store.SHIPPED_MODEL, name)
        assert os.path.isfile(path), path
    assert os.path.getsize(os.path.join(model_store.SHIPPED_MODEL, "params.npz")) < 20e6


def test_shipped_model_beats_a_constant_skeleton_by_far(samples):
    out = network.predict_samples(None, samples)  # None: the shipped model
    gt = np.stack([s["keypoints_3d"] for s in samples]).astype(np.float64)
    gt_rel = gt - gt[:, :1]
    pred_rel = out["keypoints_3d"] - out["keypoints_3d"][:, :1]
    model_mm = 1000 * np.mean(np.linalg.norm(pred_rel - gt_rel, axis=-1))
    constant_mm = 1000 * np.mean(np.linalg.norm(gt_rel - gt_rel.mean(axis=0), axis=-1))
    assert model_mm < 0.5 * constant_mm, (model_mm, constant_mm)
    # fE2D's keypoints through the reprojected mesh land near the labelled ones too.
    kp2d = np.stack([s["keypoints_2d"] for s in samples])
    err_px = np.mean(np.linalg.norm(out["keypoints_2d"] - kp2d, axis=-1))
    assert err_px < 0.15 * samples[0]["image"].shape[0], err_px
