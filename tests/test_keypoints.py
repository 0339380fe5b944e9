"""Tests of the keypoint order tables in hand_jax.keypoints.

Each table is checked against keypoint *names* written out here per convention (independently of
the tables), and MANO's against the index list hard-coded in manopth's ``ManoLayer``.
"""

import itertools

import jax.numpy as jnp
import numpy as np
import pytest

from hand_jax import keypoints as kp

FINGERS = ("thumb", "index", "middle", "ring", "pinky")
CANONICAL = ("wrist",) + tuple(f"{f}{p}" for f in FINGERS for p in ("1", "2", "3", "_tip"))
# MANO: 16 native joints (wrist; index, middle, pinky, ring, thumb) + tips thumb..pinky.
MANO = (
    ("wrist",)
    + tuple(f"{f}{p}" for f in ("index", "middle", "pinky", "ring", "thumb") for p in "123")
    + tuple(f"{f}_tip" for f in FINGERS)
)
# RHD: wrist; thumb, index, middle, ring, pinky, each tip..MCP.
RHD = ("wrist",) + tuple(f"{f}{p}" for f in FINGERS for p in ("_tip", "3", "2", "1"))
# STB: palm centre in the wrist's slot; pinky, ring, middle, index, thumb, each MCP..tip.
STB = ("wrist",) + tuple(f"{f}{p}" for f in FINGERS[::-1] for p in ("1", "2", "3", "_tip"))
NAMES = {"canonical": CANONICAL, "mano": MANO, "rhd": RHD, "stb": STB}

# manopth/manolayer.py: th_jtr = th_jtr[:, [0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11,
# 12, 19, 7, 8, 9, 20]] after appending the tips [745, 317, 444, 556, 673] (thumb..pinky).
MANOPTH_REORDER = [0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20]


def test_canonical_names_match():
    assert kp.CANONICAL_NAMES == CANONICAL
    assert kp.MANO_JOINT_NAMES == MANO[:16]
    assert kp.TIP_FINGERS == FINGERS


def test_mano_table_matches_manopth():
    np.testing.assert_array_equal(kp.MANO_TO_CANONICAL, MANOPTH_REORDER)


@pytest.mark.parametrize(
    "order, table",
    [("mano", kp.MANO_TO_CANONICAL), ("rhd", kp.RHD_TO_CANONICAL), ("stb", kp.STB_TO_CANONICAL)],
)
def test_tables_map_names_to_canonical(order, table):
    assert tuple(NAMES[order][i] for i in table) == CANONICAL


@pytest.mark.parametrize(
    "forward, inverse",
    [
        (kp.MANO_TO_CANONICAL, kp.CANONICAL_TO_MANO),
        (kp.RHD_TO_CANONICAL, kp.CANONICAL_TO_RHD),
        (kp.STB_TO_CANONICAL, kp.CANONICAL_TO_STB),
    ],
)
def test_tables_are_inverse_permutations(forward, inverse):
    assert sorted(forward.tolist()) == list(range(21))
    np.testing.assert_array_equal(forward[inverse], np.arange(21))
    np.testing.assert_array_equal(inverse[forward], np.arange(21))


@pytest.mark.parametrize("source, target", list(itertools.permutations(kp.ORDERS, 2)))
def test_reorder_round_trips_and_moves_names(source, target):
    x = np.random.default_rng(0).normal(size=(2, 21, 3))
    there = kp.reorder(x, source=source, target=target)
    np.testing.assert_array_equal(kp.reorder(there, source=target, target=source), x)
    # The point labelled n in the source order ends up where the target order puts n.
    for i, name in enumerate(NAMES[target]):
        np.testing.assert_array_equal(there[:, i], x[:, NAMES[source].index(name)])


def test_reorder_accepts_jax_and_rejects_bad_input():
    x = jnp.arange(21 * 2, dtype=jnp.float32).reshape(21, 2)
    np.testing.assert_array_equal(kp.reorder(x, source="mano", target="mano"), x)
    with pytest.raises(ValueError, match="source"):
        kp.reorder(x, source="openpose25", target="mano")
    with pytest.raises(ValueError, match="21 keypoints"):
        kp.reorder(jnp.zeros((20, 3)), source="mano", target="rhd")
