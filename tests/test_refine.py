"""Tests of batch test-time refinement (hand_jax/refine/) on the embedded default hand."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from hand_jax import mano, refine
from hand_jax.params import HandParams, default_params, hand_forward_3d, screen_hand
from hand_jax.refine import io as refine_io

SIZE = 48


@pytest.fixture(scope="module")
def model():
    return mano.load_model()


@pytest.fixture(scope="module")
def problems(model):
    return refine_io.synthetic_problems(jax.random.key(0), model, num=4, image_size=SIZE)


@functools.cache
def _refine_fn(num_steps, lr=0.1):
    return refine.make_refine_fn(
        mano.load_model(), num_steps=num_steps, image_size=SIZE, optimizer=optax.adam(lr)
    )


def _kp_error(model, params, evidence):
    def kp(p, K):
        return screen_hand(model, p, image_size=SIZE, K=K)[2]

    in_axes = (0, None if evidence.K is None else 0)
    kp2d = jax.vmap(kp, in_axes=in_axes)(params, evidence.K)
    return np.asarray(jnp.linalg.norm(kp2d - evidence.keypoints_2d, axis=-1).mean(-1))


def _iou(model, params, evidence):
    alpha = jax.vmap(lambda p: refine.render_evidence(model, p, image_size=SIZE).mask)(params)
    a, b = np.asarray(alpha) > 0.5, np.asarray(evidence.mask) > 0.5
    return (a & b).sum((1, 2)) / np.maximum((a | b).sum((1, 2)), 1)


def _kp3d_error(model, params, gt):
    f = jax.vmap(lambda p: hand_forward_3d(model, p)[1])
    return float(jnp.linalg.norm(f(params) - f(gt), axis=-1).mean())


def test_round_trip_with_exact_evidence(model, problems):
    gt, init, evidence = problems
    out = _refine_fn(200)(init, evidence)
    before, after = _kp_error(model, init, evidence), _kp_error(model, out.best_params, evidence)
    assert np.all(after <= 0.2 * before), (before, after)
    assert np.all(_iou(model, out.best_params, evidence) >= 0.9)
    e0, e1 = _kp3d_error(model, init, gt), _kp3d_error(model, out.best_params, gt)
    print(f"root-relative 3D keypoint error: {1e3 * e0:.2f} mm -> {1e3 * e1:.2f} mm")
    assert e1 < e0
    assert out.losses.shape == (4, 200)
    losses = np.asarray(out.losses)
    assert np.all(losses[:, -20:].mean(1) < losses[:, :20].mean(1))
    assert np.all(np.asarray(out.best_loss) <= losses.min(1) + 1e-6)


def test_batch_equals_each_example_alone(model, problems):
    _, init, evidence = problems
    fn = _refine_fn(10)
    batched = fn(init, evidence)
    for i in range(init.cam.shape[0]):
        one = fn(*jax.tree.map(lambda x: x[i : i + 1], (init, evidence)))  # noqa: B023
        np.testing.assert_allclose(one.losses[0], batched.losses[i], rtol=2e-4, atol=1e-6)
        for a, b in zip(one.best_params, batched.best_params, strict=True):
            np.testing.assert_allclose(a[0], b[i], rtol=2e-4, atol=2e-5)


def test_compiles_once_for_repeated_calls(model, problems):
    _, init, evidence = problems
    fn = refine.make_refine_fn(model, num_steps=3, image_size=SIZE)
    fn(init, evidence)
    shifted = evidence._replace(keypoints_2d=evidence.keypoints_2d + 1.0)
    fn(init, shifted)
    fn(jax.tree.map(lambda x: x * 1.01, init), evidence)
    assert fn.compiled._cache_size() == 1


def test_energy_terms_match_numpy(model, problems):
    gt, init, evidence = problems
    p0 = jax.tree.map(lambda x: x[0], init)
    ev0 = jax.tree.map(lambda x: x[0], evidence)
    terms = refine.energy_terms(model, p0, ev0, p0, image_size=SIZE)
    kp2d = np.asarray(refine.forward(model, p0, image_size=SIZE)[2])
    kp_expected = np.sum(np.sum((kp2d - np.asarray(ev0.keypoints_2d)) ** 2, -1)) / SIZE**2
    np.testing.assert_allclose(terms["keypoints"], kp_expected, rtol=1e-5)
    np.testing.assert_allclose(terms["proximity"], 0.0, atol=1e-12)
    np.testing.assert_allclose(terms["shape"], np.sum(np.asarray(p0.betas) ** 2), rtol=1e-6)


def test_degenerate_evidence_gives_finite_outputs(model, problems):
    _, init, evidence = problems
    nan_kp = evidence.keypoints_2d.at[:, 3].set(jnp.nan)
    cases = [
        evidence._replace(confidence=jnp.zeros_like(evidence.confidence)),
        evidence._replace(mask=jnp.zeros_like(evidence.mask)),
        evidence._replace(keypoints_2d=nan_kp, mask=evidence.mask.at[:, 0, 0].set(jnp.inf)),
    ]
    fn = _refine_fn(10)
    for ev in cases:
        out = fn(init, ev)
        for leaf in jax.tree.leaves(out):
            assert np.all(np.isfinite(np.asarray(leaf)))


def test_non_finite_initial_parameters_are_rejected(problems):
    _, init, evidence = problems
    bad = init._replace(betas=init.betas.at[2, 0].set(jnp.nan))
    with pytest.raises(ValueError, match=r"init_params.*betas.*\[2\]"):
        _refine_fn(10)(bad, evidence)


def test_unbatched_input_is_a_clear_error(problems):
    _, init, evidence = problems
    one = jax.tree.map(lambda x: x[0], (init, evidence))
    with pytest.raises(ValueError, match="batch"):
        _refine_fn(10)(*one)


def test_default_params_frame_the_hand(model):
    p = default_params(model)
    assert isinstance(p, HandParams)
    kp2d = np.asarray(refine.forward(model, p, image_size=SIZE)[2])
    assert kp2d.min() >= 0.0 and kp2d.max() <= SIZE


def test_perspective_variant_round_trip(model):
    f = 1.5 * SIZE
    K = np.array([[f, 0, SIZE / 2], [0, f, SIZE / 2], [0, 0, 1]], np.float32)
    gt, init, evidence = refine_io.synthetic_problems(
        jax.random.key(7), model, num=2, image_size=SIZE, K=K
    )
    # The evidence keypoints are the pinhole projection of the camera-frame keypoints.
    p0 = jax.tree.map(lambda x: x[0], gt)
    _, kp_cam = hand_forward_3d(model, p0)
    kp_cam = np.asarray(kp_cam) + np.asarray(p0.cam)
    uv = kp_cam[:, :2] / kp_cam[:, 2:] * f + SIZE / 2
    np.testing.assert_allclose(evidence.keypoints_2d[0], uv, atol=1e-3)
    out = refine.make_refine_fn(model, num_steps=150, image_size=SIZE, optimizer=optax.adam(0.1))(
        init, evidence
    )
    before, after = _kp_error(model, init, evidence), _kp_error(model, out.best_params, evidence)
    assert np.all(after <= 0.2 * before), (before, after)
