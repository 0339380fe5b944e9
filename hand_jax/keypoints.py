"""Keypoint orders and named conversion tables between them.

The project's canonical 21-keypoint order is OpenPose/FreiHAND:

    0 wrist; 1-4 thumb (MCP, PIP, DIP, tip); 5-8 index; 9-12 middle; 13-16 ring; 17-20 pinky.

(For the thumb, "MCP, PIP, DIP" are MANO's thumb joints 1-3: CMC, MCP and IP anatomically.)

Other orders met in the field:

- ``mano``: MANO's 16 native joints (wrist; index 1-3; middle 1-3; pinky 1-3; ring 1-3;
  thumb 1-3) followed by the 5 fingertip vertices in the order thumb, index, middle, ring,
  pinky (manopth's convention).
- ``rhd``: wrist; then thumb, index, middle, ring, pinky, each finger stored tip..MCP.
- ``stb``: palm centre (not the wrist); then pinky, ring, middle, index, thumb, each MCP..tip.

Each table ``<ORDER>_TO_CANONICAL`` is an index array ``idx`` such that
``canonical = other[..., idx, :]``; ``CANONICAL_TO_<ORDER>`` is its inverse permutation.
Pure numpy: the tables are static data, usable from numpy and jax alike.
"""

import numpy as np

NUM_KEYPOINTS = 21
NUM_JOINTS = 16

CANONICAL_NAMES = (
    "wrist",
    "thumb1", "thumb2", "thumb3", "thumb_tip",
    "index1", "index2", "index3", "index_tip",
    "middle1", "middle2", "middle3", "middle_tip",
    "ring1", "ring2", "ring3", "ring_tip",
    "pinky1", "pinky2", "pinky3", "pinky_tip",
)  # fmt: skip

# MANO native joints; parents of the kinematic tree (root has parent -1).
MANO_JOINT_NAMES = (
    "wrist",
    "index1", "index2", "index3",
    "middle1", "middle2", "middle3",
    "pinky1", "pinky2", "pinky3",
    "ring1", "ring2", "ring3",
    "thumb1", "thumb2", "thumb3",
)  # fmt: skip
MANO_PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)

# Fingertip order used by every tip-vertex preset: thumb, index, middle, ring, pinky.
TIP_FINGERS = ("thumb", "index", "middle", "ring", "pinky")

MANO_TO_CANONICAL = np.array(
    [0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20], dtype=np.int32
)
RHD_TO_CANONICAL = np.array(
    [0, 4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9, 16, 15, 14, 13, 20, 19, 18, 17], dtype=np.int32
)
STB_TO_CANONICAL = np.array(
    [0, 17, 18, 19, 20, 13, 14, 15, 16, 9, 10, 11, 12, 5, 6, 7, 8, 1, 2, 3, 4], dtype=np.int32
)

# Index of each canonical finger's MCP joint, useful for reference bones and palm geometry.
CANONICAL_MCP = {"thumb": 1, "index": 5, "middle": 9, "ring": 13, "pinky": 17}
CANONICAL_TIPS = (4, 8, 12, 16, 20)


def inverse_permutation(idx: np.ndarray) -> np.ndarray:
    """Return the inverse of a permutation given as an index array."""
    idx = np.asarray(idx)
    inv = np.empty_like(idx)
    inv[idx] = np.arange(idx.shape[0], dtype=idx.dtype)
    return inv


CANONICAL_TO_MANO = inverse_permutation(MANO_TO_CANONICAL)
CANONICAL_TO_RHD = inverse_permutation(RHD_TO_CANONICAL)
CANONICAL_TO_STB = inverse_permutation(STB_TO_CANONICAL)

_TO_CANONICAL = {
    "canonical": np.arange(NUM_KEYPOINTS, dtype=np.int32),
    "mano": MANO_TO_CANONICAL,
    "rhd": RHD_TO_CANONICAL,
    "stb": STB_TO_CANONICAL,
}
ORDERS = tuple(_TO_CANONICAL)


def reorder(keypoints, *, source: str, target: str):
    """Reorder keypoints between named orders.

    Args:
      keypoints: [..., 21, D] keypoints in the ``source`` order (numpy or jax array).
      source: one of ``ORDERS``.
      target: one of ``ORDERS``.

    Returns:
      [..., 21, D] the same keypoints in the ``target`` order.
    """
    for name, value in (("source", source), ("target", target)):
        if value not in _TO_CANONICAL:
            raise ValueError(f"{name}={value!r}: expected one of {ORDERS}")
    if keypoints.shape[-2] != NUM_KEYPOINTS:
        raise ValueError(
            f"keypoints: expected {NUM_KEYPOINTS} keypoints on axis -2, got shape {keypoints.shape}"
        )
    to_canonical = _TO_CANONICAL[source]
    from_canonical = inverse_permutation(_TO_CANONICAL[target])
    return keypoints[..., to_canonical[from_canonical], :]
