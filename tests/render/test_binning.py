"""Face-to-tile binning: the pair list against a brute-force enumeration, overflow, odd input."""

import functools
import re

import jax
import numpy as np
import pytest

from hand_jax.render import binning

from . import random_mesh


def _brute_force_pairs(xy, valid, margin, h, w, tile):
    """Set of (tile, face) pairs: tiles holding a pixel centre inside the grown bounding box."""
    tiles_x = -(-w // tile)
    pairs = set()
    for f in np.flatnonzero(valid):
        lo, hi = xy[f].min(0) - margin, xy[f].max(0) + margin
        for j in range(h):
            for i in range(w):
                if lo[0] <= i + 0.5 <= hi[0] and lo[1] <= j + 0.5 <= hi[1]:
                    pairs.add(((j // tile) * tiles_x + i // tile, int(f)))
    return pairs


def test_pairs_match_brute_force_and_overflow_is_counted():
    rng = np.random.default_rng(0)
    verts, faces = random_mesh(rng, 25, 20, size=6.0)
    xy = verts[faces, :2]
    xy[3] += 100.0  # off the image
    valid = np.ones(len(faces), bool)
    valid[5] = False  # culled
    h, w, tile, margin = 19, 22, 4, 1.3
    expected = _brute_force_pairs(xy, valid, margin, h, w, tile)
    fn = jax.jit(functools.partial(binning.bin_faces, image_size=(h, w), tile_size=tile,
                                   capacity=len(expected) + 7))  # fmt: skip
    bins = fn(xy, valid, margin)
    ty, tx = binning.tile_grid((h, w), tile)
    tiles, faces_ = np.asarray(bins.tile), np.asarray(bins.face)
    used = tiles < ty * tx
    got = set(zip(tiles[used].tolist(), faces_[used].tolist(), strict=True))
    assert got == expected and len(got) == used.sum()
    assert int(bins.num_pairs) == len(expected) and int(bins.overflow) == 0
    small = jax.jit(functools.partial(binning.bin_faces, image_size=(h, w), tile_size=tile,
                                      capacity=len(expected) - 10))(xy, valid, margin)  # fmt: skip
    assert int(small.overflow) == 10


def _pair_set(bins, h, w, tile):
    ty, tx = binning.tile_grid((h, w), tile)
    tiles, faces = np.asarray(bins.tile), np.asarray(bins.face)
    used = tiles < ty * tx
    return set(zip(tiles[used].tolist(), faces[used].tolist(), strict=True))


def test_pairs_match_brute_force_across_the_borders_and_for_one_pixel_faces():
    rng = np.random.default_rng(1)
    h, w, tile = 13, 10, 4
    centres = rng.uniform(-3.0, [w + 3.0, h + 3.0], (40, 1, 2))  # many cross a border
    big = centres + rng.normal(0.0, 2.0, (40, 3, 2))
    corners = [[0.5, 0.5], [w - 0.5, h - 0.5], [0.5, h - 0.5], [w - 0.5, 0.5]]
    pix = np.concatenate([corners, rng.integers(0, [w, h], (16, 2)) + 0.5])[:, None]
    tiny = pix + rng.uniform(-0.05, 0.05, (20, 3, 2))  # each holds one pixel centre at most
    tiny[:, 0] = pix[:, 0]
    xy = np.concatenate([big, tiny]).astype(np.float32)
    valid = np.ones(len(xy), bool)
    for margin in (0.0, 0.7):
        expected = _brute_force_pairs(xy, valid, margin, h, w, tile)
        bins = binning.bin_faces(xy, valid, margin, image_size=(h, w), tile_size=tile,
                                 capacity=len(expected) + 3)  # fmt: skip
        assert _pair_set(bins, h, w, tile) == expected, margin
        assert int(bins.num_pairs) == len(expected)


def test_capacity_must_be_a_positive_int_and_one_slot_is_enough_for_one_pair():
    xy = np.array([[[0.5, 0.5], [1.5, 0.5], [0.5, 1.5]]], np.float32)
    bin_one = functools.partial(binning.bin_faces, xy, np.ones(1, bool), 0.0, image_size=(8, 8),
                                tile_size=4)  # fmt: skip
    for bad in (0, -3, 2.5):
        message = f"capacity must be a positive int (tile-face pairs); got {bad!r}"
        with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
            bin_one(capacity=bad)
    bins = bin_one(capacity=1)
    assert np.asarray(bins.face).tolist() == [0] and np.asarray(bins.tile).tolist() == [0]
    assert int(bins.num_pairs) == 1 and int(bins.overflow) == 0


def test_non_finite_and_huge_coordinates_bin_nowhere():
    xy = np.array([
        [[np.inf, 0.0], [1.0, 1.0], [2.0, 0.0]],
        [[1e30, 1e30], [2e30, 1e30], [1e30, 2e30]],
        [[-1e30, 5.0], [1e30, 5.0], [0.0, 6.0]],
    ], np.float32)  # fmt: skip
    bins = binning.bin_faces(xy, np.ones(3, bool), 1.0, image_size=(8, 8), tile_size=4,
                             capacity=16)  # fmt: skip
    # Face 0 is non-finite and face 1 far away; face 2 spans the image's width over rows 4-7.
    assert int(bins.num_pairs) == 2
    assert set(np.asarray(bins.face)[:2].tolist()) == {2}
    assert set(np.asarray(bins.tile)[:2].tolist()) == {2, 3}


def test_default_capacity_closed_form():
    # face = 1.6 max(H, W) / sqrt(F), w = 2 margin + face, capacity = ceil(2 F (1 + w / t)^2)
    assert binning.default_capacity(100, (64, 32), 8, 2.0) == 1546  # 200 (1 + 14.24 / 8)^2
    assert binning.default_capacity(1, (32, 64), 8, 2.0) == 409  # face 102.4: 2 (1 + 13.3)^2
    assert binning.default_capacity(0, (64, 64), 8, 2.0) == 0


def test_tile_grid_rounds_up_and_refuses_sizes_below_one():
    assert binning.tile_grid((5, 3), 1) == (5, 3)
    assert binning.tile_grid((17, 16), 8) == (3, 2)
    for bad in (0, -4, 2.0):
        message = f"tile_size must be a positive int (pixels); got {bad!r}"
        with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
            binning.tile_grid((8, 8), bad)


def test_tiles_to_image_puts_each_tile_pixel_in_place_and_crops_the_overhang():
    h, w, t = 5, 7, 4  # 2 x 2 tiles, the last row and column of tiles cut
    values = np.random.default_rng(0).normal(size=(4, t * t, 2)).astype(np.float32)
    image = np.asarray(binning.tiles_to_image(values, image_size=(h, w), tile_size=t))
    want = np.zeros((h, w, 2))
    for y in range(h):
        for x in range(w):
            want[y, x] = values[(y // t) * 2 + x // t, (y % t) * t + x % t]
    np.testing.assert_array_equal(image, want)
