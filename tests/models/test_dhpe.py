"""The full estimator: stage switches (frozen fE2D, fE2D alone), pixel conventions, h layout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hand_jax.models import dhpe, heads


@pytest.fixture(scope="module")
def setup():
    model = dhpe.make_model(
        depth=10, width=4, head_width=8, threshold=0.5, num_iterations=2, hidden=16, conv_width=8,
        dtype="float32", rot_repr="quat",
    )  # fmt: skip
    images = jax.random.uniform(jax.random.key(0), (2, 64, 64, 3))
    h_init = jnp.zeros(dhpe.h_dim(rot_repr="quat", num_betas=5)).at[0].set(1.0)
    variables = jax.jit(lambda k: model.init(k, images, h_init, train=False))(
        jax.random.key(1, impl="rbg")
    )
    return model, variables, images, h_init


def _grads(model, variables, images, h_init, **kw):
    def loss(params):
        out, _ = model.apply(
            {**variables, "params": params}, images, h_init, train=True, mutable=["batch_stats"],
            **kw,
        )  # fmt: skip
        total = jnp.sum(out["h"] ** 2) + jnp.sum(out["refined2d"] ** 2)
        return total + jnp.sum(out["heatmaps"] ** 2)

    return jax.jit(jax.grad(loss))(variables["params"])


def _norm(tree):
    return float(sum(jnp.sum(x**2) for x in jax.tree.leaves(tree)))


def test_freeze_e2d_stops_gradients_into_fe2d(setup):
    model, variables, images, h_init = setup
    frozen = _grads(model, variables, images, h_init, freeze_e2d=True)
    assert _norm(frozen["backbone"]) == 0.0 and _norm(frozen["heads"]) == 0.0
    assert _norm(frozen["regressor"]) > 0.0
    # (Without freezing, every module trains: see tests/test_train.py, one step.)


def test_fe2d_alone_skips_fe3d(setup):
    model, variables, images, h_init = setup
    out, _ = jax.eval_shape(
        lambda v: model.apply(
            v, images, h_init, train=True, run_e3d=False, mutable=["batch_stats"]
        ),
        variables,
    )
    assert "h" not in out and "refined2d" not in out
    assert out["heatmaps"].shape[1:3] == (16, 16)  # 1/4 of the 64 px input


def test_keypoints_are_the_soft_argmax_of_the_heatmaps_in_input_pixels(setup):
    model, variables, images, h_init = setup
    out = jax.jit(lambda v, x: model.apply(v, x, h_init, train=False))(variables, images)
    for i in range(images.shape[0]):
        kp, conf = heads.soft_argmax(out["heatmaps"][i], stride=4, threshold=0.5)
        np.testing.assert_allclose(out["keypoints2d"][i], kp, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(out["confidence"][i], conf, rtol=1e-6)
    # fE3D starts exactly from fE2D's keypoints converted to ndc and from h_init (the output
    # layers start at zero).
    ndc = np.asarray(out["keypoints2d"]) / 32.0 - 1.0
    np.testing.assert_allclose(out["refined2d"][0], ndc, atol=1e-6)
    np.testing.assert_allclose(out["h"][0], np.broadcast_to(h_init, out["h"][0].shape), atol=0)


def test_camera_of_h_is_log_scale_and_ndc_shift():
    # h's camera (log s, t) must project root-relative X to s * X + t, whatever the scale.
    from hand_jax import camera

    cam_h = jnp.array([np.log(6.0), 0.3, -0.2])
    cam = dhpe.weak_perspective_cam(cam_h)
    points = jnp.array([[0.01, -0.02, 0.3], [0.0, 0.0, 0.0], [-0.05, 0.04, -0.1]])
    px = camera.project_weak_perspective(points, cam, image_size=64)
    ndc_expected = 6.0 * np.asarray(points[:, :2]) + np.array([0.3, -0.2])
    np.testing.assert_allclose(np.asarray(px) / 32.0 - 1.0, ndc_expected, atol=1e-5)
    np.testing.assert_allclose(dhpe.camera_h(cam), cam_h, atol=1e-6)


def test_h_scale_layout():
    scale = dhpe.h_scale(rot_repr="6d", num_betas=2)
    assert scale.shape == (dhpe.h_dim(rot_repr="6d", num_betas=2),)
    rot, pose, betas, cam = dhpe.split_h(jnp.asarray(scale), rot_repr="6d", num_betas=2)
    np.testing.assert_allclose(rot, dhpe.ROT_SCALE)
    np.testing.assert_allclose(pose, dhpe.POSE_SCALE)
    np.testing.assert_allclose(cam, [dhpe.LOG_SCALE_SCALE, dhpe.SHIFT_SCALE, dhpe.SHIFT_SCALE])


def test_split_h_layout_and_errors():
    h = jnp.arange(dhpe.h_dim(rot_repr="6d", num_betas=3), dtype=jnp.float32)
    rot, pose, betas, cam = dhpe.split_h(h, rot_repr="6d", num_betas=3)
    np.testing.assert_array_equal(np.concatenate([rot, pose, betas, cam]), h)
    assert (rot.shape, pose.shape, betas.shape, cam.shape) == ((6,), (45,), (3,), (3,))
    with pytest.raises(ValueError, match="num_betas=4"):
        dhpe.split_h(h, rot_repr="6d", num_betas=4)
    with pytest.raises(ValueError, match="rot_repr='euler'"):
        dhpe.h_dim(rot_repr="euler", num_betas=3)
    with pytest.raises(ValueError, match="dtype='float16'"):
        dhpe.make_model(depth=10, width=4, head_width=8, threshold=0.5, num_iterations=1, hidden=8,
                        conv_width=8, dtype="float16", rot_repr="quat")  # fmt: skip
