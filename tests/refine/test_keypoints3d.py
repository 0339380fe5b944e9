"""The 3D keypoint term of the refinement energy and the static silhouette skip.

The term (``hand_jax/refine/energy.py``) fits the model's 21 keypoints J to evidence X known up
to a translation t and a scale s (a detector's world landmarks):

    keypoints_3d = min_{s in [0.5, 2], t} sum_k c_k |J_k - (s X_k + t)|^2 / (0.2 m)^2

The reference below solves the inner minimum as a weighted linear least-squares problem over
(s, t) with ``np.linalg.lstsq`` in float64 (not the centroid formulas of the library), and, when
the free s leaves [0.5, 2], again over t alone at the nearest bound (the objective is a convex
quadratic in s, so the constrained minimum is there).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from hand_jax import mano, refine
from hand_jax.params import default_params, hand_forward
from hand_jax.refine import energy, optimize
from hand_jax.refine.energy import Evidence

SIZE = 32
UNIT = 0.2  # metres, the documented normaliser
LO, HI = 0.5, 2.0  # the documented clip of s


def _residual_at(j, x, c, s):
    """min over t of sum_k c_k |j_k - s x_k - t|^2, by least squares over t (float64)."""
    w = np.sqrt(c)[:, None]
    a = np.tile(np.eye(3), (len(j), 1)) * np.repeat(w, 3, axis=0)
    b = ((j - s * x) * w).reshape(-1)
    t = np.linalg.lstsq(a, b, rcond=None)[0]
    return float(np.sum(c * np.sum((j - s * x - t) ** 2, axis=-1))), t


def _reference(j, x, c):
    """(term, s, t) of the closed-form weighted similarity fit, by least squares."""
    j, x, c = (np.asarray(v, np.float64) for v in (j, x, c))
    w = np.sqrt(c)[:, None]
    rows = [
        np.concatenate([x[k, d : d + 1], np.eye(3)[d]]) for k in range(len(j)) for d in range(3)
    ]
    a = np.array(rows) * np.repeat(w, 3, axis=0)
    free_s = np.linalg.lstsq(a, (j * w).reshape(-1), rcond=None)[0][0]
    s = min(max(free_s, LO), HI)
    value, t = _residual_at(j, x, c, s)
    return value / UNIT**2, s, t


def _random_case(seed, kind):
    """Model keypoints J [21, 3] (a hand-sized cloud), evidence X, confidences c."""
    rng = np.random.default_rng(seed)
    j = rng.normal(0, 0.04, (21, 3)) + [0.02, -0.05, 0.4]
    c = rng.uniform(0, 1, 21)
    c[[2, 9]] = 0.0
    noise = rng.normal(0, 0.01, (21, 3))
    shift = rng.normal(0, 0.3, 3)
    x = {
        "inside": 0.8 * j + noise + shift,  # free s ~ 1.25
        "clip_low": 5.0 * j + noise + shift,  # free s ~ 0.2 -> 0.5
        "clip_high": 0.1 * j + 0.1 * noise + shift,  # free s ~ 10 -> 2
        "negative": -j + noise,  # free s < 0 -> 0.5
        "one_point": np.broadcast_to(shift, (21, 3)),  # no spread: s -> 0.5, t the centroid
    }[kind]
    return j, np.array(x), c


@pytest.mark.parametrize("kind", ["inside", "clip_low", "clip_high", "negative", "one_point"])
@pytest.mark.parametrize("seed", [0, 1])
def test_term_matches_the_least_squares_reference(seed, kind):
    j, x, c = _random_case(seed, kind)
    want, s, _ = _reference(j, x, c)
    if kind == "inside":
        assert LO < s < HI
    else:
        assert s in (LO, HI)
    with jax.enable_x64(True):
        got = energy._keypoints_3d_discrepancy(jnp.asarray(j), jnp.asarray(x), jnp.asarray(c))
    assert want > 1e-3
    np.testing.assert_allclose(float(got), want, rtol=1e-9)


def test_translation_and_scale_of_the_evidence_do_not_matter_but_rotation_does():
    j, _, c = _random_case(3, "inside")
    x = j + np.random.default_rng(4).normal(0, 0.005, (21, 3))  # free s ~ 1
    term = lambda x: float(  # noqa: E731
        energy._keypoints_3d_discrepancy(*(jnp.asarray(v, jnp.float32) for v in (j, x, c)))
    )
    base = term(x)
    assert base > 1e-3
    for scale, shift in ((0.7, [0.5, -0.2, 1.0]), (1.4, [-3.0, 0.1, 0.0])):
        np.testing.assert_allclose(term(scale * x + np.array(shift)), base, rtol=1e-4)
    # 30 degrees about the image's x axis (tilting depth) is not absorbed by the fit.
    a = np.deg2rad(30.0)
    rot = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    assert term(x @ rot.T) > 10 * base


@pytest.mark.parametrize("kind", ["inside", "clip_high"])
def test_gradient_is_the_residual_at_the_fitted_similarity(kind):
    """check_grads against finite differences (s and t move with J); the result is the envelope
    gradient 2 c_k (J_k - s X_k - t) / U^2 of the reference's s and t."""
    j, x, c = _random_case(5, kind)
    _, s, t = _reference(j, x, c)
    with jax.enable_x64(True):
        x64, c64 = jnp.asarray(x), jnp.asarray(c)
        fn = jax.jit(lambda j: energy._keypoints_3d_discrepancy(j, x64, c64))
        check_grads(fn, (jnp.asarray(j),), order=1, modes=("fwd", "rev"), eps=1e-5)
        grad = np.asarray(jax.grad(fn)(jnp.asarray(j)))
    want = 2 * c[:, None] * (j - s * x - t) / UNIT**2
    np.testing.assert_allclose(grad, want, rtol=1e-7, atol=1e-10)


