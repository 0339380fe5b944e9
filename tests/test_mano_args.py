"""mano.make_model and fingertip ids: each bad argument gets its exact message (fast, numpy)."""

import dataclasses
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hand_jax import mano
from tests import mano_reference as ref


@pytest.fixture(scope="module")
def kwargs():
    return ref.model_kwargs(ref.make_synthetic_arrays(seed=0, num_verts=100))


def _raises(message, fn, *args, **kw):
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        fn(*args, **kw)


def test_tip_ids_in_range_and_presets_only_on_mano_topology():
    assert mano.resolve_tips((0, 1, 2, 3, 99), 100) == (0, 1, 2, 3, 99)
    assert mano.resolve_tips(np.array([[5, 4, 3, 2, 1]]), 100) == (5, 4, 3, 2, 1)
    assert mano.resolve_tips("smplx", 778) == (744, 320, 443, 554, 671)
    _raises("tips=(0, 1, 2, 3, 100): expected 5 vertex ids in [0, 100)",
            mano.resolve_tips, (0, 1, 2, 3, 100), 100)  # fmt: skip
    _raises("tips=(-1, 1, 2, 3, 4): expected 5 vertex ids in [0, 100)",
            mano.resolve_tips, (-1, 1, 2, 3, 4), 100)  # fmt: skip
    _raises("tips=(1, 2, 3): expected 5 vertex ids in [0, 100)", mano.resolve_tips, (1, 2, 3), 100)
    _raises("tips=(1, 2, 3, 4, 5, 6): expected 5 vertex ids in [0, 100)",
            mano.resolve_tips, (1, 2, 3, 4, 5, 6), 100)  # fmt: skip
    _raises("tips='nope': expected one of ('manopth', 'smplx', 'freihand') or 5 vertex ids",
            mano.resolve_tips, "nope", 778)  # fmt: skip
    _raises("tips='smplx': presets index the MANO topology (V=778), this model has V=100; pass 5 "
            "vertex ids instead", mano.resolve_tips, "smplx", 100)  # fmt: skip


def test_make_model_refuses_missing_unknown_side_and_parents(kwargs):
    no_weights = {k: v for k, v in kwargs.items() if k != "weights"}
    _raises("make_model: missing ['weights'], unknown []", mano.make_model, **no_weights)
    _raises("make_model: missing [], unknown ['foo']", mano.make_model, **kwargs, foo=1)
    _raises(
        "side='up': expected one of ('right', 'left')", mano.make_model, **kwargs | {"side": "up"}
    )
    short = tuple(kwargs["parents"])[:15]
    _raises(f"parents={short}: expected 16 entries", mano.make_model, **kwargs | {"parents": short})
    cycle = (1, 0, *tuple(kwargs["parents"])[2:])
    with pytest.raises(ValueError, match="cycle through joint"):
        mano.make_model(**kwargs | {"parents": cycle})


def test_make_model_dtypes_and_values(kwargs):
    model = mano.make_model(**kwargs | {"side": "left"})
    assert model.side == "left" and model.tip_ids == tuple(kwargs["tip_ids"])
    assert model.parents == tuple(int(p) for p in kwargs["parents"])
    assert model.faces.dtype == jnp.int32
    np.testing.assert_array_equal(model.faces, kwargs["faces"])
    assert model.v_template.dtype == jnp.zeros(()).dtype  # the default float
    np.testing.assert_allclose(model.v_template, kwargs["v_template"], rtol=1e-6)
    np.testing.assert_allclose(model.weights, kwargs["weights"], rtol=1e-6)
    assert mano.with_tips(model, (1, 2, 3, 4, 5)).tip_ids == (1, 2, 3, 4, 5)


