"""The refinement loop (``optimize._refine_one``) on toy energies with closed-form trajectories:
losses before each step, the best iterate, skipped non-finite steps, and the input checks of
``make_refine_fn`` with their exact messages. No MANO and no rasterizer: fast."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from hand_jax.params import HandParams, precondition
from hand_jax.refine import optimize
from hand_jax.refine.energy import Evidence
from launch.configs import refine as refine_config

TARGET = HandParams(
    global_rot=jnp.array([0.5, -1.0, 0.25, 2.0]), pose=jnp.array([1.0, 0.5, -0.5]),
    betas=jnp.array([0.3, -0.2]), cam=jnp.array([1.5, 0.1, -0.1]),
)  # fmt: skip
ZERO = jax.tree.map(jnp.zeros_like, TARGET)
C2 = float(sum(jnp.sum(t**2) for t in TARGET))  # |target|^2
EVIDENCE = Evidence(jnp.zeros((21, 2)), jnp.ones(21), jnp.zeros((4, 4)))


def _quadratic(model, x, evidence, init):
    return sum(jnp.sum((a - b) ** 2) for a, b in zip(x, TARGET, strict=True))


def _run(energy_fn, lr, steps, init=ZERO):
    return jax.jit(
        lambda init: optimize._refine_one(
            None,
            init,
            EVIDENCE,
            num_steps=steps,
            optimizer=optax.sgd(lr),
            energy_fn=energy_fn,
            decode=lambda x, init, K: x,
            start=lambda p: p,
        )  # fmt: skip
    )(init)


def _assert_tree(a, b, **kw):
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, **kw)


def test_gradient_descent_on_a_quadratic_follows_the_closed_form():
    # x_t - c = (1 - 2 lr)^t (x_0 - c): energy 0.8^(2t) |c|^2 with lr = 0.1.
    out, xs = _run(_quadratic, 0.1, 5)
    np.testing.assert_allclose(out.init_loss, C2, rtol=1e-6)
    np.testing.assert_allclose(out.losses, [0.64**t * C2 for t in range(5)], rtol=1e-5)
    _assert_tree(out.params, jax.tree.map(lambda c: c * (1 - 0.8**5), TARGET), rtol=1e-5)
    _assert_tree(out.best_params, out.params, rtol=0)
    np.testing.assert_allclose(out.best_loss, 0.64**5 * C2, rtol=1e-5)
    for t in range(5):  # the iterates after each step
        got = [x[t] for x in xs]
        _assert_tree(got, [c * (1 - 0.8 ** (t + 1)) for c in TARGET], rtol=1e-5)


def test_diverging_steps_keep_the_initial_estimate_as_the_best():
    # lr = 1.5: x_t - c = (-2)^t (x_0 - c), the energy grows 4x per step.
    out, _ = _run(_quadratic, 1.5, 3)
    np.testing.assert_allclose(out.losses, [C2, 4 * C2, 16 * C2], rtol=1e-5)
    _assert_tree(out.best_params, ZERO, rtol=0)
    np.testing.assert_allclose(out.best_loss, C2, rtol=1e-6)
    _assert_tree(out.params, jax.tree.map(lambda c: c * (1 - (-2) ** 3), TARGET), rtol=1e-5)


@pytest.mark.parametrize("steps", [2, 3])  # the last iterate is 2c (inside the loop) or 0 (after)
def test_an_equal_energy_keeps_the_earlier_iterate_as_the_best(steps):
    # lr = 1: x_t - c = -(x_{t-1} - c): iterates 0, 2c, 0, 2c, ... all of energy |c|^2 exactly.
    out, _ = _run(_quadratic, 1.0, steps)
    np.testing.assert_array_equal(out.losses, [C2] * steps)
    _assert_tree(out.best_params, ZERO, rtol=0)
    _assert_tree(out.params, jax.tree.map(lambda c: (1 + (-1) ** (steps + 1)) * c, TARGET), rtol=0)


def test_a_step_whose_energy_is_not_finite_is_skipped():
    # NaN once pose[0] passes 0.5: pose[0] runs 0, .2, .36, .488, .5904; from step 4 on, the
    # energy is NaN and the iterate stays where it was; the best is the last finite one.
    def energy(model, x, evidence, init):
        e = _quadratic(model, x, evidence, init)
        return jnp.where(x.pose[0] > 0.5, jnp.nan, e)

    out, xs = _run(energy, 0.1, 7)
    np.testing.assert_allclose(out.losses[:4], [0.64**t * C2 for t in range(4)], rtol=1e-5)
    assert np.all(np.isnan(out.losses[4:]))
    x4 = jax.tree.map(lambda c: c * (1 - 0.8**4), TARGET)
    _assert_tree(out.params, x4, rtol=1e-5)
    _assert_tree(jax.tree.map(lambda x: x[-1], xs), x4, rtol=1e-5)
    _assert_tree(out.best_params, jax.tree.map(lambda c: c * (1 - 0.8**3), TARGET), rtol=1e-5)
    np.testing.assert_allclose(out.best_loss, 0.64**3 * C2, rtol=1e-5)


def test_a_finite_energy_with_a_non_finite_gradient_is_skipped_too():
    # sqrt|x - c| is 0 at x = c with an infinite slope: every step from the target is refused.
    def energy(model, x, evidence, init):
        return sum(jnp.sum(jnp.sqrt(jnp.abs(a - b))) for a, b in zip(x, TARGET, strict=True))

    out, _ = _run(energy, 0.1, 2, init=TARGET)
    np.testing.assert_array_equal(out.losses, [0.0, 0.0])
    _assert_tree(out.params, TARGET, rtol=0)


def test_preconditioned_proximity_is_the_squared_step():
    """With the step z as the variable the proximity term is |z|^2, whatever the parameters."""
    model, init, evidence = _tiny_problem()
    one = jax.tree.map(lambda x: x[0], (init, evidence))
    only = {"keypoints": 0.0, "silhouette": 0.0, "shape": 0.0, "pose": 0.0, "proximity": 1.0}
    energy, _ = optimize.make_energy_fn(image_size=8, weights=only,
                                        silhouette_fn=_recording_silhouette([]))  # fmt: skip
    z = jax.tree.map(lambda p: jnp.linspace(-1.0, 2.0, p.size).reshape(p.shape), one[0])
    want = sum(float(np.sum(np.asarray(a) ** 2)) for a in z)
    np.testing.assert_allclose(jax.jit(energy)(model, z, one[1], one[0]), want, rtol=1e-6)


def test_a_non_finite_start_reports_an_infinite_best_loss():
    out, _ = _run(lambda *a: jnp.nan * _quadratic(*a), 0.1, 2)
    assert np.isnan(out.init_loss) and np.isinf(out.best_loss)
    _assert_tree(out.params, ZERO, rtol=0)
    _assert_tree(out.best_params, ZERO, rtol=0)


def _batch(b=2, m=4):
    params = HandParams(np.zeros((b, 4)), np.zeros((b, 45)), np.zeros((b, 10)), np.ones((b, 3)))
    evidence = Evidence(np.zeros((b, 21, 2)), np.ones((b, 21)), np.zeros((b, m, m)))
    return params, evidence


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda p, e: (p, e._replace(keypoints_2d=e.keypoints_2d[0])),
         "evidence.keypoints_2d: expected a batch [B, 21, 2], got shape (21, 2) (refine_fn is "
         "batched: add a leading axis)"),
        (lambda p, e: (p, e._replace(mask=np.zeros((2, 4, 5)))),
         "evidence.mask: expected [2, M, M], got (2, 4, 5)"),
        (lambda p, e: (p, e._replace(mask=np.zeros((3, 4, 4)))),
         "evidence.mask: expected [2, M, M], got (3, 4, 4)"),
        (lambda p, e: (p._replace(betas=np.zeros((3, 10))), e),
         "init_params.betas: batch 3 != evidence batch 2"),
        (lambda p, e: (p._replace(pose=np.where(np.arange(2)[:, None] == 1, np.nan, p.pose),
                                  cam=np.full((2, 3), np.inf)), e),
         "init_params: non-finite values at batch rows {'pose': [1], 'cam': [0, 1]}"),
    ],
)  # fmt: skip
def test_refine_inputs_are_checked_with_exact_messages(change, message):
    params, evidence = change(*_batch())
    params = HandParams(*(jnp.asarray(x) for x in params))
    evidence = Evidence(*(None if x is None else jnp.asarray(x) for x in evidence))
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        optimize._check_inputs(params, evidence)


def test_valid_inputs_pass_and_unknown_weights_are_named():
    params, evidence = _batch()
    optimize._check_inputs(HandParams(*map(jnp.asarray, params)), evidence)
    with pytest.raises(ValueError, match=r"^weights: unknown keys \['mu'\]; expected \["):
        optimize.make_energy_fn(image_size=32, weights={"mu": 1.0})


def _tiny_problem():
    from hand_jax import mano
    from tests import mano_reference as ref

    model = mano.make_model(**ref.model_kwargs(ref.make_synthetic_arrays(seed=0, num_verts=100)))
    init = HandParams(jnp.array([[1.0, 0, 0, 0]]), jnp.zeros((1, 45)), jnp.zeros((1, 10)),
                      jnp.array([[1.0, 0.0, 0.0]]))  # fmt: skip
    evidence = Evidence(jnp.zeros((1, 21, 2)), jnp.ones((1, 21)), jnp.zeros((1, 8, 8)))
    return model, init, evidence


def _recording_silhouette(calls):
    def silhouette(verts, faces, *, image_size, sigma):
        calls.append(sigma)
        return jnp.zeros(image_size)

    return silhouette


@pytest.mark.parametrize("preconditioned, lr", [(True, 0.1), (False, 1e-2)])
def test_default_optimizer_is_adam_at_the_documented_rate(monkeypatch, preconditioned, lr):
    """BUILD.md: Adam at lr 0.1 on the preconditioned step, 1e-2 on raw parameters."""
    rates, adam = [], optax.adam
    monkeypatch.setattr(optax, "adam", lambda rate: rates.append(rate) or adam(rate))
    model, init, evidence = _tiny_problem()
    jax.eval_shape(
        lambda i, e: optimize.refine_batch(
            model, i, e, num_steps=1, image_size=8, precondition=preconditioned,
            silhouette_fn=_recording_silhouette([]),
        ),
        init, evidence,
    )  # fmt: skip
    assert rates == [lr]


def test_make_refine_fn_defaults_are_the_commands():
    config = refine_config.get_config()
    for fn in (optimize.make_refine_fn, optimize.refine_batch):
        defaults = fn.__kwdefaults__
        assert defaults["sigma"] == config.sigma and defaults["precondition"] == config.precondition
        assert defaults["silhouette_loss"] == "l2"


def test_energy_defaults_are_sigma_1_and_preconditioned():
    model, init, evidence = _tiny_problem()
    one = jax.tree.map(lambda x: x[0], (init, evidence))
    calls = []
    energy, decode = optimize.make_energy_fn(
        image_size=8, silhouette_fn=_recording_silhouette(calls)
    )
    x = jax.tree.map(lambda p: jnp.full_like(p, 0.5), one[0])

    _assert_tree(decode(x, one[0], None), precondition(one[0], x, image_size=8), rtol=1e-6)
    jax.eval_shape(lambda x: energy(model, x, one[1], one[0]), x)
    assert calls == [1.0]
