"""Synthetic dataset format: shards + manifest round trip, memory-mapped reads, bad files."""

import json
import os
import pickle
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest

from hand_jax.data import contact_sheet, files, load_split, schema, synthetic

S = 16
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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


def write_raw_shard(path, members):
    """Write an uncompressed npz whose members are (header dict, raw data bytes) pairs."""
    import io
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, (header, data) in members.items():
            buf = io.BytesIO()
            np.lib.format.write_array_header_1_0(buf, header)
            z.writestr(name + ".npy", buf.getvalue() + data)


def _members_of(path):
    """The (header, raw data) pairs of a shard written by ``write_shard``."""
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    return {
        k: ({"descr": np.lib.format.dtype_to_descr(a.dtype), "fortran_order": False,
             "shape": a.shape}, a.tobytes())
        for k, a in arrays.items()
    }  # fmt: skip


# Runs the reader in a child process: a memory-mapped object array dereferences file bytes as
# pointers and crashes the interpreter, which must fail this test rather than kill pytest.
_CHILD = """
import sys
from hand_jax.data import files, load_split
try:
    samples = load_split("synthetic", sys.argv[1], "train")
    for i in range(len(samples)):
        samples[i]["image"].sum()
except files.DataError as e:
    print("DataError:", e)
    sys.exit(0)
print("loaded without error")
sys.exit(3)
"""


@pytest.mark.parametrize("member", ["image", "keypoints_3d", "index"])
def test_object_dtype_member_is_refused_not_mapped(tmp_path, member):
    write_dataset(str(tmp_path))
    path = tmp_path / synthetic.shard_name("train", 0, 2)
    members = _members_of(path)
    header, data = members[member]
    # Pointers to an attacker-chosen address, as many as the declared shape needs.
    count = int(np.prod(header["shape"]))
    members[member] = (dict(header, descr="|O"), (0x4141414141414141).to_bytes(8, "little") * count)
    write_raw_shard(path, members)
    run = subprocess.run([sys.executable, "-c", _CHILD, str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, (run.returncode, run.stdout, run.stderr)
    assert f"member '{member}' is object" in run.stdout and path.name in run.stdout


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda h, d: (dict(h, descr="<f8"), d + d), r"member 'keypoints_3d' is float64"),
        (lambda h, d: (dict(h, shape=(3, 21, 2)), d), r"'keypoints_3d' is float32 \(3, 21, 2\)"),
        (lambda h, d: (dict(h, descr=[("a", "<f4")]), d), r"member 'keypoints_3d' is \[\("),
        (lambda h, d: (h, d[:-8]), r"'keypoints_3d': 756 bytes of data run past the end"),
    ],
)
def test_member_dtype_shape_and_extent_are_checked(tmp_path, change, match):
    write_dataset(str(tmp_path))
    path = tmp_path / synthetic.shard_name("train", 0, 2)
    members = _members_of(path)
    members["keypoints_3d"] = change(*members["keypoints_3d"])
    write_raw_shard(path, members)
    with pytest.raises(files.DataError, match=match):
        load_split("synthetic", str(tmp_path), "train")[0]


def test_unexpected_duplicate_and_compressed_members(tmp_path):
    write_dataset(str(tmp_path))
    path = tmp_path / synthetic.shard_name("train", 0, 2)
    members = _members_of(path)
    write_raw_shard(path, {**members, "extra": members["index"]})
    with pytest.raises(files.DataError, match=r"00002.npz: unexpected member 'extra.npy'"):
        load_split("synthetic", str(tmp_path), "train")[0]
    with np.load(tmp_path / synthetic.shard_name("train", 1, 2)) as data:
        np.savez_compressed(path, **{k: data[k] for k in data.files})
    with pytest.raises(files.DataError, match=r"member 'index.npy' is compressed"):
        load_split("synthetic", str(tmp_path), "train")[0]


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda m: m.update(splits=[1]), r'expected "splits"'),
        (lambda m: m["splits"]["train"].update(count="5"), r"split 'train': expected"),
        (lambda m: m["splits"]["train"]["shards"][0].update(file="../x.npz"), r"shard 0 must"),
        (lambda m: m["splits"]["train"]["shards"][1].update(file="/etc/x.npz"), r"shard 1 must"),
        (lambda m: m["splits"]["train"]["shards"][0].update(count=-1), r"shard 0 must"),
        (lambda m: m["splits"]["train"]["shards"].append(7), r"shard 2 must"),
        (lambda m: m["splits"]["train"].update(count=4), r"count 4 differs .* total 5"),
        (lambda m: m.update(format_version="1"), r"format_version '1'"),
        (lambda m: m.update(image_size=-3), r"image_size -3"),
    ],
)
def test_malformed_manifest_is_a_data_error(tmp_path, edit, match):
    _, manifest = write_dataset(str(tmp_path))
    edit(manifest)
    (tmp_path / synthetic.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(files.DataError, match=match) as info:
        load_split("synthetic", str(tmp_path), "train")
    assert "manifest.json" in str(info.value)


def test_non_finite_labels_name_the_shard(tmp_path):
    samples, _ = write_dataset(str(tmp_path))
    path = tmp_path / synthetic.shard_name("train", 1, 2)
    members = _members_of(path)
    header, data = members["K"]
    members["K"] = (header, np.full(header["shape"], np.nan, np.float32).tobytes())
    write_raw_shard(path, members)
    loaded = load_split("synthetic", str(tmp_path), "train")
    loaded[0]
    with pytest.raises(files.DataError, match=r"00001-of-00002.npz: row 0: .*'K' must be finite"):
        loaded[3]
