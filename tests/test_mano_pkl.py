"""Tests of reading official-format MANO pickles without chumpy, and of the npz round trip.

The pickles are written here in the official format: Python-2-style protocol 2, chumpy objects
made with a throwaway ``chumpy`` module (removed from ``sys.modules`` before loading, so the
loader cannot lean on it), and a scipy sparse ``J_regressor`` under the old module path.
"""

import contextlib
import os
import pickle
import re
import subprocess
import sys
import types
import warnings

import numpy as np
import pytest

from hand_jax import mano, mano_pkl, safe_pickle
from tests import mano_reference as ref

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIELDS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "hands_components",
          "hands_mean")  # fmt: skip


def _make_fake_chumpy():
    """Return modules chumpy, chumpy.ch, chumpy.reordering with state-keeping classes."""

    def getstate(self):
        # Like chumpy's Ch.__getstate__: the instance dict without the weak dictionaries.
        return {k: v for k, v in self.__dict__.items() if k not in ("_parents", "_cache")}

    def init(self, **terms):
        self.__dict__.update(terms)
        self._dirty_vars = {"x", "a"}
        self._itr = None
        self._depends_on_deps = {}
        self._make_dense, self._make_sparse = False, False

    ch_mod = types.ModuleType("chumpy.ch")
    reordering = types.ModuleType("chumpy.reordering")
    classes = {}
    for module, name in ((ch_mod, "Ch"), (reordering, "Select"), (reordering, "Reshape")):
        cls = type(name, (object,), {"__init__": init, "__getstate__": getstate})
        cls.__module__, cls.__qualname__ = module.__name__, name
        setattr(module, name, cls)
        classes[name] = cls
    package = types.ModuleType("chumpy")
    package.ch, package.reordering = ch_mod, reordering
    modules = {"chumpy": package, "chumpy.ch": ch_mod, "chumpy.reordering": reordering}
    return modules, classes


@contextlib.contextmanager
def fake_chumpy():
    """The throwaway chumpy modules, importable inside the block only: yields (modules, classes)."""
    modules, classes = _make_fake_chumpy()
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        yield modules, classes
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def write_official_pkl(path, arrays, *, sparse_module="scipy.sparse.csc"):
    """Write ``arrays`` (make_synthetic_arrays layout) as an official-style MANO pickle."""
    data = ref.mano_pkl_dict(arrays)
    with fake_chumpy() as (_, c):
        data["shapedirs"] = c["Ch"](x=data["shapedirs"])
        data["v_template"] = c["Ch"](x=data["v_template"])
        # hands_mean hidden among other numbers and picked out by a Select, as chumpy stores
        # slices.
        pool = np.concatenate([np.arange(10.0), data["hands_mean"], np.arange(5.0)])
        data["hands_mean"] = c["Select"](
            a=c["Ch"](x=pool), idxs=np.arange(10, 55), preferred_shape=(45,)
        )
        flat = np.asarray(data["posedirs"]).reshape(-1)
        data["posedirs"] = c["Reshape"](a=c["Ch"](x=flat), newshape=np.shape(data["posedirs"]))
        blob = pickle.dumps(data, protocol=2)
    blob = blob.replace(b"scipy.sparse._csc\n", sparse_module.encode() + b"\n")
    with open(path, "wb") as f:
        f.write(blob)


@pytest.fixture(scope="module")
def arrays():
    return ref.make_synthetic_arrays(seed=3)


def test_fake_chumpy_is_gone_and_pickle_names_it(tmp_path, arrays):
    path = tmp_path / "MANO_RIGHT.pkl"
    write_official_pkl(path, arrays)
    assert "chumpy" not in sys.modules and "chumpy.ch" not in sys.modules
    blob = path.read_bytes()
    assert b"chumpy.ch\nCh\n" in blob and b"scipy.sparse.csc\ncsc_matrix\n" in blob
    with pytest.raises(ModuleNotFoundError):
        pickle.loads(blob)  # plain pickle needs chumpy; our reader must not


@pytest.mark.parametrize("sparse_module", ["scipy.sparse.csc", "scipy.sparse._csc"])
def test_pkl_loads_to_the_same_arrays(tmp_path, arrays, sparse_module):
    path = tmp_path / "MANO_RIGHT.pkl"
    write_official_pkl(path, arrays, sparse_module=sparse_module)
    got = mano_pkl.mano_arrays_from_pkl(path)
    for key in FIELDS:
        np.testing.assert_array_equal(got[key], arrays[key], err_msg=key)
    np.testing.assert_array_equal(got["faces"], arrays["faces"])
    assert got["parents"] == ref.MANO_PARENTS
    model = mano.load_model(path, tips=arrays["tip_ids"])
    assert model.side == "right" and model.parents == ref.MANO_PARENTS
    np.testing.assert_allclose(model.shapedirs, arrays["shapedirs"], rtol=1e-6)


