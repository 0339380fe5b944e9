"""Tests of refinement inputs/outputs: evidence files and the batch refinement job."""

import json

import jax
import numpy as np
import pytest

from hand_jax import mano, mesh_io
from hand_jax.refine import io as refine_io
from hand_jax.refine import job as refine_job

SIZE = 32


@pytest.fixture(scope="module")
def model():
    return mano.load_model()


@pytest.fixture(scope="module")
def problem(model):
    return refine_io.synthetic_problems(jax.random.key(3), model, num=3, image_size=SIZE)


def test_evidence_file_round_trip(tmp_path, problem):
    _, init, evidence = problem
    path = tmp_path / "ev.npz"
    refine_io.save_evidence(path, evidence, init_params=init, ids=["a", "b", "c"])
    ev2, init2, images, ids = refine_io.load_evidence(path)
    assert ev2.K is None
    for a, b in zip(jax.tree.leaves((evidence, init)), jax.tree.leaves((ev2, init2)), strict=True):
        np.testing.assert_allclose(np.asarray(a), b, rtol=1e-6)
    assert images is None and list(ids) == ["a", "b", "c"]
    with pytest.raises(FileExistsError):
        refine_io.save_evidence(path, evidence)


def test_evidence_file_errors_name_the_key(tmp_path, problem):
    _, init, evidence = problem
    arrays = {k: np.asarray(v) for k, v in evidence._asdict().items() if v is not None}
    np.savez(tmp_path / "a.npz", **{k: v for k, v in arrays.items() if k != "mask"})
    with pytest.raises(refine_io.EvidenceError, match="a.npz.*'mask'"):
        refine_io.load_evidence(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", **dict(arrays, confidence=arrays["confidence"][:, :20]))
    with pytest.raises(ValueError, match="b.npz.*'confidence'.*expected"):
        refine_io.load_evidence(tmp_path / "b.npz")
    np.savez(tmp_path / "c.npz", **arrays, betas=np.asarray(init.betas))
    with pytest.raises(refine_io.EvidenceError, match="c.npz.*partial"):
        refine_io.load_evidence(tmp_path / "c.npz")


def test_quaternion_multiply_matches_matrix_product():
    from hand_jax.geometry import rotations

    q = jax.random.normal(jax.random.key(0), (2, 5, 4))
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    m = rotations.quaternion_to_matrix
    np.testing.assert_allclose(
        m(refine_io.quaternion_multiply(q[0], q[1])), m(q[0]) @ m(q[1]), atol=1e-5
    )


def _hamilton(a, b):
    """The Hamilton product written out term by term (plain numpy)."""
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array([
        w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
        w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
        w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
        w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
    ])  # fmt: skip


@pytest.mark.parametrize("batch", [(), (3,), (2, 3)])
def test_quaternion_multiply_is_the_hamilton_product_for_any_batch(batch):
    rng = np.random.default_rng(5)
    q1, q2 = rng.normal(size=(2, *batch, 4))  # not unit: the product is bilinear
    got = np.asarray(refine_io.quaternion_multiply(q1, q2))
    want = np.apply_along_axis(
        lambda ab: _hamilton(ab[:4], ab[4:]), -1, np.concatenate([q1, q2], -1)
    )
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_random_quaternions_are_unit_and_within_the_angle():
    q = np.asarray(refine_io._random_quaternion(jax.random.key(1), 500, 0.6))
    np.testing.assert_allclose(np.linalg.norm(q, axis=-1), 1.0, rtol=1e-5)
    angle = 2 * np.arctan2(np.linalg.norm(q[:, 1:], axis=-1), q[:, 0])
    assert angle.max() <= 0.6 + 1e-5 and angle.max() > 0.5  # spans the range, not beyond


def test_perspective_evidence_without_initial_params(tmp_path, model):
    f = 1.5 * SIZE
    K = np.array([[f, 0, SIZE / 2], [0, f, SIZE / 2], [0, 0, 1]], np.float32)
    _, _, evidence = refine_io.synthetic_problems(
        jax.random.key(4), model, num=2, image_size=SIZE, K=K
    )
    path = tmp_path / "ev.npz"
    refine_io.save_evidence(path, evidence)
    loaded, init, _, _ = refine_io.load_evidence(path)
    np.testing.assert_allclose(loaded.K, np.broadcast_to(K, (2, 3, 3)))
    assert init is None
    refine_job.run(
        input_path=str(path), out_dir=str(tmp_path / "o"), model=model, num_steps=2,
        learning_rate=1e-2, weights={}, sigma=1.0, batch_size=2, num_animations=0,
    )  # fmt: skip
    verts, _ = mesh_io.read_obj(tmp_path / "o" / "meshes" / "00000_0.obj")
    assert verts[:, 2].min() > 0.05  # camera frame, in front of the camera


def test_refine_job_writes_outputs_and_keeps_user_files(tmp_path, model, problem):
    _, init, evidence = problem
    path = tmp_path / "ev.npz"
    refine_io.save_evidence(path, evidence, init_params=init, ids=[10, 11, 12])
    out = tmp_path / "out"
    summary = refine_job.run(
        input_path=str(path), out_dir=str(out), model=model, num_steps=4, learning_rate=1e-2,
        weights={}, sigma=1.0, batch_size=2, num_animations=1,
    )  # fmt: skip
    assert summary["num_examples"] == 3
    with np.load(out / "refined.npz") as f:
        assert f["losses"].shape == (3, 4)
        assert list(f["ids"]) == [10, 11, 12]
        np.testing.assert_allclose(f["init_cam"], np.asarray(init.cam))
        assert np.all(f["best_loss"] <= f["losses"].min(1) + 1e-6)
    verts, faces = mesh_io.read_obj(out / "meshes" / "00002_12.obj")
    assert verts.shape == model.v_template.shape and len(faces) == len(model.faces)
    assert (out / "overlays" / "00001_11.png").exists()
    assert (out / "animations" / "00000_10.gif").exists()
    assert not (out / "animations" / "00001_11.gif").exists()
    assert json.loads((out / "summary.json").read_text())["num_steps"] == 4
    with pytest.raises(FileExistsError, match="not empty"):
        refine_job.run(
            input_path=str(path), out_dir=str(out), model=model, num_steps=4,
            learning_rate=1e-2, weights={}, sigma=1.0, batch_size=2,
        )  # fmt: skip
