"""What the refinement job writes, checked against the evidence it read: the same results in
any batch size (padding and slicing), each file for its own row, the summary's means, copies."""

import json
import os

import imageio.v3 as iio
import jax
import numpy as np
import pytest

from hand_jax import mano, mesh_io, refine
from hand_jax.refine import io as refine_io
from hand_jax.refine import job as refine_job

SIZE, STEPS = 16, 3


@pytest.fixture(scope="module")
def model():
    return mano.load_model()


@pytest.fixture(scope="module")
def runs(tmp_path_factory, model):
    """The same 3-example file refined in batches of 2 (one padded) and of 3."""
    tmp = tmp_path_factory.mktemp("job")
    _, init, evidence = refine_io.synthetic_problems(
        jax.random.key(7), model, num=3, image_size=SIZE
    )
    images = np.random.default_rng(0).integers(0, 256, (3, SIZE, SIZE, 3)).astype(np.uint8)
    path = tmp / "ev.npz"
    refine_io.save_evidence(path, evidence, init_params=init, images=images, ids=["p", "q", "r"])
    out = {}
    for batch in (2, 3):
        out[batch] = tmp / f"out{batch}"
        summary = refine_job.run(
            input_path=str(path), out_dir=str(out[batch]), model=model, num_steps=STEPS,
            learning_rate=0.1, weights={}, sigma=1.0, batch_size=batch, num_animations=2,
            copy_input=batch == 2,
        )  # fmt: skip
        assert summary == json.loads((out[batch] / "summary.json").read_text())
    return path, init, out


def _refined(out):
    with np.load(out / "refined.npz") as f:
        return {k: f[k] for k in f.files}


@pytest.mark.slow  # two job runs: about 20 s
def test_batch_size_does_not_change_any_result(runs):
    _, _, out = runs
    a, b = _refined(out[2]), _refined(out[3])
    assert sorted(a) == sorted(b)
    for key in a:
        if a[key].dtype.kind in "US":
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        else:
            np.testing.assert_allclose(a[key], b[key], rtol=2e-4, atol=1e-5, err_msg=key)


@pytest.mark.slow  # two job runs: about 20 s
def test_refined_file_holds_every_row_in_order(runs):
    _, init, out = runs
    r = _refined(out[2])
    assert r["ids"].tolist() == ["p", "q", "r"] and r["stems"].tolist() == ["00000_p", "00001_q",
                                                                           "00002_r"]  # fmt: skip
    assert r["losses"].shape == (3, STEPS) and r["has_evidence"].tolist() == [True] * 3
    for key, value in init._asdict().items():
        np.testing.assert_allclose(r[f"init_{key}"], value, rtol=1e-6, err_msg=key)
        assert r[f"final_{key}"].shape == r[f"best_{key}"].shape == value.shape
    assert not np.allclose(r["final_pose"], r["init_pose"])  # the optimiser moved
    np.testing.assert_array_less(r["best_loss"], r["losses"][:, 0] + 1e-6)
    summary = json.loads((out[2] / "summary.json").read_text())
    assert summary == {
        "num_examples": 3, "num_steps": STEPS, "no_valid_evidence": [],
        "mean_initial_energy": pytest.approx(float(np.mean(r["losses"][:, 0])), rel=1e-5),
        "mean_best_energy": pytest.approx(float(np.mean(r["best_loss"])), rel=1e-5),
    }  # fmt: skip


@pytest.mark.slow  # two job runs: about 20 s
def test_each_mesh_is_its_rows_best_hand(runs, model):
    _, _, out = runs
    r = _refined(out[2])
    view = jax.jit(lambda m, p: refine.silhouette_and_keypoints(m, p, image_size=SIZE, sigma=1.0))
    for i, stem in enumerate(r["stems"]):
        best = refine.HandParams(*(r[f"best_{k}"][i] for k in refine.HandParams._fields))
        want, _, _ = view(model, best)
        verts, faces = mesh_io.read_obj(out[2] / "meshes" / f"{stem}.obj")
        np.testing.assert_allclose(verts, want, atol=1e-5, err_msg=stem)
        np.testing.assert_array_equal(faces, model.faces)


@pytest.mark.slow  # two job runs: about 20 s
def test_pictures_and_the_copied_input(runs):
    path, _, out = runs
    assert sorted(os.listdir(out[2] / "overlays")) == ["00000_p.png", "00001_q.png", "00002_r.png"]
    assert sorted(os.listdir(out[2] / "animations")) == ["00000_p.gif", "00001_q.gif"]
    # one frame per step here (T < 20), the last one once
    assert iio.imread(out[2] / "animations" / "00001_q.gif", index=None).shape[0] == STEPS
    assert (out[2] / "evidence.npz").read_bytes() == path.read_bytes()
    assert not (out[3] / "evidence.npz").exists()


def test_images_must_match_the_mask_resolution(tmp_path, model):
    evidence = refine_io.Evidence(np.zeros((1, 21, 2)), np.ones((1, 21)), np.zeros((1, 8, 8)))
    path = tmp_path / "ev.npz"
    refine_io.save_evidence(path, evidence, images=np.zeros((1, 12, 12, 3), np.uint8))
    with pytest.raises(refine_io.EvidenceError) as err:
        refine_job.run(input_path=str(path), out_dir=str(tmp_path / "o"), model=model,
                       num_steps=1, learning_rate=0.1, weights={}, sigma=1.0,
                       batch_size=1)  # fmt: skip
    assert str(err.value) == (
        f"{path}: 'image' is 12 px but 'mask' 8 px; the refinement job needs the mask at the "
        "crop's resolution"
    )
    assert not (tmp_path / "o").exists()
