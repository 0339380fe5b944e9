"""The pixel-triangle primitives every renderer shares, one function at a time, against plain
numpy written from the definitions (``render.primitives``): the face table, point-to-boundary
distances, edge functions and insideness, barycentrics (clipped and not), perspective
correction, and degenerate faces."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hand_jax.render import dense, primitives

from . import dense_reference as ref
from . import random_mesh

RNG = np.random.default_rng(0)
TRIS = RNG.uniform(0.0, 10.0, (6, 3, 2))
TRIS[1] = TRIS[1, ::-1]  # the other winding
POINTS = np.concatenate([RNG.uniform(-2.0, 12.0, (40, 2)), TRIS.reshape(-1, 2)])  # + vertices


def _segment_distance2(p, a, b):
    """Squared distance from p to the segment ab (closed-form projection, numpy)."""
    ab = b - a
    length2 = ab @ ab
    t = 0.0 if length2 == 0 else np.clip((p - a) @ ab / length2, 0.0, 1.0)
    q = a + t * ab
    return (p - q) @ (p - q)


def _cross(u, v):
    return u[0] * v[1] - u[1] * v[0]


def _columns(tris, points):
    """The pair functions' broadcasting: [1, F] columns with [P, 1] pixels."""
    cols = primitives.columns(primitives.face_params(jnp.asarray(tris)), axis=0)
    return cols, jnp.asarray(points[:, :1]), jnp.asarray(points[:, 1:])


def test_face_params_table():
    got = np.asarray(primitives.face_params(jnp.asarray(TRIS)))
    assert got.shape == (6, primitives.NUM_PARAMS)
    for f, tri in enumerate(TRIS):
        edges = [tri[(k + 1) % 3] - tri[k] for k in range(3)]
        want = [*tri.ravel(), *np.ravel(edges), *[1.0 / (e @ e) for e in edges],
                1.0 / _cross(tri[1] - tri[0], tri[2] - tri[0])]  # fmt: skip
        np.testing.assert_allclose(got[f], want, rtol=2e-5)


def test_distance_to_the_boundary_and_edge_functions():
    cols, px, py = _columns(TRIS, POINTS)
    d2, edge = jax.tree.map(np.asarray, primitives.edge_terms(px, py, cols))
    for f, tri in enumerate(TRIS):
        for i, p in enumerate(POINTS):
            want = min(_segment_distance2(p, tri[k], tri[(k + 1) % 3]) for k in range(3))
            np.testing.assert_allclose(d2[i, f], want, rtol=1e-4, atol=1e-4)
            for k in range(3):
                want_edge = _cross(tri[(k + 1) % 3] - tri[k], p - tri[k])
                np.testing.assert_allclose(edge[k][i, f], want_edge, rtol=1e-4, atol=1e-3)


def test_inside_is_a_strict_same_sign_of_all_three_edges():
    edge = tuple(jnp.asarray(x, jnp.float32) for x in zip(*[
        (1, 2, 3), (-1, -2, -3), (1, -2, 3), (0, 2, 3), (0, -1, -1), (2, 2, 0), (-1, 0, -1),
        (1, 0, 1), (-1, -1, 0),
    ], strict=True))  # fmt: skip
    got = np.asarray(primitives.inside_from_edges(edge)).tolist()
    assert got == [True, True] + [False] * 7


def test_soft_logit_and_log_one_minus_coverage():
    d2 = jnp.array([0.0, 1.5, 4.0, 4.0])
    inside = jnp.array([True, True, False, True])
    np.testing.assert_allclose(primitives.soft_logit(d2, inside, 2.0), [0.0, 0.75, -2.0, 2.0])
    coverage = 1.0 / (1.0 + np.exp(-np.array([0.0, 0.75, -2.0, 2.0])))
    np.testing.assert_allclose(
        primitives.log_one_minus_coverage(d2, inside, 2.0), np.log1p(-coverage), rtol=1e-6
    )


def _numpy_barycentrics(p, tri):
    """Solve p = sum_k b_k v_k with sum_k b_k = 1."""
    a = np.vstack([tri.T, np.ones(3)])
    return np.linalg.solve(a, [*p, 1.0])


