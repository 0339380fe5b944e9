"""Chunked loops over the binned (tile, face) pairs, with work proportional to the pairs used.

A renderer supplies a pair kernel ``kernel(px, py, tile, p, extra) -> values``: pixel centres
``px, py [C, P]`` of a chunk of C pairs (P = tile_size^2 pixels each), the pairs' tiles
``tile [C]`` (row-major, ``num_tiles`` in unused slots), their face parameters
``p [C, K]`` and an ``extra`` pytree of arrays (e.g. sigma); values are ``[C, P, ...]``. The
loops here scatter them into per-tile pixels ``[T, P, ...]``.

``pair_sum`` runs only the chunks holding used pairs (a ``while_loop`` whose trip count is the
image's pair count, so the static capacity costs memory for indices only, not compute). It is
differentiable through a custom VJP that recomputes each chunk in the backward pass (nothing of
size [N, P] is stored). Under ``jax.vmap`` the loop runs until the busiest image is done.
``pair_reduce`` is the non-differentiable variant for min/max reductions.
"""

import functools

import jax
import jax.numpy as jnp

from hand_jax.render import binning


def gather_tiles(values, tile, fill):
    """``values[tile]`` for row-major tiles ``tile`` [C], ``fill`` where tile is out of range.

    Written as a clipped take plus a select: a batched ``.at[].get(mode="fill")`` gather is
    about 20x slower on CPU under ``jax.vmap``.
    """
    num_tiles = values.shape[0]
    taken = jnp.take(values, jnp.minimum(tile, num_tiles - 1), axis=0)
    ok = (tile < num_tiles).reshape(tile.shape + (1,) * (values.ndim - 1))
    return jnp.where(ok, taken, jnp.asarray(fill, values.dtype))


def _chunk_pixels(tile, hw, tile_size, dtype):
    x0, y0 = binning.tile_origins(tile, image_size=hw, tile_size=tile_size, dtype=dtype)
    ox, oy = binning.pixel_offsets(tile_size, dtype)
    return x0[:, None] + ox[None, :], y0[:, None] + oy[None, :]


def _chunk(params, face, tile, i, chunk):
    sl_face = jax.lax.dynamic_slice_in_dim(face, i * chunk, chunk)
    sl_tile = jax.lax.dynamic_slice_in_dim(tile, i * chunk, chunk)
    return params[sl_face], sl_face, sl_tile


def _num_chunks(num_pairs, n_slots, chunk):
    return (jnp.minimum(num_pairs, n_slots) + chunk - 1) // chunk


def _out_zeros(kernel, params, extra, hw, tile_size, chunk):
    ty, tx = binning.tile_grid(hw, tile_size)
    p = tile_size * tile_size
    dtype = params.dtype
    px = jax.ShapeDtypeStruct((chunk, p), dtype)
    pc = jax.ShapeDtypeStruct((chunk, params.shape[1]), dtype)
    tl = jax.ShapeDtypeStruct((chunk,), jnp.int32)
    shape = jax.eval_shape(kernel, px, px, tl, pc, extra)
    return jnp.zeros((ty * tx,) + shape.shape[1:], shape.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 3))
def pair_sum(kernel, hw, tile_size, chunk, params, extra, face, tile, num_pairs):
    """Sum ``kernel`` values over the used pairs into tiles.

    Args:
      kernel: pair kernel (see module doc); static.
      hw: ``(H, W)`` image size (static). tile_size, chunk: static ints; the slot count N must
        be a multiple of ``chunk``.
      params: [F, K] per-face parameters (differentiable).
      extra: pytree of arrays passed to the kernel (differentiable).
      face, tile: [N] int32 pair slots (``Bins.face``, ``Bins.tile``).
      num_pairs: [] int32 number of used slots (``Bins.num_pairs``; clipped to N).

    Returns:
      [T, P, ...] per-tile pixel sums.
    """
    out, _ = _pair_sum_fwd(kernel, hw, tile_size, chunk, params, extra, face, tile, num_pairs)
    return out


def _pair_sum_fwd(kernel, hw, tile_size, chunk, params, extra, face, tile, num_pairs):
    def body(i, acc):
        p, _, tl = _chunk(params, face, tile, i, chunk)
        px, py = _chunk_pixels(tl, hw, tile_size, params.dtype)
        return acc.at[tl].add(kernel(px, py, tl, p, extra), mode="drop")

    init = _out_zeros(kernel, params, extra, hw, tile_size, chunk)
    n = _num_chunks(num_pairs, face.shape[0], chunk)
    out = jax.lax.fori_loop(0, n, body, init)
    return out, (params, extra, face, tile, num_pairs)


def _pair_sum_bwd(kernel, hw, tile_size, chunk, res, g_out):
    params, extra, face, tile, num_pairs = res

    def body(i, carry):
        g_params, g_extra = carry
        p, fc, tl = _chunk(params, face, tile, i, chunk)
        px, py = _chunk_pixels(tl, hw, tile_size, params.dtype)
        g_vals = gather_tiles(g_out, tl, 0)
        _, vjp = jax.vjp(lambda p_, e_: kernel(px, py, tl, p_, e_), p, extra)
        gp, ge = vjp(g_vals)
        g_params = g_params.at[fc].add(gp)
        return g_params, jax.tree.map(jnp.add, g_extra, ge)

    init = (jnp.zeros_like(params), jax.tree.map(jnp.zeros_like, extra))
    n = _num_chunks(num_pairs, face.shape[0], chunk)
    g_params, g_extra = jax.lax.fori_loop(0, n, body, init)
    return g_params, g_extra, None, None, None


pair_sum.defvjp(_pair_sum_fwd, _pair_sum_bwd)


def pair_reduce(kernel, hw, tile_size, chunk, params, extra, face, tile, num_pairs, *, op, init):
    """Reduce ``kernel`` values over the used pairs into tiles with ``op`` ("min" or "max").

    Not differentiable (inputs are stopped); used for z-buffers and softmax shifts.

    Returns:
      [T, P, ...] per-tile pixel reductions, ``init`` where no pair reaches a pixel.
    """
    if op not in ("min", "max"):
        raise ValueError(f"op must be 'min' or 'max'; got {op!r}")
    params, extra = jax.lax.stop_gradient((params, extra))

    def body(i, acc):
        p, _, tl = _chunk(params, face, tile, i, chunk)
        px, py = _chunk_pixels(tl, hw, tile_size, params.dtype)
        vals = kernel(px, py, tl, p, extra)
        ref = acc.at[tl]
        return ref.min(vals, mode="drop") if op == "min" else ref.max(vals, mode="drop")

    zeros = _out_zeros(kernel, params, extra, hw, tile_size, chunk)
    n = _num_chunks(num_pairs, face.shape[0], chunk)
    return jax.lax.fori_loop(0, n, body, jnp.full_like(zeros, init))
