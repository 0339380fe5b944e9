"""Tests of hand_jax.mano against the plain-numpy reference in tests/mano_reference.py."""

import dataclasses

import jax
import jax.numpy as jnp
import jax.test_util
import numpy as np
import pytest

from hand_jax import keypoints as kp
from hand_jax import mano
from hand_jax.geometry import kinematics
from tests import mano_reference as ref

# Jitted once: eager dispatch compiles every primitive separately and is slow on a busy CPU.
# Eager execution is compared with jit in test_vmap_equals_loop_and_jit_equals_eager.
_forward = jax.jit(mano.forward)


@pytest.fixture(scope="module")
def arrays():
    return ref.make_synthetic_arrays(seed=0)


@pytest.fixture(scope="module")
def model(arrays):
    return mano.make_model(**ref.model_kwargs(arrays))


def _random_params(seed, num_betas=10, scale=0.6):
    rng = np.random.default_rng(seed)
    pose = rng.normal(scale=scale, size=48)
    betas = rng.normal(scale=1.0, size=num_betas)
    transl = rng.normal(scale=0.1, size=3)
    return pose, betas, transl


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_forward_matches_numpy_reference_float32(model, arrays, seed):
    pose, betas, transl = _random_params(seed)
    out = _forward(model, jnp.asarray(pose, jnp.float32), jnp.asarray(betas, jnp.float32),
                       jnp.asarray(transl, jnp.float32))  # fmt: skip
    # The reference sees the same float32-rounded model and parameters, in float64.
    model_arrays = {k: np.asarray(getattr(model, k)) for k in ("v_template", "shapedirs",
                    "posedirs", "J_regressor", "weights")}  # fmt: skip
    ref_arrays = dict(model_arrays, parents=arrays["parents"], tip_ids=arrays["tip_ids"])
    f32 = lambda x: np.asarray(x, np.float32).astype(np.float64)  # noqa: E731
    verts, joints, keypoints = ref.mano_reference(ref_arrays, f32(pose), f32(betas), f32(transl))
    assert out.verts.dtype == jnp.float32
    np.testing.assert_allclose(out.verts, verts, atol=1e-6, rtol=0)
    np.testing.assert_allclose(out.joints, joints, atol=1e-6, rtol=0)
    np.testing.assert_allclose(out.keypoints, keypoints, atol=1e-6, rtol=0)


def test_forward_matches_numpy_reference_float64(arrays):
    pose, betas, transl = _random_params(7, num_betas=6)
    verts, joints, keypoints = ref.mano_reference(arrays, pose, betas, transl)
    with jax.enable_x64(True):
        model64 = mano.make_model(**ref.model_kwargs(arrays))
        out = _forward(model64, jnp.asarray(pose), jnp.asarray(betas), jnp.asarray(transl))
        assert out.verts.dtype == jnp.float64 and out.keypoints.dtype == jnp.float64
        np.testing.assert_allclose(out.verts, verts, atol=1e-12, rtol=0)
        np.testing.assert_allclose(out.joints, joints, atol=1e-12, rtol=0)
        np.testing.assert_allclose(out.keypoints, keypoints, atol=1e-12, rtol=0)


def test_zero_pose_and_betas_give_template(model):
    out = _forward(model, jnp.zeros(48), jnp.zeros(10))
    np.testing.assert_allclose(out.verts, model.v_template, atol=1e-7)
    np.testing.assert_allclose(out.joints, model.J_regressor @ model.v_template, atol=1e-7)


def test_keypoints_are_joints_and_tips_by_name(model):
    pose, betas, _ = _random_params(3)
    out = _forward(model, jnp.asarray(pose, jnp.float32), jnp.asarray(betas, jnp.float32))
    for i, name in enumerate(kp.CANONICAL_NAMES):
        if name.endswith("_tip"):
            expected = out.verts[model.tip_ids[kp.TIP_FINGERS.index(name[:-4])]]
        else:
            expected = out.joints[kp.MANO_JOINT_NAMES.index(name)]
        np.testing.assert_array_equal(out.keypoints[i], expected)


def test_forward_rotmats_equals_forward(model):
    pose, betas, _ = _random_params(4)
    pose = jnp.asarray(pose, jnp.float32)
    rotmats = jnp.stack([jnp.asarray(ref.rodrigues(p), jnp.float32) for p in pose.reshape(16, 3)])
    a = _forward(model, pose, jnp.asarray(betas, jnp.float32))
    b = jax.jit(mano.forward_rotmats)(model, rotmats, jnp.asarray(betas, jnp.float32))
    np.testing.assert_allclose(a.verts, b.verts, atol=1e-6)


@pytest.mark.parametrize("zero_pose", [False, True])
def test_check_grads_float64(arrays, zero_pose):
    pose, betas, transl = _random_params(5, num_betas=4)
    if zero_pose:
        pose = np.zeros(48)
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        model64 = mano.make_model(**ref.model_kwargs(arrays))
        cot = jnp.asarray(rng.normal(size=(model64.num_verts + 21, 3)))

        def f(pose, betas):
            out = _forward(model64, pose, betas, jnp.asarray(transl))
            return jnp.sum(jnp.concatenate([out.verts, out.keypoints]) * cot)

        jax.test_util.check_grads(jax.jit(f), (jnp.asarray(pose), jnp.asarray(betas)), order=1,
                                  modes=("fwd", "rev"), atol=1e-6, rtol=1e-6)  # fmt: skip


def test_gradients_finite_at_zero_pose_float32(model):
    def f(pose, betas):
        out = _forward(model, pose, betas)
        return jnp.sum(out.verts**2) + jnp.sum(out.keypoints)

    g_pose, g_betas = jax.jit(jax.grad(f, argnums=(0, 1)))(jnp.zeros(48), jnp.zeros(10))
    assert np.all(np.isfinite(g_pose)) and np.all(np.isfinite(g_betas))
    assert np.any(g_pose != 0)


