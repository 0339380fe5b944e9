"""Soft depth and colour (SoftRas aggregation) against the plain-numpy reference."""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from hand_jax import render

from . import dense_reference as ref
from . import random_mesh

SETTINGS = dict(sigma=1.5, gamma=0.02, eps=1e-3, near=0.0, far=4.0, background=0.25, tol=1e-9)


def _assert_matches_reference(verts, faces, colors, hw, kwargs, ref_kwargs, *, alpha_atol=1e-5,
                              msg=""):  # fmt: skip
    """soft_rasterize(**kwargs) against the numpy reference(**ref_kwargs), background at far."""
    fn = functools.partial(render.soft_rasterize, image_size=hw, **kwargs)
    out = jax.jit(fn)(verts, faces, colors)
    far = ref_kwargs["far"]
    alpha, depth, attrs = ref.soft_rasterize(verts, faces, colors, *hw, background_depth=far,
                                             **ref_kwargs)  # fmt: skip
    np.testing.assert_allclose(out.alpha, alpha, atol=alpha_atol, err_msg=msg)
    np.testing.assert_allclose(out.depth, depth, atol=1e-5 * far, err_msg=msg)
    np.testing.assert_allclose(out.attrs, attrs, atol=1e-5, err_msg=msg)


@pytest.mark.parametrize("perspective", [True, False])
def test_matches_reference(perspective):
    rng = np.random.default_rng(int(perspective))
    verts, faces = random_mesh(rng, 12, 16)
    colors = rng.uniform(size=(len(verts), 3)).astype(np.float32)
    _assert_matches_reference(verts, faces, colors, (16, 20),
                              dict(SETTINGS, perspective_correct=perspective),
                              dict(SETTINGS, perspective=perspective))  # fmt: skip


def test_matches_reference_with_a_near_plane_and_depths_below_one():
    rng = np.random.default_rng(5)
    verts, faces = random_mesh(rng, 12, 16)
    verts[:, 2] = verts[:, 2] * 0.6 - 0.3  # depths in [0.3, 0.9]
    verts[:3, 2] = 0.2  # one face on the near plane: culled
    colors = rng.uniform(size=(len(verts), 3)).astype(np.float32)
    settings = dict(SETTINGS, near=0.25, far=1.5)
    _assert_matches_reference(verts, faces, colors, (16, 20), settings,
                              dict(settings, perspective=True))  # fmt: skip


def test_without_culling_a_vertex_at_depth_zero_stays_finite():
    verts, faces = random_mesh(np.random.default_rng(6), 6, 16)
    verts[0, 2] = 0.0  # outside perspective_correct's domain (depth > 0): finite, not NaN
    fn = functools.partial(render.soft_rasterize, image_size=16, near=None)
    out = jax.jit(fn)(verts, faces, np.ones((len(verts), 3), np.float32))
    assert all(np.all(np.isfinite(x)) for x in out)


DEFAULTS = dict(sigma=1.0, gamma=1e-4, eps=1e-3, near=0.0, far=10.0, background=0.0, tol=1e-4)


@pytest.mark.parametrize(
    "case, kwargs, ref_kwargs",
    [
        ("documented defaults", {}, dict(DEFAULTS, perspective=True)),
        ("no culling", dict(near=None, gamma=0.05), dict(DEFAULTS, near=None, gamma=0.05,
                                                           perspective=True)),
        ("large tol", dict(tol=0.2, gamma=0.05), dict(DEFAULTS, tol=0.2, gamma=0.05,
                                                      perspective=True)),
        ("no depth column", dict(perspective_correct=False, gamma=0.05),
         dict(DEFAULTS, gamma=0.05, near=None, perspective=False)),
    ],
)  # fmt: skip
def test_matches_reference_with_other_settings(case, kwargs, ref_kwargs):
    rng = np.random.default_rng(8)
    verts, faces = random_mesh(rng, 10, 12)
    if case == "no depth column":
        verts = verts[:, :2]  # every face at depth 0
    colors = rng.uniform(size=(len(verts), 2)).astype(np.float32)
    # The silhouette leaves out faces beyond the blur margin (D < tol, at most tol each); depth
    # and colour follow SoftRas's D >= tol rule, as the reference does.
    _assert_matches_reference(verts, faces, colors, (12, 14), kwargs, ref_kwargs,
                              alpha_atol=len(faces) * ref_kwargs["tol"], msg=case)  # fmt: skip


