"""Stereo Hand Pose Tracking Benchmark (STB, Zhang et al. 2017), SK colour camera, native files.

Layout (``data_dir``)::

    labels/B{1..6}{Counting,Random}_SK.mat     key "handPara": [3, 21, N] millimetres
    B{1..6}{Counting,Random}/SK_color_{i}.png  640x480 RGB, i = 0..N-1
    (or images/B.../SK_color_{i}.png)

``handPara`` holds 21 points per frame in the SK depth sensor's frame, in the order palm
centre, then pinky, ring, middle, index, thumb, each MCP..tip. They are moved to the SK
colour camera's frame with the calibration used by the standard STB preprocessing:
``X_colour = (X_depth - T) @ R`` with ``R = rodrigues(SK_ROT_VEC)``, ``T = SK_TRANS_MM``, then
projected with the SK colour intrinsics to give the 2D keypoints.

Options: ``palm_to_wrist`` (default True) replaces the palm centre by the wrist estimate
``wrist = ringMCP + 2 (palm - ringMCP)``, so that keypoint 0 means the wrist as in every other
source (False keeps STB's palm centre as keypoint 0). Split: B2-B6 train (15,000 frames),
B1 test (3,000). STB shows left hands: every sample is mirrored to a right hand.
"""

import os
from collections.abc import Sequence

import numpy as np
import scipy.io
from scipy.spatial.transform import Rotation

from hand_jax import keypoints as kp
from hand_jax.data import files, schema

SK_COLOR_K = np.array([[607.92271, 0.0, 314.78337], [0.0, 607.88192, 236.42484], [0.0, 0.0, 1.0]])
SK_ROT_VEC = np.array([0.00531, -0.01196, 0.00301])
SK_TRANS_MM = np.array([-24.0381, -0.4563, -1.2326])
SPLITS = {
    "train": tuple(f"B{b}{kind}" for b in range(2, 7) for kind in ("Counting", "Random")),
    "test": ("B1Counting", "B1Random"),
}
RING_MCP = kp.CANONICAL_MCP["ring"]


def depth_to_colour(xyz_mm: np.ndarray) -> np.ndarray:
    """Move [..., 3] SK depth-frame points (mm) to the SK colour camera frame (metres)."""
    R = Rotation.from_rotvec(SK_ROT_VEC).as_matrix()
    return ((np.asarray(xyz_mm, np.float64) - SK_TRANS_MM) @ R) / 1000.0


def wrist_from_palm(keypoints: np.ndarray) -> np.ndarray:
    """Replace keypoint 0 (palm centre) by ``ringMCP + 2 (palm - ringMCP)``; canonical order."""
    out = np.array(keypoints, copy=True)
    out[..., 0, :] = keypoints[..., RING_MCP, :] + 2.0 * (
        keypoints[..., 0, :] - keypoints[..., RING_MCP, :]
    )
    return out


def read_labels(path: str) -> np.ndarray:
    """Read an STB ``*_SK.mat`` label file.

    Args:
      path: the .mat file.

    Returns:
      [N, 21, 3] millimetres, SK depth frame, STB order.

    Raises:
      DataError: the file is missing, unreadable, lacks ``handPara`` or has the wrong shape.
    """
    files.require_file(path, "an STB label file with key 'handPara'")
    try:
        mat = scipy.io.loadmat(path)
    except Exception as e:  # scipy raises ValueError, MatReadError, TypeError...
        raise files.DataError(f"{path}: cannot read .mat file ({type(e).__name__}: {e})") from e
    if "handPara" not in mat:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise files.DataError(f"{path}: expected key 'handPara', found {keys}")
    para = files.as_array(mat["handPara"], path, (3, 21, None), "'handPara' [3, 21, N] in mm")
    return np.transpose(para, (2, 1, 0))


class STBSamples(Sequence):
    """STB sequences as a lazy sequence of right-hand samples."""

    def __init__(self, data_dir: str, sequences: Sequence[str], *, palm_to_wrist: bool = True):
        self.data_dir = data_dir
        self.sequences = tuple(sequences)
        self.palm_to_wrist = palm_to_wrist
        labels, self.image_dirs = [], []
        for seq in self.sequences:
            xyz = read_labels(os.path.join(data_dir, "labels", f"{seq}_SK.mat"))
            image_dir = self._image_dir(seq)
            files.check_count(
                found=files.count_files(image_dir, suffixes=(".png",), prefix="SK_color_"),
                expected=xyz.shape[0],
                path=image_dir,
                what=f"SK_color_*.png images for the frames of labels/{seq}_SK.mat",
            )
            labels.append(xyz)
            self.image_dirs.append(image_dir)
        self.counts = np.array([x.shape[0] for x in labels])
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)])
        xyz = depth_to_colour(np.concatenate(labels))[:, kp.STB_TO_CANONICAL]
        self.xyz = wrist_from_palm(xyz) if palm_to_wrist else xyz

    def _image_dir(self, seq: str) -> str:
        for candidate in (
            os.path.join(self.data_dir, seq),
            os.path.join(self.data_dir, "images", seq),
        ):
            if os.path.isdir(candidate):
                return candidate
        raise files.DataError(
            f"{os.path.join(self.data_dir, seq)}: directory not found (nor under images/); "
            f"expected the SK_color_*.png frames of {seq}"
        )

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"stb: index {index} out of range [0, {len(self)})")
        s = int(np.searchsorted(self.offsets, index, side="right") - 1)
        frame = index - int(self.offsets[s])
        path = os.path.join(self.image_dirs[s], f"SK_color_{frame}.png")
        xyz = self.xyz[index]
        sample = schema.make_sample(
            id=f"stb/{self.sequences[s]}/{frame}",
            side="left",
            image=files.read_image(path),
            keypoints_2d=files.project(xyz, SK_COLOR_K),
            keypoints_3d=xyz,
            K=SK_COLOR_K,
        )
        return schema.to_right_hand(sample)


def load(
    data_dir: str,
    split: str,
    *,
    palm_to_wrist: bool = True,
    sequences: Sequence[str] | None = None,
) -> STBSamples:
    """Load an STB split (SK colour camera).

    Args:
      data_dir: the STB root (with ``labels/`` and one folder per sequence).
      split: ``train`` (B2-B6) or ``test`` (B1).
      palm_to_wrist: replace the palm centre by the wrist estimate (see the module doc).
      sequences: override the split's sequence names, e.g. ``("B1Counting",)``.

    Returns:
      A sequence of right-hand samples (``original_side`` is ``left``), no masks.
    """
    if sequences is None:
        if split not in SPLITS:
            raise ValueError(f"stb: unknown {split=}; expected one of {list(SPLITS)}")
        sequences = SPLITS[split]
    return STBSamples(data_dir, sequences, palm_to_wrist=palm_to_wrist)
