"""The perspective camera of the network (``hand_jax.network.forward``) against plain references.

References: a float64 numpy pinhole (``u = K X / Z``) with the numpy view rotation of
``hand_jax.data.crop``; closed forms for the wrist's pixel and depth; the weak-perspective
projection in the limit of a far, small hand; finite differences for gradients.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from hand_jax import camera, params, render
from hand_jax.data import crop
from hand_jax.models import dhpe
from hand_jax.network import forward
from hand_jax.network.settings import RuntimeSettings, make_constants
from launch.configs import default as default_config

S = 64
NB = 5  # the embedded default hand's shape components


@pytest.fixture(scope="module")
def consts():
    config = default_config.get_config()
    return make_constants(config)


def _runtime(camera_name, rot_repr="quat"):
    return RuntimeSettings(rot_repr, NB, 32, 1.0, camera=camera_name)


def _crop_K(f=180.0, c=(40.0, 20.0)):
    """An off-centre crop's intrinsics: the principal point is not the crop centre."""
    return np.array([[f, 0.0, c[0]], [0.0, f * 1.05, c[1]], [0.0, 0.0, 1.0]])


def _h(consts, rng, rot_repr="quat"):
    mean = dhpe.to_hand_params(consts.h_init, rot_repr="quat", num_betas=NB)
    rot = mean.global_rot + 0.2 * rng.standard_normal(4)
    if rot_repr == "6d":
        rot = params.global_rotation_matrix(rot)[:, :2].T.reshape(6)
    pose = mean.pose + 0.3 * rng.standard_normal(45)
    betas = rng.standard_normal(NB)
    cam_h = np.array([np.log(9.0), 0.1, -0.2]) + 0.05 * rng.standard_normal(3)
    return jnp.concatenate([jnp.asarray(x, jnp.float32) for x in (rot, pose, betas, cam_h)])


def test_view_rotation_matches_the_numpy_reference():
    for c in [(32.0, 32.0), (40.0, 20.0), (-300.0, 500.0)]:
        K = _crop_K(c=c)
        got = np.asarray(camera.view_rotation(jnp.asarray(K), image_size=S), np.float64)
        np.testing.assert_allclose(got, crop.view_rotation(K, image_size=S), atol=1e-6)


def test_the_wrist_lies_on_its_pixel_at_the_stated_depth():
    K = _crop_K()
    cam_h = jnp.asarray([np.log(7.0), 0.3, -0.4])
    view, wrist = forward.perspective_camera(cam_h, jnp.asarray(K, jnp.float32), image_size=S)
    wrist = np.asarray(wrist, np.float64)
    pixel = (K @ wrist)[:2] / wrist[2]
    np.testing.assert_allclose(pixel, (np.array([0.3, -0.4]) + 1) * S / 2, atol=1e-3)
    axis = crop.view_rotation(K, image_size=S)[2]
    f = 0.5 * (K[0, 0] + K[1, 1])
    np.testing.assert_allclose(axis @ wrist, 2 * f / (7.0 * S), rtol=1e-5)


@pytest.mark.parametrize("rot_repr", ["quat", "6d"])
def test_projection_equals_a_float64_numpy_pinhole(consts, rot_repr):
    rng = np.random.default_rng(0)
    h, K = _h(consts, rng, rot_repr), _crop_K()
    rt = _runtime("perspective", rot_repr)
    verts, kp3d, kp2d = forward.project(consts, h, runtime=rt, image_size=S, K=jnp.asarray(K))
    p = dhpe.to_hand_params(h, rot_repr=rot_repr, num_betas=NB)
    want_verts, want_kp3d = params.hand_forward_3d(consts.hand_model, p)
    np.testing.assert_allclose(kp3d, want_kp3d, atol=1e-6)  # view frame, root-relative
    # Reference: camera frame = R_view^T X + wrist, wrist on the ray of its pixel.
    R = crop.view_rotation(K, image_size=S)
    cam_h = np.asarray(h[-3:], np.float64)
    ray = np.linalg.solve(K, np.append((cam_h[1:] + 1) * S / 2, 1.0))
    depth = 0.5 * (K[0, 0] + K[1, 1]) * 2 / (np.exp(cam_h[0]) * S)
    wrist = ray * depth / (R[2] @ ray)
    points = np.asarray(kp3d, np.float64) @ R + wrist
    uvw = points @ K.T
    np.testing.assert_allclose(kp2d, uvw[:, :2] / uvw[:, 2:], atol=2e-3)