def test_float32_inputs_render_in_float32_with_x64_and_float64_settings():
    verts, faces = random_mesh(np.random.default_rng(9), 4, 8)
    with jax.enable_x64(True):
        out = render.soft_rasterize(verts, faces, np.ones((len(verts), 1), np.float32),
                                    image_size=8, sigma=np.float64(1.0),
                                    gamma=np.float64(1e-3))  # fmt: skip
    assert [x.dtype for x in out] == [jnp.float32] * 3


def test_alpha_equals_soft_silhouette_and_tiny_gamma_is_finite():
    verts, faces = random_mesh(np.random.default_rng(2), 10, 16)
    out = jax.jit(functools.partial(render.soft_rasterize, image_size=16, gamma=1e-7))(
        verts, faces, np.ones((len(verts), 2), np.float32)
    )
    alpha = jax.jit(functools.partial(render.soft_silhouette, image_size=16))(verts, faces)
    np.testing.assert_allclose(out.alpha, alpha, atol=1e-6)
    assert np.all(np.isfinite(out.depth)) and np.all(np.isfinite(out.attrs))


def test_nearest_face_wins_with_small_gamma():
    # Two overlapping squares' worth of triangles: the nearer (z = 1) is red, the farther blue.
    quad = np.array([[2, 2], [14, 2], [14, 14], [2, 14]], np.float32)
    verts = np.concatenate([np.c_[quad, np.full(4, 2.0)], np.c_[quad, np.full(4, 1.0)]])
    faces = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    colors = np.array([[0, 0, 1]] * 4 + [[1, 0, 0]] * 4, np.float32)
    fn = functools.partial(render.soft_rasterize, image_size=16, sigma=0.1, gamma=1e-3, far=10.0)
    out = jax.jit(fn)(verts, faces, colors)
    np.testing.assert_allclose(out.attrs[8, 8], [1, 0, 0], atol=1e-3)
    np.testing.assert_allclose(out.depth[8, 8], 1.0, atol=1e-3)
    np.testing.assert_allclose(out.depth[0, 0], 10.0, atol=1e-3)  # background depth = far


def test_check_grads_float64():
    with jax.enable_x64(True):
        rng = np.random.default_rng(7)
        verts, faces = random_mesh(rng, 4, 10, size=5.0)
        colors = jnp.asarray(rng.uniform(size=(len(verts), 3)))
        w = jnp.asarray(rng.normal(size=(10, 10)))

        def loss(v, c):
            out = render.soft_rasterize(v, faces, c, image_size=10, sigma=2.0, gamma=0.05,
                                        far=4.0)  # fmt: skip
            return jnp.sum(w * (out.alpha + 0.1 * out.depth + out.attrs[..., 1]))

        args = (jnp.asarray(verts, jnp.float64), colors)
        check_grads(jax.jit(loss), args, order=1, modes=("rev",), eps=1e-6)


def test_bad_attrs_raise():
    with pytest.raises(ValueError, match="vert_attrs"):
        render.soft_rasterize(np.zeros((3, 2)), np.array([[0, 1, 2]]), np.zeros((4, 3)),
                              image_size=8)  # fmt: skip


def test_without_attributes_and_refusals_word_for_word():
    verts, faces = random_mesh(np.random.default_rng(10), 5, 8)
    out = render.soft_rasterize(verts, faces, None, image_size=8)
    assert out.attrs.shape == (8, 8, 0)
    np.testing.assert_allclose(
        out.alpha, render.soft_silhouette(verts, faces, image_size=8), atol=1e-6
    )
    for attrs, message in [
        (np.ones(15), "vert_attrs must have shape [V, A]; got (15,)"),
        (np.ones((14, 2)), "vert_attrs must have one row per vertex (15); got (14, 2)"),
    ]:
        with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
            render.soft_rasterize(verts, faces, attrs, image_size=8)
