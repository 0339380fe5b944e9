"""Synthetic dataset format: shards + manifest round trip, memory-mapped reads, bad files."""

import json
import os
import pickle

import imageio.v3 as iio
import numpy as np
import pytest

from hand_jax.data import contact_sheet, files, load_split, schema, synthetic

S = 16


def _sample(rng, index):
    K = np.array([[20.0, 0, 8], [0, 20.0, 8], [0, 0, 1]])
    xyz = rng.normal(size=(21, 3)) * 0.02 + [0, 0, 0.3]
    h = xyz @ K.T
    full = rng.integers(0, 2, (S, S)).astype(bool)
    return schema.make_sample(
        id=f"synthetic/train/{index:07d}",
        image=rng.integers(0, 256, (S, S, 3)),
        mask=full & rng.integers(0, 2, (S, S)).astype(bool),
        mask_full=full,
        keypoints_2d=h[:, :2] / h[:, 2:],
        keypoints_3d=xyz,
        keypoint_visible=rng.integers(0, 2, 21).astype(bool),
        K=K,
        mano_pose=rng.normal(size=48),
        mano_betas=rng.normal(size=5),
        mano_trans=rng.normal(size=3),
    )


def write_dataset(root, counts=(3, 2)):
    rng = np.random.default_rng(0)
    samples = [_sample(rng, i) for i in range(sum(counts))]
    shards, start = [], 0
    for k, n in enumerate(counts):
        name = synthetic.shard_name("train", k, len(counts))
        synthetic.write_shard(os.path.join(root, name), samples[start : start + n],
                              list(range(start, start + n)))  # fmt: skip
        shards.append({"file": name, "count": n, "first_index": start})
        start += n
    manifest = {"format": synthetic.FORMAT, "format_version": synthetic.FORMAT_VERSION,
                "splits": {"train": {"count": sum(counts), "shards": shards}}}  # fmt: skip
    with open(os.path.join(root, synthetic.MANIFEST), "w") as f:
        json.dump(manifest, f)
    return samples, manifest


def test_round_trip_is_exact_and_memory_mapped(tmp_path):
    samples, _ = write_dataset(str(tmp_path))
    loaded = load_split("synthetic", str(tmp_path), "train")
    assert len(loaded) == 5
    for want, got in zip(samples, loaded, strict=True):
        assert got["id"] == want["id"]
        for key in synthetic.SHARD_FIELDS[1:]:
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)
            assert got[key].dtype == want[key].dtype
    arrays = synthetic._npz_members(str(tmp_path / synthetic.shard_name("train", 1, 2)))
    assert isinstance(arrays["image"], np.memmap)


def test_reader_pickles_without_its_memory_maps(tmp_path):
    write_dataset(str(tmp_path))
    loaded = load_split("synthetic", str(tmp_path), "train")
    loaded[4]
    clone = pickle.loads(pickle.dumps(loaded))
    assert clone._open == {}
    np.testing.assert_array_equal(clone[4]["image"], loaded[4]["image"])


def test_missing_manifest(tmp_path):
    with pytest.raises(files.DataError, match="manifest.json: file not found"):
        load_split("synthetic", str(tmp_path), "train")


def test_wrong_format_and_unknown_split(tmp_path):
    _, manifest = write_dataset(str(tmp_path))
    with pytest.raises(ValueError, match=r"no split 'test'; has \['train'\]"):
        load_split("synthetic", str(tmp_path), "test")
    (tmp_path / synthetic.MANIFEST).write_text(json.dumps({**manifest, "format": "other"}))
    with pytest.raises(files.DataError, match=r"manifest.json: expected \"format\""):
        load_split("synthetic", str(tmp_path), "train")


def test_missing_shard(tmp_path):
    write_dataset(str(tmp_path))
    os.remove(tmp_path / synthetic.shard_name("train", 1, 2))
    with pytest.raises(files.DataError, match=r"train-00001-of-00002.npz: file not found"):
        load_split("synthetic", str(tmp_path), "train")


def test_shard_count_mismatch(tmp_path):
    _, manifest = write_dataset(str(tmp_path))
    manifest["splits"]["train"]["shards"][0]["count"] = 4
    manifest["splits"]["train"]["count"] = 6
    (tmp_path / synthetic.MANIFEST).write_text(json.dumps(manifest))
    loaded = load_split("synthetic", str(tmp_path), "train")
    with pytest.raises(files.DataError, match=r"00000-of-00002.npz: array 'index' holds 3.*says 4"):
        loaded[0]


def test_truncated_shard(tmp_path):
    write_dataset(str(tmp_path))
    path = tmp_path / synthetic.shard_name("train", 0, 2)
    path.write_bytes(path.read_bytes()[:500])
    loaded = load_split("synthetic", str(tmp_path), "train")
    with pytest.raises(files.DataError, match=r"00000-of-00002.npz: not a readable npz shard"):
        loaded[0]


def test_contact_sheet_is_written(tmp_path):
    samples, _ = write_dataset(str(tmp_path))
    path = str(tmp_path / "sheet.png")
    contact_sheet.save_contact_sheet(samples, path, columns=3)
    image = iio.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.std() > 0
