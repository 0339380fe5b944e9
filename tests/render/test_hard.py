"""Hard z-buffer renderer: against a numpy z-buffer, shading closed forms, soft limit."""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hand_jax import camera, render

from . import dense_reference as ref
from . import hand_in_crop, load_default_hand, random_mesh, rotation, synthetic_hand_mesh


@pytest.mark.parametrize("perspective", [True, False])
def test_zbuffer_matches_reference(perspective):
    rng = np.random.default_rng(int(perspective))
    verts, faces = random_mesh(rng, 30, 24, size=8.0)
    colors = rng.uniform(size=(len(verts), 3)).astype(np.float32)
    fn = jax.jit(functools.partial(render.render_hard, image_size=(24, 26), tile_size=8,
                                   perspective_correct=perspective))  # fmt: skip
    out = fn(verts, faces, colors)
    face_map, depth = ref.hard_zbuffer(verts, faces, 24, 26, perspective=perspective)
    np.testing.assert_array_equal(np.asarray(out.mask) > 0, face_map >= 0)
    np.testing.assert_allclose(out.depth, depth, rtol=1e-5)
    # unlit colour = barycentric interpolation of the visible face's vertex colours
    j, i = np.argwhere(face_map >= 0)[len(np.argwhere(face_map >= 0)) // 2]
    tri = verts[faces[face_map[j, i]]].astype(np.float64)
    a, b, c = tri[:, :2]
    p = np.array([i + 0.5, j + 0.5])

    def cross(u, v):
        return u[0] * v[1] - u[1] * v[0]

    bary = np.array([cross(c - b, p - b), cross(a - c, p - c), cross(b - a, p - a)])
    bary = bary / cross(b - a, c - a)
    if perspective:
        bary = bary / tri[:, 2] / np.sum(bary / tri[:, 2])
    np.testing.assert_allclose(out.rgb[j, i], bary @ colors[faces[face_map[j, i]]], atol=1e-5)


def test_lambertian_closed_form_and_background():
    # A square facing the camera at depth 2, lit head-on, then at 60 degrees.
    quad = np.array([[-1, -1, 2], [1, -1, 2], [1, 1, 2], [-1, 1, 2]], np.float32)
    faces = np.array([[0, 2, 1], [0, 3, 2]])  # counter-clockwise seen from the camera (-z)
    K = np.array([[8.0, 0, 8], [0, 8, 8], [0, 0, 1]], np.float32)
    color = np.array([0.8, 0.5, 0.2], np.float32)
    normals = render.vertex_normals(jnp.asarray(quad), jnp.asarray(faces))
    np.testing.assert_allclose(normals, np.tile([0, 0, -1], (4, 1)), atol=1e-6)
    kw = dict(K=K, image_size=16, ambient=0.3, diffuse=0.7, background=(0.0, 0.1, 0.2))
    fn = jax.jit(render.render_mesh, static_argnames="image_size")
    out = fn(quad, faces, np.tile(color, (4, 1)), **kw)
    np.testing.assert_allclose(out.rgb[8, 8], color, atol=1e-5)
    np.testing.assert_allclose(out.depth[8, 8], 2.0, atol=1e-5)
    np.testing.assert_allclose(out.rgb[0, 0], [0.0, 0.1, 0.2])
    light = (np.sin(np.pi / 3), 0.0, -np.cos(np.pi / 3))
    out = fn(quad, faces, np.tile(color, (4, 1)), light_dir=light, **kw)
    np.testing.assert_allclose(out.rgb[8, 8], color * (0.3 + 0.7 * 0.5), atol=1e-5)


def test_supersampling_gives_fractional_coverage():
    # Right half of a pixel covered: x from 4.5 (pixel 4's centre) to the image edge.
    verts = np.array([[4.5, -1, 1], [20, -1, 1], [20, 20, 1], [4.5, 20, 1]], np.float32)
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    out = jax.jit(functools.partial(render.render_hard, image_size=8, supersample=4))(verts, faces)
    np.testing.assert_allclose(out.mask[3, :], [0, 0, 0, 0, 0.5, 1, 1, 1])
    np.testing.assert_allclose(out.depth[3, 4:], 1.0, rtol=1e-6)


def test_faces_behind_camera_are_culled():
    verts = np.array([[1, 1, 1], [9, 1, 1], [1, 9, 1], [0, 0, -1], [9, 0, -1], [0, 9, 0]],
                     np.float32)  # fmt: skip
    faces = np.array([[0, 1, 2], [3, 4, 5]])
    fn = jax.jit(functools.partial(render.render_hard, image_size=10))
    out, only_front = fn(verts, faces), fn(verts[:3], faces[:1])
    np.testing.assert_array_equal(out.mask, only_front.mask)


def test_soft_silhouette_approaches_hard_mask():
    # sigma = 0.0022 px^2: one edge's coverage falls from 0.5 to 0.01 within 2.14 sqrt(sigma)
    # = 0.1 px. (At sigma = 0.01 the IoU is 0.97-0.98: the front and back faces meeting at the
    # contour add up just outside it, as SoftRas does.)
    verts, faces = load_default_hand() or synthetic_hand_mesh()
    hard_fn = jax.jit(functools.partial(render.render_hard, image_size=64,
                                        perspective_correct=False))  # fmt: skip
    soft_fn = jax.jit(render.soft_silhouette, static_argnames="image_size")
    for rot in [(-1.4, 0.3, 0.2), (0.0, 0.0, 0.5), (1.57, 0.0, 0.0)]:
        screen = hand_in_crop(verts, 64, rot=rot)
        hard = np.asarray(hard_fn(screen, faces).mask) > 0.5
        ious = []
        for sigma in [0.1, 0.0022]:
            soft = np.asarray(soft_fn(screen, faces, image_size=64, sigma=sigma)) > 0.5
            ious.append((soft & hard).sum() / (soft | hard).sum())
        assert ious[1] >= 0.98 and ious[1] > ious[0]


def test_render_mesh_of_a_hand_has_plausible_depth():
    verts, faces = synthetic_hand_mesh()
    verts = verts @ rotation(0.2, 0.3, 0.0).T.astype(np.float32) + np.float32([0, 0, 0.5])
    K = np.array([[300.0, 0, 32], [0, 300, 32], [0, 0, 1]], np.float32)
    out = jax.jit(functools.partial(render.render_mesh, K=K, image_size=64))(verts, faces)
    covered = np.asarray(out.mask) > 0
    assert 0.05 < covered.mean() < 0.9
    depth = np.asarray(out.depth)[covered]
    assert depth.min() >= verts[:, 2].min() - 1e-4 and depth.max() <= verts[:, 2].max() + 1e-4
    uv = camera.project_perspective(verts, K)
    assert np.all(np.isfinite(np.asarray(out.rgb))) and np.asarray(uv).shape == (len(verts), 2)


def test_bad_inputs_raise():
    faces = np.array([[0, 1, 2]])
    with pytest.raises(ValueError, match="vert_colors"):
        render.render_hard(np.zeros((3, 3)), faces, np.zeros((2, 3)), image_size=8)
    with pytest.raises(ValueError, match="supersample"):
        render.render_hard(np.zeros((3, 3)), faces, image_size=8, supersample=0)


def test_vertex_normals_against_a_numpy_loop():
    rng = np.random.default_rng(4)
    verts = rng.normal(0.0, 0.3, (9, 3))  # small faces: |cross| well below 1
    faces = np.array([[0, 1, 2], [0, 2, 3], [1, 3, 4], [4, 5, 6], [2, 6, 7]])  # vertex 8 unused
    want = np.zeros((9, 3))
    for a, b, c in faces:
        n = np.cross(verts[b] - verts[a], verts[c] - verts[a])  # area-weighted
        for v in (a, b, c):
            want[v] += n
    norms = np.linalg.norm(want, axis=1, keepdims=True)
    want = np.where(norms > 0, want / np.where(norms > 0, norms, 1.0), 0.0)
    got = np.asarray(render.vertex_normals(jnp.asarray(verts), jnp.asarray(faces)))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert np.all(got[8] == 0.0)  # an isolated vertex: zero, not NaN


@pytest.mark.parametrize("winding", [1, -1])
def test_pixel_centres_on_the_edges_are_covered(winding):
    # Every edge of this triangle runs through pixel centres: x = 0.5, y = 0.5 and x + y = 5.
    tri = np.array([[0.5, 0.5, 1.0], [4.5, 0.5, 1.0], [0.5, 4.5, 1.0]], np.float32)
    faces = np.array([[0, 1, 2]]) if winding > 0 else np.array([[0, 2, 1]])
    out = render.render_hard(tri, faces, image_size=6)
    j, i = np.mgrid[:6, :6]
    np.testing.assert_array_equal(out.mask, (i + j <= 4).astype(np.float32))
    assert np.all(np.asarray(out.rgb)[i + j > 4] == 0.0)  # the default background: black


def test_interpolation_is_perspective_correct_by_default():
    tri = np.array([[1.0, 1.0, 1.0], [9.0, 1.0, 4.0], [1.0, 9.0, 2.0]], np.float32)
    faces = np.array([[0, 1, 2]])
    default = render.render_hard(tri, faces, image_size=10)
    correct = render.render_hard(tri, faces, image_size=10, perspective_correct=True)
    affine = render.render_hard(tri, faces, image_size=10, perspective_correct=False)
    np.testing.assert_array_equal(default.depth, correct.depth)
    assert np.abs(np.asarray(affine.depth) - np.asarray(correct.depth)).max() > 0.1


def test_a_zero_area_face_covers_nothing_and_a_half_pixel_face_its_centre():
    verts = np.array([
        [0.5, 0.5, 1.0], [2.5, 2.5, 1.0], [4.5, 4.5, 1.0],  # collinear through pixel centres
        [5.5, 0.5, 1.0], [6.5, 0.5, 1.0], [5.5, 1.5, 1.0],  # area 1/2, one centre inside...
    ], np.float32)  # fmt: skip
    out = render.render_hard(verts, np.array([[0, 1, 2], [3, 4, 5]]), image_size=8)
    want = np.zeros((8, 8), np.float32)
    want[0, 5] = want[0, 6] = want[1, 5] = 1.0  # ...and two on its closed edges
    np.testing.assert_array_equal(out.mask, want)


def test_without_culling_a_vertex_at_depth_zero_stays_finite():
    verts, faces = random_mesh(np.random.default_rng(5), 6, 12)
    verts[0, 2] = 0.0  # outside perspective_correct's domain (depth > 0): finite, not NaN
    out = render.render_hard(verts, faces, image_size=12, near=None)
    assert all(np.all(np.isfinite(x)) for x in out)


@pytest.mark.parametrize("facing", [1.0, -1.0])  # away from the camera, towards it
@pytest.mark.parametrize("light", [(0.3, 0.2, -1.0), None])  # None: the default, from the camera
def test_shading_renormalises_interpolated_normals_and_lights_both_sides(facing, light):
    tri = np.array([[1.0, 1.0, 1.0], [9.0, 1.0, 1.0], [1.0, 9.0, 1.0]], np.float32)
    normals = np.array([[0.6, 0.0, 0.8], [-0.6, 0.0, 0.8], [0.0, 0.6, 0.8]], np.float32) * facing
    kwargs = {} if light is None else {"light_dir": light}
    out = render.render_hard(tri, np.array([[0, 1, 2]]), image_size=10, vert_normals=normals,
                             perspective_correct=False, **kwargs)  # fmt: skip
    light = np.array((0.0, 0.0, -1.0) if light is None else light)
    p = np.array([4.5, 4.5])  # pixel (4, 4)
    b = np.linalg.solve(np.vstack([tri[:, :2].T, np.ones(3)]), [*p, 1.0])
    n = b @ normals
    n = n / np.linalg.norm(n)
    n = -n if n[2] > 0 else n  # two-sided: the side that faces the camera
    lambert = max(n @ (light / np.linalg.norm(light)), 0.0)
    np.testing.assert_allclose(out.rgb[4, 4], 0.4 + 0.6 * lambert, rtol=1e-5)


def test_two_column_vertices_draw_at_depth_one():
    verts, faces = random_mesh(np.random.default_rng(6), 6, 12)
    flat = render.render_hard(verts[:, :2], faces, image_size=12)
    at_one = render.render_hard(np.c_[verts[:, :2], np.ones(len(verts))], faces, image_size=12)
    for a, b in zip(flat, at_one, strict=True):
        np.testing.assert_array_equal(a, b)
    assert np.asarray(flat.mask).any() and flat.rgb.shape == (12, 12, 3)  # white by default


def test_float32_vertices_render_in_float32_with_x64_enabled():
    verts, faces = random_mesh(np.random.default_rng(7), 4, 8)
    with jax.enable_x64(True):
        normals = np.tile([0.0, 0.0, -1.0], (len(verts), 1))
        out = render.render_hard(verts, faces, image_size=8, vert_normals=normals,
                                 light_dir=np.array([0.0, 0.0, -1.0]))  # fmt: skip
    assert [x.dtype for x in out] == [jnp.float32] * 3


def test_refusals_name_the_argument_word_for_word():
    verts, faces = random_mesh(np.random.default_rng(8), 2, 8)
    cases = [
        (dict(supersample=0), "supersample must be an int >= 1; got 0"),
        (dict(vert_colors=np.ones((5, 3))),
         "vert_colors must have shape [V, 3] = [6, 3]; got (5, 3)"),
        (dict(vert_normals=np.ones((6, 2))),
         "vert_normals must have shape [V, 3] = [6, 3]; got (6, 2)"),
    ]  # fmt: skip
    for kwargs, message in cases:
        with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
            render.render_hard(verts, faces, image_size=8, **kwargs)


def test_supersampling_is_the_mean_of_the_render_at_the_finer_resolution():
    rng = np.random.default_rng(9)
    verts, faces = random_mesh(rng, 8, 10)
    colors = rng.uniform(size=(len(verts), 3)).astype(np.float32)
    coarse = render.render_hard(verts, faces, colors, image_size=(10, 12), supersample=2)
    fine_verts = verts * np.array([2.0, 2.0, 1.0], np.float32)
    fine = render.render_hard(fine_verts, faces, colors, image_size=(20, 24))

    def pool(x):
        x = np.asarray(x, np.float64)
        return x.reshape(10, 2, 12, 2, *x.shape[2:]).mean(axis=(1, 3))

    cover = pool(fine.mask)
    depth = np.where(
        cover > 0, pool(np.asarray(fine.depth) * fine.mask) / np.maximum(cover, 1e-12), 0.0
    )
    assert 0 < cover.mean() < 1 and np.any((cover > 0) & (cover < 1))
    np.testing.assert_allclose(coarse.mask, cover, atol=1e-6)
    np.testing.assert_allclose(coarse.rgb, pool(fine.rgb), atol=1e-5)
    np.testing.assert_allclose(coarse.depth, depth, atol=1e-5)
