"""Fuzz targets for every file reader: valid seed files, structured and byte-level mutations.

Each ``Target`` writes a small valid file (or folder) in its native format, mutates it with a
Hypothesis strategy, calls the reader and classifies the outcome:

- ``valid``: the reader returned (and what it returned passed the target's own check);
- ``project error``: it raised one of the project's error types for that reader, and the message
  names the fuzzed file;
- anything else (a raw exception from numpy, scipy, zipfile, pickle or JSON, or a project error
  that does not name the file) is a failure: ``other``.

A segmentation fault kills the process: ``tests/tools/fuzz_readers.py`` runs each target in a
child process and reports it as ``crash``. Mutations: structured ones (per npz member: dtype,
shape, special values, object arrays, raw ``.npy`` headers with any descr/shape; per pickled or
JSON value: replacement by other values, deep nesting, huge numbers; per image: a small seed
of each kind ``read_photo`` converts, its PNG width and height replaced) and byte-level ones
(truncation, byte flips, inserted and duplicated runs) on top.
"""

import contextlib
import io
import json
import os
import pickle
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import scipy.io
from hypothesis import strategies as st
from PIL import Image

from hand_jax import mano, safe_pickle
from hand_jax.data import dexter_object, files, freihand, rhd, stb, synthetic
from hand_jax.eval import evaluate
from tests import mano_reference as ref

VALID, PROJECT_ERROR, OTHER = "valid", "project error", "other"

# ----------------------------------------------------------------------------- byte mutations


@st.composite
def byte_mutation(draw, blob: bytes) -> bytes:
    """Truncate, flip, insert or duplicate bytes of ``blob`` (or leave it)."""
    kind = draw(st.sampled_from(["none", "truncate", "flip", "insert", "duplicate"]))
    n = len(blob)
    if kind == "none" or n == 0:
        return blob
    if kind == "truncate":
        return blob[: draw(st.integers(0, n - 1))]
    if kind == "flip":
        out = bytearray(blob)
        for _ in range(draw(st.integers(1, 8))):
            # Headers live at the start and (zip) at the end: bias positions towards both.
            pos = draw(st.one_of(st.integers(0, min(n - 1, 300)), st.integers(max(0, n - 300),
                                                                                n - 1),
                                 st.integers(0, n - 1)))  # fmt: skip
            out[pos] = draw(st.integers(0, 255))
        return bytes(out)
    pos = draw(st.integers(0, n))
    if kind == "insert":
        return blob[:pos] + draw(st.binary(min_size=1, max_size=64)) + blob[pos:]
    end = draw(st.integers(pos, min(n, pos + 256)))
    return blob[:end] + blob[pos:end] + blob[end:]


# ------------------------------------------------------------------------ array-dict mutations

DTYPES = ["float16", "float32", "float64", "int8", "int32", "int64", "uint8", "uint64", "bool",
          "complex64", "<U3", "S3", "object"]  # fmt: skip
SPECIALS = [np.nan, np.inf, -np.inf, -1.0, 0.0, 1e30, -1e30, 2.0**31, 0.5, 1e-30]
RAW_DESCRS = ["|O", "<f8", ">f4", "|V8", "<U2", "|b1", "<i8", "<f4", "|u1", "<c16"]


