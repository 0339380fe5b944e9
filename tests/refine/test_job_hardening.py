"""The refinement job against crafted and careless evidence files (reproduces each attack)."""

import json
import os

import jax
import numpy as np
import pytest

from hand_jax import mano
from hand_jax.refine import io as refine_io
from hand_jax.refine import job as refine_job

SIZE = 24


@pytest.fixture(scope="module")
def model():
    return mano.load_model()


@pytest.fixture(scope="module")
def problem(model):
    _, init, evidence = refine_io.synthetic_problems(
        jax.random.key(2), model, num=3, image_size=SIZE
    )
    return jax.tree.map(np.asarray, (init, evidence))


def _arrays(problem, **extra):
    init, evidence = problem
    arrays = {k: v for k, v in evidence._asdict().items() if v is not None}
    arrays.update(init._asdict())
    arrays.update(extra)
    return arrays


def _run(model, path, out_dir, **kw):
    args = dict(model=model, num_steps=2, learning_rate=0.1, weights={}, sigma=1.0, batch_size=4,
                num_animations=0)  # fmt: skip
    args.update(kw)
    return refine_job.run(input_path=str(path), out_dir=str(out_dir), **args)


def test_ids_cannot_name_files_outside_out_dir(tmp_path, model, problem):
    victim = tmp_path / "victim.obj"
    victim.write_text("keep me")
    ids = np.array([f"../{victim.stem}", str(victim.with_suffix("")), "a/b\\\\c" + "x" * 300])
    path = tmp_path / "ev.npz"
    np.savez(path, **_arrays(problem, ids=ids))
    out = tmp_path / "out"
    _run(model, path, out)
    assert victim.read_text() == "keep me"
    meshes = sorted(os.listdir(out / "meshes"))
    assert len(meshes) == 3 and all(m.startswith(f"{i:05d}_") for i, m in enumerate(meshes))
    assert all("/" not in m and len(m) < 100 for m in meshes)
    assert sorted(os.listdir(tmp_path)) == ["ev.npz", "out", "victim.obj"]
    assert np.load(out / "refined.npz")["ids"].tolist() == ids.tolist()


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(ids=np.array(["a", "b", "a"])), "not unique"),
        (dict(ids=np.array(["a", "b"])), "'ids' has shape"),
        (dict(keypoints_2d=np.zeros((0, 21, 2), np.float32)), "no examples"),
        (dict(mask=np.full((3, SIZE, SIZE), 3.0, np.float32)), "probabilities in"),
        (dict(image=np.zeros((3, SIZE, SIZE + 1, 3), np.uint8)), "'image' has shape"),
        (dict(image=np.zeros((3, SIZE, SIZE, 3), np.float32)), "'image' has dtype"),
        (dict(pose=np.zeros((3, 50), np.float32)), "'pose' has 50 columns"),
        (dict(confidence=np.array(["x"] * 63).reshape(3, 21)), "expected a numeric array"),
    ],
)
def test_bad_evidence_is_a_clear_error(tmp_path, problem, change, message):
    path = tmp_path / "ev.npz"
    np.savez(path, **_arrays(problem, **change))
    with pytest.raises(refine_io.EvidenceError, match=message) as err:
        refine_io.load_evidence(str(path))
    assert str(err.value).startswith(f"{path}: ")


def test_object_arrays_and_truncated_files_name_the_file(tmp_path, problem):
    path = tmp_path / "obj.npz"
    np.savez(path, **_arrays(problem, ids=np.array([{"a": 1}, None, 3], dtype=object)))
    with pytest.raises(refine_io.EvidenceError, match="'ids' is not a readable array"):
        refine_io.load_evidence(str(path))
    good = tmp_path / "good.npz"
    np.savez(good, **_arrays(problem))
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[:200])
    unreadable = "cut.npz: not a readable npz of refinement evidence"
    with pytest.raises(refine_io.EvidenceError, match=unreadable):
        refine_io.load_evidence(str(cut))


def test_uint8_mask_encodings(tmp_path, problem):
    init, evidence = problem
    binary = (evidence.mask > 0.5).astype(np.uint8)
    for name, mask in (("01", binary), ("0255", binary * 255), ("bool", binary.astype(bool))):
        path = tmp_path / f"{name}.npz"
        np.savez(path, **_arrays(problem, mask=mask))
        loaded = refine_io.load_evidence(str(path))[0].mask
        np.testing.assert_array_equal(loaded, binary.astype(np.float32), err_msg=name)


def test_all_nan_examples_are_reported_not_scored(tmp_path, model, problem):
    init, evidence = problem
    kp, conf, mask = evidence.keypoints_2d.copy(), evidence.confidence.copy(), evidence.mask.copy()
    kp[1], conf[1], mask[1] = np.nan, np.nan, np.nan
    path = tmp_path / "ev.npz"
    np.savez(path, **_arrays(problem, keypoints_2d=kp, confidence=conf, mask=mask,
                             ids=np.array(["a", "b", "c"])))  # fmt: skip
    summary = _run(model, path, tmp_path / "out")
    assert summary["no_valid_evidence"] == ["b"]
    refined = np.load(tmp_path / "out" / "refined.npz")
    assert refined["has_evidence"].tolist() == [True, False, True]
    want = np.mean(refined["losses"][[0, 2], 0])
    assert summary["mean_initial_energy"] == pytest.approx(float(want), rel=1e-5)


def test_a_failed_overwrite_keeps_the_previous_results(tmp_path, model, problem, monkeypatch):
    path = tmp_path / "ev.npz"
    np.savez(path, **_arrays(problem))
    out = tmp_path / "out"
    _run(model, path, out)
    before = json.loads((out / "summary.json").read_text())

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(refine_job, "_save_results", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        _run(model, path, out, overwrite=True)
    assert json.loads((out / "summary.json").read_text()) == before
    assert sorted(os.listdir(tmp_path)) == ["ev.npz", "out"]  # no temporary folder left
