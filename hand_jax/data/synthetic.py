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

import math
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


def _shard_spec(count: int, image_size: int, num_betas: int) -> dict[str, tuple]:
    """Member name -> (dtype, shape) of a shard of ``count`` samples (the module doc's table)."""
    S, n = image_size, count
    f32, u8, b = np.dtype(np.float32), np.dtype(np.uint8), np.dtype(np.bool_)
    return {
        "index": (np.dtype(np.int64), (n,)), "image": (u8, (n, S, S, 3)),
        "mask": (u8, (n, S, S)), "mask_full": (u8, (n, S, S)),
        "keypoints_2d": (f32, (n, 21, 2)), "keypoints_3d": (f32, (n, 21, 3)),
        "keypoint_valid": (b, (n, 21)), "keypoint_visible": (b, (n, 21)),
        "K": (f32, (n, 3, 3)), "mano_pose": (f32, (n, 48)), "mano_betas": (f32, (n, num_betas)),
        "mano_trans": (f32, (n, 3)),
    }  # fmt: skip


def _member_header(f, info: zipfile.ZipInfo, path: str) -> tuple[tuple, bool, np.dtype, int, int]:
    """Parse a stored member's .npy header: (shape, fortran, dtype, data offset, member end)."""
    name = info.filename
    if info.compress_type != zipfile.ZIP_STORED:
        raise files.DataError(
            f"{path}: member {name!r} is compressed; the format stores shards uncompressed "
            "(write them with synthetic.write_shard)"
        )
    f.seek(info.header_offset)
    local = f.read(30)
    if len(local) != 30 or local[:4] != b"PK\x03\x04":
        raise files.DataError(f"{path}: member {name!r}: bad zip local header")
    start = info.header_offset + 30 + int.from_bytes(local[26:28], "little")
    start += int.from_bytes(local[28:30], "little")
    f.seek(start)
    try:
        version = np.lib.format.read_magic(f)
        read = {(1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0}.get(version)  # fmt: skip
        if read is None:
            raise ValueError(f"unsupported .npy version {version}")
        shape, fortran, dtype = read(f)
    except Exception as e:  # header parsing: ValueError, RecursionError, MemoryError, ...
        raise files.DataError(
            f"{path}: member {name!r}: unreadable .npy header ({type(e).__name__}: {e})"
        ) from e
    offset, end = f.tell(), start + info.compress_size
    if offset > end:
        raise files.DataError(f"{path}: member {name!r}: .npy header runs past the member")
    return shape, fortran, dtype, offset, end


def _npz_members(
    path: str, *, count: int | None = None, image_size: int | None = None, manifest: str = ""
) -> dict[str, np.ndarray]:
    """Check every member of a shard against the format, then memory-map them.

    Every member's dtype and shape are checked against ``_shard_spec`` and its data against the
    member's extent in the file before anything is mapped; so an object array (whose bytes would
    be dereferenced as pointers) or an array pointing outside its member is never mapped.

    Args:
      path: the shard (an uncompressed npz).
      count: samples the manifest promises (None: taken from ``index``).
      image_size: S from the manifest (None: taken from ``image``).
      manifest: the manifest's path, named in errors about what it promised.

    Returns:
      Member name -> read-only [n, ...] memory map (a plain array for empty members).

    Raises:
      DataError: naming the file, the member and what was expected.
    """
    headers = {}
    try:
        with zipfile.ZipFile(path) as z, open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            for info in z.infolist():
                name = info.filename.removesuffix(".npy")
                if name not in SHARD_FIELDS or not info.filename.endswith(".npy"):
                    raise files.DataError(
                        f"{path}: unexpected member {info.filename!r}; a shard holds "
                        f"{[k + '.npy' for k in SHARD_FIELDS]}"
                    )
                if name in headers:
                    raise files.DataError(f"{path}: member {info.filename!r} appears twice")
                headers[name] = _member_header(f, info, path)
    except files.DataError:
        raise
    except Exception as e:  # BadZipFile, NotImplementedError (zip version), OSError, ...
        raise files.DataError(
            f"{path}: not a readable npz shard ({type(e).__name__}: {str(e)[:200]})"
        ) from e
    missing = [k for k in SHARD_FIELDS if k not in headers]
    if missing:
        raise files.DataError(f"{path}: missing arrays {missing}")

    def dim(name, axis, what):
        shape = headers[name][0]
        if len(shape) <= axis:
            raise files.DataError(f"{path}: member {name!r} has shape {shape}; expected {what}")
        return shape[axis]

    n = dim("index", 0, "[n]") if count is None else count
    S = dim("image", 1, "[n, S, S, 3]") if image_size is None else image_size
    B = dim("mano_betas", 1, "[n, B]")
    if S <= 0 or B < 0:
        raise files.DataError(f"{path}: image side {S} and {B} betas; expected S > 0, B >= 0")
    out = {}
    for name, (dtype, shape) in _shard_spec(n, S, B).items():
        got_shape, fortran, got_dtype, offset, end = headers[name]
        held = got_shape[0] if len(got_shape) else "no axis of"
        if count is not None and held != n:
            raise files.DataError(
                f"{path}: array {name!r} holds {held} samples, the manifest says {n} ({manifest})"
            )
        if got_dtype != dtype or tuple(got_shape) != shape:
            raise files.DataError(
                f"{path}: member {name!r} is {got_dtype} {tuple(got_shape)}; expected {dtype} "
                f"{shape} (S={S} image side, n={n} samples, B={B} betas; {manifest or 'shard'})"
            )
        nbytes = math.prod(shape) * dtype.itemsize
        if offset + nbytes > min(end, size):
            raise files.DataError(
                f"{path}: member {name!r}: {nbytes} bytes of data run past the end of the "
                f"member ({end - offset} bytes left) or of the file"
            )
        order = "F" if fortran else "C"
        if nbytes == 0:
            out[name] = np.zeros(shape, dtype, order=order)
        else:
            out[name] = np.memmap(path, dtype, "r", offset=offset, shape=shape, order=order)
    return out


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_split(path: str, split: str, entry) -> None:
    """Check one manifest split entry: counts, and shard files that are plain names here."""
    where = f"{path}: split {split!r}"
    if not isinstance(entry, dict) or not _is_count(entry.get("count")):
        raise files.DataError(f'{where}: expected {{"count": int >= 0, "shards": [...]}}')
    shards = entry.get("shards")
    if not isinstance(shards, list):
        raise files.DataError(f"{where}: expected a list of shards, got {type(shards).__name__}")
    for k, shard in enumerate(shards):
        name = shard.get("file") if isinstance(shard, dict) else None
        if (
            not isinstance(name, str)
            or not name.endswith(".npz")
            or os.path.basename(name) != name
            or name.startswith(".")
            or "\\" in name
            or not _is_count(shard.get("count"))
        ):
            raise files.DataError(
                f'{where}: shard {k} must be {{"file": a .npz name in the dataset folder, '
                f'"count": int >= 0}}, got {shard!r:.200}'
            )
    total = sum(s["count"] for s in shards)
    if total != entry["count"]:
        raise files.DataError(
            f"{where} count {entry['count']} differs from its shards' total {total}"
        )


def read_manifest(data_dir: str) -> dict:
    """Read and check ``manifest.json``; raises ``DataError`` naming the problem."""
    path = os.path.join(data_dir, MANIFEST)
    manifest = files.read_json(path, "the synthetic dataset manifest (launch/make_synthetic.py)")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise files.DataError(f'{path}: expected "format": "{FORMAT}"')
    version = manifest.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise files.DataError(f"{path}: format_version {version!r:.50}, expected {FORMAT_VERSION}")
    size = manifest.get("image_size")
    if size is not None and (not _is_count(size) or size == 0):
        raise files.DataError(f"{path}: image_size {size!r:.50}, expected a positive int")
    splits = manifest.get("splits")
    if not isinstance(splits, dict):
        raise files.DataError(f'{path}: expected "splits": {{name: {{count, shards}}}}')
    for split, entry in splits.items():
        _check_split(path, split, entry)
    return manifest


class SyntheticSamples(Sequence):
    """One split of a synthetic dataset as a lazy, memory-mapped sequence of samples."""

    def __init__(self, data_dir: str, split: str):
        self.data_dir = data_dir
        self.split = split
        manifest = read_manifest(data_dir)
        splits = manifest["splits"]
        if split not in splits:
            raise files.DataError(
                f"{os.path.join(data_dir, MANIFEST)}: no split {split!r}; has {sorted(splits)}"
            )
        self.image_size = manifest.get("image_size")
        self.shards = splits[split]["shards"]
        self.counts = np.array([s["count"] for s in self.shards], np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)])
        for shard in self.shards:
            files.require_file(os.path.join(data_dir, shard["file"]), f"a {split} shard")
        self._open: dict[int, dict] = {}

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_open"] = {}  # memory maps are reopened in the receiving process
        return state

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _path(self, shard: int) -> str:
        return os.path.join(self.data_dir, self.shards[shard]["file"])

    def _arrays(self, shard: int) -> dict[str, np.ndarray]:
        if shard not in self._open:
            self._open[shard] = _npz_members(
                self._path(shard), count=self.shards[shard]["count"], image_size=self.image_size,
                manifest=os.path.join(self.data_dir, MANIFEST),
            )  # fmt: skip
        return self._open[shard]

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"synthetic {self.split}: index {index} out of range [0, {len(self)})")
        shard = int(np.searchsorted(self.offsets, index, side="right") - 1)
        arrays = self._arrays(shard)
        row = index - int(self.offsets[shard])
        fields = {k: np.array(arrays[k][row]) for k in SHARD_FIELDS if k != "index"}
        try:
            return schema.make_sample(
                id=f"synthetic/{self.split}/{int(arrays['index'][row]):07d}", **fields
            )
        except schema.SampleError as e:
            raise files.DataError(f"{self._path(shard)}: row {row}: {e}") from e


def load(data_dir: str, split: str) -> SyntheticSamples:
    """Load a split (``train``, ``test``, or any other in the manifest) of a synthetic dataset."""
    return SyntheticSamples(data_dir, split)