def _retype(a: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "object":
        return np.array([{"x": 1}] * max(a.size, 1), object)[: a.size].reshape(a.shape)
    with np.errstate(all="ignore"):
        try:
            return a.astype(dtype)
        except (ValueError, TypeError, OverflowError):
            return np.zeros(a.shape, dtype)


def _reshape(a: np.ndarray, kind: str) -> np.ndarray:
    if kind == "scalar":
        return np.asarray(a.reshape(-1)[0] if a.size else 0, a.dtype)
    if kind == "empty":
        return a.reshape(-1)[:0]
    if kind == "half" and a.ndim:
        return a[: a.shape[0] // 2]
    if kind == "last" and a.ndim:
        return a[..., :-1]
    if kind == "extra_axis":
        return a[None]
    if kind == "flatten":
        return a.reshape(-1)
    if kind == "transpose":
        return a.T
    if kind == "double" and a.ndim:
        return np.concatenate([a, a])
    return a


@st.composite
def array_edits(draw, keys: list[str]) -> list[tuple]:
    """A list of edits to a dict of arrays (keys may be dropped, retyped, reshaped, ...)."""
    edit = st.one_of(
        st.tuples(st.just("drop"), st.sampled_from(keys)),
        st.tuples(st.just("dtype"), st.sampled_from(keys), st.sampled_from(DTYPES)),
        st.tuples(
            st.just("shape"),
            st.sampled_from(keys),
            st.sampled_from(
                ["scalar", "empty", "half", "last", "extra_axis", "flatten", "transpose", "double"]
            ),
        ),  # fmt: skip
        st.tuples(
            st.just("value"),
            st.sampled_from(keys),
            st.sampled_from(SPECIALS),
            st.sampled_from(["one", "all"]),
        ),  # fmt: skip
        st.tuples(st.just("extra"), st.sampled_from(["extra", "x" * 40, "../evil"])),
        st.tuples(
            st.just("raw"),
            st.sampled_from(keys),
            st.sampled_from(RAW_DESCRS),
            st.lists(st.integers(-2, 1 << 40), max_size=4).map(tuple),
        ),  # fmt: skip
    )
    return draw(st.lists(edit, max_size=4))


def apply_array_edits(arrays: dict, edits: list[tuple]) -> tuple[dict, dict]:
    """Return (arrays, raw members {key: (descr, shape)}) after ``edits``."""
    arrays, raw = dict(arrays), {}
    for e in edits:
        with contextlib.suppress(IndexError, ValueError, TypeError):  # an edit that cannot apply
            _apply_array_edit(arrays, raw, e)
    return arrays, raw


def _apply_array_edit(arrays: dict, raw: dict, e: tuple) -> None:
    kind, key = e[0], e[1]
    if kind == "extra":
        arrays[key] = np.arange(3.0)
        return
    if key not in arrays:
        return
    a = np.asarray(arrays[key])
    if kind == "drop":
        del arrays[key]
    elif kind == "dtype":
        arrays[key] = _retype(a, e[2])
    elif kind == "shape":
        arrays[key] = _reshape(a, e[2])
    elif kind == "value" and a.dtype.kind in "fc" and a.size:
        a = a.copy()
        if e[3] == "all":
            a[...] = e[2]
        else:
            a.reshape(-1)[0] = e[2]
        arrays[key] = a
    elif kind == "value" and a.dtype.kind in "iu" and a.size:
        a = a.copy()
        with np.errstate(all="ignore"), contextlib.suppress(OverflowError, ValueError):
            a.reshape(-1)[0] = int(e[2]) if np.isfinite(e[2]) else -1
        arrays[key] = a
    elif kind == "raw":
        raw[key] = (e[2], e[3])


def write_npz_bytes(arrays: dict, raw: dict, *, compress: bool) -> bytes:
    """An npz (object arrays pickled, as ``np.savez`` does) with raw-header members."""
    buf = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(buf, "w", method) as z:
        for key, a in arrays.items():
            member = io.BytesIO()
            if key in raw:
                descr, shape = raw[key]
                np.lib.format.write_array_header_1_0(
                    member, {"descr": descr, "fortran_order": False, "shape": shape}
                )
                member.write(np.asarray(a).tobytes()[:4096] or b"\x41" * 64)
            else:
                np.lib.format.write_array(member, np.asarray(a), allow_pickle=True)
            z.writestr(key + ".npy", member.getvalue())
    return buf.getvalue()


@st.composite
def npz_files(draw, arrays: dict, *, compress=None) -> bytes:
    """Bytes of a mutated npz built from the valid ``arrays``."""
    edited, raw = apply_array_edits(arrays, draw(array_edits(sorted(arrays))))
    compress = draw(st.booleans()) if compress is None else compress
    blob = write_npz_bytes(edited, raw, compress=compress)
    return draw(byte_mutation(blob))


# ---------------------------------------------------------------------- python-value mutations

ODD_VALUES = [None, "text", b"bytes", 3, -1, 2**70, 1.5, float("nan"), [], [1, 2], (1,), {},
              {"a": 1}, {1, 2}, True, np.float64(2.0), np.zeros((0, 3)), np.zeros((2, 2), object),
              np.array(["a", "b"]), np.arange(6).reshape(2, 3)]  # fmt: skip


ODD_KEYS = ["x", -1, 2**70, 1.5, None, (1, 2), b"b", True, 10**6]


def _deep(depth: int):
    out: Any = []
    for _ in range(depth):
        out = [out]
    return out


@st.composite
def value_edits(draw, paths: list[tuple]) -> list[tuple]:
    """Edits replacing the value at a path (a tuple of keys) of a nested dict."""
    replacement = st.one_of(
        st.sampled_from(range(len(ODD_VALUES))).map(lambda i: ("odd", i)),
        st.integers(10, 3000).map(lambda d: ("deep", d)),
        st.sampled_from(DTYPES).map(lambda d: ("dtype", d)),
        st.sampled_from(["scalar", "empty", "half", "last", "extra_axis", "transpose"]).map(
            lambda k: ("shape", k)
        ),
        st.sampled_from(SPECIALS).map(lambda v: ("fill", v)),
        st.sampled_from(range(len(ODD_KEYS))).map(lambda i: ("key", i)),
    )
    return draw(st.lists(st.tuples(st.sampled_from(paths), replacement), max_size=3))


def apply_value_edits(tree, edits):
    tree = pickle.loads(pickle.dumps(tree))  # a deep copy
    for path, (kind, arg) in edits:
        parent = tree
        try:  # an earlier edit may have replaced a container on this path: skip
            for key in path[:-1]:
                parent = parent[key]
            old = parent[path[-1]]
        except (KeyError, IndexError, TypeError):
            continue
        if kind == "key":  # the same value under another key beside it
            if isinstance(parent, dict):
                parent[ODD_KEYS[arg]] = old
            continue
        if kind == "odd":
            new = ODD_VALUES[arg]
        elif kind == "deep":
            new = _deep(arg)
        elif isinstance(old, np.ndarray) and kind == "dtype":
            new = _retype(old, arg)
        elif isinstance(old, np.ndarray) and kind == "shape":
            try:
                new = _reshape(old, arg)
            except (IndexError, ValueError):
                new = old
        elif isinstance(old, np.ndarray) and kind == "fill":
            new = np.full(old.shape, arg)
        else:
            new = old
        parent[path[-1]] = new
    return tree


@st.composite
def pickle_files(draw, tree, paths) -> bytes:
    edited = apply_value_edits(tree, draw(value_edits(paths)))
    try:
        blob = pickle.dumps(edited, protocol=draw(st.integers(0, 5)))
    except RecursionError:  # too deep for the pickler itself: a list pickled iteratively
        blob = pickle.dumps(ODD_VALUES[0])
    return draw(byte_mutation(blob))


# ------------------------------------------------------------------------------------ targets


class Target(NamedTuple):
    """A reader under fuzz: ``strategy`` draws the fuzzed file's bytes; ``read(dir, path)``."""

    name: str
    file_name: str
    strategy: st.SearchStrategy
    read: Callable[[str, str], Any]
    errors: tuple[type[BaseException], ...]
    setup: Callable[[str], None] = lambda folder: None


def _tiny_model_arrays():
    return ref.make_synthetic_arrays(seed=0, num_verts=80, num_betas=4, num_comps=6)


def _mano_npz_arrays():
    a = _tiny_model_arrays()
    out = {k: np.asarray(v) for k, v in ref.model_kwargs(a).items()}
    out.update(format_version=np.int64(1), side=np.str_("right"), source=np.str_("fuzz"),
               parents=np.asarray(a["parents"], np.int32),
               tip_ids=np.asarray(a["tip_ids"], np.int32))  # fmt: skip
    return out


def _mano_pkl_tree():
    return ref.mano_pkl_dict(_tiny_model_arrays())


def _rhd_tree(n=2):
    rng = np.random.default_rng(0)
    K = np.array([[280.0, 0, 160], [0, 280.0, 160], [0, 0, 1]])
    return {
        i: {"xyz": rng.normal(size=(42, 3)) * 0.03 + [0, 0, 0.5],
            "uv_vis": np.concatenate([rng.uniform(0, 320, (42, 2)), np.ones((42, 1))], 1),
            "K": K}
        for i in range(n)
    }  # fmt: skip


def _stb_bytes(draw) -> bytes:
    rng = np.random.default_rng(0)
    para = rng.normal(size=(3, 21, 3)) * 30 + np.array([0, 0, 400.0])[:, None, None]
    edited = apply_value_edits({"handPara": para}, draw(value_edits([("handPara",)])))
    buf = io.BytesIO()
    value = edited["handPara"]
    try:
        scipy.io.savemat(buf, {"handPara": value, "other": np.arange(3)},
                         do_compression=draw(st.booleans()))  # fmt: skip
    except Exception:  # savemat cannot write every odd value: write the valid one instead
        buf = io.BytesIO()
        scipy.io.savemat(buf, {"handPara": para})
    return draw(byte_mutation(buf.getvalue()))


@st.composite
def stb_files(draw) -> bytes:
    return _stb_bytes(draw)


JSON_LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.integers().map(lambda x: x**9),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
)  # fmt: skip
JSON_VALUES = st.recursive(JSON_LEAVES, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)),
    max_leaves=12)  # fmt: skip


