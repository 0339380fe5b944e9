"""Every refusal of the MANO file validation, word for word (``mano_pkl``): the message names
the file, the key as the file spells it, what was found and what was expected. Small arrays and
direct calls (no JAX), so each case is fast enough to run per mutant."""

import pickle
import re
import warnings

import numpy as np
import pytest
import scipy.sparse

from hand_jax import mano_pkl
from hand_jax.mano_pkl import HandModelError
from tests import mano_reference as ref
from tests.test_mano_pkl import fake_chumpy, write_official_pkl

PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)
NAMES = {"faces": "f", "v_template": "vt", "weights": "w", "hands_mean": "hm", "parents": "kt"}


def _arrays(num_verts=4):
    rng = np.random.default_rng(0)
    weights = rng.random((num_verts, 16))
    return {
        "v_template": rng.normal(size=(num_verts, 3)),
        "shapedirs": rng.normal(size=(num_verts, 3, 2)),
        "posedirs": rng.normal(size=(num_verts, 3, 135)),
        "J_regressor": rng.random((16, num_verts)),
        "weights": weights / weights.sum(1, keepdims=True),
        "faces": np.array([[0, 1, 2], [1, 2, 3]]),
        "hands_components": rng.normal(size=(2, 45)),
        "hands_mean": rng.normal(size=45),
    }


def _exact(message, fn, *args, error=HandModelError, **kwargs):
    with pytest.raises(error, match="^" + re.escape(message) + "$"):
        fn(*args, **kwargs)


def _row_weights(row_sum):
    arrays = _arrays()
    arrays["weights"][2] *= row_sum
    return arrays


def _with(**changes):
    return lambda: dict(_arrays(), **changes)


def _nan_shapedirs():
    arrays = _arrays()
    arrays["shapedirs"][0, 0, 0] = np.nan
    arrays["shapedirs"][3, 2, 1] = -np.inf
    return arrays


VALIDATE = [
    (_with(faces=np.array([[0.0, 1.0, 2.0]])),
     "m.npz: key 'f' has dtype float64; expected integer vertex indices"),
    (_with(hands_mean=np.array([None] * 45)),
     "m.npz: key 'hm' has dtype object; expected numbers"),
    (_with(v_template=np.zeros((4, 2))), "m.npz: key 'vt' has shape (4, 2), expected [*, 3]"),
    (_with(shapedirs=np.zeros((4, 3))),
     "m.npz: key 'shapedirs' has shape (4, 3), expected [4, 3, *]"),
    (_with(faces=np.zeros((2, 4), int)), "m.npz: key 'f' has shape (2, 4), expected [*, 3]"),
    (lambda: {k: v[:0] if k in ("v_template", "weights") else v for k, v in _arrays().items()},
     "m.npz: key 'vt' has no vertices"),
    (_nan_shapedirs, "m.npz: key 'shapedirs' has 2 non-finite values (NaN or inf)"),
    (lambda: _row_weights(0.5), "m.npz: key 'w': skinning weights must be >= 0 and each vertex's "
     "row must sum to 1 (within 0.001); vertex 2 sums to 0.5, min weight {min}"),
    (lambda: _row_weights(1.5), "m.npz: key 'w': skinning weights must be >= 0 and each vertex's "
     "row must sum to 1 (within 0.001); vertex 2 sums to 1.5, min weight {min}"),
]  # fmt: skip


@pytest.mark.parametrize("make, message", VALIDATE)
def test_validate_model_arrays_refusals(make, message):
    arrays = make()
    if "{min}" in message:
        message = message.replace("{min}", f"{arrays['weights'].min():.6g}")
    _exact(message, mano_pkl.validate_model_arrays, arrays, PARENTS, "m.npz", names=NAMES)


def test_without_names_the_project_keys_are_used():
    arrays = _arrays()
    _exact("m.npz: key 'v_template' has shape (4, 2), expected [*, 3]",
           mano_pkl.validate_model_arrays, dict(arrays, v_template=np.zeros((4, 2))), PARENTS,
           "m.npz")  # fmt: skip
    bad = (-1, 0, 16, *PARENTS[3:])
    _exact(
        f"m.npz: key 'parents'={bad}: expected -1 for the root (joint 0) and a joint in "
        "[0, 16) for every other joint",
        mano_pkl.validate_model_arrays,
        arrays,
        bad,
        "m.npz",
    )


def test_validate_names_the_parents_by_their_file_key():
    bad = (-1, 0, 16, *PARENTS[3:])
    _exact(f"m.npz: key 'kt'={bad}: expected -1 for the root (joint 0) and a joint in [0, 16) for "
           "every other joint", mano_pkl.validate_model_arrays, _arrays(), bad, "m.npz",
           names=NAMES)  # fmt: skip


