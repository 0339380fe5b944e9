"""The estimation job and command: every promised file, bad images skipped, left hands."""

import json
import os
import shutil
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest

from hand_jax import mesh_io, outputs
from hand_jax.estimate import job
from tests.estimate.test_core import tiny_network

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLES = os.path.join(ROOT, "hand_jax", "assets", "samples")


def _run_network(**kwargs):
    """The job with the network's own evidence (the detector's path: the README command test)."""
    return job.run(evidence="network", **kwargs)


@pytest.fixture(scope="module")
def net():
    return tiny_network()


@pytest.fixture()
def inputs(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(2):
        shutil.copy(os.path.join(SAMPLES, f"sample_{i}.png"), folder / f"hand {i}.png")
    gray = iio.imread(os.path.join(SAMPLES, "sample_2.png"))[..., 0]
    iio.imwrite(folder / "gray.png", gray)
    (folder / "broken.png").write_bytes(b"\x89PNG broken")
    return sorted(str(p) for p in folder.iterdir()) + [str(folder / "missing.png")]


def test_job_writes_every_file_and_skips_bad_images(tmp_path, net, inputs):
    out = tmp_path / "out"
    summary = _run_network(paths=inputs, out_dir=str(out), checkpoint=net, refine_steps=3,
                      batch_size=2, num_animations=1, progress=False)  # fmt: skip
    assert summary["num_images"] == 3
    assert sorted(os.path.basename(p) for p in summary["skipped"]) == ["broken.png", "missing.png"]
    assert all(os.path.basename(p) in r for p, r in summary["skipped"].items())
    # Stems: the input's index in the (sorted) list and its sanitised name.
    stems = ["00001_gray", "00002_hand_0", "00003_hand_1"]
    for stem in stems:
        assert (out / "overlays" / f"{stem}.png").is_file()
        verts, faces = mesh_io.read_obj(str(out / "meshes" / f"{stem}.obj"))
        assert verts.shape == net.consts.hand_model.v_template.shape
        assert np.all(np.isfinite(verts)) and faces.shape == net.consts.hand_model.faces.shape
    assert sorted(os.listdir(out / "animations")) == ["00001_gray.gif"]
    assert (out / "contact_sheet.png").is_file()
    est = np.load(out / "estimates.npz")
    assert list(est["stem"]) == stems
    assert est["keypoints_2d_refined"].shape == (3, 21, 2)
    assert est["pose"].shape == (3, 45) and est["global_rot_matrix"].shape == (3, 3, 3)
    with open(out / "estimates.json") as f:
        records = json.load(f)
    np.testing.assert_allclose(records[1]["keypoints_3d_refined"], est["keypoints_3d_refined"][1])
    # 2D keypoints are in the image's pixels: the samples are 192 px, the network sees 32 px.
    square = est["crop_square"][1]
    np.testing.assert_allclose(square, [0, 0, 192])
    assert est["keypoints_2d_network"].max() > 40  # not crop pixels
    # A non-empty out_dir is refused without overwrite, and is left as it was.
    with pytest.raises(FileExistsError, match="not empty"):
        job.run(
            evidence="network",
            paths=inputs,
            out_dir=str(out),
            checkpoint=net,
            refine_steps=0,
            progress=False,
        )
    assert sorted(os.listdir(out / "meshes")) == [f"{s}.obj" for s in stems]


def test_left_hand_is_the_mirror_of_the_right(tmp_path, net):
    image = iio.imread(os.path.join(SAMPLES, "sample_3.png"))[:, 16:]  # 192 x 176: not square
    iio.imwrite(tmp_path / "right.png", image)
    iio.imwrite(tmp_path / "left.png", image[:, ::-1])
    kw = dict(checkpoint=net, refine_steps=2, num_animations=0, progress=False)
    job.run(
        evidence="network", paths=[str(tmp_path / "right.png")], out_dir=str(tmp_path / "r"), **kw
    )
    job.run(
        evidence="network",
        paths=[str(tmp_path / "left.png")],
        out_dir=str(tmp_path / "l"),
        side="left",
        **kw,
    )
    r, left = np.load(tmp_path / "r" / "estimates.npz"), np.load(tmp_path / "l" / "estimates.npz")
    width = image.shape[1]
    want = r["keypoints_2d_refined"].copy()
    want[..., 0] = width - want[..., 0]
    np.testing.assert_allclose(left["keypoints_2d_refined"], want, atol=0.05)
    flip = np.array([-1.0, 1.0, 1.0])
    np.testing.assert_allclose(left["keypoints_3d_refined"], r["keypoints_3d_refined"] * flip,
                               atol=1e-4)  # fmt: skip
    np.testing.assert_allclose(left["pose"], r["pose"] * np.tile([1, -1, -1], 15), atol=1e-4)
    np.testing.assert_allclose(
        left["global_rot_matrix"][0],
        np.diag(flip) @ r["global_rot_matrix"][0] @ np.diag(flip),
        atol=1e-5,
    )
    assert list(left["side"]) == ["left"]
    # The mirrored OBJ keeps outward normals: its faces are wound the other way.
    v_r, f_r = mesh_io.read_obj(str(tmp_path / "r" / "meshes" / "00000_right.obj"))
    v_l, f_l = mesh_io.read_obj(str(tmp_path / "l" / "meshes" / "00000_left.obj"))
    np.testing.assert_allclose(v_l, v_r * flip, atol=1e-4)
    np.testing.assert_array_equal(f_l, f_r[:, ::-1])


def test_command_on_the_shipped_samples(tmp_path):
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "launch.estimate", f"--out_dir={out}", "--refine_steps=2",
           f"--images={SAMPLES}/sample_[01].png", "--num_animations=1",
           "--progress=false"]  # fmt: skip
    env = dict(os.environ, HAND_JAX_CACHE=str(tmp_path / "cache"))
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "2 hands" in res.stdout
    for name in ("contact_sheet.png", "estimates.npz", "estimates.json", "summary.json"):
        assert (out / name).is_file(), name
    # The README's command: the detector finds each hand and its landmarks pull the mesh.
    summary = json.loads((out / "summary.json").read_text())
    assert summary["evidence"] == "detector" and summary["num_hands"] == 2
    records = json.loads((out / "estimates.json").read_text())
    for rec in records:
        assert rec["detector_presence"] >= 0.5 and rec["side"] == "right"
        assert 0.0 < rec["confidence"] <= rec["detector_presence"]
        evidence, refined = (np.asarray(rec[f"keypoints_2d_{k}"]) for k in ("evidence", "refined"))
        network = np.asarray(rec["keypoints_2d_network"])
        fit, before = (np.linalg.norm(x - evidence, axis=-1).mean() for x in (refined, network))
        assert fit < before  # two steps towards the detector's landmarks
    assert len(os.listdir(out / "overlays")) == 2 and len(os.listdir(out / "animations")) == 1
    assert len(os.listdir(tmp_path / "cache")) > 10  # every compiled program, for the next run
    assert "Unable to initialize backend" not in res.stderr  # jax's probe of absent backends
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode != 0 and "not empty" in res.stderr
    assert res.stderr.strip().count("\n") == 0 and "Traceback" not in res.stderr