def _json_paths(tree, prefix=()):
    yield prefix
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _json_paths(v, (*prefix, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree[:3]):
            yield from _json_paths(v, (*prefix, i))


@st.composite
def json_files(draw, tree) -> bytes:
    """A JSON document: ``tree`` with a few sub-values replaced, or deep nesting, then bytes."""
    kind = draw(st.sampled_from(["edit", "edit", "deep", "random"]))
    if kind == "deep":
        depth = draw(st.integers(100, 200_000))
        return ("[" * depth + "]" * depth).encode()
    if kind == "random":
        text = json.dumps(draw(JSON_VALUES))
    else:
        tree = json.loads(json.dumps(tree))
        paths = list(_json_paths(tree))
        for _ in range(draw(st.integers(1, 3))):
            path = draw(st.sampled_from(paths))
            value = draw(JSON_VALUES)
            if not path:
                tree = value
                break
            parent = tree
            with contextlib.suppress(KeyError, IndexError, TypeError):
                for key in path[:-1]:
                    parent = parent[key]
                parent[path[-1]] = value
        text = json.dumps(tree)
    return draw(byte_mutation(text.encode()))


@st.composite
def dexter_files(draw) -> bytes:
    rng = np.random.default_rng(0)
    rows = [";".join(", ".join(f"{v:.3f}" for v in tip) for tip in rng.normal(size=(5, 3)) * 50)
            for _ in range(3)]  # fmt: skip
    kind = draw(st.sampled_from(["lines", "text", "bytes"]))
    if kind == "text":
        return draw(st.text(alphabet="0123456789.,;e-+ \nnaifNI\t", max_size=400)).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=400))
    lines = list(rows)
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        lines[i] = draw(st.one_of(
            st.just(lines[i] + ";1, 2, 3"), st.just(lines[i].replace(",", "", 1)),
            st.just(lines[i].replace("1", "1e999")), st.just(lines[i].replace("2", "nan")),
            st.just(";;;"), st.just(",,"), st.text(max_size=30),
        ))  # fmt: skip
    return draw(byte_mutation("\n".join(lines).encode()))