def test_read_pkl_keeps_strings_and_extra_keys(tmp_path, arrays):
    path = tmp_path / "MANO_RIGHT.pkl"
    write_official_pkl(path, arrays)
    raw = mano_pkl.read_pkl(path)
    assert raw["bs_type"] == "lrotmin" and raw["bs_style"] == "lbs"
    np.testing.assert_allclose(raw["J"], np.asarray(arrays["J_regressor"]) @ arrays["v_template"])


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused(tmp_path, arrays):
    marker = tmp_path / "pwned"
    path = tmp_path / "MANO_RIGHT.pkl"
    data = ref.mano_pkl_dict(arrays)
    data["bs_style"] = _RunsCode(marker)
    path.write_bytes(pickle.dumps(data, protocol=2))
    with pytest.raises(safe_pickle.UnsafePickleError, match="system"):
        mano.load_model(path)
    assert not marker.exists()
    # Sanity check that the payload is live: plain pickle would have run it.
    pickle.loads(path.read_bytes())
    assert marker.exists()


def test_eval_and_unknown_chumpy_classes_are_refused(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(b"cbuiltins\neval\n(S'1+1'\ntR.")
    with pytest.raises(safe_pickle.UnsafePickleError, match="builtins.eval"):
        mano_pkl.read_pkl(path)
    path.write_bytes(b"cchumpy.ch_ops\nadd\n(tR.")
    with pytest.raises(safe_pickle.UnsafePickleError, match="chumpy.ch_ops.add"):
        mano_pkl.read_pkl(path)


@pytest.mark.parametrize(
    "key, value, pattern",
    [
        ("posedirs", None, r"missing key 'posedirs'"),
        ("posedirs", np.zeros((100, 3, 99)), r"'posedirs'.*\(100, 3, 99\), expected \[100, 3, 135"),
        ("weights", np.zeros((100, 15)), r"'weights'.*expected \[100, 16\]"),
        ("kintree_table", np.zeros((2, 15)), r"'kintree_table'.*expected \[2, 16\]"),
        ("f", np.full((4, 3), 100), r"'f' indexes vertices outside"),
    ],
)  # fmt: skip
def test_bad_pkl_errors_name_key_and_shape(tmp_path, arrays, key, value, pattern):
    data = ref.mano_pkl_dict(arrays)
    if value is None:
        del data[key]
    else:
        data[key] = value
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(pickle.dumps(data, protocol=2))
    with pytest.raises(ValueError, match=pattern):
        mano.load_model(path)


def _buggy_left_arrays(arrays):
    """The official left-model defect: a mirrored hand whose shapedirs x was not negated."""
    right = mano.make_model(**ref.model_kwargs(arrays))
    left = mano.mirror_model(right)
    good = {k: np.asarray(getattr(left, k), dtype=np.float64) for k in FIELDS}
    good.update(faces=np.asarray(left.faces), parents=left.parents, tip_ids=left.tip_ids)
    bad = dict(good, shapedirs=good["shapedirs"] * np.array([-1.0, 1.0, 1.0])[:, None])
    return good, bad


@pytest.mark.parametrize("with_right", [False, True])
def test_left_pkl_shapedirs_fixed_only_when_needed(tmp_path, arrays, with_right):
    good, bad = _buggy_left_arrays(arrays)
    if with_right:
        write_official_pkl(tmp_path / "MANO_RIGHT.pkl", arrays)
    for name, left_arrays in (("bad", bad), ("good", good)):
        folder = tmp_path / name
        folder.mkdir()
        if with_right:
            os.link(tmp_path / "MANO_RIGHT.pkl", folder / "MANO_RIGHT.pkl")
        write_official_pkl(folder / "MANO_LEFT.pkl", left_arrays)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = mano.load_model(folder / "MANO_LEFT.pkl", side="left", tips=arrays["tip_ids"])
        assert model.side == "left"
        np.testing.assert_allclose(model.shapedirs, good["shapedirs"], rtol=1e-6, err_msg=name)
        heuristic_warned = any("heuristic" in str(w.message) for w in caught)
        assert heuristic_warned == (name == "bad" and not with_right)


def test_left_defect_detection_direct(arrays):
    good, bad = _buggy_left_arrays(arrays)
    right_sd = np.asarray(arrays["shapedirs"])
    assert mano_pkl.has_left_shapedirs_defect(bad["v_template"], bad["shapedirs"])
    assert not mano_pkl.has_left_shapedirs_defect(good["v_template"], good["shapedirs"])
    assert mano_pkl.has_left_shapedirs_defect(bad["v_template"], bad["shapedirs"], right_sd)
    assert not mano_pkl.has_left_shapedirs_defect(good["v_template"], good["shapedirs"], right_sd)
    bad_model = mano.make_model(**ref.model_kwargs(bad), side="left")
    fixed = mano.fix_left_shapedirs(bad_model)
    np.testing.assert_allclose(fixed.shapedirs, good["shapedirs"], rtol=1e-6)


def test_side_from_filename_and_mismatch(tmp_path, arrays):
    assert mano_pkl.side_from_filename("/x/MANO_LEFT.pkl") == "left"
    assert mano_pkl.side_from_filename("mano_right.pkl") == "right"
    assert mano_pkl.side_from_filename("hand.pkl") is None
    path = tmp_path / "MANO_LEFT.pkl"
    write_official_pkl(path, _buggy_left_arrays(arrays)[0])
    with pytest.raises(ValueError, match="left hand but side='right'"):
        mano.load_model(path, tips=arrays["tip_ids"])


def test_npz_round_trip(tmp_path, arrays):
    model = mano.make_model(**ref.model_kwargs(arrays))
    path = tmp_path / "hand.npz"
    mano.save_npz(model, path, source="synthetic test model")
    with np.load(path) as data:
        assert int(data["format_version"]) == 1 and str(data["source"]) == "synthetic test model"
        assert data["faces"].dtype == np.int32 and data["v_template"].dtype == np.float32
    back = mano.load_model(path)
    for key in (*FIELDS, "faces"):
        np.testing.assert_array_equal(getattr(back, key), getattr(model, key), err_msg=key)
    assert (back.parents, back.tip_ids, back.side) == (model.parents, model.tip_ids, model.side)
    left_path = tmp_path / "left.npz"
    mano.save_npz(mano.mirror_model(model), left_path)
    assert mano.load_model(left_path, side="left").side == "left"
    with pytest.raises(ValueError, match="left hand"):
        mano.load_model(left_path)


def test_npz_errors(tmp_path, arrays):
    model = mano.make_model(**ref.model_kwargs(arrays))
    path = tmp_path / "hand.npz"
    mano.save_npz(model, path)
    with np.load(path) as data:
        d = dict(data)
    np.savez(tmp_path / "missing.npz", **{k: v for k, v in d.items() if k != "weights"})
    with pytest.raises(ValueError, match="missing key 'weights'"):
        mano.load_model(tmp_path / "missing.npz")
    np.savez(tmp_path / "shape.npz", **dict(d, hands_mean=np.zeros(44)))
    with pytest.raises(ValueError, match=r"'hands_mean' has shape \(44,\)"):
        mano.load_model(tmp_path / "shape.npz")
    np.savez(tmp_path / "version.npz", **dict(d, format_version=np.int64(2)))
    with pytest.raises(ValueError, match="format_version"):
        mano.load_model(tmp_path / "version.npz")
    with pytest.raises(FileNotFoundError):
        mano.load_model(tmp_path / "nope.npz")
    (tmp_path / "hand.obj").write_text("")
    with pytest.raises(ValueError, match="extension"):
        mano.load_model(tmp_path / "hand.obj")


def test_default_model_missing_and_present(tmp_path, monkeypatch, arrays):
    monkeypatch.setattr(mano, "DEFAULT_MODEL_PATH", str(tmp_path / "absent.npz"))
    missing = re.escape(
        f"The embedded default hand {tmp_path / 'absent.npz'} is missing. Use MANO instead: "
        "register at https://mano.is.tue.mpg.de, download the models and pass the path of "
        "MANO_RIGHT.pkl (load_model(path) or --mano_path)."
    )
    with pytest.raises(FileNotFoundError, match=f"^{missing}$"):
        mano.load_model()
    model = mano.make_model(**ref.model_kwargs(arrays))
    mano.save_npz(model, tmp_path / "default.npz")
    monkeypatch.setattr(mano, "DEFAULT_MODEL_PATH", str(tmp_path / "default.npz"))
    assert mano.load_model().side == "right"
    left = mano.load_model(side="left")
    np.testing.assert_array_equal(left.v_template, mano.mirror_model(model).v_template)
    assert left.side == "left" and left.tip_ids == model.tip_ids


def test_tip_presets(arrays):
    big = ref.make_synthetic_arrays(seed=1, num_verts=778)
    kwargs = ref.model_kwargs(big)
    for name, ids in mano.TIP_PRESETS.items():
        assert mano.make_model(**dict(kwargs, tip_ids=name)).tip_ids == ids
    assert mano.TIP_PRESETS["manopth"] == (745, 317, 444, 556, 673)
    small = mano.make_model(**ref.model_kwargs(arrays))
    with pytest.raises(ValueError, match="V=778"):
        mano.with_tips(small, "smplx")
    with pytest.raises(ValueError, match="5 vertex ids"):
        mano.with_tips(small, (1, 2, 3))
    assert mano.with_tips(small, (1, 2, 3, 4, 5)).tip_ids == (1, 2, 3, 4, 5)


def test_convert_launcher(tmp_path, arrays):
    pkl = tmp_path / "MANO_RIGHT.pkl"
    write_official_pkl(pkl, arrays)
    out = tmp_path / "mano_right.npz"
    cmd = [sys.executable, "-m", "launch.convert_mano", f"--mano_path={pkl}", f"--out={out}",
           "--tips=" + ",".join(str(i) for i in arrays["tip_ids"])]  # fmt: skip
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    converted = mano.load_model(out)
    np.testing.assert_allclose(converted.posedirs, arrays["posedirs"], rtol=1e-6)
    with np.load(out) as data:
        assert "MANO_RIGHT.pkl" in str(data["source"])
    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    assert again.returncode != 0 and "--overwrite" in again.stderr
    forced = subprocess.run([*cmd, "--overwrite"], cwd=REPO, env=env, capture_output=True,
                            text=True, check=False)  # fmt: skip
    assert forced.returncode == 0, forced.stderr


@pytest.mark.skipif(not os.path.exists(mano.DEFAULT_MODEL_PATH), reason="no embedded default")
def test_embedded_default_hand_loads_and_mirrors():
    right, left = mano.load_model(), mano.load_model(side="left")
    assert (right.side, left.side) == ("right", "left")
    assert right.parents == ref.MANO_PARENTS and len(right.tip_ids) == 5
    np.testing.assert_allclose(np.asarray(right.weights).sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(left.v_template, right.v_template * np.array([-1.0, 1.0, 1.0]))


def test_shuffled_kintree_columns_load_to_the_same_posed_hand(tmp_path):
    """``kintree_table`` is a list of (parent, child) columns in any order: a file whose columns
    are shuffled is the same hand as the ordered one (official files happen to be ordered)."""
    hand = mano.load_model()  # the embedded default hand, in MANO layout
    arrays = {k: np.asarray(getattr(hand, k), np.float64) for k in FIELDS}
    arrays.update(faces=np.asarray(hand.faces), parents=hand.parents, tip_ids=hand.tip_ids)
    data = ref.mano_pkl_dict(arrays)
    rng = np.random.default_rng(0)
    perm = rng.permutation(16)
    while perm[0] == 0 or np.any(perm == np.arange(16)):
        perm = rng.permutation(16)  # no column left in place, the root's not first
    shuffled = dict(data, kintree_table=data["kintree_table"][:, perm])
    paths = {}
    for name, d in (("ordered", data), ("shuffled", shuffled)):
        paths[name] = tmp_path / name / "MANO_RIGHT.pkl"
        paths[name].parent.mkdir()
        paths[name].write_bytes(pickle.dumps(d, protocol=2))
    ordered = mano.load_model(paths["ordered"], tips=hand.tip_ids)
    model = mano.load_model(paths["shuffled"], tips=hand.tip_ids)
    assert model.parents == ordered.parents == ref.MANO_PARENTS
    pose = rng.normal(0, 0.4, 48)
    betas = rng.normal(0, 1.0, hand.shapedirs.shape[-1])
    got = mano.forward(model, np.float32(pose), np.float32(betas))
    want = mano.forward(ordered, np.float32(pose), np.float32(betas))
    np.testing.assert_array_equal(got.verts, want.verts)
    # ... and both are the hand the plain-numpy skinning loop poses with the true tree.
    ref_verts, _, ref_keypoints = ref.mano_reference(arrays, pose, betas)
    np.testing.assert_allclose(got.verts, ref_verts, atol=2e-5)
    np.testing.assert_allclose(got.keypoints, ref_keypoints, atol=2e-5)


@pytest.mark.parametrize(
    "dtype, root", [(np.int64, -1), (np.uint32, 2**32 - 1), (np.uint64, 2**64 - 1)]
)
def test_kintree_root_stored_signed_or_wrapped_unsigned(dtype, root):
    parents = mano.kp.MANO_PARENTS
    table = np.array([[root if p < 0 else p for p in parents], list(range(16))], dtype=dtype)
    got = mano_pkl._parents_from_kintree(table, "k.pkl")
    assert tuple(int(p) for p in got) == parents
    off_by_one = table.copy()
    off_by_one[0, 0] = root - 1 if root > 0 else 16
    with pytest.raises(mano.HandModelError, match="^k.pkl: "):
        mano_pkl._parents_from_kintree(off_by_one, "k.pkl")
