"""Command-line tests of ``launch.demo`` and ``launch.refine``: tiny settings, real processes.

Each launcher is run as ``python -m launch.X`` in a subprocess, as a user would; the tests check
that the files it promises exist with the right content, and that a non-empty ``--out_dir`` is
refused without ``--overwrite`` (and the user's files in it are kept).
"""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from hand_jax import demo, mano, mesh_io, outputs
from hand_jax.params import HandParams
from hand_jax.refine import io as refine_io

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARAM_KEYS = HandParams._fields


def _run(module, *args):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    cmd = [sys.executable, "-m", module, *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def model():
    return mano.load_model()


def _refuses_non_empty(module, out_dir, *args):
    """A non-empty out_dir without --overwrite: non-zero exit naming --overwrite, files kept."""
    os.makedirs(out_dir, exist_ok=True)
    keep = os.path.join(out_dir, "mine.txt")
    with open(keep, "w") as f:
        f.write("user data")
    done = _run(module, f"--out_dir={out_dir}", *args)
    assert done.returncode != 0
    assert "--overwrite" in done.stderr + done.stdout
    # --overwrite replaces only a folder of the command's own results, never a user's file.
    forced = _run(module, f"--out_dir={out_dir}", *args, "--overwrite")
    assert forced.returncode != 0 and "mine.txt" in forced.stderr + forced.stdout
    with open(keep) as f:
        assert f.read() == "user data"
    os.remove(keep)
    return keep


def test_demo_cli_writes_sheet_and_one_obj_per_pose(tmp_path, model):
    import imageio.v3 as iio

    out = tmp_path / "demo"
    done = _run("launch.demo", f"--out_dir={out}", "--image_size=40")
    assert done.returncode == 0, done.stderr[-3000:]
    names = sorted(p.name for p in out.iterdir() if p.name != outputs.OWNED)
    gallery = demo.pose_gallery(model)
    objs = [n for n in names if n.endswith(".obj")]
    assert len(objs) == len(gallery) and "hand_poses.png" in names
    assert set(names) == set(objs) | {"hand_poses.png"}
    sheet = iio.imread(out / "hand_poses.png")
    assert sheet.ndim == 3 and sheet.shape[0] >= 40 and sheet.shape[1] >= 40
    assert sheet.std() > 5  # something was drawn
    for name in objs:
        verts, faces = mesh_io.read_obj(out / name)
        assert verts.shape == model.v_template.shape and np.all(np.isfinite(verts))
        np.testing.assert_array_equal(faces, np.asarray(model.faces))
    assert f"wrote {len(gallery)} poses" in done.stdout


def test_demo_cli_refuses_a_non_empty_out_dir_without_overwrite(tmp_path):
    out = tmp_path / "busy"
    _refuses_non_empty("launch.demo", str(out), "--image_size=32")
    assert list(out.iterdir()) == []  # nothing written beside the user's file


def _check_refine_outputs(out, n, num_steps, num_animations):
    with open(out / "summary.json") as f:
        summary = json.load(f)
    assert summary["num_examples"] == n and summary["num_steps"] == num_steps
    assert summary["mean_best_energy"] <= summary["mean_initial_energy"]
    with np.load(out / "refined.npz") as data:
        assert data["ids"].shape == (n,)
        assert data["losses"].shape == (n, num_steps) and data["best_loss"].shape == (n,)
        assert np.all(np.isfinite(data["losses"]))
        for prefix in ("init", "final", "best"):
            for key in PARAM_KEYS:
                assert data[f"{prefix}_{key}"].shape[0] == n, (prefix, key)
        np.testing.assert_allclose(
            np.mean(data["best_loss"]), summary["mean_best_energy"], rtol=1e-5
        )
    meshes = sorted((out / "meshes").glob("*.obj"))
    overlays = sorted((out / "overlays").glob("*.png"))
    animations = sorted((out / "animations").glob("*.gif"))
    assert len(meshes) == n and len(overlays) == n and len(animations) == min(n, num_animations)
    verts, _ = mesh_io.read_obj(meshes[0])
    assert np.all(np.isfinite(verts))
    return summary


def test_refine_cli_synthetic_self_check(tmp_path):
    out = tmp_path / "refine"
    args = ["--input=synthetic", "--config.num_steps=3", "--config.batch_size=2",
            "--config.synthetic.num=3", "--config.synthetic.image_size=32",
            "--config.num_animations=1"]  # fmt: skip
    done = _run("launch.refine", f"--out_dir={out}", *args)
    assert done.returncode == 0, done.stderr[-3000:]
    _check_refine_outputs(out, n=3, num_steps=3, num_animations=1)
    # The self-check writes the evidence it refined beside the results, in the documented format.
    evidence, init, _, _ = refine_io.load_evidence(out / "evidence.npz")
    assert evidence.keypoints_2d.shape == (3, 21, 2) and evidence.mask.shape == (3, 32, 32)
    assert init is not None and init.pose.shape == (3, 45)
    # Running again into the now non-empty folder needs --overwrite.
    again = _run("launch.refine", f"--out_dir={out}", *args)
    assert again.returncode != 0 and "--overwrite" in again.stderr + again.stdout


def test_refine_cli_on_an_evidence_file(tmp_path, model):
    _, init, evidence = refine_io.synthetic_problems(jax.random.key(3), model, num=2, image_size=32)
    path = tmp_path / "evidence.npz"
    refine_io.save_evidence(path, evidence, init_params=init, ids=np.array(["a", "b"]))
    out = tmp_path / "out"
    args = [f"--input={path}", "--config.num_steps=4", "--config.batch_size=2",
            "--config.num_animations=0"]  # fmt: skip
    _refuses_non_empty("launch.refine", str(out), *args)
    done = _run("launch.refine", f"--out_dir={out}", *args, "--overwrite")
    assert done.returncode == 0, done.stderr[-3000:]
    _check_refine_outputs(out, n=2, num_steps=4, num_animations=0)
    with np.load(out / "refined.npz") as data:
        assert [str(i) for i in data["ids"]] == ["a", "b"]
        for key in PARAM_KEYS:  # the file's initial parameters were used
            np.testing.assert_allclose(data[f"init_{key}"], np.asarray(getattr(init, key)))
