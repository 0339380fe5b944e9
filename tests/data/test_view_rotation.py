"""The view rotation of a crop: closed-form properties, what it is for, and undoing it.

``crop.view_rotation(K, image_size=S)`` turns the crop camera's frame into that of a virtual
camera looking through the crop centre; training rotates the 3D targets into it and
``hand_jax.network.batches.run_predictions`` rotates predictions back. Frames: camera, metres,
x right, y down, z forward; crop pixels (u, v) with the centre at (S / 2, S / 2).
"""

import jax.numpy as jnp
import numpy as np
import pytest

from hand_jax import sharding
from hand_jax.data import crop
from hand_jax.network import batches

S = 64


def _random_crop_K(rng):
    """Crop intrinsics whose principal point lies anywhere from far off the crop to inside it."""
    fx, fy = rng.uniform(40, 300, size=2)
    cx, cy = rng.uniform(-2 * S, 3 * S, size=2)
    return np.array([[fx, rng.uniform(-2, 2), cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def _axis_angle(R):
    """Rotation axis (unit) and angle of a proper rotation, from its skew part and trace."""
    skew = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    angle = np.arctan2(np.linalg.norm(skew) / 2, (np.trace(R) - 1) / 2)
    return skew / np.linalg.norm(skew), angle


@pytest.mark.parametrize("seed", range(5))
def test_proper_rotation_taking_the_centre_ray_to_z(seed):
    K = _random_crop_K(np.random.default_rng(seed))
    R = crop.view_rotation(K, image_size=S)
    assert R.dtype == np.float64
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-12)
    ray = np.linalg.inv(K) @ [S / 2, S / 2, 1.0]
    np.testing.assert_allclose(R @ ray, [0.0, 0.0, np.linalg.norm(ray)], atol=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_the_smallest_rotation(seed):
    # Any rotation about z after R also takes the ray to z; the smallest has its axis in the
    # x-y plane and turns by exactly the angle between the ray and the optical axis.
    K = _random_crop_K(np.random.default_rng(seed))
    R = crop.view_rotation(K, image_size=S)
    ray = np.linalg.inv(K) @ [S / 2, S / 2, 1.0]
    axis, angle = _axis_angle(R)
    assert abs(axis[2]) < 1e-12
    np.testing.assert_allclose(angle, np.arccos(ray[2] / np.linalg.norm(ray)), atol=1e-12)


def test_a_crop_centred_on_the_principal_point_is_the_identity():
    K = np.array([[120.0, 0.0, S / 2], [0.0, 130.0, S / 2], [0.0, 0.0, 1.0]])
    np.testing.assert_array_equal(crop.view_rotation(K, image_size=S), np.eye(3))
    # ... whichever the crop size: the centre is S / 2 of the size passed.
    K[:2, 2] = 20.0
    np.testing.assert_array_equal(crop.view_rotation(K, image_size=40), np.eye(3))
    assert not np.allclose(crop.view_rotation(K, image_size=S), np.eye(3))


def _weak_perspective_residual(points, uv):
    """RMS pixels of the least-squares fit uv = s * points[:, :2] + t (one scale, 2D shift)."""
    n = len(points)
    A = np.zeros((2 * n, 3))
    A[0::2, 0], A[1::2, 0] = points[:, 0], points[:, 1]
    A[0::2, 1], A[1::2, 2] = 1.0, 1.0
    b = uv.reshape(-1)
    solution = np.linalg.lstsq(A, b, rcond=None)[0]
    return np.sqrt(np.mean((A @ solution - b) ** 2))


def _project(points, K):
    h = points @ K.T
    return h[:, :2] / h[:, 2:]


@pytest.mark.parametrize("seed", range(5))
def test_rotated_points_fit_an_off_centre_crop_by_weak_perspective(seed):
    # A hand 0.34 rad off the optical axis, seen through a crop around it: its image is close to
    # the orthographic view along the ray through the crop centre, not along the optical axis.
    rng = np.random.default_rng(seed)
    xyz = np.array([0.15, -0.1, 0.5]) + rng.normal(scale=0.03, size=(21, 3))
    K = np.array([[600.0, 0.0, 320.0], [0.0, 600.0, 240.0], [0.0, 0.0, 1.0]])
    box = crop.keypoint_box(_project(xyz, K))
    K_crop = crop.crop_intrinsics(K, box, out_size=S)
    uv = _project(xyz, K_crop)
    R = crop.view_rotation(K_crop, image_size=S)
    relative = xyz - xyz[0]
    view = _weak_perspective_residual(relative @ R.T, uv)
    camera = _weak_perspective_residual(relative, uv)
    backwards = _weak_perspective_residual(relative @ R, uv)  # R^T: twice as far off the ray
    assert view < 0.5 * camera  # measured over 40 seeds: at most 0.40
    assert backwards > camera


# The 3D target of the loss (hand_jax.train) and the prediction back in the crop camera frame
# (hand_jax.train.evaluation.run_predictions), as written there.
_TO_VIEW = "bij,bkj->bki"
_TO_CAMERA = "nji,nkj->nki"


def test_to_view_and_back_is_the_identity():
    rng = np.random.default_rng(0)
    R = np.stack([crop.view_rotation(_random_crop_K(rng), image_size=S) for _ in range(4)])
    xyz = rng.normal(scale=0.05, size=(4, 21, 3))
    view = np.einsum(_TO_VIEW, R, xyz)
    for n in range(4):  # X_view = R @ X, keypoint by keypoint
        np.testing.assert_allclose(view[n], (R[n] @ xyz[n].T).T, atol=1e-15)
    np.testing.assert_allclose(np.einsum(_TO_CAMERA, R, view), xyz, atol=1e-12)


def _sample(i, K, rng):
    sample = {
        "id": f"t/{i}",
        "image": np.full((S, S, 3), i, np.uint8),  # the stub predictor reads the index back
        "mask": np.zeros((S, S), np.uint8),
        "mask_valid": np.bool_(True),
        "keypoints_2d": rng.uniform(0, S, size=(21, 2)).astype(np.float32),
        "keypoints_3d": rng.normal(scale=0.05, size=(21, 3)).astype(np.float32),
        "keypoint_valid": np.ones(21, bool),
    }
    if K is not None:
        sample["K"] = K
    return sample


def test_run_predictions_rotates_back_to_the_crop_camera():
    rng = np.random.default_rng(1)
    Ks = [_random_crop_K(rng), _random_crop_K(rng), None, _random_crop_K(rng), _random_crop_K(rng)]
    samples = [_sample(i, K, rng) for i, K in enumerate(Ks)]
    # What the network would predict for each sample: its camera-frame keypoints, in its view.
    camera = rng.normal(scale=0.05, size=(len(samples), 21, 3))
    rotations = [np.eye(3) if K is None else crop.view_rotation(K, image_size=S) for K in Ks]
    view = np.stack([(R @ x.T).T for R, x in zip(rotations, camera, strict=True)])
    table = jnp.asarray(view, jnp.float32)

    def stub_predict(state, images, K, consts):
        return {"kp3d": table[images[:, 0, 0, 0].astype(jnp.int32)]}

    mesh_sharding = sharding.batch_sharding(sharding.make_mesh())
    out = batches.run_predictions(
        stub_predict, None, samples, None, batch_size=4, sharding=mesh_sharding
    )  # 5 samples: a second, padded batch
    np.testing.assert_allclose(out["kp3d_view"], view, atol=1e-7)
    np.testing.assert_allclose(out["kp3d"], camera, atol=1e-6)
    np.testing.assert_array_equal(out["kp3d"][2], out["kp3d_view"][2])  # no K: no rotation
