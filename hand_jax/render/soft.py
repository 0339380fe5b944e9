"""Soft silhouette (SoftRas, Liu et al. ICCV 2019) over binned faces.

Screen space as in ``primitives``: vertices in pixels (x right, y down), pixel centres at
integer + 0.5, optional third column = depth (larger is farther, caller's units). For a pixel p
and a face f, ``d2`` is the squared distance (pixels^2) from p to f's boundary and

    D(p, f) = sigmoid(sign * d2 / sigma),  sign = +1 inside f, -1 outside,
    alpha(p) = 1 - prod_f (1 - D(p, f))      (summed as -softplus in log space),

so ``sigma`` is in pixels^2 (sigma = 1 blurs edges by about a pixel). Soft depth and colour
(the SoftRas aggregation) are in ``aggregate``.

Faces are binned into tiles (``binning``); a (pixel, face) term is evaluated only when the
pixel's tile lies within ``margin = sqrt(sigma * logit(1 - tol))`` pixels of the face's bounding
box, i.e. terms with D < tol everywhere in the tile are skipped (each skipped term changes
log(1 - alpha) by less than about tol). The pairs are evaluated in chunks by ``pairs.pair_sum``
(work follows the pairs used; the backward pass recomputes each chunk with the hand-written VJP
below, so nothing of size [pairs, pixels] is stored). Faces with a vertex at depth <= ``near``
(behind the camera) or a non-finite vertex are culled; their gradients are zero, not NaN.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from hand_jax.camera import image_hw
from hand_jax.render import binning, pairs, primitives

# Blur assumed by the default capacity when sigma is traced (pixels^2).
TRACED_SIGMA_BOUND = 4.0


class RasterInfo(NamedTuple):
    """Binning diagnostics of one image.

    Attributes:
      num_pairs: [] int32 tile-face pairs the image needs.
      overflow: [] int32 pairs dropped for lack of capacity (non-zero means a wrong image).
    """

    num_pairs: jax.Array
    overflow: jax.Array


def face_screen(verts_px, faces, *, near):
    """Gather faces' screen triangles, cull invalid faces and make them safe to differentiate.

    Args:
      verts_px: [V, 2] or [V, 3] screen vertices (pixels; optional depth column).
      faces: [F, 3] integer vertex indices.
      near: cull faces with a vertex depth <= near (None: no culling by depth).

    Returns:
      xy: [F, 3, 2] (zeros for culled faces), z: [F, 3] or None (ones for culled faces),
      valid: [F] bool.
    """
    verts_px = jnp.asarray(verts_px)
    faces = jnp.asarray(faces)
    if verts_px.ndim != 2 or verts_px.shape[-1] not in (2, 3):
        raise ValueError(f"verts_px must have shape [V, 2] or [V, 3]; got {verts_px.shape}")
    if not jnp.issubdtype(verts_px.dtype, jnp.floating):
        raise ValueError(f"verts_px must be floating point; got {verts_px.dtype}")
    if faces.ndim != 2 or faces.shape[-1] != 3 or not jnp.issubdtype(faces.dtype, jnp.integer):
        raise ValueError(f"faces must be an integer array [F, 3]; got {faces.dtype} {faces.shape}")
    tri = verts_px[faces]  # [F, 3, 2 or 3]
    valid = jnp.all(jnp.isfinite(tri), axis=(1, 2))
    z = None
    if verts_px.shape[-1] == 3:
        z = tri[..., 2]
        if near is not None:
            valid &= jnp.all(z > near, axis=-1)
        z = jnp.where(valid[:, None], z, 1.0)
    xy = jnp.where(valid[:, None, None], tri[..., :2], 0.0)
    return xy, z, valid


def _check_tol(tol):
    if not 0.0 < tol < 0.5:
        raise ValueError(f"tol must be in (0, 0.5); got {tol!r}")


def blur_margin(sigma, tol):
    """Distance (pixels) beyond which D = sigmoid(-d2 / sigma) < tol."""
    _check_tol(tol)
    return jnp.sqrt(jnp.asarray(sigma) * math.log((1.0 - tol) / tol))


def _check_sigma(sigma):
    if isinstance(sigma, int | float) and not sigma > 0:
        raise ValueError(f"sigma must be > 0 (pixels^2); got {sigma!r}")


def round_capacity(capacity, num_faces, hw, tile_size, chunk, margin):
    """Static pair capacity: the default for ``margin`` (pixels) if None, in whole chunks."""
    binning.tile_grid(hw, tile_size)  # validates tile_size
    if capacity is None:
        capacity = binning.default_capacity(num_faces, hw, tile_size, margin)
    if not isinstance(capacity, int) or capacity <= 0:
        raise ValueError(f"capacity must be a positive int (tile-face pairs); got {capacity!r}")
    return -(-capacity // chunk) * chunk


def static_margin(sigma, tol):
    """Blur margin (pixels) the default capacity is sized for: that of ``sigma`` when it is a
    Python number, else that of ``TRACED_SIGMA_BOUND``."""
    _check_tol(tol)
    bound = sigma if isinstance(sigma, int | float) else TRACED_SIGMA_BOUND
    return math.sqrt(bound * math.log((1.0 - tol) / tol))


def bin_screen_faces(xy, valid, *, sigma, tol, hw, tile_size, capacity, chunk):
    """Bin faces for a blur ``sigma`` (see ``binning.bin_faces``), capacity in whole chunks."""
    margin_bound = static_margin(sigma, tol)
    capacity = round_capacity(capacity, xy.shape[0], hw, tile_size, chunk, margin_bound)
    margin = blur_margin(sigma, tol)
    return binning.bin_faces(
        xy, valid, margin, image_size=hw, tile_size=tile_size, capacity=capacity
    )


def soft_silhouette(
    verts_px,
    faces,
    *,
    image_size,
    sigma=1.0,
    tol: float = 1e-4,
    near: float | None = 0.0,
    tile_size: int = 4,
    capacity: int | None = None,
    chunk: int = 1024,
    return_info: bool = False,
):
    """Render the SoftRas soft silhouette of a mesh.

    Args:
      verts_px: [V, 2] or [V, 3] screen vertices, pixels (x right, y down; z = depth, if given,
        only used to cull faces behind ``near``).
      faces: [F, 3] int vertex indices.
      image_size: ``(H, W)`` or int, pixels (static).
      sigma: blur, pixels^2 (Python float or traced scalar); sigma = 1 blurs by about a pixel.
      tol: terms with D < tol over a whole tile are skipped (static).
      near: faces with a vertex depth <= near are culled; None disables (static).
      tile_size: tile side, pixels (static).
      capacity: static number of tile-face pair slots; None = ``binning.default_capacity``.
        Costs memory only: the work follows the pairs actually used.
      chunk: pairs evaluated per loop step (static); bounds the working set.
      return_info: also return a ``RasterInfo`` (pair count and overflow).

    Returns:
      alpha [H, W] in [0, 1]; with ``return_info``, ``(alpha, RasterInfo)``.
    """
    hw = image_hw(image_size)
    _check_sigma(sigma)
    xy, _, valid = face_screen(verts_px, faces, near=near)
    bins = bin_screen_faces(
        xy,
        valid,
        sigma=sigma,
        tol=tol,
        hw=hw,
        tile_size=tile_size,
        capacity=capacity,
        chunk=chunk,
    )
    params = primitives.face_params(xy)
    sigma = jnp.asarray(sigma, xy.dtype)
    log_t = pairs.pair_sum(
        _silhouette_kernel,
        hw,
        tile_size,
        chunk,
        params,
        sigma,
        bins.face,
        bins.tile,
        bins.num_pairs,
    )
    alpha = -jnp.expm1(binning.tiles_to_image(log_t, image_size=hw, tile_size=tile_size))
    if return_info:
        return alpha, RasterInfo(bins.num_pairs, bins.overflow)
    return alpha


def _silhouette_kernel(px, py, tile, p, sigma):
    """log(1 - D) of a chunk of pairs (``pairs`` kernel signature): [C, P]."""
    del tile
    return _log_transmittance(px, py, p, sigma)


@jax.custom_vjp
def _log_transmittance(px, py, p, sigma):
    """log(1 - D) of a chunk of pairs: pixels px, py [C, P], face parameters p [C, K] -> [C, P].

    The VJP is written by hand (d alpha-terms flow only to the closest edge's end points):
    the cotangent of ``p`` is the total derivative w.r.t. the vertex columns 0-5 (the derived
    columns, functions of those, get zero), which is what ``primitives.face_params`` feeds.
    """
    cols = primitives.columns(p, axis=1)
    d2, edge = primitives.edge_terms(px, py, cols)
    return primitives.log_one_minus_coverage(d2, primitives.inside_from_edges(edge), sigma)


def _log_transmittance_fwd(px, py, p, sigma):
    return _log_transmittance(px, py, p, sigma), (px, py, p, sigma)


def _closest_edge(px, py, cols):
    """Per pixel: squared distance, closest edge id, its clamped t and residual p - q; edges."""
    best = None
    edge = []
    for k in range(3):
        dx = px - cols[2 * k]
        dy = py - cols[2 * k + 1]
        ex, ey = cols[6 + 2 * k], cols[7 + 2 * k]
        t = jnp.clip((dx * ex + dy * ey) * cols[12 + k], 0.0, 1.0)
        rx, ry = dx - t * ex, dy - t * ey
        cur = (rx * rx + ry * ry, jnp.full(rx.shape, k, jnp.int32), t, rx, ry)
        if best is None:
            best = cur
        else:
            closer = cur[0] < best[0]
            best = tuple(jnp.where(closer, c, b) for c, b in zip(cur, best, strict=True))
        edge.append(ex * dy - ey * dx)
    return best, tuple(edge)


def _log_transmittance_bwd(res, g):
    px, py, p, sigma = res
    cols = primitives.columns(p, axis=1)
    (d2, k, t, rx, ry), edge = _closest_edge(px, py, cols)
    sign = jnp.where(primitives.inside_from_edges(edge), 1.0, -1.0).astype(d2.dtype)
    x = sign * d2 / sigma
    g_x = -g * jax.nn.sigmoid(x)
    c = -2.0 * g_x * sign / sigma  # d d2 / d a = -2 (1 - t) r,  d d2 / d b = -2 t r
    w_start, w_end = c * (1.0 - t), c * t
    grads = []
    for j in range(3):
        coef = jnp.where(k == j, w_start, 0.0) + jnp.where(k == (j + 2) % 3, w_end, 0.0)
        grads += [jnp.sum(coef * rx, axis=1), jnp.sum(coef * ry, axis=1)]
    g_vert = jnp.stack(grads, axis=1)  # [C, 6]
    g_p = jnp.concatenate([g_vert, jnp.zeros((p.shape[0], p.shape[1] - 6), p.dtype)], axis=1)
    g_sigma = jnp.sum(g_x * (-x / sigma)).astype(sigma.dtype)
    return jnp.zeros_like(px), jnp.zeros_like(py), g_p, g_sigma


_log_transmittance.defvjp(_log_transmittance_fwd, _log_transmittance_bwd)