def test_weights_within_the_tolerance_are_accepted():
    arrays = _arrays()
    arrays["weights"][1, :2] = [-1e-3, arrays["weights"][1, :2].sum() + 1e-3]  # the limit
    out = mano_pkl.validate_model_arrays(arrays, PARENTS, "m.npz")
    np.testing.assert_array_equal(out["weights"], arrays["weights"])


def test_check_parents_refusals_with_the_default_key():
    _exact("src: key 'parents' must hold 16 integers, got float64 (16,)",
           mano_pkl.check_parents, np.arange(16.0), "src")  # fmt: skip
    _exact("src: key 'parents' must hold 16 integers, got int64 (15,)",
           mano_pkl.check_parents, np.arange(15), "src")  # fmt: skip
    cycle = (-1, 2, 1, *PARENTS[3:])
    _exact(f"src: key 'parents'={cycle}: cycle through joint 1", mano_pkl.check_parents,
           cycle, "src")  # fmt: skip
    assert mano_pkl.check_parents(np.array(PARENTS, np.int8), "s") == PARENTS


def _kintree(parents=PARENTS, children=tuple(range(16)), dtype=np.int64):
    return np.array([np.array(parents) % 2**32, children], dtype)


def test_kintree_refusals():
    parse = mano_pkl._parents_from_kintree
    _exact("p.pkl: key 'kintree_table' has dtype float64; expected integer joint indices",
           parse, _kintree(dtype=np.float64), "p.pkl")  # fmt: skip
    children = (0, 1, 1, *range(3, 16))
    _exact("p.pkl: key 'kintree_table': the second row must list each joint 0..15 once, got "
           f"{list(children)}", parse, _kintree(children=children), "p.pkl")  # fmt: skip
    below = (-1, 0, 1, *PARENTS[3:15], -2)  # -2: out of range, shown as 16
    _exact(f"p.pkl: key 'kintree_table'={(*below[:15], 16)}: expected -1 for the root (joint 0) "
           "and a joint in [0, 16) for every other joint", parse,
           np.array([below, range(16)]), "p.pkl")  # fmt: skip
    cycle = (-1, 2, 1, *PARENTS[3:])
    _exact(f"p.pkl: key 'kintree_table'={cycle}: cycle through joint 1", parse,
           _kintree(cycle), "p.pkl")  # fmt: skip


def _write(path, data, protocol=2):
    with fake_chumpy():
        path.write_bytes(pickle.dumps(data, protocol=protocol))
    return path


def test_read_pkl_refusals(tmp_path):
    path = _write(tmp_path / "list.pkl", [1, 2])
    _exact(f"{path}: expected a pickled dict of MANO arrays, got list", mano_pkl.read_pkl, path)
    path = _write(tmp_path / "none.pkl", {"k": None})
    _exact(f"{path}:k: missing value in the pickled object's state", mano_pkl.read_pkl, path)


def test_an_unresolvable_value_names_the_key_and_the_error_both_cut_short(tmp_path):
    key = "k" * 100
    shape = (12345,) * 40  # numpy's reshape error repeats this shape: over 200 characters
    with fake_chumpy() as (_, classes):
        reshape = classes["Reshape"](a=np.arange(6.0), newshape=shape)
        path = tmp_path / "bad.pkl"
        path.write_bytes(pickle.dumps({key: reshape}, protocol=2))
    try:
        np.reshape(np.arange(6.0), shape)
    except ValueError as e:
        error = str(e)
    assert len(error) > 200
    _exact(f"{path}: key {key[:80]!r}: cannot resolve the pickled value (ValueError: "
           f"{error[:200]})", mano_pkl.read_pkl, path)  # fmt: skip


def test_a_missing_key_is_named(tmp_path):
    data = ref.mano_pkl_dict(ref.make_synthetic_arrays(seed=3))
    del data["weights"]
    path = _write(tmp_path / "MANO_RIGHT.pkl", data)
    _exact(f"{path}: missing key 'weights' (an official MANO pkl has it)",
           mano_pkl.mano_arrays_from_pkl, path)  # fmt: skip


@pytest.mark.parametrize("protocol", [2, 3, 4])  # 3 names builtins.set; 4 has set opcodes
def test_sparse_matrices_sets_and_transposes_of_any_protocol_load(tmp_path, protocol):
    dense = np.array([[0.0, 2.0, 0.0], [1.0, 0.0, 3.0]])
    with fake_chumpy() as (modules, classes):
        transpose = type("transpose", (classes["Reshape"],), {})
        transpose.__module__, transpose.__qualname__ = "chumpy.reordering", "transpose"
        modules["chumpy.reordering"].transpose = transpose
        ch = classes["Ch"](x=dense)
        ch.frozen = frozenset({"x"})  # chumpy keeps name sets in its state: set and frozenset
        data = {
            "csr": scipy.sparse.csr_matrix(dense), "coo": scipy.sparse.coo_matrix(dense),
            "csc": scipy.sparse.csc_matrix(dense), "ch": ch,
            "t": transpose(a=dense, axes=(1, 0)),
        }  # fmt: skip
        path = tmp_path / "m.pkl"
        path.write_bytes(pickle.dumps(data, protocol=protocol))
    out = mano_pkl.read_pkl(path)
    for key in ("csr", "coo", "csc", "ch"):
        np.testing.assert_array_equal(out[key], dense, err_msg=key)
    np.testing.assert_array_equal(out["t"], dense.T)


