"""STB loader on a fixture tree in STB's native formats (.mat via scipy.io.savemat, PNGs)."""

import math
import os

import imageio.v3 as iio
import numpy as np
import pytest
import scipy.io

from hand_jax import keypoints as kp
from hand_jax.data import files, load_split

# STB's order by name; its palm centre sits in the slot that is the wrist in the canonical order.
STB_NAMES = ["wrist"] + [
    f"{finger}{j}" if j < 4 else f"{finger}_tip"
    for finger in ("pinky", "ring", "middle", "index", "thumb")
    for j in (1, 2, 3, 4)
]
FX, FY, CX, CY = 607.92271, 607.88192, 314.78337, 236.42484
W, H = 64, 48


def _sk_rotation_by_quaternion(rot_vec):
    """The SK depth->colour rotation as the STB preprocessing builds it, from a quaternion."""
    theta = math.sqrt(sum(x * x for x in rot_vec))
    a = math.cos(theta / 2)
    b, c, d = (-x * math.sin(theta / 2) / theta for x in rot_vec)
    return np.array(
        [
            [a * a + b * b - c * c - d * d, 2 * (b * c + a * d), 2 * (b * d - a * c)],
            [2 * (b * c - a * d), a * a + c * c - b * b - d * d, 2 * (c * d + a * b)],
            [2 * (b * d + a * c), 2 * (c * d - a * b), a * a + d * d - b * b - c * c],
        ]
    )


def write_stb(root, sequences, *, n=2, seed=0):
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, "labels"), exist_ok=True)
    labels = {}
    for seq in sequences:
        xyz = rng.normal(size=(n, 21, 3)) * 30.0 + [0.0, 0.0, 400.0]  # mm
        scipy.io.savemat(os.path.join(root, "labels", f"{seq}_SK.mat"),
                         {"handPara": np.transpose(xyz, (2, 1, 0))})  # fmt: skip
        os.makedirs(os.path.join(root, seq))
        for i in range(n):
            image = rng.integers(0, 256, (H, W, 3)).astype(np.uint8)
            iio.imwrite(os.path.join(root, seq, f"SK_color_{i}.png"), image)
            iio.imwrite(os.path.join(root, seq, f"SK_depth_{i}.png"), image[..., 0])
        labels[seq] = xyz
    return labels


def _expected(xyz_mm, *, wrist):
    R = _sk_rotation_by_quaternion([0.00531, -0.01196, 0.00301])
    trans = np.array([-24.0381, -0.4563, -1.2326])
    colour = np.array([(p - trans) @ R for p in xyz_mm]) / 1000.0
    canon = np.array([colour[STB_NAMES.index(name)] for name in kp.CANONICAL_NAMES])
    if wrist:
        ring = canon[kp.CANONICAL_NAMES.index("ring1")]
        canon[0] = ring + 2 * (canon[0] - ring)
    uv = np.stack([FX * canon[:, 0] / canon[:, 2] + CX, FY * canon[:, 1] / canon[:, 2] + CY], -1)
    return canon, uv


@pytest.mark.parametrize("wrist", [True, False])
def test_stb_test_split(tmp_path, wrist):
    labels = write_stb(str(tmp_path), ["B1Counting", "B1Random"])
    samples = load_split("stb", str(tmp_path), "test", palm_to_wrist=wrist)
    assert len(samples) == 4
    for index, (seq, frame) in enumerate(
        [(s, f) for s in ("B1Counting", "B1Random") for f in (0, 1)]
    ):
        s = samples[index]
        xyz, uv = _expected(labels[seq][frame], wrist=wrist)
        # STB shows left hands: mirrored (x -> -x, u -> W - u, image flipped).
        xyz[:, 0] *= -1
        uv[:, 0] = W - uv[:, 0]
        image = iio.imread(str(tmp_path / seq / f"SK_color_{frame}.png"))[:, ::-1]
        assert s["id"] == f"stb/{seq}/{frame}" and s["original_side"] == "left"
        np.testing.assert_allclose(s["keypoints_3d"], xyz, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(s["keypoints_2d"], uv, rtol=1e-5, atol=1e-3)
        np.testing.assert_array_equal(s["image"], image)
        assert not s["mask_valid"]
        np.testing.assert_allclose(s["K"], [[FX, 0, W - CX], [0, FY, CY], [0, 0, 1]], rtol=1e-6)


def test_stb_train_split_covers_b2_to_b6(tmp_path):
    seqs = [f"B{b}{k}" for b in range(2, 7) for k in ("Counting", "Random")]
    write_stb(str(tmp_path), seqs, n=1)
    samples = load_split("stb", str(tmp_path), "train")
    assert [s["id"] for s in samples] == [f"stb/{q}/0" for q in seqs]
    # The validation sequence is held out of train_fit, and together they are the train split.
    val = [s["id"] for s in load_split("stb", str(tmp_path), "val")]
    fit = [s["id"] for s in load_split("stb", str(tmp_path), "train_fit")]
    assert val == ["stb/B6Random/0"]
    assert sorted(val + fit) == sorted(s["id"] for s in samples) and not set(val) & set(fit)


def test_stb_images_under_images_folder(tmp_path):
    write_stb(str(tmp_path), ["B1Counting"])
    os.makedirs(tmp_path / "images")
    os.rename(tmp_path / "B1Counting", tmp_path / "images" / "B1Counting")
    samples = load_split("stb", str(tmp_path), "test", sequences=["B1Counting"])
    assert samples[1]["image"].shape == (H, W, 3)


def test_stb_missing_label_file(tmp_path):
    write_stb(str(tmp_path), ["B1Counting"])
    with pytest.raises(files.DataError, match=r"B1Random_SK.mat: file not found.*handPara"):
        load_split("stb", str(tmp_path), "test")


def test_stb_wrong_key_and_shape(tmp_path):
    write_stb(str(tmp_path), ["B1Counting"])
    path = str(tmp_path / "labels" / "B1Counting_SK.mat")
    scipy.io.savemat(path, {"hand": np.zeros((3, 21, 2))})
    with pytest.raises(files.DataError, match=r"B1Counting_SK.mat: expected key 'handPara'"):
        load_split("stb", str(tmp_path), "test", sequences=["B1Counting"])
    scipy.io.savemat(path, {"handPara": np.zeros((3, 20, 2))})
    with pytest.raises(
        files.DataError, match=r"B1Counting_SK.mat: expected 'handPara'.*\(3, 20, 2\)"
    ):
        load_split("stb", str(tmp_path), "test", sequences=["B1Counting"])


def test_stb_label_count_mismatch(tmp_path):
    write_stb(str(tmp_path), ["B1Counting"], n=3)
    os.remove(tmp_path / "B1Counting" / "SK_color_2.png")
    with pytest.raises(files.DataError, match=r"B1Counting: found 2 SK_color_\*.png.*expected 3"):
        load_split("stb", str(tmp_path), "test", sequences=["B1Counting"])


def test_stb_truncated_image(tmp_path):
    write_stb(str(tmp_path), ["B1Counting"])
    path = tmp_path / "B1Counting" / "SK_color_1.png"
    path.write_bytes(path.read_bytes()[:100])
    samples = load_split("stb", str(tmp_path), "test", sequences=["B1Counting"])
    with pytest.raises(files.DataError, match="SK_color_1.png: cannot decode image"):
        samples[1]
