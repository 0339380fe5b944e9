"""ResNet backbone: per-example inference, bfloat16 compute, clear errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hand_jax.models import resnet


@pytest.fixture(scope="module")
def net():
    model = resnet.ResNet(depth=10, width=4)
    images = jax.random.uniform(jax.random.key(0), (3, 32, 32, 3))
    variables = jax.jit(lambda k: model.init(k, images, train=False))(jax.random.key(1, impl="rbg"))
    # Non-trivial running statistics so that inference differs from batch statistics.
    _, updates = jax.jit(lambda v: model.apply(v, images, train=True, mutable=["batch_stats"]))(
        variables
    )
    return model, {**variables, **updates}, images


def test_inference_is_per_example(net):
    model, variables, images = net
    apply = jax.jit(lambda v, x: model.apply(v, x, train=False))
    batched = apply(variables, images)
    for i in range(images.shape[0]):
        single = apply(variables, images[i : i + 1])
        for b, s in zip(batched, single, strict=True):
            np.testing.assert_allclose(b[i], s[0], rtol=2e-4, atol=2e-5)
    assert [f.shape[1] for f in batched] == [8, 4, 2, 1]  # strides 4, 8, 16, 32


def test_training_mode_uses_batch_statistics(net):
    model, variables, images = net
    apply = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"])[0][-1])
    full = apply(variables, images)
    alone = apply(variables, images[:1])
    assert np.max(np.abs(full[0] - alone[0])) > 1e-4  # BN couples the batch in training


def test_bfloat16_compute_keeps_float32_params(net):
    _, variables, images = net
    model16 = resnet.ResNet(depth=10, width=4, dtype=jnp.bfloat16)
    out16 = jax.jit(lambda v, x: model16.apply(v, x, train=False))(variables, images)
    out32 = jax.jit(lambda v, x: resnet.ResNet(10, 4).apply(v, x, train=False))(variables, images)
    assert out16[-1].dtype == jnp.bfloat16
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables["params"]))
    rel = np.linalg.norm(np.float32(out16[-1]) - out32[-1]) / np.linalg.norm(out32[-1])
    assert rel < 0.05


def test_bad_inputs_are_clear_errors():
    images = jnp.zeros((1, 48, 48, 3))
    with pytest.raises(ValueError, match="multiples of 32"):
        resnet.ResNet(depth=10, width=4).init(jax.random.key(0), images, train=False)
    with pytest.raises(ValueError, match="depth=19"):
        resnet.ResNet(depth=19).init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False)
