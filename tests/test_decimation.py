"""Half-edge-collapse decimation: a coarser manifold on the same vertices, outline and winding
kept."""

import numpy as np
import pytest

from hand_jax.geometry import decimation


def _icosphere(levels: int):
    """A closed unit sphere (outward, counter-clockwise faces), independent of the code tested."""
    t = (1 + 5**0.5) / 2
    v = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t), (0, -1, -t),
         (0, 1, -t), (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]  # fmt: skip
    f = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4),
         (11, 10, 2), (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8),
         (3, 8, 9), (4, 9, 5), (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1)]  # fmt: skip
    verts = [np.asarray(x, float) / np.linalg.norm(x) for x in v]
    for _ in range(levels):
        cache, new = {}, []

        def mid(a, b, cache=cache):
            key = (min(a, b), max(a, b))
            if key not in cache:
                m = verts[a] + verts[b]
                verts.append(m / np.linalg.norm(m))
                cache[key] = len(verts) - 1
            return cache[key]

        for a, b, c in f:
            ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
            new += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        f = new
    return np.asarray(verts), np.asarray(f)


def _edge_counts(faces):
    edges = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    return counts


def _signed_volume(verts, faces):
    a, b, c = (verts[faces[:, k]] for k in range(3))
    return np.sum(np.einsum("ij,ij->i", a, np.cross(b, c))) / 6.0


@pytest.mark.parametrize("target", [640, 160, 40])
def test_a_sphere_stays_a_closed_outward_sphere(target):
    verts, faces = _icosphere(3)  # 1280 faces
    out = decimation.collapse_faces(verts, faces, target_faces=target)
    assert len(out) <= target and out.dtype == np.int32
    assert np.all(_edge_counts(out) == 2)  # closed 2-manifold: every edge in two faces
    used = np.unique(out)
    assert len(used) - 3 * len(out) // 2 + len(out) == 2  # Euler characteristic V - E + F
    # Winding kept: every face still points outward; the volume shrinks only as far as the
    # inscribed polyhedron of the kept vertices (a 40-face sphere keeps over half of 4/3 pi).
    a, b, c = (verts[out[:, k]] for k in range(3))
    assert np.all(np.einsum("ij,ij->i", np.cross(b - a, c - a), a + b + c) > 0)
    assert 0.55 * 4.18879 < _signed_volume(verts, out) <= _signed_volume(verts, faces)


def test_an_open_grid_keeps_its_outline():
    n = 9
    y, x = np.mgrid[:n, :n]
    verts = np.stack([x.ravel(), y.ravel(), np.zeros(n * n)], axis=1).astype(float)
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    faces = np.concatenate([np.stack([a, b, d], -1), np.stack([a, d, c], -1)]).reshape(-1, 3)
    out = decimation.collapse_faces(verts, faces, target_faces=30)
    border = np.unique(np.concatenate([idx[0], idx[-1], idx[:, 0], idx[:, -1]]))
    assert set(border) <= set(np.unique(out))  # no border vertex moved
    assert np.all(_edge_counts(out) <= 2)
    area = 0.5 * np.linalg.norm(np.cross(*(verts[out[:, k]] - verts[out[:, 0]] for k in (1, 2))),
                                axis=1)  # fmt: skip
    assert np.sum(area) == pytest.approx((n - 1) ** 2)  # the same square, no fold, no hole
    normals = np.cross(verts[out[:, 1]] - verts[out[:, 0]], verts[out[:, 2]] - verts[out[:, 0]])
    assert np.all(normals[:, 2] > 0)  # every face still counter-clockwise


def test_the_hand_proxy_renders_nearly_the_same_silhouette():
    """The default hand at a quarter of its faces: soft silhouettes agree over random poses."""
    import jax.numpy as jnp

    from hand_jax import mano, params, render

    model = mano.load_model()
    proxy = decimation.collapse_faces(
        np.asarray(model.v_template, np.float64), np.asarray(model.faces),
        target_faces=model.faces.shape[0] // 4,
    )  # fmt: skip
    assert np.all(_edge_counts(proxy) <= 2)
    rng = np.random.default_rng(3)
    for _ in range(4):
        p = params.default_params(model)._replace(
            pose=jnp.asarray(model.hands_mean + rng.normal(0, 0.3, 45), jnp.float32),
            global_rot=jnp.asarray(rng.normal(size=4), jnp.float32),
        )
        _, v, _ = params.screen_hand(model, p, image_size=16)
        full = render.soft_silhouette(v, model.faces, image_size=16, sigma=0.25)
        coarse = render.soft_silhouette(v, jnp.asarray(proxy), image_size=16, sigma=0.25)
        iou = jnp.sum(jnp.minimum(full, coarse)) / jnp.sum(jnp.maximum(full, coarse))
        assert float(iou) > 0.93


def test_bad_arguments_are_refused():
    verts, faces = _icosphere(1)
    with pytest.raises(ValueError, match="target_faces"):
        decimation.collapse_faces(verts, faces, target_faces=3)
    with pytest.raises(ValueError, match="faces"):
        decimation.collapse_faces(verts, faces + len(verts), target_faces=10)
    with pytest.raises(ValueError, match="verts"):
        decimation.collapse_faces(verts[:, :2], faces, target_faces=10)
