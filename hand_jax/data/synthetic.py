"""The synthetic dataset on disk: shard format, writer and reader.

Layout of a dataset directory (written by ``launch/make_synthetic.py``)::

    manifest.json                     format, generator version and parameters, splits
    train-00000-of-00004.npz ...      uncompressed npz shards, arrays stacked on axis 0
    test-00000-of-00001.npz ...
    contact_sheet.png                 samples with keypoints and mask outlines

``manifest.json``: ``{"format": "hand_jax.synthetic", "format_version": 1,
"generator_version": str, "seed": int, "image_size": S, "parameters": {...},
"model": {...}, "splits": {split: {"count": N, "shards": [{"file", "count",
"first_index"}]}}}``. Shard arrays (n samples of one shard): ``index`` int64 [n] (sample index
within the split), ``image`` uint8 [n,S,S,3], ``mask`` uint8 [n,S,S] (visible hand),
``mask_full`` uint8 [n,S,S] (whole hand, occluders ignored), ``keypoints_2d`` float32 [n,21,2],
``keypoints_3d`` float32 [n,21,3], ``keypoint_valid`` bool [n,21], ``keypoint_visible`` bool
[n,21], ``K`` float32 [n,3,3], ``mano_pose`` float32 [n,48], ``mano_betas`` float32 [n,B],
``mano_trans`` float32 [n,3]. Shards are stored uncompressed so that the reader memory-maps
them: random access costs one sample's bytes, whatever the shard size.
"""

import os
import zipfile
from collections.abc import Mapping, Sequence

import numpy as np

from hand_jax.data import files, schema

FORMAT = "hand_jax.synthetic"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SHARD_FIELDS = (
    "index", "image", "mask", "mask_full", "keypoints_2d", "keypoints_3d", "keypoint_valid",
    "keypoint_visible", "K", "mano_pose", "mano_betas", "mano_trans",
)  # fmt: skip


def shard_name(split: str, shard: int, num_shards: int) -> str:
    """File name of one shard: ``<split>-<shard>-of-<num_shards>.npz``."""
    return f"{split}-{shard:05d}-of-{num_shards:05d}.npz"


def write_shard(path: str, samples: Sequence[Mapping], indices: Sequence[int]) -> None:
    """Stack samples into one uncompressed npz shard (see the module doc for the arrays)."""
    arrays = {"index": np.asarray(indices, np.int64)}
    for key in SHARD_FIELDS[1:]:
        arrays[key] = np.stack([s[key] for s in samples])
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _npz_members(path: str) -> dict[str, np.ndarray]:
    """Memory-map every stored (uncompressed) array of an npz; load compressed ones."""
    out = {}
    try:
        with zipfile.ZipFile(path) as z, open(path, "rb") as f:
            for info in z.infolist():
                name = info.filename.removesuffix(".npy")
                if info.compress_type != zipfile.ZIP_STORED:
                    out[name] = np.load(z.open(info))
                    continue
                f.seek(info.header_offset)
                local = f.read(30)
                start = info.header_offset + 30 + int.from_bytes(local[26:28], "little")
                start += int.from_bytes(local[28:30], "little")
                f.seek(start)
                version = np.lib.format.read_magic(f)
                read = {(1, 0): np.lib.format.read_array_header_1_0,
                        (2, 0): np.lib.format.read_array_header_2_0}.get(version)  # fmt: skip
                if read is None:
                    raise ValueError(f"unsupported .npy version {version} for {name!r}")
                shape, fortran, dtype = read(f)
                order = "F" if fortran else "C"
                out[name] = np.memmap(path, dtype, "r", offset=f.tell(), shape=shape, order=order)
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        raise files.DataError(f"{path}: not a readable npz shard ({e})") from e
    return out


def read_manifest(data_dir: str) -> dict:
    """Read and check ``manifest.json``; raises ``DataError`` naming the problem."""
    path = os.path.join(data_dir, MANIFEST)
    manifest = files.read_json(path, "the synthetic dataset manifest (launch/make_synthetic.py)")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise files.DataError(f'{path}: expected "format": "{FORMAT}"')
    if manifest.get("format_version") != FORMAT_VERSION:
        raise files.DataError(
            f"{path}: format_version {manifest.get('format_version')}, expected {FORMAT_VERSION}"
        )
    return manifest


class SyntheticSamples(Sequence):
    """One split of a synthetic dataset as a lazy, memory-mapped sequence of samples."""

    def __init__(self, data_dir: str, split: str):
        self.data_dir = data_dir
        self.split = split
        manifest = read_manifest(data_dir)
        splits = manifest.get("splits", {})
        if split not in splits:
            raise ValueError(
                f"{os.path.join(data_dir, MANIFEST)}: no split {split!r}; has {sorted(splits)}"
            )
        self.shards = splits[split]["shards"]
        self.counts = np.array([s["count"] for s in self.shards], np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)])
        if self.offsets[-1] != splits[split]["count"]:
            raise files.DataError(
                f"{os.path.join(data_dir, MANIFEST)}: split {split!r} count "
                f"{splits[split]['count']} differs from its shards' total {self.offsets[-1]}"
            )
        for shard in self.shards:
            files.require_file(os.path.join(data_dir, shard["file"]), f"a {split} shard")
        self._open: dict[int, dict] = {}

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_open"] = {}  # memory maps are reopened in the receiving process
        return state

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _arrays(self, shard: int) -> dict[str, np.ndarray]:
        if shard not in self._open:
            path = os.path.join(self.data_dir, self.shards[shard]["file"])
            arrays = _npz_members(path)
            missing = [k for k in SHARD_FIELDS if k not in arrays]
            if missing:
                raise files.DataError(f"{path}: missing arrays {missing}")
            for key in SHARD_FIELDS:
                if arrays[key].shape[0] != self.shards[shard]["count"]:
                    raise files.DataError(
                        f"{path}: array {key!r} holds {arrays[key].shape[0]} samples, the "
                        f"manifest says {self.shards[shard]['count']}"
                    )
            self._open[shard] = arrays
        return self._open[shard]

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"synthetic {self.split}: index {index} out of range [0, {len(self)})")
        shard = int(np.searchsorted(self.offsets, index, side="right") - 1)
        arrays = self._arrays(shard)
        row = index - int(self.offsets[shard])
        fields = {k: np.array(arrays[k][row]) for k in SHARD_FIELDS if k != "index"}
        return schema.make_sample(
            id=f"synthetic/{self.split}/{int(arrays['index'][row]):07d}", **fields
        )


def load(data_dir: str, split: str) -> SyntheticSamples:
    """Load a split (``train``, ``test``, or any other in the manifest) of a synthetic dataset."""
    return SyntheticSamples(data_dir, split)
