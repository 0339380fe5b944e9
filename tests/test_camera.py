"""Tests for hand_jax.camera: pinhole formula, weak perspective, ndc, crops of intrinsics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hand_jax import camera


def _random_camera(rng):
    fx, fy = rng.uniform(300, 700, 2)
    K = np.array([[fx, rng.uniform(-2, 2), rng.uniform(100, 300)], [0, fy, rng.uniform(80, 200)],
                  [0, 0, 1]])  # fmt: skip
    points = np.stack([rng.uniform(-0.2, 0.2, 50), rng.uniform(-0.2, 0.2, 50),
                       rng.uniform(0.3, 1.5, 50)], axis=1)  # fmt: skip
    return K.astype(np.float32), points.astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1])
def test_perspective_matches_pinhole_formula(seed):
    K, p = _random_camera(np.random.default_rng(seed))
    u = K[0, 0] * p[:, 0] / p[:, 2] + K[0, 1] * p[:, 1] / p[:, 2] + K[0, 2]
    v = K[1, 1] * p[:, 1] / p[:, 2] + K[1, 2]
    np.testing.assert_allclose(camera.project_perspective(p, K), np.stack([u, v], 1), rtol=1e-5)
    uvz = camera.project_perspective(p, K, with_depth=True)
    np.testing.assert_allclose(uvz[:, 2], p[:, 2])


def test_perspective_gradient_finite_on_camera_plane():
    K = np.eye(3, dtype=np.float32)
    pts = jnp.array([[0.1, 0.2, 0.0], [0.0, 0.0, 0.0], [0.3, -0.1, -1.0]])
    g = jax.grad(lambda q: jnp.sum(camera.project_perspective(q, K)))(pts)
    assert np.all(np.isfinite(g))


def test_pixel_centres_and_ndc():
    # Pixel i's centre is at i + 0.5; the image edges are ndc -1 and +1.
    size = (4, 8)  # H, W
    uv = np.array([[0.0, 0.0], [8.0, 4.0], [0.5, 0.5], [4.0, 2.0]], np.float32)
    ndc = camera.pixels_to_ndc(uv, image_size=size)
    np.testing.assert_allclose(ndc, [[-1, -1], [1, 1], [-1 + 1 / 8, -1 + 1 / 4], [0, 0]])
    np.testing.assert_allclose(camera.ndc_to_pixels(ndc, image_size=size), uv, atol=1e-6)


def test_weak_perspective_formula():
    rng = np.random.default_rng(3)
    pts = rng.normal(0, 0.1, (20, 3)).astype(np.float32)
    cam = np.array([5.0, 0.02, -0.03], np.float32)
    uv = camera.project_weak_perspective(pts, cam, image_size=(96, 128))
    u = (cam[0] * (pts[:, 0] + cam[1]) + 1) / 2 * 128
    v = (cam[0] * (pts[:, 1] + cam[2]) + 1) / 2 * 96
    np.testing.assert_allclose(uv, np.stack([u, v], 1), rtol=1e-5, atol=1e-4)
    uvz = camera.project_weak_perspective(pts, cam, image_size=(96, 128), with_depth=True)
    np.testing.assert_allclose(uvz[:, 2], pts[:, 2])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_crop_intrinsics_matches_cropped_projection_and_round_trips(seed):
    rng = np.random.default_rng(seed)
    K, p = _random_camera(rng)
    box = np.array([rng.uniform(0, 100), rng.uniform(0, 80), rng.uniform(50, 300)], np.float32)
    K2 = camera.crop_intrinsics(K, box, out_size=64)
    direct = camera.project_perspective(p, K2)
    expected = (np.asarray(camera.project_perspective(p, K)) - box[:2]) * 64 / box[2]
    np.testing.assert_allclose(direct, expected, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(
        camera.crop_points(camera.project_perspective(p, K), box, out_size=64),
        expected,
        rtol=1e-4,
        atol=1e-3,
    )
    back = camera.uncrop_intrinsics(K2, box, out_size=64)
    np.testing.assert_allclose(back, K, rtol=1e-5, atol=1e-4)


def test_crop_of_whole_image_edges():
    # The crop box's edges map to the crop's edges exactly (no half-pixel shift).
    K = np.array([[100.0, 0, 50], [0, 100, 50], [0, 0, 1]], np.float32)
    K2 = camera.crop_intrinsics(K, np.array([10.0, 20.0, 40.0]), out_size=80)
    corners = np.array([[10.0, 20.0], [50.0, 60.0]])
    np.testing.assert_allclose(camera.crop_points(corners, [10.0, 20.0, 40.0], out_size=80),
                               [[0, 0], [80, 80]])  # fmt: skip
    np.testing.assert_allclose(np.asarray(K2)[:2, 2], [(50 - 10) * 2, (50 - 20) * 2])


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="points"):
        camera.project_perspective(np.zeros((4, 2)), np.eye(3))
    with pytest.raises(ValueError, match="K"):
        camera.project_perspective(np.zeros((4, 3)), np.eye(4))
    with pytest.raises(ValueError, match="cam"):
        camera.project_weak_perspective(np.zeros((4, 3)), np.zeros(2), image_size=8)
    with pytest.raises(ValueError, match="image_size"):
        camera.pixels_to_ndc(np.zeros((1, 2)), image_size=(0, 3))
    with pytest.raises(ValueError, match="box"):
        camera.crop_intrinsics(np.eye(3), np.zeros(2), out_size=8)
    with pytest.raises(ValueError, match="out_size"):
        camera.crop_intrinsics(np.eye(3), np.ones(3), out_size=0)