def test_published_constants():
    # Fingertip vertex ids as published by manopth, smplx and the FreiHAND annotation.
    assert mano.TIP_PRESETS == {
        "manopth": (745, 317, 444, 556, 673),
        "smplx": (744, 320, 443, 554, 671),
        "freihand": (744, 320, 443, 555, 672),
    }
    assert mano.DEFAULT_TIPS == "manopth" and mano.SIDES == ("right", "left")
    assert mano.NUM_POSE_FEATURES == 135 and mano.MANO_NUM_VERTS == 778  # 15 joints x 9
    assert os.path.basename(mano.DEFAULT_MODEL_PATH) == "default_hand_right.npz"
    assert os.path.isfile(mano.DEFAULT_MODEL_PATH)


def test_hand_model_defaults_and_immutability(kwargs):
    arrays = {k: v for k, v in kwargs.items() if k not in ("parents", "tip_ids")}
    model = mano.HandModel(**arrays)
    assert model.parents == (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)  # MANO order
    assert model.tip_ids == (745, 317, 444, 556, 673) and model.side == "right"
    assert model.num_verts == 100 and model.num_betas == kwargs["shapedirs"].shape[-1]
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.side = "left"


def test_wrong_shapes_and_too_many_betas_are_named(kwargs):
    bad = kwargs | {"weights": kwargs["weights"][:, :15]}
    _raises("make_model: key 'weights' has shape (100, 15), expected [100, 16]",
            mano.make_model, **bad)  # fmt: skip
    model = mano.make_model(**kwargs)
    betas = jnp.zeros(model.num_betas + 1)
    _raises(f"betas: got {model.num_betas + 1} coefficients, the model has {model.num_betas}",
            mano.forward, model, jnp.zeros(48), betas)  # fmt: skip


def test_outputs_take_the_dtype_of_the_inputs(kwargs):
    # Traced abstractly (jax.eval_shape): dtypes propagate exactly as in a real call.
    with jax.enable_x64(True):
        model = mano.make_model(**kwargs)  # float64 arrays
        for dtype in (jnp.float32, jnp.float64):
            args = (jnp.full(48, 0.1, dtype), jnp.zeros(3, dtype))
            out = jax.eval_shape(mano.forward, model, *args)
            assert out.verts.dtype == out.joints.dtype == out.keypoints.dtype == dtype
        rotmats = jnp.tile(jnp.eye(3, dtype=jnp.int32), (16, 1, 1))  # integer input: default float
        out = jax.eval_shape(mano.forward_rotmats, model, rotmats, jnp.zeros(3, jnp.int32))
        assert out.verts.dtype == jnp.float64


def test_pca_to_pose_against_numpy_and_its_limits(kwargs):
    kwargs = kwargs | {"hands_components": kwargs["hands_components"][:10]}
    model = mano.make_model(**kwargs)
    c = model.hands_components.shape[0]
    assert c == 10  # fewer than 45, so that a check of the wrong axis would let c + 1 through
    coeffs = np.linspace(-1.0, 1.0, 4)
    comps, mean = np.asarray(kwargs["hands_components"]), np.asarray(kwargs["hands_mean"])
    flat = mano.pca_to_pose(model, jnp.asarray(coeffs, jnp.float32), flat_hand_mean=True)
    np.testing.assert_allclose(flat, coeffs @ comps[:4], rtol=1e-5, atol=1e-6)
    relaxed = mano.pca_to_pose(model, jnp.asarray(coeffs, jnp.float32), flat_hand_mean=False)
    np.testing.assert_allclose(relaxed, coeffs @ comps[:4] + mean, rtol=1e-5, atol=1e-6)
    _raises(f"coeffs: got {c + 1}, the model has {c}",
            mano.pca_to_pose, model, jnp.zeros(c + 1), flat_hand_mean=True)  # fmt: skip
    with jax.enable_x64(True):
        model64 = mano.make_model(**kwargs)
        out = mano.pca_to_pose(model64, jnp.zeros(3, jnp.float32), flat_hand_mean=False)
        assert out.dtype == jnp.float32
        assert (
            mano.pca_to_pose(model64, jnp.zeros(3, jnp.int32), flat_hand_mean=True).dtype
            == jnp.float64
        )


