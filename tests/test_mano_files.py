"""Malformed hand model files: one validation for the npz and pkl paths, errors naming file and key.

Each case corrupts one field of a valid synthetic model and writes it both as the project's npz
and as an official-style MANO pickle; the loader must refuse it with a ``HandModelError`` that
names the file and the field (before this, an npz with such fields loaded and rendered).
"""

import pickle
import zipfile

import numpy as np
import pytest

from hand_jax import mano, mano_pkl, safe_pickle
from tests import mano_reference as ref

V = 100


@pytest.fixture(scope="module")
def arrays():
    return ref.make_synthetic_arrays(seed=0, num_verts=V)


def _npz_dict(arrays):
    out = {k: np.asarray(v) for k, v in ref.model_kwargs(arrays).items()}
    out.update(format_version=np.int64(1), side=np.str_("right"), source=np.str_("test"),
               parents=np.asarray(arrays["parents"], np.int32),
               tip_ids=np.asarray(arrays["tip_ids"], np.int32))  # fmt: skip
    return out


def _write_npz(path, arrays, field, value):
    data = _npz_dict(arrays)
    data[field] = value
    np.savez(path, **data)  # allow_pickle: object arrays are written as pickles
    return path


def _write_pkl(path, arrays, field, value):
    data = ref.mano_pkl_dict(arrays)
    if field == "parents":
        field = "kintree_table"
        value = np.stack([np.asarray(value) % (2**32), np.arange(16)]).astype(np.int64)
    data["f" if field == "faces" else field] = value
    path.write_bytes(pickle.dumps(data, protocol=2))
    return path


def _nan_template(a):
    return np.full_like(a["v_template"], np.nan)


def _weights_off(a):
    return a["weights"] * 1.2


def _negative_weight(a):
    w = a["weights"].copy()
    w[3, :2] = [-0.5, w[3, 0] + w[3, 1] + 0.5]
    return w


def _cycle(a):
    return (-1, 2, 1, *a["parents"][3:])  # joints 1 and 2 each other's parent


BAD_FIELDS = [
    ("faces", lambda a: a["faces"].astype(np.float64) + 0.5, r"'(faces|f)' has dtype float64"),
    ("faces", lambda a: np.where(a["faces"] == 0, -1, a["faces"]).astype(np.int32),
     r"'(faces|f)' indexes vertices outside \[0, 100\): min -1"),
    ("faces", lambda a: a["faces"] + 1, r"'(faces|f)' indexes vertices outside .* max 100"),
    ("faces", lambda a: np.zeros((0, 3), np.int32), r"'(faces|f)' has no faces"),
    ("v_template", _nan_template, r"'v_template' has 300 non-finite values"),
    ("posedirs", lambda a: np.where(a["posedirs"] > 0.005, np.inf, a["posedirs"]),
     r"'posedirs' has \d+ non-finite"),
    ("weights", _weights_off, r"'weights': skinning weights .* sum to 1 .* sums to 1.2"),
    ("weights", _negative_weight, r"'weights': skinning weights must be >= 0 .* min weight -0.5"),
    ("J_regressor", lambda a: a["J_regressor"].astype(np.complex128), r"dtype complex128"),
    ("hands_mean", lambda a: np.array(["x"] * 45), r"'hands_mean' has dtype <U1"),
    ("parents", _cycle, r"cycle through joint"),
    ("parents", lambda a: (0, *a["parents"][1:]), r"expected -1 for the root"),
    ("parents", lambda a: (-1, -1, *a["parents"][2:]), r"expected -1 for the root"),
    ("parents", lambda a: (-1, 99, *a["parents"][2:]), r"expected -1 for the root"),
]  # fmt: skip


@pytest.mark.parametrize("kind", ["npz", "pkl"])
@pytest.mark.parametrize("field, make, match", BAD_FIELDS)
def test_malformed_field_names_file_and_field(tmp_path, arrays, kind, field, make, match):
    path = tmp_path / f"MANO_RIGHT.{kind}"
    value = make(arrays)
    if field == "parents" and kind == "npz":
        value = np.asarray(value, np.int32)
    (_write_npz if kind == "npz" else _write_pkl)(path, arrays, field, value)
    with pytest.raises(mano.HandModelError, match=match) as info:
        mano.load_model(path, tips=arrays["tip_ids"])
    assert str(info.value).startswith(f"{path}: ")  # the file first, then what is wrong


