"""Synthetic generator: exact labels, determinism by (seed, split, index), dataset writing, CLI."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from hand_jax import mano, outputs
from hand_jax.data import load_split, synthetic, synthetic_gen

CONFIG = synthetic_gen.GeneratorConfig(image_size=48, chunk=4, supersample=1, occluder_prob=0.7)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def generator():
    return synthetic_gen.Generator(mano.load_model(), CONFIG, seed=5)


@pytest.fixture(scope="module")
def first_six(generator):
    return generator.samples("train", range(6))


def test_labels_are_exact_projections(first_six):
    for s in first_six:
        h = s["keypoints_3d"].astype(np.float64) @ s["K"].astype(np.float64).T
        np.testing.assert_allclose(h[:, :2] / h[:, 2:], s["keypoints_2d"], atol=1e-3)
        assert s["keypoints_3d"][:, 2].min() > synthetic_gen.NEAR / 2
        # MANO translation is the camera placement: root keypoint = wrist joint + transl.
        assert s["mano_pose"].shape == (48,) and s["mano_trans"].shape == (3,)


def test_masks_follow_the_rendered_hand(first_six):
    inside_fraction = []
    for s in first_six:
        full, vis = s["mask_full"].astype(bool), s["mask"].astype(bool)
        assert full.any() and not (vis & ~full).any()  # visible part of the hand only
        # The joints project into the silhouette (they sit inside the rendered mesh).
        uv = np.floor(s["keypoints_2d"]).astype(int)
        ok = (uv >= 0).all(1) & (uv < CONFIG.image_size).all(1)
        inside_fraction.append(full[uv[ok, 1], uv[ok, 0]].mean())
        # Occluded keypoints are not visible; visible ones lie on visible pixels or near them.
        assert not s["keypoint_visible"][~ok].any()
    assert np.mean(inside_fraction) > 0.85


def test_occluders_cover_part_of_some_hands(first_six):
    hidden = [(s["mask_full"] & (1 - s["mask"])).sum() for s in first_six]
    assert max(hidden) > 0
    assert all((s["mask"].sum() > 0.3 * s["mask_full"].sum()) for s in first_six)


def test_sample_depends_only_on_seed_split_index(generator, first_six):
    again = generator.samples("train", [4, 5, 1])  # other chunk composition and positions
    for got, want in zip(again, [first_six[4], first_six[5], first_six[1]], strict=True):
        for key in ("image", "mask", "mask_full", "keypoints_2d", "keypoints_3d", "K"):
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    other = generator.samples("test", [4])[0]
    assert not np.array_equal(other["image"], first_six[4]["image"])


def test_place_camera_frames_the_hand():
    rng = np.random.default_rng(0)
    verts = rng.normal(size=(100, 3)) * 0.05
    K, transl = synthetic_gen.place_camera(
        verts, fov=np.deg2rad(50), fill=0.6, offset=np.array([5.0, -3.0]), size=128
    )
    p = verts + transl
    uv = p[:, :2] / p[:, 2:] * K[0, 0] + 64
    lo, hi = uv.min(0), uv.max(0)
    centre_3d = (verts.min(0) + verts.max(0)) / 2 + transl
    np.testing.assert_allclose(centre_3d[:2] / centre_3d[2] * K[0, 0] + 64, [69.0, 61.0])
    assert 0.4 * 128 < (hi - lo).max() < 0.9 * 128  # about `fill` of the image


def test_generate_dataset_round_trip_and_overwrite(tmp_path, generator):
    out = str(tmp_path / "synth")
    manifest = synthetic_gen.generate_dataset(
        out, splits={"train": 5, "test": 2}, seed=5, config=CONFIG, shard_size=2,
        sheet_count=4, progress=False,
    )  # fmt: skip
    assert [s["count"] for s in manifest["splits"]["train"]["shards"]] == [2, 2, 1]
    with open(os.path.join(out, "manifest.json")) as f:
        on_disk = json.load(f)
    assert on_disk["generator_version"] == synthetic_gen.GENERATOR_VERSION
    assert on_disk["parameters"]["image_size"] == 48 and on_disk["seed"] == 5
    assert os.path.getsize(os.path.join(out, synthetic_gen.CONTACT_SHEET)) > 1000
    train = load_split("synthetic", out, "train")
    direct = generator.samples("train", [3])[0]  # same seed: the same sample 3
    np.testing.assert_array_equal(train[3]["image"], direct["image"])
    np.testing.assert_array_equal(train[3]["keypoints_3d"], direct["keypoints_3d"])
    assert (
        train[3]["id"] == "synthetic/train/0000003"
        and len(load_split("synthetic", out, "test")) == 2
    )
    with pytest.raises(FileExistsError, match="not empty.*--overwrite"):
        synthetic_gen.generate_dataset(out, splits={"train": 1}, seed=0, config=CONFIG)
    (tmp_path / "synth" / "notes.txt").write_text("kept")
    synthetic_gen.generate_dataset(
        out, splits={"train": 1}, seed=0, config=CONFIG, overwrite=True, sheet_count=0,
        progress=False,
    )  # fmt: skip
    names = sorted(set(os.listdir(out)) - {outputs.OWNED})
    assert names == ["manifest.json", "notes.txt", synthetic.shard_name("train", 0, 1)]


def test_command_line_refuses_a_non_empty_out_dir(tmp_path):
    (tmp_path / "x.txt").write_text("user file")
    run = subprocess.run(
        [sys.executable, "-m", "launch.make_synthetic", f"--out_dir={tmp_path}", "--num_train=1",
         "--num_test=0"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode != 0
    assert "not empty" in run.stderr and "--overwrite" in run.stderr
    assert sorted(os.listdir(tmp_path)) == ["x.txt"]


@pytest.mark.slow
def test_command_line_writes_a_dataset(tmp_path):
    out = tmp_path / "d"
    run = subprocess.run(
        [sys.executable, "-m", "launch.make_synthetic", f"--out_dir={out}", "--num_train=3",
         "--num_test=1", "--image_size=32", "--noprogress"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "samples/s" in run.stdout
    assert len(load_split("synthetic", str(out), "train")) == 3
