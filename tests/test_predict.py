"""A trained run restored from its directory predicts what the in-memory final state predicts."""

import numpy as np
import pytest

from hand_jax import predict
from hand_jax.eval import evaluate
from hand_jax.train import loop as train_loop
from tests.train_helpers import tiny_config, toy_samples


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("run"))
    config = tiny_config(**{"train.num_steps": 2, "checkpoint.every": 2})
    train, val = toy_samples(16, seed=0), toy_samples(6, seed=1)
    state = train_loop.train_and_evaluate(
        config, workdir=workdir, train_samples=train, val_samples=val
    )
    return workdir, config, state, val


def test_restored_predictions_equal_the_final_state(run):
    workdir, config, state, val = run
    out = predict.predict_samples(workdir, val)
    mesh, consts, programs = train_loop.build(config)
    images = np.stack([s["image"] for s in val] + [val[-1]["image"]] * 2)  # pad to batch 8
    direct = programs.predict(state, images, consts)
    np.testing.assert_allclose(out["keypoints_3d"], np.asarray(direct["kp3d"])[:6], atol=1e-6)
    assert list(out["ids"]) == [s["id"] for s in val]
    # The step directory and the checkpoints directory name the same run.
    again = predict.predict_samples(f"{workdir}/checkpoints/2", val)
    np.testing.assert_array_equal(again["keypoints_3d"], out["keypoints_3d"])


def test_wrong_crop_size_and_missing_run_are_clear_errors(run, tmp_path):
    workdir, _, _, _ = run
    with pytest.raises(ValueError, match="48 px crops.*32 px"):
        predict.predict_samples(workdir, toy_samples(2, image_size=48, seed=2))
    with pytest.raises(FileNotFoundError, match="config.json"):
        predict.find_run_dir(str(tmp_path))


def test_evaluate_scores_a_checkpoint(run, tmp_path, monkeypatch):
    workdir, _, _, val = run
    # Both the predictor and the ground truth read the split through hand_jax.data.load_split.
    monkeypatch.setattr(predict.data, "load_split", lambda *a, **k: val)
    evaluate.evaluate(
        out_dir=tmp_path / "eval", dataset="synthetic", checkpoint=workdir, data_dir="unused",
    )  # fmt: skip
    with np.load(tmp_path / "eval" / "per_sample.npz") as f:
        ours = predict.predict_samples(workdir, val)
        order = [list(f["ids"]).index(i) for i in ours["ids"]]
        np.testing.assert_allclose(f["keypoints_3d"][order], ours["keypoints_3d"], atol=1e-6)


def test_keypoints_and_vertices_come_back_in_one_frame(run):
    # An off-centre crop (principal point far from the crop centre) makes the view rotation
    # large; fingertip keypoints are mesh vertices, so they must still coincide after it.
    from hand_jax import mano

    workdir, _, _, val = run
    K = np.array([[40.0, 0.0, -30.0], [0.0, 40.0, 60.0], [0.0, 0.0, 1.0]], np.float32)
    shifted = [dict(s, K=K) for s in val]
    out = predict.predict_samples(workdir, shifted)
    tips = list(mano.load_model().tip_ids)
    np.testing.assert_allclose(
        out["keypoints_3d"][:, [4, 8, 12, 16, 20]], out["verts"][:, tips], atol=1e-6
    )
    plain = predict.predict_samples(workdir, val)  # the same images without K: no rotation
    assert np.abs(out["keypoints_3d"] - plain["keypoints_3d"]).max() > 1e-3
