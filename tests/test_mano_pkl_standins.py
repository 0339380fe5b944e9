"""The stand-ins for chumpy's classes, one at a time: each resolves to what plain numpy computes
from the pickled state, and a missing field is an error naming its key path (no pickle, no JAX:
fast enough to run per mutant)."""

import numpy as np
import pytest

from hand_jax import mano_pkl


def _standin(cls, state):
    obj = cls.__new__(cls)  # as pickle builds it: no __init__, then __setstate__
    obj.__setstate__(state)
    return obj


def test_repr_lists_the_state_keys():
    assert repr(_standin(mano_pkl.ChStandIn, {"x": 1, "a": 2})) == "ChStandIn(keys=['a', 'x'])"
    assert repr(_standin(mano_pkl.SelectStandIn, (1, 2))) == "SelectStandIn(keys=['_state'])"
    assert repr(mano_pkl.ReshapeStandIn()) == "ReshapeStandIn(keys=[])"  # no state set


def test_a_state_that_is_not_a_dict_is_kept_under_one_key():
    obj = _standin(mano_pkl.ChStandIn, [1.0, 2.0])
    assert obj.state == {"_state": [1.0, 2.0]}


def test_select_with_and_without_preferred_shape():
    a = np.arange(24.0).reshape(4, 6)
    idxs = np.array([[5, 0, 7], [23, 2, 2]])
    want = np.array([a.ravel()[i] for i in idxs.ravel()])  # a.ravel()[idxs], one at a time
    plain = _standin(mano_pkl.SelectStandIn, {"a": a, "idxs": idxs})
    np.testing.assert_array_equal(plain.resolve("w"), want.reshape(2, 3))
    shaped = _standin(mano_pkl.SelectStandIn, {"a": a, "idxs": idxs, "preferred_shape": (3, 2)})
    np.testing.assert_array_equal(shaped.resolve("w"), want.reshape(3, 2))
    flat = _standin(mano_pkl.SelectStandIn, {"a": a, "idxs": idxs, "preferred_shape": [6]})
    np.testing.assert_array_equal(flat.resolve("w"), want)


def test_nested_standins_resolve_inside_out():
    a = np.arange(6.0)
    inner = _standin(mano_pkl.ChStandIn, {"x": a})
    reshape = _standin(mano_pkl.ReshapeStandIn, {"a": inner, "newshape": (2, 3)})
    transpose = _standin(mano_pkl.TransposeStandIn, {"a": reshape, "axes": (1, 0)})
    np.testing.assert_array_equal(transpose.resolve("w"), [[0, 3], [1, 4], [2, 5]])
    default_axes = _standin(mano_pkl.TransposeStandIn, {"a": reshape})
    np.testing.assert_array_equal(default_axes.resolve("w"), [[0, 3], [1, 4], [2, 5]])
    cube = np.arange(24.0).reshape(2, 3, 4)
    axes = _standin(mano_pkl.TransposeStandIn, {"a": cube, "axes": (1, 0, 2)})
    want = [[cube[i, j] for i in range(2)] for j in range(3)]  # [j][i][k] = cube[i][j][k]
    np.testing.assert_array_equal(axes.resolve("w"), want)


# The last row and column are empty: a shape inferred from the entries would come out smaller.
DENSE = np.array([[0.0, 2.0, 0.0, 0], [1.5, 0.0, 0.0, 0], [0.0, 0.0, -3.0, 0], [0.0, 4.0, 0.0, 0],
                  [0, 0, 0, 0]])  # fmt: skip
ROWS, COLS = np.nonzero(DENSE)  # row-major order
BY_COL = np.lexsort((ROWS, COLS))  # column-major order


def _indptr(major, n_major):
    """indptr of entries sorted by their ``major`` index (plain counting)."""
    return np.array([np.sum(major < k) for k in range(n_major + 1)])


SPARSE_STATES = [
    # scipy >= 1.8 pickles the shape as ``_shape``, older versions as ``shape``
    (mano_pkl.CscStandIn, "_shape", lambda: dict(
        data=DENSE[ROWS[BY_COL], COLS[BY_COL]], indices=ROWS[BY_COL],
        indptr=_indptr(COLS[BY_COL], 4))),
    (mano_pkl.CsrStandIn, "shape", lambda: dict(
        data=DENSE[ROWS, COLS], indices=COLS, indptr=_indptr(ROWS, 5))),
    (mano_pkl.CooStandIn, "shape", lambda: dict(data=DENSE[ROWS, COLS], row=ROWS, col=COLS)),
    (mano_pkl.CooStandIn, "_shape", lambda: dict(data=DENSE[ROWS, COLS], coords=(ROWS, COLS))),
]  # fmt: skip


@pytest.mark.parametrize("cls, shape_key, state", SPARSE_STATES)
def test_sparse_standins_resolve_to_the_dense_matrix(cls, shape_key, state):
    obj = _standin(cls, state() | {shape_key: (5, 4)})
    got = obj.resolve("J_regressor")
    assert got.shape == (5, 4)
    np.testing.assert_array_equal(got, DENSE)


MISSING = [
    (mano_pkl.ChStandIn, {}, "f.pkl:shapedirs.x"),
    (mano_pkl.ChStandIn, {"x": None}, "f.pkl:shapedirs.x"),
    (mano_pkl.SelectStandIn, {"idxs": np.arange(2)}, "f.pkl:shapedirs.a"),
    (mano_pkl.SelectStandIn, {"a": np.arange(2)}, "f.pkl:shapedirs.idxs"),
    (mano_pkl.ReshapeStandIn, {"newshape": (2,)}, "f.pkl:shapedirs.a"),
    (mano_pkl.TransposeStandIn, {}, "f.pkl:shapedirs.a"),
    (
        mano_pkl.TransposeStandIn,
        {"a": _standin(mano_pkl.ChStandIn, {})},
        "f.pkl:shapedirs.a.x",
    ),  # nested: the whole path
]


@pytest.mark.parametrize("cls, state, where", MISSING)
def test_a_missing_field_names_its_key_path(cls, state, where):
    with pytest.raises(mano_pkl.HandModelError) as err:
        _standin(cls, state).resolve("f.pkl:shapedirs")
    assert str(err.value) == f"{where}: missing value in the pickled object's state"


def test_to_numpy_passes_strings_and_makes_arrays():
    assert mano_pkl.to_numpy("right", "w") == "right"
    assert mano_pkl.to_numpy(b"right", "w") == b"right"
    np.testing.assert_array_equal(mano_pkl.to_numpy([1, 2], "w"), np.array([1, 2]))