def test_non_finite_3d_evidence_is_masked_and_confidence_defaults_to_one():
    kp3d = np.arange(63, dtype=np.float32).reshape(21, 3)
    kp3d[3, 1] = np.nan
    conf = np.linspace(-0.5, 1.5, 21).astype(np.float32)
    conf[7] = np.inf
    ev = Evidence(np.zeros((21, 2)), np.ones(21), np.zeros((1, 1)), None, kp3d, conf)
    got_kp, got_conf = energy._sanitize_3d(ev)
    ok = np.ones(21, bool)
    ok[[3, 7]] = False
    np.testing.assert_array_equal(got_conf, np.where(ok, np.clip(conf, 0, 1), 0))
    np.testing.assert_array_equal(got_kp, np.where(ok[:, None], kp3d, 0))
    _, ones = energy._sanitize_3d(ev._replace(confidence_3d=None))
    np.testing.assert_array_equal(ones, np.where(np.arange(21) == 3, 0.0, 1.0))
    assert energy._sanitize_3d(ev._replace(keypoints_3d=None, confidence_3d=None)) is None
    with pytest.raises(ValueError, match="confidence_3d is given without"):
        energy._sanitize_3d(ev._replace(keypoints_3d=None))


def test_3d_evidence_alone_is_usable_evidence():
    nan_kp, nan_mask = np.full((21, 2), np.nan), np.full((2, 2), np.nan)
    ev = Evidence(nan_kp, np.ones(21), nan_mask, None, np.zeros((21, 3)), np.zeros(21))
    assert not bool(energy.evidence_is_usable(ev))
    assert bool(energy.evidence_is_usable(ev._replace(confidence_3d=np.eye(21)[4])))
    assert bool(energy.evidence_is_usable(ev._replace(confidence_3d=None)))
    nan_3d = ev._replace(keypoints_3d=np.full((21, 3), np.nan), confidence_3d=None)
    assert not bool(energy.evidence_is_usable(nan_3d))


def test_refine_inputs_check_the_3d_evidence_shapes():
    b = 2
    params = refine.HandParams(*(jnp.zeros((b, n)) for n in (4, 45, 10, 3)))
    ev = Evidence(jnp.zeros((b, 21, 2)), jnp.ones((b, 21)), jnp.zeros((b, 1, 1)), None,
                  jnp.zeros((b, 21, 3)), jnp.ones((b, 21)))  # fmt: skip
    optimize._check_inputs(params, ev)
    with pytest.raises(AssertionError, match="keypoints_3d|21, 3"):
        optimize._check_inputs(params, ev._replace(keypoints_3d=jnp.zeros((b, 21, 2))))
    with pytest.raises(AssertionError):
        optimize._check_inputs(params, ev._replace(confidence_3d=jnp.ones((b + 1, 21))))
    with pytest.raises(ValueError, match="confidence_3d is given without"):
        optimize._check_inputs(params, ev._replace(keypoints_3d=None))


