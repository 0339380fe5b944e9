"""Dexter+Object loader on a fixture tree in the native txt/PNG layout."""

import os

import imageio.v3 as iio
import numpy as np
import pytest

from hand_jax import keypoints as kp
from hand_jax.data import files, load_split

W, H = 64, 48
TIP_NAMES = ["thumb_tip", "index_tip", "middle_tip", "ring_tip", "pinky_tip"]


def write_sequence(root, seq, *, n=3, seed=0, missing=((1, 2),)):
    """Write data/<seq>/ with n frames; `missing` lists (frame, tip) annotated z = 32001."""
    rng = np.random.default_rng(seed)
    base = os.path.join(root, "data", seq)
    os.makedirs(os.path.join(base, "color"))
    os.makedirs(os.path.join(base, "annotations"))
    tips = rng.normal(size=(n, 5, 3)) * 30 + [0.0, 0.0, 450.0]
    for frame, tip in missing:
        tips[frame, tip] = [-1.0, -1.0, 32001.0]
    with open(os.path.join(base, "annotations", f"{seq}3D.txt"), "w") as f:
        for row in tips:
            f.write(";".join(f"{x:.4f}, {y:.4f}, {z:.4f}" for x, y, z in row) + ";\n")
    with open(os.path.join(base, "annotations", f"{seq}2D.txt"), "w") as f:
        for row in tips:
            f.write(";".join(f"{x:.1f}, {y:.1f}" for x, y, _ in row) + "\n")
    for i in range(n):
        image = rng.integers(0, 256, (H, W, 3)).astype(np.uint8)
        iio.imwrite(os.path.join(base, "color", f"image_{i:05d}.png"), image)
    return np.round(tips, 4)


def _expected_tips(native_mm):
    """Reference conversion, written point by point: flip x, y; extrinsics; metres; project."""
    ext = [[0.9999, 0.0034, 0.0161, 19.0473], [-0.0033, 1.0000, -0.0079, -1.8514],
           [-0.0162, 0.0079, 0.9998, -4.7501]]  # fmt: skip
    xyz, uv = [], []
    for x, y, z in native_mm:
        p = [-x, -y, z]
        q = [sum(ext[r][c] * p[c] for c in range(3)) + ext[r][3] for r in range(3)]
        q = [v / 1000 for v in q]
        xyz.append(q)
        uv.append([587.45209 * q[0] / q[2] + 325, 600.67456 * q[1] / q[2] + 249])
    return np.array(xyz), np.array(uv)


def test_dexter_object_reads_tips(tmp_path):
    a = write_sequence(str(tmp_path), "Grasp1", n=3)
    b = write_sequence(str(tmp_path), "Rigid", n=2, seed=1, missing=())
    samples = load_split("dexter_object", str(tmp_path), "test", sequences=["Grasp1", "Rigid"])
    assert len(samples) == 5
    tip_idx = [kp.CANONICAL_NAMES.index(n) for n in TIP_NAMES]
    for index, (seq, frame, native) in enumerate(
        [("Grasp1", f, a[f]) for f in range(3)] + [("Rigid", f, b[f]) for f in range(2)]
    ):
        s = samples[index]
        xyz, uv = _expected_tips(native)
        xyz[:, 0] *= -1  # left hand mirrored to a right hand
        uv[:, 0] = W - uv[:, 0]
        valid = np.zeros(21, bool)
        valid[tip_idx] = native[:, 2] != 32001
        assert s["id"] == f"dexter_object/{seq}/{frame:05d}" and s["original_side"] == "left"
        np.testing.assert_array_equal(s["keypoint_valid"], valid)
        ok = native[:, 2] != 32001
        np.testing.assert_allclose(s["keypoints_3d"][tip_idx][ok], xyz[ok], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(s["keypoints_2d"][tip_idx][ok], uv[ok], rtol=1e-5, atol=1e-3)
        image = iio.imread(str(tmp_path / "data" / seq / "color" / f"image_{frame:05d}.png"))
        np.testing.assert_array_equal(s["image"], image[:, ::-1])
    assert samples[1]["keypoint_valid"].sum() == 4  # frame 1 of Grasp1 misses its middle tip


def test_dexter_object_is_test_only(tmp_path):
    with pytest.raises(ValueError, match="only a 'test' split"):
        load_split("dexter_object", str(tmp_path), "train")


def test_dexter_object_missing_sequence(tmp_path):
    write_sequence(str(tmp_path), "Grasp1")
    with pytest.raises(files.DataError, match=r"data/Grasp2: directory not found"):
        load_split("dexter_object", str(tmp_path), "test")


def test_dexter_object_missing_annotation_file(tmp_path):
    write_sequence(str(tmp_path), "Pinch")
    os.remove(tmp_path / "data" / "Pinch" / "annotations" / "Pinch3D.txt")
    with pytest.raises(files.DataError, match=r"Pinch3D.txt: file not found"):
        load_split("dexter_object", str(tmp_path), "test", sequences=["Pinch"])


def test_dexter_object_label_count_mismatch(tmp_path):
    write_sequence(str(tmp_path), "Pinch", n=3)
    iio.imwrite(
        tmp_path / "data" / "Pinch" / "color" / "image_00003.png", np.zeros((H, W, 3), np.uint8)
    )
    with pytest.raises(
        files.DataError, match=r"color: found 4 colour images.*Pinch3D.txt.*expected 3"
    ):
        load_split("dexter_object", str(tmp_path), "test", sequences=["Pinch"])


def test_dexter_object_malformed_line(tmp_path):
    write_sequence(str(tmp_path), "Pinch")
    path = tmp_path / "data" / "Pinch" / "annotations" / "Pinch3D.txt"
    lines = path.read_text().splitlines()
    lines[1] = "1, 2, 3;4, 5, 6"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(files.DataError, match=r"Pinch3D.txt:2: expected 5 fingertips"):
        load_split("dexter_object", str(tmp_path), "test", sequences=["Pinch"])


def test_dexter_object_truncated_image(tmp_path):
    write_sequence(str(tmp_path), "Pinch")
    path = tmp_path / "data" / "Pinch" / "color" / "image_00002.png"
    path.write_bytes(path.read_bytes()[:80])
    samples = load_split("dexter_object", str(tmp_path), "test", sequences=["Pinch"])
    with pytest.raises(files.DataError, match="image_00002.png: cannot decode image"):
        samples[2]


def test_dexter_object_crops_use_the_wider_default_margin(tmp_path):
    write_sequence(str(tmp_path), "Pinch", missing=())
    raw = load_split("dexter_object", str(tmp_path), "test", sequences=["Pinch"])[0]
    cropped = load_split("dexter_object", str(tmp_path), "test", sequences=["Pinch"], crop_size=32)
    s = cropped[0]
    assert s["image"].shape == (32, 32, 3)
    tips = raw["keypoints_2d"][raw["keypoint_valid"]]
    extent = (tips.max(0) - tips.min(0)).max()
    side = 32 / s["crop_matrix"][0, 0]  # source pixels spanned by the crop
    assert side == pytest.approx(extent * (1 + 2 * 0.8), rel=1e-4)