def _shard_arrays(n=2, S=8, B=3):
    rng = np.random.default_rng(0)
    K = np.tile(np.array([[10.0, 0, 4], [0, 10.0, 4], [0, 0, 1]], np.float32), (n, 1, 1))
    xyz = (rng.normal(size=(n, 21, 3)) * 0.02 + [0, 0, 0.3]).astype(np.float32)
    h = xyz @ K[0].T
    return {
        "index": np.arange(n, dtype=np.int64),
        "image": rng.integers(0, 256, (n, S, S, 3), dtype=np.uint8),
        "mask": rng.integers(0, 2, (n, S, S), dtype=np.uint8),
        "mask_full": np.ones((n, S, S), np.uint8),
        "keypoints_2d": (h[..., :2] / h[..., 2:]).astype(np.float32),
        "keypoints_3d": xyz,
        "keypoint_valid": np.ones((n, 21), bool),
        "keypoint_visible": np.ones((n, 21), bool),
        "K": K,
        "mano_pose": rng.normal(size=(n, 48)).astype(np.float32),
        "mano_betas": rng.normal(size=(n, B)).astype(np.float32),
        "mano_trans": rng.normal(size=(n, 3)).astype(np.float32),
    }


SHARD = "train-00000-of-00001.npz"
MANIFEST = {"format": synthetic.FORMAT, "format_version": synthetic.FORMAT_VERSION,
            "image_size": 8, "splits": {"train": {"count": 2, "shards": [
                {"file": SHARD, "count": 2, "first_index": 0}]}}}  # fmt: skip