# With the embedded default hand.


@pytest.fixture(scope="module")
def model():
    return mano.load_model()


@pytest.fixture(scope="module")
def base(model):
    return jax.jit(default_params)(model)


@functools.cache
def _keypoints_fn():
    """Jitted [2] batch of (kp3d [21, 3] wrist-relative metres, kp2d [21, 2] crop pixels)."""
    fn = lambda model, p: hand_forward(model, p, image_size=SIZE)[1:]  # noqa: E731
    return jax.jit(jax.vmap(fn, in_axes=(None, 0)))


def _pair(a, b):
    return jax.tree.map(lambda x, y: jnp.stack([x, y]), a, b)


def _own_keypoints_terms(model, params, K, *, confidence_of_outlier):
    """energy_terms with evidence = the model's keypoints scaled and moved, one NaN coordinate
    (keypoint 3) and one outlier (keypoint 7) of the given confidence."""
    kp3d = hand_forward(model, params, image_size=SIZE)[1]
    x = 0.8 * kp3d + jnp.array([0.1, -0.2, 0.5])
    x = x.at[3, 0].set(jnp.nan).at[7].set(jnp.array([1.0, 2.0, 3.0]))
    conf = jnp.ones(21).at[7].set(confidence_of_outlier)
    ev = Evidence(jnp.zeros((21, 2)), jnp.ones(21), jnp.zeros((1, 1)), K, x, conf)
    return refine.energy_terms(model, params, ev, params, image_size=SIZE, with_silhouette=False)


def test_the_models_own_keypoints_give_zero(model, base):
    """The term is ~0 for the model's own keypoints, whatever their scale and origin, with the
    non-finite entries masked (and not when the outlier counts). Weak perspective and the
    perspective camera (where J is in the camera frame: a translation away) in one compile."""
    rng = np.random.default_rng(6)
    params = base._replace(pose=base.pose + jnp.asarray(rng.normal(0, 0.3, 45), jnp.float32))
    persp = params._replace(cam=jnp.array([0.01, -0.02, 0.35]))
    K = jnp.array([[45.0, 0, 16], [0, 45.0, 16], [0, 0, 1]])

    @jax.jit
    def terms(model, weak, persp, conf):
        one = functools.partial(_own_keypoints_terms, model, confidence_of_outlier=conf)
        return one(weak, None)["keypoints_3d"], one(persp, K)["keypoints_3d"]

    assert max(map(float, terms(model, params, persp, jnp.nan))) < 1e-9
    assert min(map(float, terms(model, params, persp, 1.0))) > 1.0


