"""FreiHAND loader on a fixture tree in the native JSON/JPEG layout."""

import json
import os

import imageio.v3 as iio
import numpy as np
import pytest

from hand_jax.data import files, load_split

S = 32


def write_freihand(root, *, prefix="training", n=3, seed=0, masks=True):
    rng = np.random.default_rng(seed)
    xyz = rng.normal(size=(n, 21, 3)) * 0.03 + [0.0, 0.0, 0.6]
    K = np.tile([[100.0, 0.0, 16.0], [0.0, 100.0, 16.0], [0.0, 0.0, 1.0]], (n, 1, 1))
    K[:, 0, 0] += rng.uniform(-5, 5, n)
    mano = rng.normal(size=(n, 1, 61))
    scale = rng.uniform(0.02, 0.04, n)
    for key, value in (("xyz", xyz), ("K", K), ("mano", mano), ("scale", scale)):
        with open(os.path.join(root, f"{prefix}_{key}.json"), "w") as f:
            json.dump(value.tolist(), f)
    os.makedirs(os.path.join(root, prefix, "rgb"))
    versions = 4 if prefix == "training" else 1
    for j in range(versions * n):
        image = np.full((S, S, 3), 40 * (j // n) + 10, np.uint8)  # version-coded colour
        iio.imwrite(os.path.join(root, prefix, "rgb", f"{j:08d}.jpg"), image)
    if masks:
        os.makedirs(os.path.join(root, prefix, "mask"))
        for i in range(n):
            mask = np.zeros((S, S), np.uint8)
            mask[4 + i : 20 + i, 8:24] = 255
            iio.imwrite(os.path.join(root, prefix, "mask", f"{i:08d}.jpg"), mask)
    return {"xyz": xyz, "K": K, "mano": mano[:, 0], "scale": scale}


def test_freihand_training_versions(tmp_path):
    labels = write_freihand(str(tmp_path))
    samples = load_split("freihand", str(tmp_path), "train")
    assert len(samples) == 12
    for j in range(12):
        s, i = samples[j], j % 3
        assert s["id"] == f"freihand/training/{j:08d}" and s["original_side"] == "right"
        np.testing.assert_allclose(s["keypoints_3d"], labels["xyz"][i], rtol=1e-6)
        K = labels["K"][i]
        uv = [
            [K[0, 0] * x / z + K[0, 2], K[1, 1] * y / z + K[1, 2]] for x, y, z in labels["xyz"][i]
        ]
        np.testing.assert_allclose(s["keypoints_2d"], uv, rtol=1e-5)
        np.testing.assert_allclose(s["mano_betas"], labels["mano"][i, 48:58], rtol=1e-6)
        assert "mano_pose" not in s and "mano_trans" not in s  # no hands_mean given
        assert s["scale"] == pytest.approx(labels["scale"][i], rel=1e-6)
        assert abs(int(s["image"].mean()) - (40 * (j // 3) + 10)) <= 2  # the right version
        want = np.zeros((S, S), np.uint8)
        want[4 + i : 20 + i, 8:24] = 1
        np.testing.assert_array_equal(s["mask"], want)
        assert s["mask_valid"]


def test_freihand_pose_relative_to_the_flat_hand_with_hands_mean(tmp_path):
    labels = write_freihand(str(tmp_path))
    mean = np.linspace(-0.3, 0.3, 45)
    s = load_split("freihand", str(tmp_path), "train", hands_mean=mean)[5]
    want = labels["mano"][2, :48].copy()
    want[3:] += mean
    np.testing.assert_allclose(s["mano_pose"], want, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match=r"hands_mean must have shape \[45\]"):
        load_split("freihand", str(tmp_path), "train", hands_mean=np.zeros(48))


def test_freihand_version_subset(tmp_path):
    write_freihand(str(tmp_path))
    samples = load_split("freihand", str(tmp_path), "train", versions=(2,))
    assert len(samples) == 3 and samples[1]["id"] == "freihand/training/00000007"


def test_freihand_evaluation_without_masks(tmp_path):
    labels = write_freihand(str(tmp_path), prefix="evaluation", n=2, masks=False)
    samples = load_split("freihand", str(tmp_path), "test")
    assert len(samples) == 2 and not samples[1]["mask_valid"]
    np.testing.assert_allclose(samples[1]["keypoints_3d"], labels["xyz"][1], rtol=1e-6)


def test_freihand_missing_label_file(tmp_path):
    write_freihand(str(tmp_path))
    os.remove(tmp_path / "training_K.json")
    with pytest.raises(files.DataError, match=r"training_K.json: file not found"):
        load_split("freihand", str(tmp_path), "train")


def test_freihand_label_files_disagree(tmp_path):
    write_freihand(str(tmp_path))
    scale = json.loads((tmp_path / "training_scale.json").read_text())
    (tmp_path / "training_scale.json").write_text(json.dumps(scale[:2]))
    with pytest.raises(files.DataError, match=r"disagree in length.*training_scale.json': 2"):
        load_split("freihand", str(tmp_path), "train")


def test_freihand_image_count_mismatch(tmp_path):
    write_freihand(str(tmp_path))
    os.remove(tmp_path / "training" / "rgb" / "00000011.jpg")
    with pytest.raises(files.DataError, match=r"rgb: found 11 rgb images.*expected 12"):
        load_split("freihand", str(tmp_path), "train")


def test_freihand_bad_json(tmp_path):
    write_freihand(str(tmp_path))
    (tmp_path / "training_xyz.json").write_text("[[1, 2")
    with pytest.raises(files.DataError, match=r"training_xyz.json: not valid JSON"):
        load_split("freihand", str(tmp_path), "train")


def test_freihand_truncated_jpeg(tmp_path):
    write_freihand(str(tmp_path))
    path = tmp_path / "training" / "rgb" / "00000004.jpg"
    path.write_bytes(path.read_bytes()[:200])
    samples = load_split("freihand", str(tmp_path), "train")
    with pytest.raises(files.DataError, match="00000004.jpg: cannot decode image"):
        samples[4]
