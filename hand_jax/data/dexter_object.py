"""Dexter+Object (Sridhar et al. 2016): fingertip annotations, test only, native files.

Layout (``data_dir``, the dataset root; the sequence folders may also sit directly in it)::

    data/<Seq>/color/*.png                  640x480 RGB, sorted by name = frame order
    data/<Seq>/annotations/<Seq>2D.txt      one line per frame: "u, v;u, v;..." (depth image)
    data/<Seq>/annotations/<Seq>3D.txt      one line per frame: "x, y, z;..." millimetres

with <Seq> in Grasp1, Grasp2, Occlusion, Rigid, Pinch, Rotate. Each line holds the five
fingertips thumb, index, middle, ring, little; z = 32001 marks a missing annotation.

The 3D annotations are in the depth sensor's frame with x and y pointing the other way from
OpenCV's; as in the benchmark's public evaluation code, they are moved to the colour camera as
``X_colour = R (-x, -y, z) + t`` (``COLOUR_EXTRINSICS = [R | t]``, mm) and projected with
``COLOUR_K`` to give the 2D keypoints. Only the five tips are labelled (``keypoint_valid``
False elsewhere and for missing tips). The hands are left hands: every sample is mirrored.
The 2D files (depth-image pixels) are read to check the frame count only.
"""

import os
from collections.abc import Sequence

import numpy as np

from hand_jax import keypoints as kp
from hand_jax.data import files, schema

SEQUENCES = ("Grasp1", "Grasp2", "Occlusion", "Rigid", "Pinch", "Rotate")
COLOUR_K = np.array([[587.45209, 0.0, 325.0], [0.0, 600.67456, 249.0], [0.0, 0.0, 1.0]])
COLOUR_EXTRINSICS = np.array(
    [
        [0.9999, 0.0034, 0.0161, 19.0473],
        [-0.0033, 1.0000, -0.0079, -1.8514],
        [-0.0162, 0.0079, 0.9998, -4.7501],
    ]
)
INVALID_Z = 32001.0
NUM_TIPS = 5
# The five tips span the fingers only; the wrist lies about a hand length from their centre.
DEFAULT_CROP_MARGIN = 0.8


def read_annotation_file(path: str, *, dims: int) -> np.ndarray:
    """Read a D+O annotation file.

    Args:
      path: ``<Seq>2D.txt`` (dims 2) or ``<Seq>3D.txt`` (dims 3).
      dims: numbers per fingertip.

    Returns:
      [N, 5, dims] float64, one row per non-empty line.

    Raises:
      DataError: the file is missing or a line does not hold 5 groups of ``dims`` numbers.
    """
    files.require_file(path, f"Dexter+Object fingertip annotations ({dims}D)")
    rows = []
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
    except UnicodeDecodeError as e:
        raise files.DataError(f"{path}: not a text file of numbers ({e})") from e
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        groups = [g for g in line.strip().split(";") if g.strip()]
        try:
            values = [[float(x) for x in g.split(",")] for g in groups]
            row = np.array(values, np.float64)
        except ValueError as e:
            raise files.DataError(f"{path}:{line_no}: cannot parse numbers ({e})") from e
        if row.shape != (NUM_TIPS, dims):
            raise files.DataError(
                f"{path}:{line_no}: expected {NUM_TIPS} fingertips of {dims} numbers "
                f"separated by ';', got {[len(v) for v in values]}"
            )
        rows.append(row)
    if not rows:
        raise files.DataError(f"{path}: no annotation lines")
    return np.stack(rows)


def depth_to_colour(tips_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Convert [..., 5, 3] native 3D tips (mm) to the colour camera frame (m) and validity."""
    valid = np.all(np.isfinite(tips_mm), axis=-1) & (tips_mm[..., 2] != INVALID_Z)
    cv = tips_mm * np.array([-1.0, -1.0, 1.0])
    colour = cv @ COLOUR_EXTRINSICS[:, :3].T + COLOUR_EXTRINSICS[:, 3]
    return np.where(valid[..., None], colour / 1000.0, 0.0), valid


class DexterObjectSamples(Sequence):
    """Dexter+Object sequences as a lazy sequence of right-hand (mirrored) samples."""

    def __init__(self, data_dir: str, sequences: Sequence[str] = SEQUENCES):
        self.sequences = tuple(sequences)
        self.images: list[str] = []
        self.frames: list[tuple[str, int]] = []
        tips = []
        for seq in self.sequences:
            seq_dir = self._sequence_dir(data_dir, seq)
            xyz = read_annotation_file(os.path.join(seq_dir, "annotations", f"{seq}3D.txt"), dims=3)
            uv_path = os.path.join(seq_dir, "annotations", f"{seq}2D.txt")
            uv = read_annotation_file(uv_path, dims=2)
            color = files.require_dir(os.path.join(seq_dir, "color"), f"{seq} colour PNGs")
            names = sorted(n for n in os.listdir(color) if n.lower().endswith(".png"))
            for what, labels, path in (("3D", xyz, "3D.txt"), ("2D", uv, "2D.txt")):
                files.check_count(
                    found=len(names),
                    expected=labels.shape[0],
                    path=color,
                    what=f"colour images for the {what} lines of annotations/{seq}{path}",
                )
            self.images += [os.path.join(color, n) for n in names]
            self.frames += [(seq, i) for i in range(len(names))]
            tips.append(xyz)
        self.tips_3d, self.tips_valid = depth_to_colour(np.concatenate(tips))

    @staticmethod
    def _sequence_dir(data_dir: str, seq: str) -> str:
        for candidate in (os.path.join(data_dir, "data", seq), os.path.join(data_dir, seq)):
            if os.path.isdir(candidate):
                return candidate
        raise files.DataError(
            f"{os.path.join(data_dir, 'data', seq)}: directory not found; expected the "
            f"Dexter+Object sequence {seq} (color/ and annotations/)"
        )

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"dexter_object: index {index} out of range [0, {len(self)})")
        tips = list(kp.CANONICAL_TIPS)
        xyz = np.zeros((kp.NUM_KEYPOINTS, 3))
        xyz[tips] = self.tips_3d[index]
        valid = np.zeros(kp.NUM_KEYPOINTS, bool)
        valid[tips] = self.tips_valid[index]
        uv = np.zeros((kp.NUM_KEYPOINTS, 2))
        uv[valid] = files.project(xyz[valid], COLOUR_K)
        seq, frame = self.frames[index]
        sample = schema.make_sample(
            id=f"dexter_object/{seq}/{frame:05d}",
            side="left",
            image=files.read_image(self.images[index]),
            keypoints_2d=uv,
            keypoints_3d=xyz,
            keypoint_valid=valid,
            K=COLOUR_K,
        )
        return schema.to_right_hand(sample)


def load(
    data_dir: str, split: str = "test", *, sequences: Sequence[str] | None = None
) -> DexterObjectSamples:
    """Load Dexter+Object (test only).

    Args:
      data_dir: the dataset root (holding ``data/<Seq>/``) or the folder of sequences.
      split: ``test``.
      sequences: override the sequence names.

    Returns:
      A sequence of right-hand samples with fingertips only.
    """
    if split != "test":
        raise ValueError(f"dexter_object: {split=}; Dexter+Object has only a 'test' split")
    return DexterObjectSamples(data_dir, SEQUENCES if sequences is None else sequences)