def _write_synthetic(folder, *, manifest=True, shard=True):
    if manifest:
        with open(os.path.join(folder, synthetic.MANIFEST), "w") as f:
            json.dump(MANIFEST, f)
    if shard:
        with open(os.path.join(folder, SHARD), "wb") as f:
            f.write(write_npz_bytes(_shard_arrays(), {}, compress=False))


def _read_synthetic(folder, path):
    samples = synthetic.load(folder, "train")
    return [samples[i] for i in range(len(samples))]


def _evidence_arrays(n=2, S=16):
    rng = np.random.default_rng(0)
    return {
        "keypoints_2d": rng.uniform(0, S, (n, 21, 2)).astype(np.float32),
        "confidence": rng.uniform(0, 1, (n, 21)).astype(np.float32),
        "mask": rng.integers(0, 2, (n, S, S)).astype(np.uint8) * 255,
        "image": rng.integers(0, 256, (n, S, S, 3), dtype=np.uint8),
        "ids": np.array(["a", "b"][:n]),
    }


def _prediction_arrays(n=3):
    rng = np.random.default_rng(0)
    return {
        "ids": np.array([f"s/{i}" for i in range(n)]),
        "keypoints_3d": rng.normal(size=(n, 21, 3)) * 0.03 + [0, 0, 0.6],
        "keypoint_valid": np.ones((n, 21), bool),
        "keypoints_2d": rng.uniform(0, 100, (n, 21, 2)),
    }


def _read_predictions(folder, path):
    pred = evaluate.load_keypoint_npz(path, what="predictions")
    evaluate.check_finite(pred, pred.keypoint_valid, path)
    return pred


def _read_evidence(folder, path):
    from hand_jax.refine import io as refine_io  # imported lazily: it pulls in the refiner

    return refine_io.load_evidence(path)


def _image_seeds() -> list[bytes]:
    """Small valid images of every kind ``read_photo`` converts (16 x 12 pixels)."""
    rgb = np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    images = {
        "PNG": [Image.fromarray(rgb), Image.fromarray(rgb).convert("RGBA"),
                Image.fromarray(rgb).convert("P"), Image.fromarray(rgb[..., 0].astype(np.uint16))],
        "JPEG": [Image.fromarray(rgb), Image.fromarray(rgb).convert("CMYK")],
        "GIF": [Image.fromarray(rgb).convert("P")], "BMP": [Image.fromarray(rgb).convert("1")],
        "TIFF": [Image.fromarray(rgb[..., 0].astype(np.float32)),
                 Image.fromarray(rgb[..., 0].astype(np.int32))],
    }  # fmt: skip
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees
    seeds = []
    for fmt, kinds in images.items():
        for image in kinds:
            buf = io.BytesIO()
            extra = {"exif": exif} if fmt == "JPEG" else {}
            if fmt == "GIF":
                extra = {
                    "save_all": True,
                    "append_images": [image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)] * 2,
                }
            image.save(buf, fmt, **extra)
            seeds.append(buf.getvalue())
    return seeds


_IMAGE_SEEDS = _image_seeds()
_SIDES = [0, 1, 7, 8, 5000, 7000, 12000, 65535, 2**31 - 1]


@st.composite
def image_files(draw) -> bytes:
    """A seed image, its PNG size in IHDR maybe replaced (a valid CRC), then byte mutations."""
    blob = draw(st.sampled_from(_IMAGE_SEEDS))
    if blob.startswith(b"\x89PNG") and draw(st.booleans()):
        ihdr = struct.pack(">II", draw(st.sampled_from(_SIDES)), draw(st.sampled_from(_SIDES)))
        ihdr += blob[24:29]
        chunk = b"IHDR" + ihdr
        blob = blob[:8] + blob[8:12] + chunk + struct.pack(">I", zlib.crc32(chunk)) + blob[33:]
    return draw(byte_mutation(blob))


