"""RHD loader on a fixture tree written in RHD's native formats (pickle of numpy dicts, PNGs)."""

import collections
import os
import pickle

import imageio.v3 as iio
import numpy as np
import pytest

from hand_jax import keypoints as kp
from hand_jax import safe_pickle
from hand_jax.data import files, load_split

# RHD's per-hand order, spelled out by name: wrist, then each finger tip..MCP.
RHD_NAMES = ["wrist"] + [
    f"{finger}{j}" if j < 4 else f"{finger}_tip"
    for finger in ("thumb", "index", "middle", "ring", "pinky")
    for j in (4, 3, 2, 1)
]
SIZE = 48


def _project(xyz, K):
    h = xyz @ K.T
    return h[:, :2] / h[:, 2:]


def write_rhd(root, *, split="evaluation", n=3, seed=0, protocol=2):
    """Write an RHD-layout split; returns the annotations and which hand is larger per sample."""
    rng = np.random.default_rng(seed)
    sub = os.path.join(root, split)
    os.makedirs(os.path.join(sub, "color"))
    os.makedirs(os.path.join(sub, "mask"))
    anno, larger = {}, []
    for i in range(n):
        K = np.array([[60.0, 0, 24.0], [0, 62.0, 23.0], [0, 0, 1]])
        xyz = rng.normal(size=(42, 3)) * 0.03 + [0.0, 0.0, 0.4]
        uv = _project(xyz, K)
        vis = rng.integers(0, 2, size=(42, 1)).astype(np.float64)
        anno[i] = {"xyz": xyz.astype(np.float32), "uv_vis": np.hstack([uv, vis]), "K": K}
        parts = np.zeros((SIZE, SIZE), np.uint8)
        parts[:, :5] = 1  # person
        left_px, right_px = (200, 30) if i % 2 == 0 else (30, 200)
        parts.reshape(-1)[100 : 100 + left_px] = 2 + i  # some left-hand part id
        parts.reshape(-1)[1000 : 1000 + right_px] = 33 - i  # some right-hand part id
        larger.append("left" if left_px > right_px else "right")
        iio.imwrite(os.path.join(sub, "mask", f"{i:05d}.png"), parts)
        image = rng.integers(0, 256, size=(SIZE, SIZE, 3)).astype(np.uint8)
        iio.imwrite(os.path.join(sub, "color", f"{i:05d}.png"), image)
    with open(os.path.join(sub, f"anno_{split}.pickle"), "wb") as f:
        pickle.dump(anno, f, protocol=protocol)
    return anno, larger


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_rhd_reads_native_files(tmp_path, protocol):
    anno, larger = write_rhd(str(tmp_path), protocol=protocol)
    samples = load_split("rhd", str(tmp_path), "test")
    assert len(samples) == 3
    order = [RHD_NAMES.index(name) for name in kp.CANONICAL_NAMES]
    for i, s in enumerate(samples):
        rows = slice(0, 21) if larger[i] == "left" else slice(21, 42)
        xyz = anno[i]["xyz"][rows][order].astype(np.float64)
        uv = anno[i]["uv_vis"][rows][order, :2]
        image = iio.imread(str(tmp_path / "evaluation" / "color" / f"{i:05d}.png"))
        parts = iio.imread(str(tmp_path / "evaluation" / "mask" / f"{i:05d}.png"))
        mask = (parts >= 2) & (parts <= 17) if larger[i] == "left" else parts >= 18
        if larger[i] == "left":  # mirrored: u -> W - u, x -> -x, image flipped
            xyz[:, 0] *= -1
            uv = np.stack([SIZE - uv[:, 0], uv[:, 1]], axis=-1)
            image, mask = image[:, ::-1], mask[:, ::-1]
        assert s["side"] == "right" and s["original_side"] == larger[i]
        np.testing.assert_allclose(s["keypoints_3d"], xyz, atol=1e-6)
        np.testing.assert_allclose(s["keypoints_2d"], uv, atol=1e-4)
        np.testing.assert_allclose(
            _project(s["keypoints_3d"], s["K"]), s["keypoints_2d"], atol=1e-3
        )
        np.testing.assert_array_equal(s["image"], image)
        np.testing.assert_array_equal(s["mask"], mask.astype(np.uint8))
        np.testing.assert_array_equal(s["keypoint_visible"], anno[i]["uv_vis"][rows][order, 2] > 0)
        assert s["mask_valid"] and s["keypoint_valid"].all()


