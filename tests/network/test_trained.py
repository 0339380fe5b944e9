"""A trained run restored from its directory predicts what the in-memory final state predicts."""

import json

import numpy as np
import pytest

from hand_jax import network
from hand_jax.estimate import scoring
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
    out = network.predict_samples(workdir, val)
    mesh, consts, programs = train_loop.build(config)
    images = np.stack([s["image"] for s in val] + [val[-1]["image"]] * 2)  # pad to batch 8
    direct = programs.predict(state, images, None, consts)
    np.testing.assert_allclose(out["keypoints_3d"], np.asarray(direct["kp3d"])[:6], atol=1e-6)
    assert list(out["ids"]) == [s["id"] for s in val]
    # The step directory and the checkpoints directory name the same run.
    again = network.predict_samples(f"{workdir}/checkpoints/2", val)
    np.testing.assert_array_equal(again["keypoints_3d"], out["keypoints_3d"])


def test_wrong_crop_size_and_missing_run_are_clear_errors(run, tmp_path):
    workdir, _, _, _ = run
    with pytest.raises(ValueError, match="48 px crops.*32 px"):
        network.predict_samples(workdir, toy_samples(2, image_size=48, seed=2))
    with pytest.raises(FileNotFoundError, match="config.json"):
        network.find_run_dir(str(tmp_path))


def test_scoring_a_checkpoint_without_refinement_is_the_network(run, tmp_path, monkeypatch):
    """The one checkpoint-scoring route at 0 steps writes the network's own predictions."""
    workdir, _, _, val = run
    # Both the predictor and the ground truth read the split through hand_jax.data.load_split.
    monkeypatch.setattr(network.trained.data, "load_split", lambda *a, **k: val)
    summary = scoring.evaluate_split(
        workdir, out_dir=str(tmp_path / "eval"), dataset="synthetic", data_dir="unused",
        split="test", refine_steps=0, batch_size=8,
    )  # fmt: skip
    assert sorted(summary["protocol"]) == ["network"] and "refined" not in summary
    with np.load(tmp_path / "eval" / "per_sample.npz") as f:
        ours = network.predict_samples(workdir, val)
        order = [list(f["ids"]).index(i) for i in ours["ids"]]
        np.testing.assert_allclose(f["keypoints_3d"][order], ours["keypoints_3d"], atol=1e-6)
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["inputs"]["predictions"] == workdir and metrics["variant"] == "default"
    assert json.loads((tmp_path / "eval" / "scores.json").read_text())["refine_steps"] == 0


def test_keypoints_and_vertices_come_back_in_one_frame(run):
    # An off-centre crop (principal point far from the crop centre) makes the view rotation
    # large; fingertip keypoints are mesh vertices, so they must still coincide after it.
    from hand_jax import mano

    workdir, _, _, val = run
    K = np.array([[40.0, 0.0, -30.0], [0.0, 40.0, 60.0], [0.0, 0.0, 1.0]], np.float32)
    shifted = [dict(s, K=K) for s in val]
    out = network.predict_samples(workdir, shifted)
    tips = list(mano.load_model().tip_ids)
    np.testing.assert_allclose(
        out["keypoints_3d"][:, [4, 8, 12, 16, 20]], out["verts"][:, tips], atol=1e-6
    )
    plain = network.predict_samples(workdir, val)  # the same images without K: no rotation
    assert np.abs(out["keypoints_3d"] - plain["keypoints_3d"]).max() > 1e-3


_WITHOUT_TRAINER = """
import sys

import numpy as np
import optax


class RefuseTrainer:
    def find_spec(self, name, path=None, target=None):
        if name == "hand_jax.train" or name.startswith("hand_jax.train."):
            raise ImportError(f"{name}: imported while restoring a model")


def refuse(*args, **kwargs):
    raise AssertionError("an optimizer was built while restoring a model")


sys.meta_path.insert(0, RefuseTrainer())
for name in ("adam", "adamw", "sgd", "chain", "inject_hyperparams", "multi_transform"):
    setattr(optax, name, refuse)

from hand_jax import network

net = network.restore()  # the shipped model
images = np.random.default_rng(0).integers(0, 256, (2, net.image_size, net.image_size, 3))
s = net.image_size
K = np.tile(np.array([[1.2 * s, 0, s / 2], [0, 1.2 * s, s / 2], [0, 0, 1]], np.float32), (2, 1, 1))
out = network.forward.predict(net.variables, images.astype(np.uint8), net.consts,
                              module=net.module, runtime=net.runtime, K=K)
assert np.all(np.isfinite(np.asarray(out["kp3d"])))
assert not [m for m in sys.modules if m.startswith("hand_jax.train")]
print("restored without the trainer")
"""


def test_restoring_the_shipped_model_builds_no_optimizer():
    """Restore and run the shipped model with the trainer unimportable and optax refusing."""
    import subprocess
    import sys

    root = __file__.rsplit("/tests/", 1)[0]
    result = subprocess.run([sys.executable, "-c", _WITHOUT_TRAINER], cwd=root,
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "restored without the trainer" in result.stdout
