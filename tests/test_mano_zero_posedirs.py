"""The static ``HandModel.zero_posedirs`` flag: kept true to the array by every way of building a
model, and a model without pose correctives gives the same hand with and without the skip."""

import dataclasses
import pickle

import jax
import jax.numpy as jnp
import jax.test_util
import numpy as np
import pytest

from hand_jax import mano
from tests import mano_reference as ref

_forward = jax.jit(mano.forward)


@pytest.fixture(scope="module")
def arrays():
    return ref.make_synthetic_arrays(seed=0)


@pytest.fixture(scope="module")
def zero_arrays(arrays):
    return dict(arrays, posedirs=np.zeros_like(arrays["posedirs"]))


@pytest.fixture(scope="module")
def model(arrays):
    return mano.make_model(**ref.model_kwargs(arrays))


@pytest.fixture(scope="module")
def zero_model(zero_arrays):
    return mano.make_model(**ref.model_kwargs(zero_arrays))


def _params(seed, num_betas=10):
    rng = np.random.default_rng(seed)
    pose = rng.normal(scale=0.6, size=48)
    return pose, rng.normal(size=num_betas), rng.normal(scale=0.1, size=3)


def _reference(model, arrays, pose, betas, transl):
    """The numpy reference on the model's own arrays and the parameters in the model's dtype,
    computed in float64."""
    fields = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights")
    ref_arrays = {k: np.asarray(getattr(model, k), np.float64) for k in fields}
    ref_arrays.update(parents=arrays["parents"], tip_ids=arrays["tip_ids"])
    dtype = model.v_template.dtype
    same = lambda x: np.asarray(x, dtype).astype(np.float64)  # noqa: E731
    return ref.mano_reference(ref_arrays, same(pose), same(betas), same(transl))


def _unskipped(model):
    """The same model pushed through the general path: inside ``jit`` the arrays are traced, so
    the flag given to ``dataclasses.replace`` is kept instead of being recomputed."""

    def forward(posedirs, pose, betas, transl):
        traced = dataclasses.replace(model, posedirs=posedirs, zero_posedirs=False)
        assert not traced.zero_posedirs
        return mano.forward(traced, pose, betas, transl)

    return jax.jit(forward)


def test_flag_follows_the_array_through_every_builder(tmp_path, arrays, zero_arrays, model,
                                                      zero_model):  # fmt: skip
    assert zero_model.zero_posedirs and not model.zero_posedirs
    # The embedded default hand has no pose correctives, right or (mirrored) left.
    assert mano.load_model().zero_posedirs and mano.load_model(side="left").zero_posedirs
    assert mano.mirror_model(zero_model).zero_posedirs
    assert not mano.mirror_model(model).zero_posedirs
    assert not mano.fix_left_shapedirs(mano.mirror_model(model), model).zero_posedirs
    # dataclasses.replace and jax.tree.map rebuild the model from concrete arrays: recomputed.
    assert not dataclasses.replace(zero_model, posedirs=model.posedirs).zero_posedirs
    assert dataclasses.replace(model, posedirs=zero_model.posedirs).zero_posedirs
    assert dataclasses.replace(model, zero_posedirs=True).zero_posedirs is False
    bumped = jax.tree.map(lambda x: x + 1 if x.dtype != jnp.int32 else x, zero_model)
    assert not bumped.zero_posedirs
    assert jax.tree.map(lambda x: x * 0, model).zero_posedirs
    one = np.zeros_like(zero_arrays["posedirs"])
    one[7, 1, 100] = 1e-9
    assert not mano.make_model(**ref.model_kwargs(dict(arrays, posedirs=one))).zero_posedirs
    nan = np.where(one > 0, np.nan, 0.0)
    assert not dataclasses.replace(zero_model, posedirs=jnp.asarray(nan)).zero_posedirs
    # Built by hand from numpy arrays, and read back from the project's npz and a MANO pickle.
    by_hand = mano.HandModel(**{k: np.asarray(getattr(zero_model, k)) for k in mano._ARRAY_FIELDS})
    assert by_hand.zero_posedirs
    for source, expected in ((model, False), (zero_model, True)):
        mano.save_npz(source, tmp_path / "m.npz")
        assert mano.load_model(tmp_path / "m.npz").zero_posedirs is expected
    for source, expected in ((arrays, False), (zero_arrays, True)):
        (tmp_path / "MANO_RIGHT.pkl").write_bytes(
            pickle.dumps(ref.mano_pkl_dict(source), protocol=2)
        )
        loaded = mano.load_model(tmp_path / "MANO_RIGHT.pkl", tips=arrays["tip_ids"])
        assert loaded.zero_posedirs is expected
    # Leaves that are not arrays (eval_shape's ShapeDtypeStructs) keep the flag; a static field
    # is part of the tree structure, so a zero and a nonzero model never share a trace.
    assert jax.eval_shape(lambda m: m, zero_model).zero_posedirs
    assert not jax.eval_shape(lambda m: m, model).zero_posedirs
    assert jax.tree.structure(zero_model) != jax.tree.structure(model)