def test_rhd_fixed_hand_option(tmp_path):
    write_rhd(str(tmp_path))
    samples = load_split("rhd", str(tmp_path), "test", hand="right")
    assert all(s["original_side"] == "right" for s in samples)


def test_rhd_missing_pickle(tmp_path):
    write_rhd(str(tmp_path))
    os.remove(tmp_path / "evaluation" / "anno_evaluation.pickle")
    with pytest.raises(files.DataError, match="anno_evaluation.pickle: file not found"):
        load_split("rhd", str(tmp_path), "test")


def test_rhd_label_count_mismatch(tmp_path):
    write_rhd(str(tmp_path))
    os.remove(tmp_path / "evaluation" / "color" / "00002.png")
    with pytest.raises(files.DataError, match=r"color: found 2 color images.*expected 3"):
        load_split("rhd", str(tmp_path), "test")


def test_rhd_truncated_image(tmp_path):
    write_rhd(str(tmp_path))
    path = tmp_path / "evaluation" / "color" / "00001.png"
    path.write_bytes(path.read_bytes()[:60])
    samples = load_split("rhd", str(tmp_path), "test")
    samples[0]  # the others still load
    with pytest.raises(files.DataError, match="00001.png: cannot decode image"):
        samples[1]


def test_rhd_pickle_with_foreign_class_is_refused(tmp_path):
    write_rhd(str(tmp_path))
    path = tmp_path / "evaluation" / "anno_evaluation.pickle"
    with open(path, "wb") as f:
        pickle.dump(collections.OrderedDict(a=1), f)
    with pytest.raises(safe_pickle.UnsafePickleError, match=r"anno_evaluation.pickle.*OrderedDict"):
        load_split("rhd", str(tmp_path), "test")


def test_rhd_pickle_with_wrong_shapes(tmp_path):
    anno, _ = write_rhd(str(tmp_path))
    anno[1]["xyz"] = anno[1]["xyz"][:21]
    with open(tmp_path / "evaluation" / "anno_evaluation.pickle", "wb") as f:
        pickle.dump(anno, f)
    with pytest.raises(files.DataError, match=r"sample 1 'xyz' of shape \(42, 3\), got \(21, 3\)"):
        load_split("rhd", str(tmp_path), "test")


def test_rhd_validation_is_held_out_of_training(tmp_path, monkeypatch):
    from hand_jax.data import rhd

    monkeypatch.setattr(rhd, "VAL_EVERY", 4)
    anno, _ = write_rhd(str(tmp_path), split="training", n=9)
    train = load_split("rhd", str(tmp_path), "train")
    val = load_split("rhd", str(tmp_path), "val")
    fit = load_split("rhd", str(tmp_path), "train_fit")
    ids = lambda samples: [s["id"] for s in samples]  # noqa: E731
    assert ids(val) == [f"rhd/training/{i:05d}" for i in (0, 4, 8)]
    assert sorted(ids(val) + ids(fit)) == sorted(ids(train)) and not set(ids(val)) & set(ids(fit))
    # The held-out samples keep their own labels (arrays subset in step with the ids).
    for s in val:
        i = int(s["id"].rsplit("/", 1)[1])
        ref = next(t for t in train if t["id"] == s["id"])
        np.testing.assert_array_equal(s["keypoints_3d"], ref["keypoints_3d"])
        assert s["original_side"] == ref["original_side"], i