def test_barycentrics_unclipped_and_clipped():
    cols, px, py = _columns(TRIS, POINTS)
    _, edge = primitives.edge_terms(px, py, cols)
    raw = np.stack(primitives.barycentrics(edge, cols, clip=False), -1)
    clipped = np.stack(primitives.barycentrics(edge, cols, clip=True), -1)
    for f, tri in enumerate(TRIS):
        for i, p in enumerate(POINTS):
            want = _numpy_barycentrics(p, tri)
            np.testing.assert_allclose(raw[i, f], want, rtol=1e-3, atol=1e-4)
            positive = np.maximum(want, 0.0)
            np.testing.assert_allclose(clipped[i, f], positive / positive.sum(), atol=1e-4)


def test_degenerate_faces_are_masked_not_divided_by():
    tris = np.array([
        [[1.0, 1.0], [1.0, 1.0], [3.0, 2.0]],  # a zero-length edge (and zero area)
        [[0.0, 0.0], [2.0, 2.0], [4.0, 4.0]],  # collinear: zero area
    ])  # fmt: skip
    params = np.asarray(primitives.face_params(jnp.asarray(tris)))
    assert params[0, 12] == 0.0 and params[0, 15] == 0.0 and params[1, 15] == 0.0
    np.testing.assert_allclose(params[1, 12:15], [1 / 8, 1 / 8, 1 / 32])
    points = np.array([[1.0, 2.0], [5.0, 0.0]])
    cols, px, py = _columns(tris, points)
    d2, edge = primitives.edge_terms(px, py, cols)
    np.testing.assert_allclose(d2[:, 0], [0.8, 8.0], rtol=1e-6)  # to (1.4, 1.2) and (3, 2)
    b = np.stack(primitives.barycentrics(edge, cols, clip=True), -1)
    np.testing.assert_allclose(b, 1.0 / 3.0)  # no area: equal weights
    assert not np.any(np.asarray(primitives.inside_from_edges(edge)))

    def loss(xy):
        cols = primitives.columns(primitives.face_params(xy), axis=0)
        d2, edge = primitives.edge_terms(jnp.asarray(points[:, :1]), points[:, 1:], cols)
        b = primitives.barycentrics(edge, cols, clip=True)
        return jnp.sum(d2) + sum(jnp.sum(x) for x in b)

    assert np.all(np.isfinite(jax.grad(loss)(jnp.asarray(tris))))


@pytest.mark.parametrize("length, kept", [(1e-7, False), (0.9e-6, False), (1.1e-6, True),
                                          (1e-5, True)])  # fmt: skip
def test_edges_shorter_than_a_micro_pixel_count_as_degenerate(length, kept):
    tris = np.array([[[0.0, 0.0], [length, 0.0], [0.0, 1.0]]])
    with jax.enable_x64(True):
        params = np.asarray(primitives.face_params(jnp.asarray(tris)))
    assert params[0, 12] == (pytest.approx(length**-2) if kept else 0.0)


def test_perspective_correct_against_the_definition():
    b = tuple(jnp.asarray(x) for x in ([0.2, 0.0, 1.0], [0.3, 0.5, 0.0], [0.5, 0.5, 0.0]))
    z = np.array([2.0, 4.0, 8.0])
    corrected, depth = primitives.perspective_correct(b, tuple(1.0 / z))
    bb = np.stack([np.asarray(x) for x in b], -1)
    want_depth = 1.0 / (bb @ (1.0 / z))
    np.testing.assert_allclose(depth, want_depth, rtol=1e-6)
    np.testing.assert_allclose(np.stack(corrected, -1), bb / z * want_depth[:, None], rtol=1e-6)
    # All weights zero: depth 1 and the weights passed through.
    zero = tuple(jnp.zeros(1) for _ in range(3))
    out, d = primitives.perspective_correct(zero, tuple(1.0 / z))
    assert float(d[0]) == 1.0 and all(float(x[0]) == 0.0 for x in out)


def test_dense_silhouette_defaults_and_culling_match_the_numpy_reference():
    verts, faces = random_mesh(np.random.default_rng(3), 8, 12)
    verts[:, 2] -= 0.5  # depths in [0.5, 1.5]: the default near plane is 0, not 1
    verts[faces[0], 2] = -1.0  # one face behind the camera: culled at near = 0
    got = dense.dense_soft_silhouette(verts, faces, image_size=12)  # sigma 1, near 0
    np.testing.assert_allclose(got, ref.soft_silhouette(verts, faces, 12, 12, 1.0), atol=1e-5)
