"""The chunked pair loops against plain numpy loops over the used pairs (``render.pairs``):
sums, min/max reductions, the custom VJP, unused and overflowing slots, and the tile gather."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from hand_jax.render import pairs

H, W, TILE, CHUNK = 6, 7, 4, 2  # 2 x 2 tiles of 16 pixels, the last row and column cut
NUM_TILES, P = 4, 16


def _kernel(px, py, tile, p, extra):
    """Depends on the pixel, the tile, the face parameters and ``extra``: [C, P, 2]."""
    a = p[:, :1] * px + p[:, 1:2] * py + extra["b"] * tile[:, None]
    return jnp.stack([a, jnp.sin(a) * extra["c"]], -1)


def _pixels(tile):
    ty, tx = divmod(tile, 2)
    j, i = np.divmod(np.arange(P), TILE)
    return tx * TILE + i + 0.5, ty * TILE + j + 0.5


def _numpy_values(params, extra, face, tile, num_pairs):
    """Per used pair (its tile and [P, 2] kernel values), one pair at a time."""
    out = []
    for k in range(min(num_pairs, len(face))):
        if tile[k] >= NUM_TILES:
            continue
        px, py = _pixels(tile[k])
        p = params[face[k]]
        a = p[0] * px + p[1] * py + extra["b"] * tile[k]
        out.append((tile[k], np.stack([a, np.sin(a) * extra["c"]], -1)))
    return out


PARAMS = np.array([[0.5, -0.25], [0.125, 0.75], [-1.0, 0.5]])
EXTRA = {"b": np.array(0.3), "c": np.array(2.0)}
# Eight slots: face 1 meets three tiles, face 2 one (twice: a repeated pair adds twice), face 0
# two; slot 6 is unused (tile NUM_TILES). Slot 7 holds a pair that counts only when num_pairs
# reaches it: the loops run whole chunks up to num_pairs (so the counts below are multiples of
# CHUNK) and no further.
FACE = np.array([0, 0, 1, 1, 1, 2, 0, 2], np.int32)
TILES = np.array([0, 3, 0, 1, 2, 3, NUM_TILES, 1], np.int32)


def _assert_pair_sum(tiles, num_pairs):
    """pair_sum against the sum over the used pairs, one at a time."""
    got = pairs.pair_sum(_kernel, (H, W), TILE, CHUNK, jnp.asarray(PARAMS),
                         jax.tree.map(jnp.asarray, EXTRA), FACE, tiles, num_pairs)  # fmt: skip
    want = np.zeros((NUM_TILES, P, 2))
    for t, values in _numpy_values(PARAMS, EXTRA, FACE, tiles, num_pairs):
        want[t] += values
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("num_pairs", [0, 2, 6, 8, 20])
def test_pair_sum_adds_every_used_pair_into_its_tile(num_pairs):
    _assert_pair_sum(TILES, num_pairs)


@pytest.mark.parametrize("op, init", [("min", 5.0), ("max", -5.0)])
@pytest.mark.parametrize("num_pairs", [0, 4, 8])
def test_pair_reduce_takes_the_min_or_max_with_init_where_no_pair_reaches(op, init, num_pairs):
    got = pairs.pair_reduce(_kernel, (H, W), TILE, CHUNK, jnp.asarray(PARAMS),
                            jax.tree.map(jnp.asarray, EXTRA), FACE, TILES, num_pairs, op=op,
                            init=init)  # fmt: skip
    want = np.full((NUM_TILES, P, 2), init)
    reduce = np.minimum if op == "min" else np.maximum
    for t, values in _numpy_values(PARAMS, EXTRA, FACE, TILES, num_pairs):
        want[t] = reduce(want[t], values)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("num_pairs", [5, 7])
def test_an_odd_pair_count_runs_its_last_partial_chunk(num_pairs):
    tiles = np.where(np.arange(8) < num_pairs, TILES % NUM_TILES, NUM_TILES)  # Bins' contract
    _assert_pair_sum(tiles, num_pairs)


def test_pair_reduce_refuses_other_operations():
    with pytest.raises(ValueError, match="^op must be 'min' or 'max'; got 'sum'$"):
        pairs.pair_reduce(_kernel, (H, W), TILE, CHUNK, jnp.asarray(PARAMS), EXTRA, FACE, TILES,
                          8, op="sum", init=0.0)  # fmt: skip


def test_pair_sum_gradients_match_finite_differences():
    with jax.enable_x64():
        params = jnp.asarray(PARAMS, jnp.float64)
        extra = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), EXTRA)
        weights = jnp.asarray(np.random.default_rng(0).normal(size=(NUM_TILES, P, 2)))

        def loss(params, extra):
            params, extra = jax.tree.map(jnp.asarray, (params, extra))
            out = pairs.pair_sum(_kernel, (H, W), TILE, CHUNK, params, extra, FACE, TILES, 6)
            return jnp.sum(out * weights)

        check_grads(loss, (params, extra), order=1, modes=("rev",), atol=1e-5, rtol=1e-5)
        g_params, _ = jax.grad(loss, argnums=(0, 1))(params, extra)
        # Face 0's only used pairs are slots 0 and 1 (slot 6 is unused): no other pair moves it.
        assert np.all(np.asarray(g_params[0]) != 0)


def test_gather_tiles_fills_out_of_range_tiles():
    values = jnp.arange(NUM_TILES * 3.0).reshape(NUM_TILES, 3)
    got = pairs.gather_tiles(values, jnp.array([2, NUM_TILES, 3, 0, NUM_TILES + 5]), -1.0)
    np.testing.assert_array_equal(
        got, [[6, 7, 8], [-1, -1, -1], [9, 10, 11], [0, 1, 2], [-1, -1, -1]]
    )