def test_mirror_pose_signs_and_refusal():
    pose = jnp.arange(1.0, 7.0)
    np.testing.assert_array_equal(mano.mirror_pose(pose), [1, -2, -3, 4, -5, -6])
    _raises("pose: last axis 47 is not a multiple of 3", mano.mirror_pose, jnp.zeros(47))
    _raises("pose: last axis 5 is not a multiple of 3", mano.mirror_pose, jnp.zeros((2, 5)))


def test_load_model_refusals_and_the_default_hand_sides(tmp_path):
    _raises("side='up': expected one of ('right', 'left')", mano.load_model, side="up")
    missing = tmp_path / "none.npz"
    message = f"{missing}: no such hand model file (expected a MANO .pkl or .npz)"
    with pytest.raises(FileNotFoundError, match="^" + re.escape(message) + "$"):
        mano.load_model(missing)
    odd = tmp_path / "hand.obj"
    odd.write_text("v 0 0 0\n")
    _raises(f"{odd}: unknown extension '.obj', expected .pkl or .npz", mano.load_model, odd)
    right, left = mano.load_model(), mano.load_model(side="left")
    assert right.side == "right" and left.side == "left"
    np.testing.assert_allclose(left.v_template[:, 0], -right.v_template[:, 0])


def _save(tmp_path, model, name="hand.npz", **change):
    path = tmp_path / name
    mano.save_npz(model, path)
    with np.load(path) as f:
        data = {k: f[k] for k in f.files}
    np.savez(path, **{k: v for k, v in (data | change).items() if v is not None})
    return path


def test_npz_loader_messages_are_exact(tmp_path, kwargs):
    model = mano.make_model(**kwargs)
    path = _save(tmp_path, model)
    with np.load(path) as f:
        assert str(f["source"]) == "unspecified"  # the default provenance line
    assert mano.load_model(path).side == "right"
    _raises(f"{path} holds a right hand but side='left' was requested; pass side='right' (or "
            "mirror_model the loaded model)", mano.load_model, path, side="left")  # fmt: skip
    path = _save(tmp_path, model, "v2.npz", format_version=np.int64(2))
    _raises(f"{path}: format_version 2, expected 1", mano.load_model, path)
    path = _save(tmp_path, model, "nofaces.npz", faces=None)
    _raises(f"{path}: missing key 'faces' (see BUILD.md for the npz layout)", mano.load_model, path)
    path = _save(tmp_path, model, "tips.npz", tip_ids=np.array([0, 1, 2, 3, 100], np.int32))
    _raises(f"{path}: tips=(0, 1, 2, 3, 100): expected 5 vertex ids in [0, 100)",
            mano.load_model, path)  # fmt: skip


def test_pkl_loader_wraps_model_errors_with_the_path(tmp_path, kwargs):
    import pickle

    arrays = ref.make_synthetic_arrays(seed=0, num_verts=100)
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(pickle.dumps(ref.mano_pkl_dict(arrays), protocol=2))
    _raises(f"{path}: tips=(0, 1, 2, 3, 100): expected 5 vertex ids in [0, 100)",
            mano.load_model, path, tips=(0, 1, 2, 3, 100))  # fmt: skip


def test_fix_left_shapedirs_uses_the_right_model_when_given(kwargs):
    # A first shape component that scales the centred template: the heuristic sees no defect.
    v = np.asarray(kwargs["v_template"], np.float64)
    shapedirs = np.array(kwargs["shapedirs"], np.float64)
    shapedirs[:, :, 0] = v - v.mean(0)
    left = mano.make_model(**kwargs | {"shapedirs": shapedirs, "side": "left"})
    assert mano.fix_left_shapedirs(left) is left
    # The same x components as the right model's: the comparison with it sees the defect.
    fixed = mano.fix_left_shapedirs(left, right=left)
    np.testing.assert_allclose(fixed.shapedirs[:, 0], -shapedirs[:, 0], rtol=1e-6)
    np.testing.assert_allclose(fixed.shapedirs[:, 1:], shapedirs[:, 1:], rtol=1e-6)