def test_vmap_equals_loop_and_jit_equals_eager(model):
    params = [_random_params(s) for s in range(3)]
    poses = jnp.asarray(np.stack([p[0] for p in params]), jnp.float32)
    betas = jnp.asarray(np.stack([p[1] for p in params]), jnp.float32)
    batched = jax.vmap(mano.forward, in_axes=(None, 0, 0))(model, poses, betas)
    jitted = jax.jit(jax.vmap(mano.forward, in_axes=(None, 0, 0)))(model, poses, betas)
    for i in range(3):
        single = mano.forward(model, poses[i], betas[i])
        np.testing.assert_allclose(batched.verts[i], single.verts, atol=1e-6)
        np.testing.assert_allclose(batched.keypoints[i], single.keypoints, atol=1e-6)
        np.testing.assert_allclose(jitted.verts[i], single.verts, atol=1e-6)


def test_fewer_betas_equal_zero_padding(model):
    pose, betas, _ = _random_params(6)
    pose = jnp.asarray(pose, jnp.float32)
    short = jnp.asarray(betas[:4], jnp.float32)
    padded = jnp.concatenate([short, jnp.zeros(6)])
    np.testing.assert_allclose(
        _forward(model, pose, short).verts, _forward(model, pose, padded).verts, atol=1e-7
    )


def test_bad_shapes_are_clear_errors(model):
    with pytest.raises(AssertionError, match=r"48"):
        mano.forward(model, jnp.zeros(45), jnp.zeros(10))
    with pytest.raises(ValueError, match="betas"):
        mano.forward(model, jnp.zeros(48), jnp.zeros(11))
    with pytest.raises(AssertionError):
        mano.forward(model, jnp.zeros(48), jnp.zeros(10), jnp.zeros(2))


def test_mirror_model_twice_is_identity(model):
    twice = mano.mirror_model(mano.mirror_model(model))
    assert mano.mirror_model(model).side == "left" and twice.side == "right"
    for field in dataclasses.fields(mano.HandModel):
        a, b = getattr(model, field.name), getattr(twice, field.name)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=field.name)


def test_mirror_pose_twice_is_identity():
    pose = jnp.asarray(np.random.default_rng(0).normal(size=(3, 48)), jnp.float32)
    np.testing.assert_array_equal(mano.mirror_pose(mano.mirror_pose(pose)), pose)
    np.testing.assert_array_equal(
        mano.mirror_pose(pose)[:, 3:6], pose[:, 3:6] * jnp.array([1, -1, -1])
    )


def test_mirrored_model_and_pose_give_reflected_hand(model):
    pose, betas, transl = _random_params(8)
    pose, betas = jnp.asarray(pose, jnp.float32), jnp.asarray(betas, jnp.float32)
    reflect = jnp.array([-1.0, 1.0, 1.0])
    right = _forward(model, pose, betas, jnp.asarray(transl, jnp.float32))
    left = _forward(mano.mirror_model(model), mano.mirror_pose(pose), betas,
                        jnp.asarray(transl, jnp.float32) * reflect)  # fmt: skip
    np.testing.assert_allclose(left.verts, right.verts * reflect, atol=1e-6)
    np.testing.assert_allclose(left.keypoints, right.keypoints * reflect, atol=1e-6)


def test_mirrored_faces_keep_normals_outward(model):
    # Reflecting a triangle flips its normal; reversing the winding flips it back.
    def normals(verts, faces):
        a, b, c = (verts[faces[:, i]] for i in range(3))
        return np.cross(b - a, c - a)

    left = mano.mirror_model(model)
    n_right = normals(np.asarray(model.v_template), np.asarray(model.faces))
    n_left = normals(np.asarray(left.v_template), np.asarray(left.faces))
    np.testing.assert_allclose(n_left, n_right * np.array([-1.0, 1.0, 1.0]), atol=1e-9)


@pytest.mark.parametrize("flat_hand_mean", [True, False])
@pytest.mark.parametrize("n", [6, 45])
def test_pca_to_pose(model, flat_hand_mean, n):
    coeffs = np.random.default_rng(n).normal(size=n)
    comps, mean = np.asarray(model.hands_components), np.asarray(model.hands_mean)
    expected = sum(coeffs[i] * comps[i] for i in range(n))  # manopth/smplx: coeffs @ comps[:n]
    if not flat_hand_mean:
        expected = expected + mean
    got = mano.pca_to_pose(model, jnp.asarray(coeffs, jnp.float32), flat_hand_mean=flat_hand_mean)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    zero = mano.pca_to_pose(model, jnp.zeros(n), flat_hand_mean=flat_hand_mean)
    np.testing.assert_allclose(zero, 0.0 if flat_hand_mean else mean, atol=1e-7)


def test_mirrored_pca_matches_mirrored_pose(model):
    coeffs = jnp.asarray(np.random.default_rng(1).normal(size=10), jnp.float32)
    left = mano.mirror_model(model)
    a = mano.pca_to_pose(left, coeffs, flat_hand_mean=False)
    b = mano.mirror_pose(mano.pca_to_pose(model, coeffs, flat_hand_mean=False))
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_kinematic_levels():
    levels = kinematics.kinematic_levels(kp.MANO_PARENTS)
    assert levels == ((0,), (1, 4, 7, 10, 13), (2, 5, 8, 11, 14), (3, 6, 9, 12, 15))
    with pytest.raises(ValueError, match="cycle"):
        kinematics.kinematic_levels((1, 0))
    with pytest.raises(ValueError, match="parents"):
        kinematics.kinematic_levels((-1, 5))
