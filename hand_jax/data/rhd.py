"""Rendered Hand Pose dataset (RHD, Zimmermann & Brox 2017), read from its native files.

Layout (``data_dir`` = ``RHD_published_v2``)::

    training/anno_training.pickle      evaluation/anno_evaluation.pickle
    training/color/%05d.png            evaluation/color/%05d.png       320x320 RGB
    training/mask/%05d.png             evaluation/mask/%05d.png        part ids

Each pickle is a dict ``{sample_id: {"xyz": [42, 3] metres (camera frame), "uv_vis": [42, 3]
(u, v pixels, visible 0/1), "K": [3, 3]}}`` with keypoints 0-20 the left hand and 21-41 the
right hand, each as wrist then thumb, index, middle, ring, pinky, every finger tip..MCP.
Mask ids: 0 background, 1 person, 2-17 left hand, 18-33 right hand.

Splits: ``train`` (41,258) and ``test`` (2,728) as published; ``val`` (every 20th training
sample, 2,063) and ``train_fit`` (the other 39,195) for training that validates without the
test split. The evaluated hand is the one with more mask pixels (the benchmark's protocol); left
hands are mirrored to right hands (``schema.mirror_sample``). Pickles are read with the restricted
unpickler (numpy only): a pickle naming any other class is refused.
"""

import os
from collections.abc import Sequence

import numpy as np

from hand_jax import keypoints as kp
from hand_jax import safe_pickle
from hand_jax.data import files, schema

SPLITS = {"train": "training", "training": "training", "test": "evaluation",
          "evaluation": "evaluation", "train_fit": "training", "val": "training"}  # fmt: skip
# RHD has no validation split: "val" holds out every VAL_EVERY-th training sample (in sample-id
# order) and "train_fit" is the rest, for runs that must not choose anything on the test split.
VAL_EVERY = 20
IMAGE_SIZE = (320, 320)
LEFT_IDS = (2, 17)
RIGHT_IDS = (18, 33)
HANDS = ("larger", "left", "right")


def _check_entry(entry, path: str, key) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not isinstance(entry, dict):
        raise files.DataError(f"{path}: sample {key!r} is a {type(entry).__name__}, expected dict")
    missing = {"xyz", "uv_vis", "K"} - set(entry)
    if missing:
        raise files.DataError(f"{path}: sample {key!r} lacks keys {sorted(missing)}")
    xyz = files.as_array(entry["xyz"], path, (42, 3), f"sample {key!r} 'xyz'")
    uv_vis = files.as_array(entry["uv_vis"], path, (42, 3), f"sample {key!r} 'uv_vis'")
    K = files.as_array(entry["K"], path, (3, 3), f"sample {key!r} 'K'")
    return xyz, uv_vis, K


def read_annotations(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read an RHD annotation pickle.

    Args:
      path: ``anno_training.pickle`` or ``anno_evaluation.pickle``.

    Returns:
      (ids [N] int64, xyz [N, 42, 3] m, uv_vis [N, 42, 3], K [N, 3, 3]) sorted by sample id.

    Raises:
      DataError: the file is missing or its content is not the RHD layout.
      safe_pickle.PickleReadError: the pickle is malformed or names a non-numpy class
        (``UnsafePickleError``).
    """
    files.require_file(path, "the RHD annotation pickle")
    data = safe_pickle.load(path)
    if not isinstance(data, dict) or not data:
        raise files.DataError(f"{path}: expected a non-empty dict of samples, got {type(data)}")
    keys = list(data)
    bad = [i for i in keys if not isinstance(i, int | np.integer) or not 0 <= i < 2**63]
    if bad:  # checked before sorting: mixed key types cannot be sorted
        raise files.DataError(f"{path}: expected integer sample ids >= 0, got {bad[:3]!r:.200}")
    ids = sorted(keys)
    xyz, uv_vis, K = zip(*(_check_entry(data[i], path, i) for i in ids), strict=True)
    return np.asarray(ids, np.int64), np.stack(xyz), np.stack(uv_vis), np.stack(K)


class RHDSamples(Sequence):
    """One RHD split as a lazy sequence of samples (images are read on access)."""

    def __init__(self, data_dir: str, split: str, *, hand: str = "larger"):
        if split not in SPLITS:
            raise ValueError(f"rhd: unknown {split=}; expected one of {list(SPLITS)}")
        if hand not in HANDS:
            raise ValueError(f"rhd: unknown {hand=}; expected one of {HANDS}")
        self.split = SPLITS[split]
        self.hand = hand
        self.root = files.require_dir(
            os.path.join(data_dir, self.split), f"RHD's {self.split}/ folder"
        )
        anno = os.path.join(self.root, f"anno_{self.split}.pickle")
        self.ids, self.xyz, self.uv_vis, self.K = read_annotations(anno)
        total = len(self.ids)
        if split in ("val", "train_fit"):
            held_out = np.arange(total) % VAL_EVERY == 0
            keep = held_out if split == "val" else ~held_out
            self.ids, self.xyz, self.uv_vis, self.K = (
                x[keep] for x in (self.ids, self.xyz, self.uv_vis, self.K)
            )
        for folder in ("color", "mask"):
            directory = files.require_dir(os.path.join(self.root, folder), f"RHD {folder} PNGs")
            files.check_count(
                found=files.count_files(directory, suffixes=(".png",)),
                expected=total,
                path=directory,
                what=f"{folder} images for the samples of {anno}",
            )

    def __len__(self) -> int:
        return len(self.ids)

    def _choose(self, parts: np.ndarray) -> str:
        if self.hand != "larger":
            return self.hand
        left = np.count_nonzero((parts >= LEFT_IDS[0]) & (parts <= LEFT_IDS[1]))
        right = np.count_nonzero((parts >= RIGHT_IDS[0]) & (parts <= RIGHT_IDS[1]))
        return "left" if left > right else "right"

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"rhd {self.split}: index {index} out of range [0, {len(self)})")
        i = int(self.ids[index])
        color = os.path.join(self.root, "color", f"{i:05d}.png")
        mask_path = os.path.join(self.root, "mask", f"{i:05d}.png")
        image = files.read_image(color)
        parts = files.read_label_image(mask_path)
        files.check_image_size(parts, mask_path, image.shape[:2])
        side = self._choose(parts)
        lo, hi = LEFT_IDS if side == "left" else RIGHT_IDS
        rows = slice(0, 21) if side == "left" else slice(21, 42)
        idx = kp.RHD_TO_CANONICAL
        sample = schema.make_sample(
            id=f"rhd/{self.split}/{i:05d}",
            side=side,
            image=image,
            mask=(parts >= lo) & (parts <= hi),
            keypoints_2d=self.uv_vis[index, rows, :2][idx],
            keypoints_3d=self.xyz[index, rows][idx],
            keypoint_visible=self.uv_vis[index, rows, 2][idx] > 0.5,
            K=self.K[index],
        )
        return schema.to_right_hand(sample)


def load(data_dir: str, split: str, *, hand: str = "larger") -> RHDSamples:
    """Load an RHD split.

    Args:
      data_dir: the ``RHD_published_v2`` folder.
      split: ``train``/``training`` or ``test``/``evaluation``; ``val`` / ``train_fit``: the
        held-out and remaining parts of the training split.
      hand: ``larger`` (the hand with more mask pixels: the benchmark protocol), ``left`` or
        ``right``.

    Returns:
      A sequence of right-hand samples (``original_side`` says which were mirrored).
    """
    return RHDSamples(data_dir, split, hand=hand)
