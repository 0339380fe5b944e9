"""Texture from an image: bilinear sampling, z-buffer visibility, colour fill over the mesh."""

import jax.numpy as jnp
import numpy as np

from hand_jax import camera, mano
from hand_jax.augment import texture
from hand_jax.geometry import rotations
from hand_jax.params import FRONTAL_QUATERNION


def test_bilinear_sample_is_exact_on_a_linear_image():
    # f(x, y) = 3 x - 2 y + 5 at pixel centres (x + 0.5, y + 0.5): bilinear is exact inside.
    h, w = 7, 9
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    image = np.stack([3 * xs - 2 * ys + 5, xs * 0 + 1.0], axis=-1)
    rng = np.random.default_rng(0)
    uv = np.stack([rng.uniform(0.5, w - 0.5, 50), rng.uniform(0.5, h - 0.5, 50)], axis=1)
    got = texture.bilinear_sample(image, uv)
    np.testing.assert_allclose(got[:, 0], 3 * uv[:, 0] - 2 * uv[:, 1] + 5, atol=1e-12)
    np.testing.assert_allclose(got[:, 1], 1.0)
    # Outside the image: the nearest edge pixel's value.
    edge = texture.bilinear_sample(image, np.array([[-4.0, 0.5], [w + 3.0, h + 3.0]]))
    corner = 3 * (w - 0.5) - 2 * (h - 0.5) + 5
    np.testing.assert_allclose(edge[:, 0], [3 * 0.5 - 2 * 0.5 + 5, corner])


def test_fill_takes_the_mean_of_coloured_neighbours_ring_by_ring():
    # Two triangles sharing the edge (1, 2); vertex 4 is alone in another component.
    faces = np.array([[0, 1, 2], [1, 3, 2], [4, 5, 6]])
    colours = np.zeros((7, 3))
    colours[0], colours[3], colours[5] = [1, 0, 0], [0, 0, 1], [0, 1, 0]
    known = np.array([True, False, False, True, False, True, False])
    got = texture.fill_colours(colours, known, faces)
    np.testing.assert_allclose(got[[0, 3, 5]], colours[[0, 3, 5]])
    np.testing.assert_allclose(got[1], [0.5, 0, 0.5])  # neighbours 0 and 3 (2 is unknown)
    np.testing.assert_allclose(got[2], [0.5, 0, 0.5])
    np.testing.assert_allclose(got[4], [0, 1, 0])  # its component's only colour
    # A path 0 - 1 - 2 (only edges of degenerate faces): colours travel one ring per round.
    path = np.array([[0, 1, 1], [1, 2, 2], [2, 3, 3]])
    c = np.zeros((4, 1))
    c[3] = 8.0
    out = texture.fill_colours(c, np.array([False, False, False, True]), path)
    np.testing.assert_allclose(out[:, 0], 8.0)
    # Nothing known: grey.
    np.testing.assert_allclose(texture.fill_colours(c, np.zeros(4, bool), path), 0.5)


def _grid(x0, y0, x1, y1, z):
    """A 3 x 3 grid of vertices (8 triangles) at depth z; vertex 4 is the centre."""
    xs, ys = np.meshgrid(np.linspace(x0, x1, 3), np.linspace(y0, y1, 3))
    verts = np.stack([xs.ravel(), ys.ravel(), np.full(9, z)], axis=1)
    faces = []
    for r in range(2):
        for c in range(2):
            a, b, d, e = 3 * r + c, 3 * r + c + 1, 3 * r + c + 3, 3 * r + c + 4
            faces += [[a, b, e], [a, e, d]]
    return verts, np.array(faces)


def test_vertices_behind_a_nearer_surface_are_hidden():
    # Orthographic screen: a far grid, and a near grid over its left column only.
    far, f_far = _grid(8.0, 8.0, 28.0, 24.0, 2.0)
    near, f_near = _grid(2.0, 2.0, 14.0, 30.0, 1.0)
    alone = texture.visible_vertices(far, f_far, image_size=32, perspective=False)
    assert alone[3] and alone[4]  # left-middle and centre: interior vertices, seen
    screen = np.concatenate([far, near])
    faces = np.concatenate([f_far, f_near + 9])
    vis = texture.visible_vertices(screen, faces, image_size=32, perspective=False)
    assert vis[4] and not vis[3]  # the centre is still seen; the left-middle is now hidden
    assert vis[9 + 4]  # the near grid's centre
    # Tolerance: a vertex 0.05 behind the surface is seen at tolerance 0.1, hidden at 0.01.
    close = np.concatenate([far, near + [0, 0, 0.95]])  # the near grid at z = 1.95
    kw = dict(image_size=32, perspective=False)
    assert texture.visible_vertices(close, faces, tolerance=0.1, **kw)[3]
    assert not texture.visible_vertices(close, faces, tolerance=0.01, **kw)[3]
    outside = screen.copy()
    outside[:, 0] += 40.0  # everything off the image: nothing is seen
    assert not texture.visible_vertices(outside, faces, image_size=32, perspective=False).any()


def test_a_hand_seen_from_one_side_gets_a_colour_everywhere():
    model = mano.load_model()
    pose = (
        jnp.zeros(48)
        .at[:3]
        .set(rotations.quaternion_to_axis_angle(jnp.asarray(FRONTAL_QUATERNION, jnp.float32)))
    )
    verts = np.asarray(mano.forward(model, pose, jnp.zeros(model.num_betas)).verts, np.float64)
    verts = verts - verts.mean(0) + [0, 0, 0.5]
    K = np.array([[120.0, 0, 32], [0, 120, 32], [0, 0, 1]])
    screen = np.asarray(camera.project_perspective(jnp.asarray(verts), jnp.asarray(K),
                                                   with_depth=True), np.float64)  # fmt: skip
    ys, xs = np.mgrid[0:64, 0:64]
    image = np.stack([xs, ys, xs * 0 + 32], -1).astype(np.uint8) * 4  # colour = position
    colours, visible = texture.texture_from_image(image, screen, np.asarray(model.faces))
    # The palm faces the camera: a good part of the mesh, not all of it, is seen.
    assert 0.25 < visible.mean() < 0.75
    assert np.isfinite(colours).all() and colours.shape == (model.num_verts, 3)
    seen = colours[visible]
    np.testing.assert_allclose(seen[:, 0], np.clip(np.floor(screen[visible, 0] - 0.5), 0, 63)
                               * 4 / 255, atol=4 / 255 + 1e-9)  # fmt: skip
    # Hidden vertices: means of seen colours, so inside the seen colours' range.
    hidden = colours[~visible]
    assert (hidden >= seen.min(0) - 1e-9).all() and (hidden <= seen.max(0) + 1e-9).all()