def _read_photo(folder, path):
    from hand_jax.estimate import photos  # imported lazily: it pulls in the estimator

    image = photos.read_photo(path)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3, image.shape
    return image


def _freihand_setup(folder):
    rng = np.random.default_rng(0)
    labels = {"xyz": rng.normal(size=(2, 21, 3)).tolist(), "K": np.tile(np.eye(3), (2, 1, 1))
              .tolist(), "mano": np.zeros((2, 1, 61)).tolist(), "scale": [0.1, 0.1]}  # fmt: skip
    for key, value in labels.items():
        with open(os.path.join(folder, f"training_{key}.json"), "w") as f:
            json.dump(value, f)


_XYZ = np.random.default_rng(0).normal(size=(2, 21, 3)).tolist()
_PKL_PATHS = [(k,) for k in _mano_pkl_tree()]
_RHD_PATHS = [(0,), (1,), (0, "xyz"), (0, "uv_vis"), (1, "K")]

TARGETS = {
    t.name: t
    for t in [
        Target("mano_npz", "hand.npz", npz_files(_mano_npz_arrays()),
               lambda d, p: mano.load_model(p), (mano.HandModelError,)),
        Target("mano_pkl", "MANO_RIGHT.pkl", pickle_files(_mano_pkl_tree(), _PKL_PATHS),
               lambda d, p: mano.load_model(p, tips=(1, 2, 3, 4, 5)),
               (mano.HandModelError, safe_pickle.PickleReadError)),
        Target("synthetic_shard", SHARD, npz_files(_shard_arrays(), compress=False),
               _read_synthetic, (files.DataError,),
               setup=lambda d: _write_synthetic(d, shard=False)),
        Target("synthetic_manifest", synthetic.MANIFEST, json_files(MANIFEST), _read_synthetic,
               (files.DataError,), setup=lambda d: _write_synthetic(d, manifest=False)),
        Target("rhd_pickle", "anno_evaluation.pickle", pickle_files(_rhd_tree(), _RHD_PATHS),
               lambda d, p: rhd.read_annotations(p), (files.DataError, safe_pickle.PickleReadError),
               ),
        Target("stb_mat", "B1Counting_SK.mat", stb_files(), lambda d, p: stb.read_labels(p),
               (files.DataError,)),
        Target("freihand_json", "training_xyz.json", json_files(_XYZ),
               lambda d, p: freihand.read_labels(d, "training"), (files.DataError,),
               setup=_freihand_setup),
        Target("dexter_txt", "Grasp13D.txt", dexter_files(),
               lambda d, p: dexter_object.read_annotation_file(p, dims=3), (files.DataError,)),
        Target("evidence_npz", "evidence.npz", npz_files(_evidence_arrays()), _read_evidence,
               (ValueError, KeyError)),
        Target("predictions_npz", "predictions.npz", npz_files(_prediction_arrays()),
               _read_predictions, (ValueError,)),
        Target("photo", "photo.png", image_files(), _read_photo, (ValueError,)),
    ]
}  # fmt: skip


def classify(target: Target, blob: bytes) -> tuple[str, str]:
    """Write ``blob`` as the target's file in a fresh folder, read it, classify the outcome.

    Returns:
      (outcome, detail): ``valid``, ``project error`` or ``other``; detail names the exception.
    """
    with tempfile.TemporaryDirectory() as folder:
        target.setup(folder)
        path = os.path.join(folder, target.file_name)
        with open(path, "wb") as f:
            f.write(blob)
        try:
            target.read(folder, path)
        except target.errors as e:
            message = str(e)
            if path in message:
                return PROJECT_ERROR, type(e).__name__
            return OTHER, f"{type(e).__name__} without the file name: {message[:300]}"
        except Exception as e:  # noqa: BLE001 - every other exception is the finding
            return OTHER, f"{type(e).__name__}: {str(e)[:300]}"
        return VALID, ""
