"""Pose prior: documented ranges, anatomical axes on the default hand, uniform rotations."""

import jax.numpy as jnp
import numpy as np
import pytest

from hand_jax import mano
from hand_jax.data import pose_prior as pp

FINGER_TIPS = {"thumb": 4, "index": 8, "middle": 12, "ring": 16, "pinky": 20}


@pytest.fixture(scope="module")
def hand():
    model = mano.load_model()
    rest = mano.forward(model, jnp.zeros(48), jnp.zeros(model.num_betas))
    tips = np.asarray(rest.verts)[list(model.tip_ids)]
    return model, rest, pp.joint_axes(np.asarray(rest.joints), tips)


def test_angles_stay_in_documented_ranges():
    rng = np.random.default_rng(0)
    angles = np.rad2deg(np.stack([pp.sample_angles(rng) for _ in range(500)]))
    for finger, ids in pp.FINGER_JOINTS.items():
        kind = "thumb" if finger == "thumb" else "finger"
        for level, joint in enumerate(ids):
            flex, abd, twist = angles[:, joint - 1].T
            lo, hi = pp.FLEXION_DEG[kind][level]
            assert lo - 1e-9 <= flex.min() and flex.max() <= hi + 1e-9
            assert flex.max() - flex.min() > 0.5 * (hi - lo)  # the range is actually used
            assert np.abs(twist).max() <= pp.TWIST_DEG[kind][level] + 1e-9
            if level == 0:
                lo, hi = pp.ABDUCTION_DEG[finger]
                assert lo - 1e-9 <= abd.min() and abd.max() <= hi + 1e-9
            elif kind == "finger":
                assert np.all(abd == 0)


def test_dip_follows_pip():
    rng = np.random.default_rng(1)
    angles = np.stack([pp.sample_angles(rng) for _ in range(300)])
    pip, dip = angles[:, 1, 0], angles[:, 2, 0]  # index PIP, DIP flexion
    assert np.corrcoef(pip, dip)[0, 1] > 0.8


def test_axes_are_orthonormal(hand):
    _, _, axes = hand
    for frame in axes:
        np.testing.assert_allclose(frame @ frame.T, np.eye(3), atol=1e-6)


@pytest.mark.parametrize("finger", list(pp.FINGER_JOINTS))
def test_flexion_curls_towards_the_palm_and_abduction_towards_the_thumb(hand, finger):
    model, rest, axes = hand
    joints = np.asarray(rest.joints)
    palm = np.cross(joints[1] - joints[0], joints[7] - joints[0])  # out of a right palm
    mcp = pp.FINGER_JOINTS[finger][0]
    for row, direction in ((0, palm), (1, joints[13] - joints[4])):
        pose = np.zeros(48, np.float32)
        pose[3 * mcp : 3 * mcp + 3] = np.deg2rad(40.0) * axes[mcp - 1, row]
        posed = mano.forward(model, jnp.asarray(pose), jnp.zeros(model.num_betas))
        tip = FINGER_TIPS[finger]
        move = np.asarray(posed.keypoints)[tip] - np.asarray(rest.keypoints)[tip]
        if row == 1 and finger == "thumb":
            continue  # the thumb's abduction sign is a convention of its own
        assert np.dot(move, direction) > 0


def test_uniform_rotations_cover_so3():
    rng = np.random.default_rng(2)
    rotvecs = np.stack([pp.uniform_rotation(rng) for _ in range(3000)])
    angles = np.linalg.norm(rotvecs, axis=-1)
    assert angles.max() <= np.pi + 1e-9
    # Haar measure: the rotation angle has density (1 - cos t) / pi; its mean is pi/2 + 2/pi.
    assert abs(angles.mean() - (np.pi / 2 + 2 / np.pi)) < 0.05
    # Random rotations average to the zero matrix; test through where they send the z axis.
    z = []
    for r in rotvecs:
        t = np.linalg.norm(r)
        k = r / t
        z.append(np.cos(t) * np.array([0, 0, 1.0]) + np.sin(t) * np.cross(k, [0, 0, 1.0])
                 + (1 - np.cos(t)) * k * k[2])  # fmt: skip
    assert np.linalg.norm(np.mean(z, axis=0)) < 0.05
