"""Soft depth and colour: SoftRas aggregation of per-vertex attributes over binned faces.

Screen space and blur as in ``soft`` (pixels, sigma in pixels^2). For a pixel p and face f with
coverage ``D_f = sigmoid(sign * d2 / sigma)``, the face's depth ``z_f(p)`` and attributes
``a_f(p)`` are interpolated with its barycentrics at p, clamped to the triangle (SoftRas) and
perspective-correct when ``perspective_correct`` (1 / z interpolated linearly). With normalised
inverse depth ``z~ = (far - z) / (far - near)``:

    w_f = D_f exp(z~_f / gamma) / (sum_k D_k exp(z~_k / gamma) + exp(eps / gamma)),
    w_bg = exp(eps / gamma) / (same denominator),
    attrs(p) = sum_f w_f a_f(p) + w_bg * background,
    depth(p) = sum_f w_f z_f(p) + w_bg * background_depth.

As in SoftRas, a face takes part in a pixel's colour and depth only where ``D >= tol`` (with a
small gamma, even a far face's tiny D would otherwise outweigh the background), so colour and
depth do not depend on the tiling. The softmax is shifted by the per-pixel maximum of
``log D_f + z~_f / gamma`` (a first, non-differentiated pass), so nothing overflows however
small gamma is. Depth units are the
caller's (those of the vertices' third column); without a depth column every face has depth 0.
"""

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from hand_jax.camera import image_hw
from hand_jax.render import binning, pairs, primitives, soft

_K = primitives.NUM_PARAMS


class SoftRaster(NamedTuple):
    """Output of ``soft_rasterize`` for one image.

    Attributes:
      alpha: [H, W] soft silhouette in [0, 1] (as ``soft_silhouette``).
      depth: [H, W] soft depth, caller's units (``background_depth`` where empty).
      attrs: [H, W, C] soft per-vertex attributes (e.g. RGB), ``background`` where empty.
    """

    alpha: jax.Array
    depth: jax.Array
    attrs: jax.Array


def _pair_terms(px, py, p, sigma, perspective: bool):
    """Logit x, depth z and attributes of pairs: [C, P], [C, P], [C, P, A]."""
    cols = primitives.columns(p[:, :_K], axis=1)
    d2, edge = primitives.edge_terms(px, py, cols)
    x = primitives.soft_logit(d2, primitives.inside_from_edges(edge), sigma)
    b = primitives.barycentrics(edge, cols, clip=True)
    z = tuple(p[:, _K + k, None] for k in range(3))
    if perspective:
        inv_z = tuple(1.0 / jnp.where(zk > 0, zk, 1.0) for zk in z)
        b, depth = primitives.perspective_correct(b, inv_z)
    else:
        depth = b[0] * z[0] + b[1] * z[1] + b[2] * z[2]
    a = p[:, _K + 3 :].reshape(p.shape[0], 3, -1)  # [C, 3, A]
    attrs = sum(b[k][..., None] * a[:, k, None, :] for k in range(3))
    return x, depth, attrs


def _log_weight(x, depth, c):
    """log(D exp(z~ / gamma)); -inf for D < tol (the face takes no part at this pixel)."""
    z_norm = (c["far"] - depth) / (c["far"] - c["znear"])
    log_w = jax.nn.log_sigmoid(x) + z_norm / c["gamma"]
    return jnp.where(x >= c["min_logit"], log_w, -jnp.inf)


def _max_kernel(px, py, tile, p, c, *, perspective):
    del tile
    x, depth, _ = _pair_terms(px, py, p, c["sigma"], perspective)
    return _log_weight(x, depth, c)


def _sum_kernel(px, py, tile, p, c, *, perspective):
    x, depth, attrs = _pair_terms(px, py, p, c["sigma"], perspective)
    shift = pairs.gather_tiles(jax.lax.stop_gradient(c["shift"]), tile, 0)
    e = jnp.exp(_log_weight(x, depth, c) - shift)  # 0 where D < tol
    log_t = -jax.nn.softplus(x)
    return jnp.concatenate(
        [log_t[..., None], e[..., None], (e * depth)[..., None], e[..., None] * attrs], -1
    )


