"""geometry.kinematics against plain-numpy loops, on small random trees (float64, no jit)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hand_jax.geometry import kinematics

# A forest given out of order: children before parents, two roots, uneven depths.
PARENTS = (2, -1, 1, 0, -1, 4, 3, 1)


@pytest.fixture(autouse=True)
def _x64():
    with jax.enable_x64(True):
        yield


def _random_rotations(rng, n):
    q, _ = np.linalg.qr(rng.normal(size=(n, 3, 3)))
    return q * np.sign(np.linalg.det(q))[:, None, None]


def _depths_loop(parents):
    depths = []
    for j in range(len(parents)):
        d, k = 0, j
        while parents[k] != -1:
            k, d = parents[k], d + 1
        depths.append(d)
    return depths


def test_kinematic_levels_of_an_unordered_forest():
    depths = _depths_loop(PARENTS)
    want = tuple(
        tuple(j for j in range(len(PARENTS)) if depths[j] == d) for d in range(max(depths) + 1)
    )
    assert kinematics.kinematic_levels(PARENTS) == want == ((1, 4), (2, 5, 7), (0,), (3,), (6,))
    assert kinematics.kinematic_levels((-1,)) == ((0,),)
    assert kinematics.kinematic_levels((-1, 0)) == ((0,), (1,))  # the last joint may be a parent
    # the last joint is reached (as a parent) before a later root is met
    assert kinematics.kinematic_levels((2, -1, -1)) == ((1, 2), (0,))


@pytest.mark.parametrize(
    "parents, message",
    [
        ((1, 0), r"^parents=\(1, 0\): cycle through joint 0$"),
        ((-1, 2, 3, 1), r"^parents=\(-1, 2, 3, 1\): cycle through joint 1$"),
        ((0,), r"^parents=\(0,\): cycle through joint 0$"),
        ((-1, 2), r"^parents\[1\]=2: expected -1 or a joint in \[0, 2\)$"),
        ((-1, -2), r"^parents\[1\]=-2: expected -1 or a joint in \[0, 2\)$"),
    ],
)
def test_kinematic_levels_refuses_cycles_and_out_of_range_parents(parents, message):
    with pytest.raises(ValueError, match=message):
        kinematics.kinematic_levels(parents)


def test_small_products_match_numpy():
    rng = np.random.default_rng(0)
    a, b, v = rng.normal(size=(4, 3, 3)), rng.normal(size=(4, 3, 3)), rng.normal(size=(4, 3))
    np.testing.assert_allclose(kinematics.matvec3(a, v), np.einsum("nij,nj->ni", a, v))
    np.testing.assert_allclose(kinematics.matmul3(a, b), a @ b)


def test_blend_shapes_pose_features_and_joint_regression_match_loops():
    rng = np.random.default_rng(1)
    template, dirs, coeffs = rng.normal(size=(3, 5)), rng.normal(size=(3, 5, 4)), rng.normal(size=4)
    want = template.copy()
    for n in range(4):
        want += coeffs[n] * dirs[..., n]
    np.testing.assert_allclose(kinematics.blend_shapes(template, dirs, coeffs), want)
    rot = rng.normal(size=(3, 3, 3))
    feats = [rot[j][r][c] - (r == c) for j in (1, 2) for r in range(3) for c in range(3)]
    np.testing.assert_allclose(kinematics.pose_features(jnp.asarray(rot)), feats)
    reg, verts = rng.normal(size=(2, 5)), rng.normal(size=(3, 5))
    want = [[sum(reg[j, v] * verts[c, v] for v in range(5)) for c in range(3)] for j in range(2)]
    np.testing.assert_allclose(kinematics.regress_joints(reg, verts), want)


def _fk_loop(rotmats, joints, parents):
    """Global 4x4 transforms by walking each joint's chain up to its root."""
    out_r, out_t = [], []
    for j in range(len(parents)):
        chain, k = [], j
        while k != -1:
            chain.append(k)
            k = parents[k]
        g = np.eye(4)
        for c in reversed(chain):  # root first
            local = np.eye(4)
            local[:3, :3] = rotmats[c]
            local[:3, 3] = joints[c] - (joints[parents[c]] if parents[c] != -1 else 0)
            g = g @ local
        out_r.append(g[:3, :3])
        out_t.append(g[:3, 3])
    return np.array(out_r), np.array(out_t)


def test_forward_kinematics_matches_chained_4x4_transforms():
    rng = np.random.default_rng(2)
    rotmats, joints = _random_rotations(rng, len(PARENTS)), rng.normal(size=(len(PARENTS), 3))
    rots, posed = kinematics.forward_kinematics(rotmats, joints, parents=PARENTS)
    want_r, want_t = _fk_loop(rotmats, joints, PARENTS)
    np.testing.assert_allclose(rots, want_r, atol=1e-12)
    np.testing.assert_allclose(posed, want_t, atol=1e-12)


def test_skinning_matches_a_per_vertex_loop():
    rng = np.random.default_rng(3)
    j, v = 4, 6  # J != 3, so that no [J, ...] axis can pass for a [3, ...] one
    rots, posed, rest = _random_rotations(rng, j), rng.normal(size=(j, 3)), rng.normal(size=(j, 3))
    r, t = kinematics.skinning_transforms(rots, posed, rest)
    np.testing.assert_allclose(r, rots)
    for k in range(j):  # the rest joint goes to the posed joint
        np.testing.assert_allclose(r[k] @ rest[k] + t[k], posed[k], atol=1e-12)
    verts, weights = rng.normal(size=(3, v)), rng.dirichlet(np.ones(j), size=v)
    out = kinematics.linear_blend_skinning(verts, weights, r, t)
    for i in range(v):
        m = sum(weights[i, k] * np.c_[np.asarray(r[k]), np.asarray(t[k])] for k in range(j))
        np.testing.assert_allclose(out[:, i], m[:, :3] @ verts[:, i] + m[:, 3], atol=1e-12)
