"""Tests of hand_jax.geometry.rotations: closed forms, round trips, gradients at singular points."""

import jax
import jax.numpy as jnp
import jax.test_util
import numpy as np
import pytest

from hand_jax.geometry import rotations
from tests.mano_reference import rodrigues


class _Jitted:
    """The rotations module with every function jitted (eager dispatch is slow on a busy CPU)."""

    def __getattr__(self, name):
        return jax.jit(getattr(rotations, name))


rot = _Jitted()


def _random_axis_angles(seed, n, max_angle=np.pi - 1e-3):
    rng = np.random.default_rng(seed)
    axes = rng.normal(size=(n, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    return axes * rng.uniform(0.0, max_angle, size=(n, 1))


def _numpy_quaternion(w):
    """Quaternion (w, x, y, z) of an axis-angle vector, closed form."""
    theta = np.linalg.norm(w)
    axis = w / theta if theta > 0 else np.zeros(3)
    return np.concatenate([[np.cos(theta / 2)], np.sin(theta / 2) * axis])


def test_axis_angle_to_matrix_matches_rodrigues():
    w = _random_axis_angles(0, 32)
    # Angles straddling the series threshold (theta^2 = 1e-3) and tiny ones.
    for theta in (1e-8, 1e-4, 0.0310, 0.0316, 0.0320, 0.1):
        w = np.concatenate([w, [[theta, -0.5 * theta, 0.2 * theta]]])
    with jax.enable_x64(True):
        got = rot.axis_angle_to_matrix(jnp.asarray(w))
        expected = np.stack([rodrigues(x) for x in w])
        np.testing.assert_allclose(got, expected, atol=1e-14)
    got32 = rot.axis_angle_to_matrix(jnp.asarray(w, jnp.float32))
    assert got32.dtype == jnp.float32
    np.testing.assert_allclose(got32, expected, atol=1e-6)


def test_axis_angle_zero_is_identity_with_generator_jacobian():
    r = rot.axis_angle_to_matrix(jnp.zeros(3))
    np.testing.assert_array_equal(r, np.eye(3))
    jac = jax.jacfwd(rot.axis_angle_to_matrix)(jnp.zeros(3))  # [3, 3, 3]
    generators = np.stack([rot.skew(jnp.eye(3)[k]) for k in range(3)], axis=-1)
    np.testing.assert_allclose(jac, generators, atol=1e-7)
    jac_rev = jax.jacrev(rot.axis_angle_to_matrix)(jnp.zeros(3))
    np.testing.assert_allclose(jac_rev, generators, atol=1e-7)


@pytest.mark.parametrize("point", ["zero", "tiny", "threshold", "random"])
def test_axis_angle_to_matrix_check_grads(point):
    values = {
        "zero": np.zeros(3),
        "tiny": np.array([1e-5, -2e-5, 3e-6]),
        "threshold": np.array([0.0316, 0.0, 0.0]),
        "random": _random_axis_angles(1, 1)[0],
    }
    with jax.enable_x64(True):
        jax.test_util.check_grads(rot.axis_angle_to_matrix, (jnp.asarray(values[point]),),
                                  order=2, modes=("fwd", "rev"))  # fmt: skip


def test_matrix_to_axis_angle_round_trip():
    w = _random_axis_angles(2, 64)
    w = np.concatenate([w, [[0.0, 0.0, 0.0], [1e-6, 0.0, -1e-6], [0.0, 0.02, 0.0]]])
    with jax.enable_x64(True):
        back = rot.matrix_to_axis_angle(rot.axis_angle_to_matrix(jnp.asarray(w)))
        np.testing.assert_allclose(back, w, atol=1e-9)
    back32 = rot.matrix_to_axis_angle(rot.axis_angle_to_matrix(jnp.asarray(w, jnp.float32)))
    np.testing.assert_allclose(back32, w, atol=2e-3)  # float32 loses accuracy only near pi
    small = np.abs(np.linalg.norm(w, axis=1)) < 3.0
    np.testing.assert_allclose(back32[small], w[small], atol=1e-5)


def test_matrix_to_axis_angle_near_pi_gives_same_rotation():
    w = _random_axis_angles(3, 16, max_angle=np.pi)
    w = w / np.linalg.norm(w, axis=1, keepdims=True) * (np.pi - 1e-7)
    with jax.enable_x64(True):
        r = rot.axis_angle_to_matrix(jnp.asarray(w))
        np.testing.assert_allclose(rot.axis_angle_to_matrix(rot.matrix_to_axis_angle(r)), r,
                                   atol=1e-9)  # fmt: skip


def test_matrix_to_axis_angle_gradients_finite_at_identity():
    with jax.enable_x64(True):
        f = jax.jit(lambda w: rot.matrix_to_axis_angle(rot.axis_angle_to_matrix(w)))
        jac = jax.jacrev(f)(jnp.zeros(3))
        np.testing.assert_allclose(jac, np.eye(3), atol=1e-12)
        jax.test_util.check_grads(f, (jnp.asarray([0.3, -0.2, 0.1]),), order=1)


def test_quaternion_to_matrix_closed_form_and_scale_invariance():
    w = _random_axis_angles(4, 32)
    q = np.stack([_numpy_quaternion(x) for x in w])
    expected = np.stack([rodrigues(x) for x in w])
    with jax.enable_x64(True):
        np.testing.assert_allclose(rot.quaternion_to_matrix(jnp.asarray(q)), expected, atol=1e-13)
        np.testing.assert_allclose(rot.quaternion_to_matrix(jnp.asarray(-3.0 * q)), expected,
                                   atol=1e-13)  # fmt: skip
        back = rot.matrix_to_quaternion(jnp.asarray(expected))
        np.testing.assert_allclose(back, q * np.sign(q[:, :1]), atol=1e-12)
        jax.test_util.check_grads(rot.quaternion_to_matrix, (jnp.asarray(q[0] * 1.7),), order=1)
    eye = rot.quaternion_to_matrix(jnp.zeros(4))
    np.testing.assert_array_equal(eye, np.eye(3))
    grad = jax.grad(lambda q: jnp.sum(rot.quaternion_to_matrix(q)))(jnp.zeros(4))
    assert np.all(np.isfinite(grad))


def test_rotation_6d_round_trip_and_gram_schmidt():
    w = _random_axis_angles(5, 32)
    with jax.enable_x64(True):
        r = rot.axis_angle_to_matrix(jnp.asarray(w))
        d6 = rot.matrix_to_rotation_6d(r)
        np.testing.assert_array_equal(d6[:, :3], r[:, :, 0])
        np.testing.assert_allclose(rot.rotation_6d_to_matrix(d6), r, atol=1e-14)
        raw = jnp.asarray(np.random.default_rng(0).normal(size=(32, 6)))
        m = rot.rotation_6d_to_matrix(raw)
        np.testing.assert_allclose(jnp.swapaxes(m, -1, -2) @ m, np.broadcast_to(np.eye(3), m.shape),
                                   atol=1e-13)  # fmt: skip
        np.testing.assert_allclose(np.linalg.det(np.asarray(m)), 1.0, atol=1e-13)
        a1 = np.asarray(raw[:, :3])
        np.testing.assert_allclose(m[:, :, 0], a1 / np.linalg.norm(a1, axis=1, keepdims=True),
                                   atol=1e-14)  # fmt: skip
        # Second column lies in span(a1, a2) on the side of a2.
        assert np.all(np.sum(np.asarray(m[:, :, 1]) * np.asarray(raw[:, 3:]), axis=1) > 0)
        np.testing.assert_allclose(rot.rotation_6d_to_matrix(2.5 * raw), m, atol=1e-14)
        jax.test_util.check_grads(rot.rotation_6d_to_matrix, (raw[0],), order=1)


def test_batch_axes_and_vmap_agree():
    w = jnp.asarray(_random_axis_angles(6, 12).reshape(3, 4, 3), jnp.float32)
    batched = rot.axis_angle_to_matrix(w)
    mapped = jax.vmap(jax.vmap(rot.axis_angle_to_matrix))(w)
    np.testing.assert_allclose(batched, mapped, atol=1e-7)
    assert batched.shape == (3, 4, 3, 3)


def _axes_with_ties():
    """Every axis with components in {-1, 0, 1} (up to sign): equal diagonal terms tie."""
    axes = {tuple(a) for a in np.array(np.meshgrid(*[[-1, 0, 1]] * 3)).reshape(3, -1).T if any(a)}
    axes = np.array(sorted(a for a in axes if a > tuple(-x for x in a)), float)
    # and the same with each zero nudged to 1e-6: a tiny component is the ill-conditioned branch
    return np.concatenate([axes, np.where(axes == 0, 1e-6, axes)])


@pytest.mark.parametrize(
    "angle", [np.pi, np.pi - 1e-6, 2.5, 2 * np.pi / 3, np.pi / 2 + 0.01, np.pi / 2, 1.0, 1e-3]
)
def test_matrix_to_quaternion_on_tied_and_half_turn_rotations(angle):
    """Shepperd's branch choice must stay exact where candidates tie or vanish (float64)."""
    axes = _axes_with_ties()
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    with jax.enable_x64(True):
        mats = np.stack([rodrigues(angle * a) for a in axes])
        q = np.asarray(rot.matrix_to_quaternion(jnp.asarray(mats)))
    want = np.concatenate([np.full((len(axes), 1), np.cos(angle / 2)), np.sin(angle / 2) * axes], 1)
    want *= np.where(want[:, :1] < 0, -1.0, 1.0)  # the w >= 0 hemisphere
    if angle == np.pi:  # w = 0: q and -q are both on the hemisphere's edge
        want *= np.sign(np.sum(want * q, axis=1, keepdims=True))
    np.testing.assert_allclose(q, want, atol=1e-12)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_quaternion_to_axis_angle_closed_form_across_the_series_threshold(sign):
    """Angles whose |v|^2 = sin^2(angle / 2) straddles the series threshold (1e-3), and both
    signs of the quaternion (q and -q are one rotation; the angle stays in [0, pi])."""
    rng = np.random.default_rng(5)
    angles = np.array([1e-7, 0.01, 0.0630, 0.0632, 0.0633, 0.0640, 0.5, 2.0, np.pi - 1e-3])
    axes = rng.normal(size=(len(angles), 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    q = np.concatenate([np.cos(angles / 2)[:, None], np.sin(angles / 2)[:, None] * axes], 1)
    with jax.enable_x64(True):
        got = np.asarray(rot.quaternion_to_axis_angle(jnp.asarray(sign * q)))
    np.testing.assert_allclose(got, angles[:, None] * axes, rtol=1e-13, atol=1e-15)


def test_rotation_6d_of_one_matrix_and_of_short_float32_vectors():
    r = np.asarray(rodrigues(np.array([0.3, -0.2, 0.9])))
    d6 = rot.matrix_to_rotation_6d(jnp.asarray(r))  # unbatched [3, 3] -> [6]
    np.testing.assert_array_equal(d6, np.concatenate([r[:, 0], r[:, 1]]).astype(np.float32))
    # Scale does not matter down to |a|^2 ~ 1e-8 in float32 (only vectors shorter than about
    # float32's eps are treated as degenerate).
    raw = np.random.default_rng(6).normal(size=(4, 6)).astype(np.float32)
    np.testing.assert_allclose(
        rot.rotation_6d_to_matrix(jnp.asarray(1e-4 * raw)),
        rot.rotation_6d_to_matrix(raw),
        atol=1e-5,
    )


def test_rodrigues_series_below_the_threshold_matches_the_closed_form():
    theta_sq = np.array([1e-8, 1e-5, 5e-4, 9.99e-4])
    t = np.sqrt(theta_sq)
    with jax.enable_x64(True):
        sinc, cosc = rotations._rodrigues_coefficients(jnp.asarray(theta_sq))
    # the series' truncation error is below 1e-17 here; float64 closed forms are exact to ~1e-16
    np.testing.assert_allclose(sinc, np.sin(t) / t, rtol=2e-15)
    np.testing.assert_allclose(cosc, 0.5 * (np.sin(t / 2) / (t / 2)) ** 2, rtol=2e-15)


def _numpy_quaternion_matrix(q):
    """Rotation matrix of a unit quaternion (w, x, y, z), closed form."""
    w, x, y, z = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])  # fmt: skip


def test_matrix_to_quaternion_never_divides_by_a_vanishing_component():
    """Shepperd's method must build q from its largest component: here one component is 1e-7,
    one is 0 and two are about 0.7, so a branch score that misjudges which is largest (a sign
    slip in its formula) picks the tiny one and loses about 1e-10 of accuracy (float64)."""
    eps, half = 1e-7, np.sqrt((1 - 1e-14) / 2)
    quats = []
    for tiny in range(1, 4):
        for zero in range(4):
            others = [k for k in range(4) if k not in (tiny, zero)]
            for sign in (1.0, -1.0):
                q = np.zeros(4)
                q[tiny], q[others[0]], q[others[1]] = eps, half, sign * half
                quats.append(q * (-1.0 if q[0] < 0 else 1.0))
    quats = np.stack(quats)
    with jax.enable_x64(True):
        mats = jnp.asarray(np.stack([_numpy_quaternion_matrix(q) for q in quats]))
        got = np.array(rot.matrix_to_quaternion(mats))
    # w = 0 for some: q and -q are then both on the hemisphere's edge
    got *= np.where(np.sum(got * quats, axis=1, keepdims=True) < 0, -1.0, 1.0)
    np.testing.assert_allclose(got, quats, atol=1e-13, rtol=0)