def soft_rasterize(
    verts_px,
    faces,
    vert_attrs=None,
    *,
    image_size,
    sigma=1.0,
    gamma=1e-4,
    eps: float = 1e-3,
    near: float | None = 0.0,
    far: float = 10.0,
    background=0.0,
    background_depth=None,
    perspective_correct: bool = True,
    tol: float = 1e-4,
    tile_size: int = 4,
    capacity: int | None = None,
    chunk: int = 1024,
    return_info: bool = False,
):
    """Render soft silhouette, soft depth and soft per-vertex attributes (SoftRas).

    Args:
      verts_px: [V, 2] or [V, 3] screen vertices, pixels; the third column is depth (> 0 for
        ``perspective_correct``).
      faces: [F, 3] int vertex indices.
      vert_attrs: [V, A] per-vertex attributes (e.g. RGB in [0, 1]); None renders none (A = 0).
      image_size: ``(H, W)`` or int, pixels (static).
      sigma: blur, pixels^2. gamma: depth softmax temperature (in normalised inverse depth).
      eps: background's normalised inverse depth.
      near: cull faces with a vertex depth <= near (None: no culling); also the z~ = 1 depth.
      far: depth where z~ = 0 (units of depth).
      background: [A] or scalar background attributes. background_depth: scalar, default far.
      perspective_correct: interpolate with 1 / z (perspective cameras); False for affine
        (weak perspective) screen positions.
      tol, tile_size, capacity, chunk, return_info: as ``soft_silhouette``.

    Returns:
      ``SoftRaster(alpha [H, W], depth [H, W], attrs [H, W, A])``; with ``return_info``,
      ``(SoftRaster, RasterInfo)``.
    """
    hw = image_hw(image_size)
    xy, z, valid = soft.face_screen(verts_px, faces, near=near)
    dtype = xy.dtype
    num_faces = xy.shape[0]
    z = jnp.zeros((num_faces, 3), dtype) if z is None else z
    attrs = _face_attrs(vert_attrs, faces, valid, dtype, jnp.shape(verts_px)[0])
    params = jnp.concatenate([primitives.face_params(xy), z, attrs.reshape(num_faces, -1)], 1)
    bins = soft.bin_screen_faces(
        xy, valid, sigma=sigma, tol=tol, hw=hw, tile_size=tile_size, capacity=capacity,
        chunk=chunk,
    )  # fmt: skip
    znear = 0.0 if near is None else near
    c = {k: jnp.asarray(v, dtype) for k, v in
         dict(sigma=sigma, gamma=gamma, znear=znear, far=far).items()}  # fmt: skip
    c["min_logit"] = jnp.asarray(-math.log((1.0 - tol) / tol), dtype)
    loop = (hw, tile_size, chunk, params)
    idx = (bins.face, bins.tile, bins.num_pairs)
    shift = pairs.pair_reduce(
        functools.partial(_max_kernel, perspective=perspective_correct), *loop, c, *idx,
        op="max", init=-jnp.inf,
    )  # fmt: skip
    c["shift"] = jnp.maximum(shift, eps / c["gamma"])
    sums = pairs.pair_sum(
        functools.partial(_sum_kernel, perspective=perspective_correct), *loop, c, *idx
    )
    sums = binning.tiles_to_image(sums, image_size=hw, tile_size=tile_size)  # [H, W, 3 + A]
    shift_img = binning.tiles_to_image(c["shift"], image_size=hw, tile_size=tile_size)
    w_bg = jnp.exp(eps / c["gamma"] - jax.lax.stop_gradient(shift_img))
    den = sums[..., 1] + w_bg
    bg_depth = far if background_depth is None else background_depth
    depth = (sums[..., 2] + w_bg * bg_depth) / den
    bg = jnp.broadcast_to(jnp.asarray(background, dtype), (attrs.shape[-1],))
    out_attrs = (sums[..., 3:] + w_bg[..., None] * bg) / den[..., None]
    raster = SoftRaster(alpha=-jnp.expm1(sums[..., 0]), depth=depth, attrs=out_attrs)
    if return_info:
        return raster, soft.RasterInfo(bins.num_pairs, bins.overflow)
    return raster


def _face_attrs(vert_attrs, faces, valid, dtype, num_verts=None):
    """Per-face vertex attributes [F, 3, A] (zeros for culled faces)."""
    faces = jnp.asarray(faces)
    if vert_attrs is None:
        return jnp.zeros((faces.shape[0], 3, 0), dtype)
    vert_attrs = jnp.asarray(vert_attrs, dtype)
    if vert_attrs.ndim != 2:
        raise ValueError(f"vert_attrs must have shape [V, A]; got {vert_attrs.shape}")
    if num_verts is not None and vert_attrs.shape[0] != num_verts:
        raise ValueError(
            f"vert_attrs must have one row per vertex ({num_verts}); got {vert_attrs.shape}"
        )
    a = vert_attrs[faces]
    return jnp.where(valid[:, None, None], a, 0.0)