def test_an_out_dir_holding_the_photos_is_refused_before_any_work(tmp_path, net, inputs):
    folder = os.path.dirname(inputs[0])
    before = sorted(os.listdir(folder))
    with pytest.raises(ValueError, match="input"):
        job.run(
            evidence="network",
            paths=inputs[:2],
            out_dir=folder,
            checkpoint=net,
            overwrite=True,
            progress=False,
        )
    assert sorted(os.listdir(folder)) == before


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(refine_steps=4294967297), "refine_steps"), (dict(refine_steps=-1), "refine_steps"),
     (dict(batch_size=200_000), "batch_size"), (dict(fov_deg=0.0), "fov"),
     (dict(intrinsics=(0, 1, 2, 3)), "intrinsics")],
)  # fmt: skip
def test_numeric_arguments_are_checked_before_any_compute(tmp_path, inputs, kwargs, match):
    with pytest.raises(ValueError, match=match):
        _run_network(paths=inputs[:1], out_dir=str(tmp_path / "o"), checkpoint="/no/such/model",
                progress=False, **kwargs)  # fmt: skip
    assert not (tmp_path / "o").exists()


def test_a_box_outside_the_image_is_skipped_naming_it(tmp_path, net, inputs):
    # Every image skipped: an error naming why, and a previous out_dir kept as it was.
    out = tmp_path / "o"
    out.mkdir()
    (out / "summary.json").write_text("{}")
    (out / outputs.OWNED).write_text('["summary.json"]')
    with pytest.raises(job.NothingEstimatedError, match="all 2 skipped .*outside") as info:
        _run_network(paths=inputs[1:3], out_dir=str(out), checkpoint=net, overwrite=True,
                box=(5000.0, 5000.0, 40.0, 40.0), refine_steps=0, num_animations=0,
                progress=False)  # fmt: skip
    assert len(info.value.skipped) == 2
    assert all("outside" in r and p in r for p, r in info.value.skipped.items())
    assert sorted(os.listdir(out)) == sorted(["summary.json", outputs.OWNED])
    assert (out / "summary.json").read_text() == "{}"


def test_non_finite_estimates_are_skipped_and_nothing_is_written(tmp_path, net, inputs):
    import jax

    bad = net._replace(variables=jax.tree.map(lambda x: x * float("nan"), net.variables))
    out = tmp_path / "o"
    with pytest.raises(job.NothingEstimatedError, match="not finite") as info:
        _run_network(paths=inputs[1:3], out_dir=str(out), checkpoint=bad, refine_steps=2,
                num_animations=0, progress=False)  # fmt: skip
    assert all("not finite" in r for r in info.value.skipped.values())
    assert not out.exists()


def test_json_files_are_strict_json():
    nan, inf = float("nan"), float("inf")
    value = {"a": [nan, 1.0], "b": np.array([inf, 2.0]), "c": (np.float64(nan),), "d": "x"}
    text = json.dumps(job._json_safe(value), allow_nan=False)  # raises on any NaN left
    assert json.loads(text) == {"a": [None, 1.0], "b": [None, 2.0], "c": [None], "d": "x"}
