"""fE3D iterative regressor: residual iterations unrolled by hand, examples independent."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hand_jax.models import regressor

B, K, D, T = 3, 21, 57, 3


@pytest.fixture(scope="module")
def setup():
    keys = jax.random.split(jax.random.key(0), 6)
    inputs = (
        jax.random.normal(keys[0], (B, 8, 8, 6)),  # features
        jax.random.uniform(keys[1], (B, 8, 8, K)),  # heatmaps
        jax.random.uniform(keys[2], (B, 8, 8)),  # mask probability
        jax.random.uniform(keys[3], (B, K, 2), minval=-1, maxval=1),  # keypoints, ndc
        jax.random.uniform(keys[4], (B, K)),  # confidence
        jax.random.normal(keys[5], (D,)),  # h_init
        jax.random.uniform(keys[5], (D,), minval=0.1, maxval=2.0),  # h_scale
    )
    module = regressor.IterativeRegressor(num_iterations=T, hidden=16, conv_width=8)
    params = jax.jit(module.init)(jax.random.key(1, impl="rbg"), *inputs)["params"]
    # The output layers start at zero: give them random weights so that every iteration matters.
    params = jax.tree_util.tree_map_with_path(
        lambda path, x: (
            0.5 * jax.random.normal(jax.random.key(x.size), x.shape)
            if "out" in jax.tree_util.keystr(path)
            else x
        ),
        params,
    )
    return module, params, inputs


def test_iterations_unrolled_by_hand(setup):
    module, params, inputs = setup
    features, heatmaps, mask, kp, conf, h0, scale = inputs
    j2ds, hs = jax.jit(module.apply)({"params": params}, *inputs)
    context = regressor.ContextEncoder(8, 16).apply(
        {"params": params["context"]}, features, heatmaps, mask
    )
    refine = regressor.ResidualMLP(16, K * 2)
    mesh = regressor.ResidualMLP(16, D)
    j2d, z = np.asarray(kp), np.zeros((B, D), np.float32)
    for t in range(T):
        x = jnp.concatenate([context, j2d.reshape(B, -1), conf, z], -1)
        step = refine.apply({"params": params["refiner"]}, x).reshape(B, K, 2)
        j2d = j2d + regressor.REFINE_SCALE * step
        z = z + mesh.apply({"params": params["regressor"]}, jnp.concatenate(
            [context, j2d.reshape(B, -1), z], -1
        ))  # fmt: skip
        h = np.asarray(h0) + np.asarray(scale) * z
        np.testing.assert_allclose(j2ds[t], j2d, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(hs[t], h, rtol=1e-4, atol=1e-5)
    assert np.max(np.abs(np.diff(np.asarray(hs), axis=0))) > 1e-3  # iterations do move h


def test_starts_at_the_initial_estimate_when_outputs_are_zero(setup):
    module, params, inputs = setup
    zeroed = jax.tree_util.tree_map_with_path(
        lambda path, x: x * 0.0 if "out" in jax.tree_util.keystr(path) else x, params
    )
    j2ds, hs = module.apply({"params": zeroed}, *inputs)
    np.testing.assert_array_equal(hs, np.broadcast_to(inputs[5], (T, B, D)))
    np.testing.assert_array_equal(j2ds, np.broadcast_to(inputs[3], (T, B, K, 2)))


def test_examples_are_independent(setup):
    module, params, inputs = setup
    apply = jax.jit(module.apply)
    j2ds, hs = apply({"params": params}, *inputs)
    for i in range(B):
        one = [x[i : i + 1] for x in inputs[:5]] + list(inputs[5:])
        j2d_i, h_i = apply({"params": params}, *one)
        np.testing.assert_allclose(h_i[:, 0], hs[:, i], rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(j2d_i[:, 0], j2ds[:, i], rtol=1e-3, atol=1e-3)
