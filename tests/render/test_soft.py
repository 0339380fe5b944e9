"""Binned soft silhouette against the plain-numpy reference: values, VJPs, invariances, limits."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from hand_jax import render
from hand_jax.render import binning, soft

from . import dense_reference as ref
from . import hand_in_crop, load_default_hand, random_mesh, synthetic_hand_mesh

EXACT = 1e-9  # tolerance at which the binned result is the untruncated SoftRas sum


def _silhouette(image_size, **kw):
    return jax.jit(functools.partial(render.soft_silhouette, image_size=image_size, **kw))


def test_vectorised_reference_matches_scalar_loops():
    verts, faces = random_mesh(np.random.default_rng(0), 3, 10, size=4.0)
    expected = ref.soft_silhouette_scalar(verts, faces, 7, 9, 1.5)
    np.testing.assert_allclose(ref.soft_silhouette(verts, faces, 7, 9, 1.5), expected, atol=1e-12)


@pytest.mark.parametrize("seed,tile,hw", [(0, 4, (20, 24)), (1, 8, (21, 19)), (2, 3, (16, 16))])
def test_forward_and_vjp_match_reference_random_mesh(seed, tile, hw):
    rng = np.random.default_rng(seed)
    verts, faces = random_mesh(rng, 14, min(hw))
    fn = _silhouette(hw, sigma=1.7, tol=EXACT, tile_size=tile, chunk=32)
    alpha, vjp = jax.vjp(lambda v: fn(v, faces), jnp.asarray(verts))
    np.testing.assert_allclose(alpha, ref.soft_silhouette(verts, faces, *hw, 1.7), atol=1e-5)
    g = rng.normal(size=hw).astype(np.float32)
    expected = ref.soft_silhouette_vjp(verts, faces, *hw, 1.7, g)
    np.testing.assert_allclose(
        vjp(jnp.asarray(g))[0], expected, atol=1e-5 * max(1, np.abs(expected).max())
    )


def test_forward_and_vjp_match_reference_hand():
    hand = load_default_hand() or synthetic_hand_mesh()
    verts = hand_in_crop(hand[0], 32, rot=(-1.4, 0.3, 0.2))
    faces = hand[1]
    fn = _silhouette(32, sigma=0.5, tol=EXACT)
    alpha, vjp = jax.vjp(lambda v: fn(v, faces), jnp.asarray(verts))
    np.testing.assert_allclose(alpha, ref.soft_silhouette(verts, faces, 32, 32, 0.5), atol=1e-5)
    g = np.random.default_rng(0).normal(size=(32, 32))
    expected = ref.soft_silhouette_vjp(verts, faces, 32, 32, 0.5, g)
    got = vjp(jnp.asarray(g, jnp.float32))[0]
    np.testing.assert_allclose(got, expected, atol=1e-5 * max(1, np.abs(expected).max()))


def test_default_tolerance_error_is_small():
    verts, faces = synthetic_hand_mesh()
    verts = hand_in_crop(verts, 32, rot=(0.3, 0.2, 0.1))
    alpha = _silhouette(32, sigma=1.0)(verts, faces)
    err = np.abs(np.asarray(alpha) - ref.soft_silhouette(verts, faces, 32, 32, 1.0)).max()
    assert err < 2e-3  # each skipped face changes log(1 - alpha) by < tol = 1e-4


def test_check_grads_float64():
    with jax.enable_x64(True):
        verts, faces = random_mesh(np.random.default_rng(5), 4, 12, size=5.0)
        fn = functools.partial(render.soft_silhouette, faces=faces, image_size=(12, 12),
                               sigma=2.0, tile_size=4)  # fmt: skip
        w = jnp.asarray(np.random.default_rng(1).normal(size=(12, 12)))
        loss = jax.jit(lambda v: jnp.sum(w * fn(v)))
        check_grads(loss, (jnp.asarray(verts, jnp.float64),), order=1, modes=("rev",), eps=1e-6)


@pytest.mark.parametrize("sigma", [0.6, 2.5])
def test_sigma_gradient_matches_reference_finite_differences_float64(sigma):
    """d/d sigma (a public, differentiable argument) against central differences of the
    plain-numpy reference, and ``check_grads`` on (verts, sigma) together."""
    rng = np.random.default_rng(11)
    verts, faces = random_mesh(rng, 5, 12, size=5.0)
    w = rng.normal(size=(12, 12))
    with jax.enable_x64(True):

        def loss(v, s):
            alpha = render.soft_silhouette(v, faces, image_size=(12, 12), sigma=s, tol=EXACT)
            return jnp.sum(jnp.asarray(w) * alpha)

        v64, s64 = jnp.asarray(verts, jnp.float64), jnp.float64(sigma)
        grad_sigma = float(jax.jit(jax.grad(loss, argnums=1))(v64, s64))
        check_grads(jax.jit(loss), (v64, s64), order=1, modes=("rev",), eps=1e-6)
    h = 1e-5
    up = np.sum(w * ref.soft_silhouette(verts.astype(np.float64), faces, 12, 12, sigma + h))
    down = np.sum(w * ref.soft_silhouette(verts.astype(np.float64), faces, 12, 12, sigma - h))
    fd = (up - down) / (2 * h)
    assert abs(fd) > 1e-2  # the blur matters to this loss
    np.testing.assert_allclose(grad_sigma, fd, rtol=1e-5)


def test_sigma_gradient_sign_widens_the_silhouette():
    """Outside a triangle alpha grows with the blur; inside, alpha shrinks towards 1/2."""
    verts = jnp.array([[2.0, 2.0], [10.0, 2.0], [2.0, 10.0]])
    faces = np.array([[0, 1, 2]])
    fn = jax.jit(lambda s: render.soft_silhouette(verts, faces, image_size=12, sigma=s))
    outside = jax.grad(lambda s: fn(s)[9, 9])(1.0)  # pixel centre (9.5, 9.5): outside
    inside = jax.grad(lambda s: fn(s)[2, 2])(1.0)  # pixel centre (2.5, 2.5): inside
    assert float(outside) > 0 and float(inside) < 0


def test_dense_jnp_matches_reference():
    verts, faces = random_mesh(np.random.default_rng(3), 10, 16)
    alpha = jax.jit(render.dense_soft_silhouette, static_argnames="image_size")(
        verts, faces, image_size=(16, 18), sigma=1.3
    )
    np.testing.assert_allclose(alpha, ref.soft_silhouette(verts, faces, 16, 18, 1.3), atol=1e-5)


def test_gradient_reaches_triangle_just_outside_pixel():
    # Triangle 0.3 px to the right of the centre of pixel (4, 4), covering no pixel centre.
    verts = jnp.array([[4.8, 3.0], [6.8, 4.5], [4.8, 6.0]])
    faces = np.array([[0, 1, 2]])
    fn = _silhouette(9, sigma=0.5)
    grad = jax.jit(jax.grad(lambda v: fn(v, faces)[4, 4]))(verts)
    assert np.all(np.isfinite(grad))
    assert np.abs(grad[0, 0]) > 1e-3 and np.abs(grad[2, 0]) > 1e-3
    assert grad[0, 0] < 0  # moving the near edge left (towards the pixel) raises its alpha


def test_finite_gradients_at_degenerate_inputs():
    verts = jnp.array([
        [5.0, 5.0, 1.0], [5.0, 5.0, 1.0], [5.0, 5.0, 1.0],  # coincident vertices
        [2.0, 2.0, 1.0], [4.0, 4.0, 1.0], [6.0, 6.0, 1.0],  # zero-area face (collinear)
        [3.0, 8.0, 1.0], [8.0, 8.0, 1.0], [5.0, 8.0, 1.0],  # collinear, shared edge
        [1e4, 1e4, 1.0], [1e4 + 3, 1e4, 1.0], [1e4, 1e4 + 3, 1.0],  # far away
        [1.0, 1.0, -1.0], [9.0, 1.0, 0.5], [1.0, 9.0, 0.0],  # behind the camera
    ])  # fmt: skip
    faces = np.arange(15).reshape(5, 3)
    w = jnp.asarray(np.random.default_rng(0).normal(size=(10, 10)), jnp.float32)
    fn = _silhouette(10, sigma=1.0, tol=EXACT)
    loss = jax.jit(jax.value_and_grad(lambda v: (jnp.sum(w * fn(v, faces)), fn(v, faces)),
                                      has_aux=True))  # fmt: skip
    (_, alpha), grad = loss(verts)
    assert np.all(np.isfinite(grad))
    np.testing.assert_array_equal(grad[12:], 0.0)  # culled face: no gradient
    expected = ref.soft_silhouette(np.asarray(verts), faces, 10, 10, 1.0)  # culls the last face
    np.testing.assert_allclose(alpha, expected, atol=1e-5)


def test_translation_equivariance():
    verts, faces = synthetic_hand_mesh()
    verts = hand_in_crop(verts, 40, rot=(0.4, -0.3, 0.2), fill=0.6)
    fn = _silhouette((48, 48), sigma=1.0)
    base = np.asarray(fn(verts, faces))
    # A shift by whole tiles (tile 4) bins identically: equal up to float rounding.
    moved = np.asarray(fn(verts + np.float32([8.0, 4.0, 0.0]), faces))
    np.testing.assert_allclose(moved[4:, 8:], base[:-4, :-8], atol=2e-6)
    # Any other whole-pixel shift differs only by the skipped terms (< tol = 1e-4 each).
    moved = np.asarray(fn(verts + np.float32([5.0, 3.0, 0.0]), faces))
    np.testing.assert_allclose(moved[3:, 5:], base[:-3, :-5], atol=2e-3)


def test_vmap_matches_loop():
    verts, faces = random_mesh(np.random.default_rng(4), 8, 16)
    batch = np.stack([verts, verts + np.float32([1.5, -2.0, 0.0])])
    fn = functools.partial(soft.soft_silhouette, faces=faces, image_size=16, sigma=1.0)
    batched = jax.jit(jax.vmap(fn))(batch)
    for b in range(2):
        np.testing.assert_allclose(batched[b], jax.jit(fn)(batch[b]), atol=1e-6)


def test_traced_sigma_matches_python_sigma():
    verts, faces = random_mesh(np.random.default_rng(8), 8, 16)
    traced = jax.jit(lambda v, s: render.soft_silhouette(v, faces, image_size=16, sigma=s))
    expected = ref.soft_silhouette(verts, faces, 16, 16, 0.7)
    np.testing.assert_allclose(traced(verts, jnp.float32(0.7)), expected, atol=2e-3)


def test_overflow_is_counted():
    verts, faces = random_mesh(np.random.default_rng(6), 12, 24)
    sigma, tol, tile = 1.0, 1e-4, 4
    margin = float(soft.blur_margin(sigma, tol))
    needed = ref.count_pairs(verts, faces, 24, 24, tile, margin)
    kw = dict(image_size=24, sigma=sigma, tol=tol, tile_size=tile, chunk=16, return_info=True)
    full, info = jax.jit(functools.partial(soft.soft_silhouette, **kw))(verts, faces)
    assert int(info.num_pairs) == needed and int(info.overflow) == 0
    small = 16 * (needed // 32)  # half the pairs (a multiple of the chunk)
    cut, info = jax.jit(functools.partial(soft.soft_silhouette, capacity=small, **kw))(verts, faces)
    assert int(info.overflow) == needed - small
    assert np.abs(np.asarray(cut) - np.asarray(full)).max() > 0.1


@pytest.mark.parametrize("size", [32, 224])
def test_default_capacity_holds_hand_crops(size):
    meshes = [synthetic_hand_mesh()] + ([load_default_hand()] if load_default_hand() else [])
    for verts, faces in meshes:
        fn = _silhouette(size, sigma=2.0, return_info=True)
        rng = np.random.default_rng(size)
        batch = np.stack([hand_in_crop(verts, size, rot=rng.uniform(-np.pi, np.pi, 3), fill=1.0)
                          for _ in range(4)])  # fmt: skip
        _, info = jax.vmap(lambda v, f=faces, fn=fn: fn(v, f))(batch)
        assert np.all(np.asarray(info.overflow) == 0)
        cap = binning.default_capacity(
            len(faces), (size, size), 4, float(soft.blur_margin(2.0, 1e-4))
        )
        assert np.max(info.num_pairs) < 0.6 * cap


def test_bad_inputs_raise():
    faces = np.array([[0, 1, 2]])
    verts = np.zeros((3, 2), np.float32)
    bad = [
        (
            np.zeros((3, 4)),
            faces,
            {},
            r"^verts_px must have shape \[V, 2\] or \[V, 3\]; got \(3, 4\)$",
        ),
        (np.zeros((1, 3, 2)), faces, {}, r"^verts_px must have shape .*; got \(1, 3, 2\)$"),
        (np.zeros((3, 2), np.int32), faces, {}, r"^verts_px must be floating point; got int32$"),
        (verts, np.zeros((1, 3)), {}, r"^faces must be an integer array \[F, 3\]; got float"),
        (verts, np.array([[0, 1, 2, 0]]), {}, r"^faces must be an integer array .* \(1, 4\)$"),
        (verts, np.array([0, 1, 2]), {}, r"^faces must be an integer array .* \(3,\)$"),
        (verts, faces, {"sigma": 0.0}, r"^sigma must be > 0 \(pixels\^2\); got 0.0$"),
        (verts, faces, {"capacity": 0}, r"^capacity must be a positive int"),
        (verts, faces, {"capacity": 2.5}, r"^capacity must be a positive int .*; got 2.5$"),
        (verts, faces, {"tile_size": 0}, "tile_size"),
        (verts, faces, {"tol": 0.5}, r"^tol must be in \(0, 0.5\); got 0.5$"),
        (verts, faces, {"tol": 0.0}, r"^tol must be in \(0, 0.5\); got 0.0$"),
    ]
    for v, f, kw, match in bad:
        with pytest.raises(ValueError, match=match):
            soft.soft_silhouette(v, f, image_size=8, **kw)


def test_capacity_one_is_rounded_up_to_a_chunk():
    verts, faces = random_mesh(np.random.default_rng(3), 2, 8, size=3.0)
    one = _silhouette(8, capacity=1, chunk=64, tile_size=8)(verts, faces)
    np.testing.assert_allclose(one, _silhouette(8)(verts, faces), atol=1e-6)


def test_traced_sigma_capacity_is_sized_for_four_square_pixels():
    # The documented bound: a traced sigma gets the default capacity of sigma = 4 px^2.
    tol = 1e-4
    want = np.sqrt(4.0 * np.log((1 - tol) / tol))
    np.testing.assert_allclose(soft.static_margin(jnp.float32(1.0), tol), want, rtol=1e-12)
    np.testing.assert_allclose(soft.static_margin(2.5, tol), np.sqrt(2.5 * np.log((1 - tol) / tol)))


@pytest.mark.parametrize("near", [0.0, 1.5, None])
def test_faces_behind_near_are_culled_like_the_reference(near):
    verts, faces = random_mesh(np.random.default_rng(7), 12, 20, size=5.0)
    verts[::4, 2] = -0.5  # some faces get a vertex behind the camera
    alpha = _silhouette((20, 20), sigma=1.5, near=near, tol=EXACT)(verts, faces)
    want = ref.soft_silhouette(verts, faces, 20, 20, 1.5, near=near)
    np.testing.assert_allclose(alpha, want, atol=1e-5)


def test_face_screen_depths_and_culling():
    verts = np.array(
        [[0, 0, 2], [4, 0, 3], [0, 4, 4], [4, 4, -1], [np.nan, 1, 2], [1, 1, 0]], np.float32
    )
    # in front; a vertex behind; a non-finite vertex (finite depth); a vertex on the near plane
    faces = np.array([[0, 1, 2], [1, 3, 2], [0, 4, 1], [0, 5, 1]], np.int32)
    xy, z, valid = soft.face_screen(verts, faces, near=0.0)
    np.testing.assert_array_equal(valid, [True, False, False, False])
    np.testing.assert_array_equal(z, [[2, 3, 4], [1, 1, 1], [1, 1, 1], [1, 1, 1]])  # culled: 1
    np.testing.assert_array_equal(xy[1:], np.zeros((3, 3, 2)))
    np.testing.assert_array_equal(xy[0], verts[[0, 1, 2], :2])
    _, _, valid_all = soft.face_screen(verts, faces, near=None)
    np.testing.assert_array_equal(valid_all, [True, True, False, True])
    xy2, z2, valid2 = soft.face_screen(verts[:, :2], faces, near=0.0)
    assert z2 is None
    np.testing.assert_array_equal(valid2, [True, True, False, True])
    np.testing.assert_array_equal(np.asarray(xy2)[[0, 1, 3]], verts[faces[[0, 1, 3]]][..., :2])


@pytest.mark.parametrize("sigma, tol", [(0.7, 1e-4), (2.0, 0.3), (1.0, 1e-9)])
def test_blur_margin_is_where_the_coverage_falls_to_tol(sigma, tol):
    with jax.enable_x64(True):
        m = float(soft.blur_margin(jnp.float64(sigma), tol))
    np.testing.assert_allclose(1.0 / (1.0 + np.exp(m * m / sigma)), tol, rtol=1e-9)
    np.testing.assert_allclose(soft.static_margin(sigma, tol), m, rtol=1e-12)


def test_default_sigma_is_one_square_pixel():
    verts, faces = random_mesh(np.random.default_rng(11), 6, 16, size=4.0)
    alpha = _silhouette(16, tol=EXACT)(verts, faces)
    np.testing.assert_allclose(alpha, ref.soft_silhouette(verts, faces, 16, 16, 1.0), atol=1e-5)