def test_weak_and_perspective_agree_for_a_far_small_hand(consts):
    """A long focal length at the crop centre: perspective tends to the weak-perspective view."""
    rng = np.random.default_rng(1)
    h = _h(consts, rng)
    K = jnp.asarray([[80000.0, 0, S / 2], [0, 80000.0, S / 2], [0, 0, 1]])
    weak = forward.project(consts, h, runtime=_runtime("weak"), image_size=S)[2]
    persp = forward.project(consts, h, runtime=_runtime("perspective"), image_size=S, K=K)[2]
    assert float(jnp.max(jnp.abs(weak - persp))) < 0.02
    K = K.at[0, 0].set(150.0).at[1, 1].set(150.0)  # a wide lens: foreshortening shows
    persp = forward.project(consts, h, runtime=_runtime("perspective"), image_size=S, K=K)[2]
    assert float(jnp.max(jnp.abs(weak - persp))) > 0.3


@pytest.mark.parametrize("rot_repr", ["quat", "6d"])
def test_camera_params_round_trip_and_agree_with_hand_forward_perspective(consts, rot_repr):
    rng = np.random.default_rng(2)
    h, K = _h(consts, rng, rot_repr), jnp.asarray(_crop_K())
    rt = _runtime("perspective", rot_repr)
    p = forward.camera_params(h, K, runtime=rt, image_size=S)
    np.testing.assert_allclose(forward.camera_h(p, K, image_size=S), h, atol=2e-5)
    _, _, kp2d = params.hand_forward_perspective(consts.hand_model, p, K)
    want = forward.project(consts, h, runtime=rt, image_size=S, K=K)[2]
    np.testing.assert_allclose(kp2d, want, atol=2e-3)


def test_perspective_silhouette_equals_rendering_the_numpy_projection(consts):
    rng = np.random.default_rng(3)
    h, K = _h(consts, rng), _crop_K()
    rt = _runtime("perspective")
    verts = forward.project(consts, h, runtime=rt, image_size=S, K=jnp.asarray(K))[0]
    alpha = forward.silhouette(consts, verts, h[-3:], runtime=rt, image_size=S, K=jnp.asarray(K))
    R = crop.view_rotation(K, image_size=S)
    _, wrist = forward.perspective_camera(h[-3:], jnp.asarray(K), image_size=S)
    points = np.asarray(verts, np.float64) @ R + np.asarray(wrist, np.float64)
    K_m = np.diag([32 / S, 32 / S, 1.0]) @ K
    uvw = points @ K_m.T
    screen = np.concatenate([uvw[:, :2] / uvw[:, 2:], points[:, 2:]], axis=1)
    want = render.soft_silhouette(jnp.asarray(screen, jnp.float32), consts.hand_model.faces,
                                  image_size=(32, 32), sigma=1.0)  # fmt: skip
    np.testing.assert_allclose(alpha, want, atol=2e-3)
    assert float(jnp.sum(alpha)) > 20.0  # the hand is in view


def test_perspective_projection_gradients(consts):
    rng = np.random.default_rng(4)
    rt = _runtime("perspective")
    with jax.enable_x64(True):
        K = jnp.asarray(_crop_K(), jnp.float64)
        c64 = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64) if x.dtype == jnp.float32 else x,
                           consts)  # fmt: skip
        h = jnp.asarray(_h(consts, rng), jnp.float64)
        f = lambda x: forward.project(c64, x, runtime=rt, image_size=S, K=K)[2]  # noqa: E731
        check_grads(f, (h,), order=1, modes=["rev"], atol=1e-4, rtol=1e-4)


def test_predict_and_project_need_K_for_a_perspective_network(consts):
    with pytest.raises(ValueError, match="intrinsics K"):
        forward.project(consts, consts.h_init, runtime=_runtime("perspective"), image_size=S)
    with pytest.raises(ValueError, match="camera="):
        dataclasses.replace(_runtime("weak"), camera="orthographic")