def _aligned_error(a, b):
    """Mean [N] keypoint distance, metres, after the least-squares translation and scale of a
    onto b (float64; the hand's size is unobservable here: 3D evidence is up to scale, and
    weak perspective trades size against the camera's scale)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    da, db = a - a.mean(-2, keepdims=True), b - b.mean(-2, keepdims=True)
    s = np.sum(da * db, axis=(-2, -1), keepdims=True) / np.sum(
        da * da, axis=(-2, -1), keepdims=True
    )
    return np.linalg.norm(s * da - db, axis=-1).mean(-1)


def test_refinement_with_3d_keypoints_fixes_the_depth_of_bent_fingers(model, base):
    """Index and middle fingers flexed 0.7 rad towards the camera; the start bends them 0.7 rad
    away, which projects to nearly the same 2D keypoints (the depth ambiguity). One batch, one
    compile: example 0 has 3D evidence (scaled and moved), example 1 zero 3D confidence (2D
    alone). No silhouette: the mask is a [B, 1, 1] NaN dummy, the rasterizer is skipped."""
    flex = np.zeros(45, np.float32)
    flex[[2, 11]] = 0.7  # the z (flexion) component of MANO joints 0 and 3
    gt = base._replace(pose=jnp.asarray(flex))
    init = base._replace(pose=jnp.asarray(-flex))
    kp3d, kp2d = _keypoints_fn()(model, _pair(gt, init))
    assert np.abs(kp2d[0] - kp2d[1]).max() < 0.1 * SIZE  # nearly ambiguous in 2D
    b = 2
    evidence = Evidence(
        jnp.stack([kp2d[0]] * b), jnp.ones((b, 21)), jnp.full((b, 1, 1), jnp.nan), None,
        jnp.stack([1.2 * kp3d[0] + jnp.array([0.3, -0.1, 0.2])] * b),
        jnp.stack([jnp.ones(21), jnp.zeros(21)]),
    )  # fmt: skip
    fn = refine.make_refine_fn(
        model, num_steps=30, image_size=SIZE, weights={"silhouette": 0.0, "keypoints_3d": 1.0}
    )
    out = fn(jax.tree.map(lambda x: jnp.stack([x] * b), init), evidence)
    fit3d, fit2d = _keypoints_fn()(model, out.best_params)
    with_3d, alone = _aligned_error(fit3d, kp3d[0])
    start = _aligned_error(kp3d[1], kp3d[0])
    print(f"aligned 3D error: start {1e3 * start:.1f} mm, 2D+3D {1e3 * with_3d:.1f} mm, "
          f"2D alone {1e3 * alone:.1f} mm")  # fmt: skip
    # 2D alone fits the 2D keypoints, yet the fingers stay bent the wrong way.
    assert np.linalg.norm(fit2d[1] - kp2d[0], axis=-1).mean() < 0.5
    assert alone > 0.8 * start
    assert with_3d < 0.008 and with_3d < 0.3 * alone


def _must_not_rasterize(*args, **kwargs):
    raise AssertionError("the rasterizer was called")


def _flat_silhouette(verts_px, faces, *, image_size, sigma):
    """A stand-in rasterizer (cheap to compile); its output only has to be finite."""
    return jnp.full(image_size, 0.3) + 0 * jnp.sum(verts_px)


def test_zero_silhouette_weight_never_calls_the_rasterizer(model, base):
    rng = np.random.default_rng(8)
    params = base._replace(pose=base.pose + jnp.asarray(rng.normal(0, 0.2, 45), jnp.float32))
    init = base
    kp3d = rng.normal(0, 0.05, (21, 3)).astype(np.float32)
    ev = Evidence(jnp.asarray(rng.uniform(0, SIZE, (21, 2)), jnp.float32), jnp.ones(21),
                  jnp.full((1, 1), jnp.nan), None, jnp.asarray(kp3d), None)  # fmt: skip
    full_mask = ev._replace(mask=jnp.asarray(rng.uniform(0, 1, (SIZE, SIZE)), jnp.float32))
    weights = {"keypoints": 1.5, "keypoints_3d": 0.5, "silhouette": 0.0, "shape": 0.1,
               "pose": 0.2, "proximity": 0.3}  # fmt: skip
    energy_fn, _ = optimize.make_energy_fn(
        image_size=SIZE, weights=weights, preconditioned=False, silhouette_fn=_must_not_rasterize
    )
    # A non-zero weight does call it (so the check above can fail).
    loud, _ = optimize.make_energy_fn(
        image_size=SIZE, weights=dict(weights, silhouette=1e-9), preconditioned=False,
        silhouette_fn=_must_not_rasterize,
    )  # fmt: skip
    with pytest.raises(AssertionError, match="rasterizer was called"):
        jax.eval_shape(loud, model, params, full_mask, init)

    @jax.jit
    def both(model, params, init):
        skipped = energy_fn(model, params, ev, init)
        terms = refine.energy_terms(
            model, params, full_mask, init, image_size=SIZE, silhouette_fn=_flat_silhouette
        )
        no_3d = refine.energy_terms(
            model, params, ev._replace(keypoints_3d=None), init, image_size=SIZE,
            with_silhouette=False,
        )  # fmt: skip
        return skipped, terms, no_3d

    skipped, terms, no_3d = both(model, params, init)
    assert float(no_3d["keypoints_3d"]) == 0.0 and float(no_3d["silhouette"]) == 0.0
    np.testing.assert_allclose(terms["silhouette"], np.mean((0.3 - full_mask.mask) ** 2), rtol=1e-5)
    want = sum(weights[k] * float(terms[k]) for k in weights)
    assert float(terms["keypoints_3d"]) > 1e-3 and float(terms["silhouette"]) > 1e-3
    np.testing.assert_allclose(float(skipped), want, rtol=1e-5)