def test_valid_files_still_load(tmp_path, arrays):
    for kind, write in (("npz", _write_npz), ("pkl", _write_pkl)):
        path = write(tmp_path / f"MANO_RIGHT.{kind}", arrays, "faces", arrays["faces"])
        model = mano.load_model(path, tips=arrays["tip_ids"])
        np.testing.assert_allclose(model.weights.sum(1), 1.0, atol=1e-6)


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("weights", np.array([{"a": 1}] * V, object), r"key 'weights' is not a readable array"),
        ("format_version", np.str_("one"), r"'format_version' must be an integer scalar"),
        ("format_version", np.array([1, 1]), r"'format_version' must be an integer scalar"),
        ("format_version", np.float64(1.0), r"'format_version' must be an integer scalar"),
        ("side", np.str_("up"), r"key 'side' is 'up'"),
        ("side", np.int64(3), r"key 'side' must be one of"),
        ("tip_ids", np.array([1.5, 2, 3, 4, 5]), r"'tip_ids' has dtype float64"),
        ("parents", np.zeros(16, np.float32), r"'parents' must hold 16 integers"),
    ],
)  # fmt: skip
def test_npz_only_fields(tmp_path, arrays, field, value, match):
    path = _write_npz(tmp_path / "hand.npz", arrays, field, value)
    with pytest.raises(mano.HandModelError, match=match) as info:
        mano.load_model(path)
    assert str(info.value).startswith(f"{path}: ")  # the file first, then what is wrong


def test_truncated_and_non_npz_files_name_the_file(tmp_path, arrays):
    good = _write_npz(tmp_path / "good.npz", arrays, "faces", arrays["faces"])
    blob = good.read_bytes()
    cases = {
        "truncated.npz": blob[: len(blob) // 2],  # no central directory: BadZipFile
        "empty.npz": b"",  # EOFError
        "text.npz": b"this is not an archive",  # pickled data refused
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(mano.HandModelError, match="not a readable npz of a hand model") as info:
            mano.load_model(tmp_path / name)
        assert name in str(info.value)
    np.save(tmp_path / "single.npy", np.zeros(3))
    (tmp_path / "single.npz").write_bytes((tmp_path / "single.npy").read_bytes())
    with pytest.raises(mano.HandModelError, match="single .npy array"):
        mano.load_model(tmp_path / "single.npz")


def test_corrupt_member_names_file_and_key(tmp_path, arrays):
    path = tmp_path / "hand.npz"
    np.savez_compressed(path, **_npz_dict(arrays))
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("weights.npy")
    blob = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + 40
    blob[start : start + 64] = bytes(64)  # corrupt the deflate stream of one member
    path.write_bytes(bytes(blob))
    with pytest.raises(mano.HandModelError, match=r"hand.npz: key 'weights' is not a readable"):
        mano.load_model(path)


@pytest.mark.parametrize(
    "kintree, match",
    [
        (np.stack([np.arange(16) - 1, np.zeros(16)]).astype(np.int64), r"each joint 0..15 once"),
        (np.zeros((2, 16)), r"'kintree_table' has dtype float64"),
        (np.stack([np.full(16, 2**40), np.arange(16)]).astype(np.int64), r"expected -1 for"),
    ],
)
def test_bad_kintree(tmp_path, arrays, kintree, match):
    data = ref.mano_pkl_dict(arrays)
    data["kintree_table"] = kintree
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(pickle.dumps(data, protocol=2))
    with pytest.raises(mano.HandModelError, match=match):
        mano.load_model(path, tips=arrays["tip_ids"])


def test_unresolvable_stand_in_names_file_and_key(tmp_path, arrays):
    # A chumpy Select whose indices run past its array: a raw IndexError before.
    data = ref.mano_pkl_dict(arrays)
    select = mano_pkl.SelectStandIn()
    select.__dict__.update(a=np.zeros(3), idxs=np.arange(10))  # pickled as its state
    data["hands_mean"] = select
    path = tmp_path / "MANO_RIGHT.pkl"
    blob = pickle.dumps(data, protocol=2).replace(
        b"hand_jax.mano_pkl\nSelectStandIn", b"chumpy.reordering\nSelect"
    )
    assert b"chumpy.reordering\nSelect" in blob
    path.write_bytes(blob)
    with pytest.raises(mano.HandModelError, match=r"MANO_RIGHT.pkl: key 'hands_mean': cannot"):
        mano.load_model(path, tips=arrays["tip_ids"])


def test_malformed_pickle_is_a_pickle_read_error(tmp_path, arrays):
    path = tmp_path / "MANO_RIGHT.pkl"
    blob = pickle.dumps(ref.mano_pkl_dict(arrays), protocol=2)
    path.write_bytes(blob[: len(blob) // 3])
    with pytest.raises(safe_pickle.PickleReadError, match="MANO_RIGHT.pkl: cannot unpickle"):
        mano.load_model(path)


def test_an_unused_huge_member_of_a_hand_model_npz_is_never_read(tmp_path):
    """A 400 MB member beside the model's own keys is not decompressed."""
    import tracemalloc

    from tests.npz_helpers import write_npz

    plain = tmp_path / "plain.npz"
    mano.save_npz(mano.load_model(), plain)
    with np.load(plain) as f:
        members = {k: f[k] for k in f.files}
    forged = tmp_path / "forged.npz"
    write_npz(forged, {**members, "extra": ("zeros", "<f4", (100_000_000,))})
    tracemalloc.start()
    try:
        model = mano.load_model(str(forged))
        peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    assert model.num_verts == mano.load_model().num_verts
    assert peak_mb < 200, peak_mb  # numpy's allocations are traced: reading it would cost 400