def _template(offset=(0.0, 0.0, 0.0)):
    """A flat hand tilted in the y-z plane (z falls as y rises), placed at ``offset``."""
    rng = np.random.default_rng(1)
    x, y, noise = rng.normal(size=(3, 60)) * [[3.0], [2.0], [0.1]]
    return np.stack([x, y, -0.5 * y + noise], -1) + offset


def _shapedirs(template, x_sign):
    """A first component that scales the hand about its wrist (the vertex of largest x; x
    mirrored when x_sign < 0), and a second component that would give the opposite verdict."""
    first = (template - _wrist(template)) * [x_sign * 0.02, 0.02, 0.02]
    return np.stack([first, first * [-1.0, 1.0, 1.0]], -1)


def _wrist(template):
    return template[np.argmax(template[:, 0])]


def _with_near_centre_vertices(template, shapedirs, x_sign):
    """Three more vertices, keeping the centre: one a hair off the centre in x, one in y and z,
    each with a contrary value there, and one that balances them and follows the scaling."""
    offsets = np.array([[1e-4, 1.0, 1.0], [1.0, 1e-4, 1e-4]])
    near = template.mean(0) + np.vstack([offsets, -offsets.sum(0)])
    rows = np.zeros((3, 3, 2))
    rows[0, :, 0] = [-x_sign * 1e-2, 0.02, 0.02]
    rows[1, :, 0] = [x_sign * 0.02, -1e-2, -1e-2]
    rows[2, :, 0] = (near[2] - _wrist(template)) * [x_sign * 0.02, 0.02, 0.02]
    rows[:, :, 1] = rows[:, :, 0] * [-1.0, 1.0, 1.0]
    return np.vstack([template, near]), np.concatenate([shapedirs, rows])


@pytest.mark.parametrize("offset", [(0.0, 0.0, 0.0), (40.0, -25.0, 30.0)])
@pytest.mark.parametrize("x_sign, defect", [(1.0, False), (-1.0, True)])
def test_the_scale_heuristic_reads_the_first_component_about_the_centre(offset, x_sign, defect):
    template = _template(offset)
    shapedirs = _shapedirs(template, x_sign)
    assert mano_pkl.has_left_shapedirs_defect(template, shapedirs) == defect
    # Vertices near the centre with contrary values barely move a correlation.
    more = _with_near_centre_vertices(template, shapedirs, x_sign)
    assert mano_pkl.has_left_shapedirs_defect(*more) == defect


def test_the_heuristic_keeps_a_first_component_without_x():
    template = _template()
    shapedirs = _shapedirs(template, 1.0)
    shapedirs[:, 0, 0] = 0.0
    assert not mano_pkl.has_left_shapedirs_defect(template, shapedirs)


def test_with_the_right_model_a_left_x_that_is_neither_copy_nor_mirror_is_kept():
    right = np.zeros((4, 3, 2))
    right[0, 0, 0] = 1.0
    left = np.zeros((4, 3, 2))
    left[1, 0, 0] = 1.0  # orthogonal to the right's: as far from the copy as from the mirror
    assert not mano_pkl.has_left_shapedirs_defect(np.zeros((4, 3)), left, right)


def test_an_unnamed_file_is_a_right_hand_and_the_heuristic_warning(tmp_path, monkeypatch):
    arrays = ref.make_synthetic_arrays(seed=3)
    path = tmp_path / "hand.pkl"
    write_official_pkl(path, arrays)
    assert mano_pkl.load_mano_pkl(path)["side"] == "right"
    assert mano_pkl.load_mano_pkl(path, side="left")["side"] == "left"
    monkeypatch.setattr(mano_pkl, "has_left_shapedirs_defect", lambda *a: True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = mano_pkl.load_mano_pkl(path, side="left")
    (warning,) = caught
    assert str(warning.message) == (
        f"{path}: negating the x component of shapedirs (known MANO_LEFT defect) as detected by "
        "the scale heuristic; put MANO_RIGHT.pkl beside it for a firm check"
    )
    assert warning.filename == __file__  # stacklevel: the caller's line
    np.testing.assert_array_equal(out["shapedirs"][:, 0], -np.asarray(arrays["shapedirs"])[:, 0])