def test_traced_models_keep_the_flag_they_were_traced_from(model, zero_model):
    seen = []

    def record(m):
        seen.append(m.zero_posedirs)
        return m.v_template

    jax.jit(record)(zero_model)
    jax.jit(record)(model)
    stacked = jax.tree.map(lambda x: jnp.stack([x, x]), zero_model)  # a batch of two models
    jax.vmap(record)(stacked)
    # Differentiating with respect to the arrays of a zero model: traced, the flag is kept.
    jax.grad(lambda p: jnp.sum(record(dataclasses.replace(zero_model, posedirs=p))))(
        zero_model.posedirs
    )
    assert seen == [True, False, True, True]


def test_skip_is_not_emitted_and_correctives_are_applied(model, zero_model):
    """With zero posedirs the compiled forward never reads them; otherwise it does."""
    pose, betas = jnp.zeros(48), jnp.zeros(10)
    posedirs_leaf = mano._ARRAY_FIELDS.index("posedirs")
    for m, used in ((zero_model, False), (model, True)):
        closed = jax.make_jaxpr(mano.forward)(m, pose, betas)
        invar = closed.jaxpr.invars[posedirs_leaf]
        reads = any(invar in eqn.invars for eqn in closed.jaxpr.eqns)
        assert reads is used
        assert closed.jaxpr.invars[posedirs_leaf].aval.shape == m.posedirs.shape


@pytest.mark.parametrize("seed", [0, 1])
def test_nonzero_posedirs_are_applied_and_zero_ones_skipped(arrays, zero_arrays, model, zero_model,
                                                            seed):  # fmt: skip
    pose, betas, transl = _params(seed)
    args = [jnp.asarray(x, jnp.float32) for x in (pose, betas, transl)]
    with_correctives = _forward(model, *args)
    without = _forward(zero_model, *args)
    # The correctives move the hand (by ~1e-3 m here), and each model matches the reference.
    assert np.abs(np.asarray(with_correctives.verts - without.verts)).max() > 1e-4
    for m, a, out in ((model, arrays, with_correctives), (zero_model, zero_arrays, without)):
        verts, joints, keypoints = _reference(m, a, pose, betas, transl)
        np.testing.assert_allclose(out.verts, verts, atol=1e-6, rtol=0)
        np.testing.assert_allclose(out.joints, joints, atol=1e-6, rtol=0)
        np.testing.assert_allclose(out.keypoints, keypoints, atol=1e-6, rtol=0)
    # The zero model through the general path (pose blend product with zeros) gives the same hand.
    general = _unskipped(zero_model)(zero_model.posedirs, *args)
    for a, b in zip(general, without, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-7, rtol=0)


def test_skip_under_vmap_and_gradients_float64(zero_arrays):
    pose, betas, transl = _params(3, num_betas=4)
    with jax.enable_x64(True):
        zero64 = mano.make_model(**ref.model_kwargs(zero_arrays))
        assert zero64.zero_posedirs
        cot = jnp.asarray(np.random.default_rng(0).normal(size=(zero64.num_verts + 21, 3)))

        def loss(forward):
            def f(pose, betas):
                out = forward(pose, betas)
                return jnp.sum(jnp.concatenate([out.verts, out.keypoints]) * cot)

            return f

        skip = loss(lambda p, b: mano.forward(zero64, p, b, jnp.asarray(transl)))
        general_fn = _unskipped(zero64)
        general = loss(lambda p, b: general_fn(zero64.posedirs, p, b, jnp.asarray(transl)))
        args = (jnp.asarray(pose), jnp.asarray(betas))
        jax.test_util.check_grads(jax.jit(skip), args, order=1, modes=("fwd", "rev"),
                                  atol=1e-6, rtol=1e-6)  # fmt: skip
        g_skip = jax.jit(jax.grad(skip, argnums=(0, 1)))(*args)
        g_general = jax.jit(jax.grad(general, argnums=(0, 1)))(*args)
        for a, b in zip(g_skip, g_general, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-12, rtol=0)
        poses = jnp.stack([args[0], -args[0]])
        batched = jax.vmap(mano.forward, in_axes=(None, 0, None))(zero64, poses, args[1])
        single = mano.forward(zero64, poses[1], args[1])
        np.testing.assert_allclose(batched.verts[1], single.verts, atol=1e-12)
        verts, _, _ = _reference(zero64, zero_arrays, pose, betas, np.zeros(3))
        np.testing.assert_allclose(batched.verts[0], verts, atol=1e-12)
