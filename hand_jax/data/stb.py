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
B1 test (3,000); ``val`` (B6Random, 1,500) and ``train_fit`` (the other 13,500) for training
that validates without the test split. STB shows left hands: every sample is mirrored to a
right hand.
"""

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence

import numpy as np
from scipy.spatial.transform import Rotation

from hand_jax import keypoints as kp
from hand_jax.data import files, schema

SK_COLOR_K = np.array([[607.92271, 0.0, 314.78337], [0.0, 607.88192, 236.42484], [0.0, 0.0, 1.0]])
SK_ROT_VEC = np.array([0.00531, -0.01196, 0.00301])
SK_TRANS_MM = np.array([-24.0381, -0.4563, -1.2326])
SPLITS = {
    "train": tuple(f"B{b}{kind}" for b in range(2, 7) for kind in ("Counting", "Random")),
    "test": ("B1Counting", "B1Random"),
    # STB publishes no validation split: "val" holds out one training sequence, "train_fit" is
    # the rest (training that validates without touching the test split).
    "val": ("B6Random",),
    "train_fit": tuple(
        f"B{b}{kind}"
        for b in range(2, 7)
        for kind in ("Counting", "Random")
        if (b, kind) != (6, "Random")
    ),
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


# scipy's MAT reader is compiled code that a crafted file can crash (a segmentation fault found
# by fuzzing, scipy 1.17): the file is parsed in a child process, which hands back plain floats.
_LOADMAT_CHILD = """
import json, sys
import numpy as np, scipy.io
try:
    mat = scipy.io.loadmat(sys.argv[1])
except Exception as e:
    print(json.dumps({"error": f"cannot read .mat file ({type(e).__name__}: {str(e)[:300]})"}))
    sys.exit(0)
if "handPara" not in mat:
    print(json.dumps({"keys": sorted(k for k in mat if not k.startswith("__"))[:20]}))
    sys.exit(0)
try:
    value = np.asarray(mat["handPara"], np.float64)
except (ValueError, TypeError, OverflowError) as e:
    print(json.dumps({"error": f"'handPara' is not an array of numbers ({e})"}))
    sys.exit(0)
np.save(sys.argv[2], value, allow_pickle=False)
print(json.dumps({"ok": True}))
"""


def _load_hand_para(path: str) -> np.ndarray:
    """``handPara`` of a .mat file as float64, parsed by scipy in a child process."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "handPara.npy")
        try:
            run = subprocess.run([sys.executable, "-c", _LOADMAT_CHILD, path, out],
                                 capture_output=True, text=True, timeout=600)  # fmt: skip
        except subprocess.TimeoutExpired as e:
            raise files.DataError(f"{path}: reading the .mat file did not finish") from e
        lines = run.stdout.strip().splitlines()
        if run.returncode != 0 or not lines:
            raise files.DataError(
                f"{path}: cannot read .mat file: the reader died (exit status "
                f"{run.returncode}); the file is malformed"
            )
        status = json.loads(lines[-1])
        if "error" in status:
            raise files.DataError(f"{path}: {status['error']}")
        if "keys" in status:
            raise files.DataError(f"{path}: expected key 'handPara', found {status['keys']}")
        return np.load(out, allow_pickle=False)


def read_labels(path: str) -> np.ndarray:
    """Read an STB ``*_SK.mat`` label file.

    Args:
      path: the .mat file.

    Returns:
      [N, 21, 3] millimetres, SK depth frame, STB order.

    Raises:
      DataError: the file is missing, unreadable (scipy's reader runs in a child process, so a
        crafted file that crashes it is an error here too), lacks ``handPara`` or has the wrong
        shape.
    """
    files.require_file(path, "an STB label file with key 'handPara'")
    para = files.as_array(_load_hand_para(path), path, (3, 21, None), "'handPara' [3, 21, N] in mm")
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
