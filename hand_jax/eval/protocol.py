"""Benchmark protocols: which keypoints are scored, at which root, in which frame.

Frames and units. Evaluation happens in each dataset's own frame: 3D keypoints in metres in the
camera frame of the dataset's original image (OpenCV axes: +x right, +y down, +z forward), 2D
keypoints in pixels of that image (pixel i's centre at i + 0.5), canonical keypoint order
(``hand_jax.keypoints``). Loaders return every hand as a right hand: a left hand is mirrored by
``schema.mirror_sample`` (``u' = W - u`` with W the image width, ``X' = -X``,
``K' = F K diag(-1, 1, 1)``) and keeps ``original_side="left"``. The network sees protocol crops
of the mirrored images, so its outputs go back in three steps (``to_source_frame``): crop pixels
to the loaded image's pixels by the inverse of ``crop_matrix`` and crop camera to the loaded
camera by the inverse of ``camera_rotation``; then, for a mirrored sample, ``unmirror``
(``u = W - u'``, ``X = -X'``; mirroring is an involution, so the same formulas). Ground truth
read from a loader is un-mirrored the same way (``unmirror``). Protocol crops (``load_crops``)
carry the loaded image's width under ``SOURCE_WIDTH``, which the crop itself forgets.

Root convention: a keypoint file (predictions or ground-truth npz) may hold a scalar string
``root_convention``:

- ``"wrist"`` (the default when the key is absent): keypoint 0 is the wrist, the canonical
  order's meaning; our estimator writes this.
- ``"palm"``: keypoint 0 is STB's palm centre (e.g. another method's STB predictions, or STB
  labels exported with ``palm_to_wrist=False``).

Each dataset's protocol scores keypoint 0 as ``Protocol.root``. ``to_protocol_keypoints``
converts a set to it: wrist -> palm by ``palm = (wrist + ringMCP) / 2``, the exact inverse of
the STB loader's ``wrist = ringMCP + 2 (palm - ringMCP)`` (``stb.wrist_from_palm``); in 2D the
same midpoint of the projections, which differs from the projected palm centre by about
``f dx dz / z^2`` (~1 px for a hand at STB's distances). A set already in the protocol's
convention is left as is, so nothing is converted twice; evaluation records the convention of
what it scored (``per_sample.npz`` key ``root_convention``). Palm -> wrist is refused: the
wrist estimate is not a label. The root and root_scale alignments use keypoint 0 as the root
(the palm for STB) and the ground truth's middle-finger MCP-PIP bone (``metrics.REF_BONE``,
which keypoint 0 is not part of) as the scale, as hand3d's STB evaluation does.

========================  ===========  =====  ==========================================
dataset                   alignment    root   scored keypoints
========================  ===========  =====  ==========================================
stb                       root_scale   palm   all 21 (ground truth: palm_to_wrist=False)
rhd, synthetic, other     root_scale   wrist  all 21
dexter_object             centroid     wrist  the 5 fingertips (and only where labelled)
freihand                  procrustes   wrist  all 21
========================  ===========  =====  ==========================================
"""

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from hand_jax import data
from hand_jax import keypoints as kp
from hand_jax.data import crop, schema
from hand_jax.eval import metrics

ROOT_CONVENTIONS = ("wrist", "palm")
RING_MCP = kp.CANONICAL_MCP["ring"]
SOURCE_WIDTH = "source_width"  # key of a protocol crop: the loaded image's width W, pixels
ALL_KEYPOINTS = tuple(range(kp.NUM_KEYPOINTS))


class Protocol(NamedTuple):
    """How one benchmark is scored."""

    alignment: str  # the primary alignment (``evaluate.ALIGNMENTS``)
    root: str  # what keypoint 0 is when scored: "wrist" or "palm"
    scored: tuple[int, ...]  # canonical indices of the keypoints the protocol scores
    loader_options: tuple[tuple[str, Any], ...]  # ground truth: ``load_split`` options
    note: str  # one line for the tables' footnotes


_ZB = "ground-truth root, scale of the middle-finger MCP-PIP bone (Zimmermann & Brox)"
PROTOCOLS = {
    "stb": Protocol("root_scale", "palm", ALL_KEYPOINTS, (("palm_to_wrist", False),),
                    f"STB: 21 keypoints with STB's palm centre as root (predicted palm = "
                    f"(wrist + ring MCP) / 2), {_ZB}."),
    "rhd": Protocol("root_scale", "wrist", ALL_KEYPOINTS, (), f"RHD: 21 keypoints, {_ZB}."),
    "dexter_object": Protocol("centroid", "wrist", kp.CANONICAL_TIPS, (),
                              "Dexter+Object: the 5 fingertips only, aligned by the centroid of "
                              "the labelled tips (no root or scale label)."),
    "freihand": Protocol("procrustes", "wrist", ALL_KEYPOINTS, (),
                         "FreiHAND: 21 keypoints, Procrustes-aligned (scale, rotation, shift)."),
    "synthetic": Protocol("root_scale", "wrist", ALL_KEYPOINTS, (), f"synthetic: {_ZB}."),
}  # fmt: skip
DEFAULT_PROTOCOL = Protocol("root_scale", "wrist", ALL_KEYPOINTS, (), "")
PRIMARY_ALIGNMENT = {name: p.alignment for name, p in PROTOCOLS.items()}
_PALM_RULE = ("keypoint 0 := (wrist + ring1) / 2, the inverse of the STB loader's wrist estimate "
              "(2D: the midpoint of the projections)")  # fmt: skip


def protocol_for(dataset: str) -> Protocol:
    """Return a dataset's protocol (``DEFAULT_PROTOCOL`` for a name that is only a label)."""
    return PROTOCOLS.get(dataset, DEFAULT_PROTOCOL)


def ground_truth_options(dataset: str) -> dict:
    """Return the ``load_split`` options whose ground truth has the protocol's keypoint 0."""
    return dict(protocol_for(dataset).loader_options)


def palm_from_wrist(keypoints: np.ndarray) -> np.ndarray:
    """Replace keypoint 0 (wrist) by ``(wrist + ringMCP) / 2``, STB's palm centre.

    Args:
      keypoints: [..., 21, D] canonical order, any units (D = 3 metres or D = 2 pixels).

    Returns:
      [..., 21, D] a copy, same dtype.
    """
    out = np.array(keypoints, copy=True)
    out[..., 0, :] = (keypoints[..., 0, :] + keypoints[..., RING_MCP, :]) / 2.0
    return out


def check_root_convention(value, source) -> str:
    """Return ``value`` as a root convention, or raise ``ValueError`` naming ``source``."""
    value = np.asarray(value)
    if value.shape != () or value.dtype.kind not in "US" or str(value) not in ROOT_CONVENTIONS:
        raise ValueError(
            f"{source}: root_convention: expected a scalar string in {ROOT_CONVENTIONS}, "
            f"got {value!r}"
        )
    return str(value)


def _needs_palm(dataset: str, root_convention: str) -> bool:
    """Whether a set with ``root_convention`` needs wrist -> palm for ``dataset``'s protocol."""
    target = protocol_for(dataset).root
    if root_convention == target:
        return False
    if (root_convention, target) != ("wrist", "palm"):
        raise ValueError(
            f"root_convention={root_convention!r}: {dataset!r} is scored at the {target}; "
            "only wrist -> palm is converted (the wrist estimate is not a label)"
        )
    return True


def to_protocol_keypoints(dataset: str, keypoints, *, root_convention: str = "wrist"):
    """Convert keypoints to the dataset protocol's keypoint 0 (see the module docstring).

    Args:
      dataset: dataset name (``protocol_for``).
      keypoints: [..., 21, D] canonical order, 3D metres or 2D pixels.
      root_convention: what keypoint 0 of ``keypoints`` is, ``"wrist"`` or ``"palm"``.

    Returns:
      [..., 21, D] a converted copy (unchanged values when already in the protocol's
      convention).

    Raises:
      ValueError: a palm-rooted set for a wrist-rooted protocol.
    """
    if _needs_palm(dataset, root_convention):
        return palm_from_wrist(keypoints)
    return np.array(keypoints, copy=True)


def to_protocol_valid(dataset: str, valid, *, root_convention: str = "wrist") -> np.ndarray:
    """Return [..., 21] labels of ``to_protocol_keypoints``' output (a copy).

    A derived palm is labelled where both the wrist and the ring MCP are.
    """
    out = np.array(valid, bool, copy=True)
    if _needs_palm(dataset, root_convention):
        out[..., 0] &= out[..., RING_MCP]
    return out


def scored_valid(dataset: str, valid: np.ndarray) -> np.ndarray:
    """Return [..., 21] ``valid`` restricted to the keypoints the protocol scores."""
    mask = np.zeros(kp.NUM_KEYPOINTS, bool)
    mask[list(protocol_for(dataset).scored)] = True
    return np.asarray(valid, bool) & mask


def describe(dataset: str) -> dict:
    """Return the protocol of ``dataset`` for metrics.json (names, indices, conversions)."""
    p = protocol_for(dataset)
    a, b = metrics.REF_BONE
    root = "palm centre (STB label)" if p.root == "palm" else "wrist"
    return {
        "alignment": p.alignment,
        "root_keypoint": {"index": 0, "name": root},
        "ref_bone_names": [kp.CANONICAL_NAMES[a], kp.CANONICAL_NAMES[b]],
        "wrist_to_protocol": _PALM_RULE if p.root == "palm" else "none",
        "ground_truth_loader_options": dict(p.loader_options),
        "scored_keypoints": [kp.CANONICAL_NAMES[k] for k in p.scored],
        "frame": "camera frame and pixels of the original image (left hands un-mirrored)",
        "note": p.note,
    }


def unmirror_points(points: np.ndarray) -> np.ndarray:
    """Undo ``schema.mirror_sample`` on camera-frame points: ``X = -X'``.

    Args:
      points: [..., 3] mirrored points (keypoints or vertices), camera frame.

    Returns:
      [..., 3] a copy, same dtype.
    """
    out = np.array(points, copy=True)
    out[..., 0] = -out[..., 0]
    return out


def unmirror_pixels(points: np.ndarray, *, width: int) -> np.ndarray:
    """Undo ``schema.mirror_sample`` on pixel coordinates: ``u = W - u'``.

    Args:
      points: [..., 2] mirrored (u, v) pixels.
      width: W, the image width in pixels (or an array broadcastable to [...]).

    Returns:
      [..., 2] a copy, same dtype.
    """
    out = np.array(points, copy=True)
    out[..., 0] = width - out[..., 0]
    return out


def _mirrored(sample: Mapping[str, Any]) -> bool:
    """Whether the loader mirrored ``sample`` (its side differs from the original side)."""
    side = sample.get("side", "right")
    return side != sample.get("original_side", side)


def unmirror(sample: Mapping[str, Any]) -> dict:
    """Return a loaded sample with its labels in the original (un-mirrored) frame.

    A sample whose ``side`` differs from its ``original_side`` was mirrored by the loader:
    its keypoints, ``K`` (``schema.mirror_intrinsics`` is an involution), image and masks are
    mirrored back and ``side`` restored; any other sample (a dict without the side fields was
    never mirrored) is returned as a shallow copy.

    Args:
      sample: an uncropped sample dict (``hand_jax.data.schema``).

    Returns:
      A new sample dict.
    """
    out = dict(sample)
    if not _mirrored(sample):
        return out
    width = sample["image"].shape[1]
    out["keypoints_3d"] = unmirror_points(sample["keypoints_3d"])
    out["keypoints_2d"] = unmirror_pixels(sample["keypoints_2d"], width=width)
    out["K"] = schema.mirror_intrinsics(sample["K"], width)
    for key in ("image", "mask", "mask_full"):
        if key in sample:
            out[key] = np.ascontiguousarray(sample[key][:, ::-1])
    out["side"] = sample["original_side"]
    return out


def crop_to_source_pixels(points: np.ndarray, crop_matrix: np.ndarray) -> np.ndarray:
    """Map crop pixels back to the pixels of the image the crop was cut from.

    Args:
      points: [K, 2] crop pixels.
      crop_matrix: [3, 3] the crop's affine map, source pixels -> crop pixels.

    Returns:
      [K, 2] float64 source pixels.
    """
    return crop.apply_affine(np.linalg.inv(np.asarray(crop_matrix, np.float64)), points)


class ProtocolCrops(data.CroppedSamples):
    """``hand_jax.data.CroppedSamples`` whose crops also carry ``SOURCE_WIDTH``."""

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        out = super().__getitem__(index)
        out[SOURCE_WIDTH] = int(self.samples[index]["image"].shape[1])
        return out


def load_crops(dataset: str, data_dir, split: str, *, crop_size: int, crop_margin=None):
    """Load a split's protocol crops (``load_split``'s crops, each with ``SOURCE_WIDTH``).

    Args:
      dataset, data_dir, split: as ``hand_jax.data.load_split``.
      crop_size: crop side S, pixels.
      crop_margin: crop margin; None: the source's default.

    Returns:
      A ``ProtocolCrops`` sequence.
    """
    cropped = data.load_split(
        dataset, data_dir, split, crop_size=crop_size, crop_margin=crop_margin
    )
    if not isinstance(cropped, data.CroppedSamples):  # a custom loader that crops itself
        return cropped
    return ProtocolCrops(cropped.samples, out_size=cropped.out_size, margin=cropped.margin)


class SourceFrames(NamedTuple):
    """How each protocol crop maps back to its original image and camera (host numpy)."""

    ids: np.ndarray  # [N] str
    crop_matrix: np.ndarray  # [N, 3, 3] loaded-image pixels -> crop pixels (I: not cropped)
    camera_rotation: np.ndarray  # [N, 3, 3] loaded camera frame -> crop camera frame
    mirrored: np.ndarray  # [N] bool: the loader mirrored a left hand
    width: np.ndarray  # [N] int, W of the loaded image (0 where not mirrored and unknown)


def _source_frame(sample: Mapping[str, Any]) -> tuple:
    mirrored = _mirrored(sample)
    if mirrored and SOURCE_WIDTH not in sample:
        raise ValueError(
            f"{sample['id']}: a mirrored protocol crop needs {SOURCE_WIDTH!r} to be un-mirrored "
            "(crop it with hand_jax.eval.protocol.load_crops)"
        )
    width = int(sample.get(SOURCE_WIDTH, 0))
    eye = np.eye(3)  # a sample without crop fields was not cropped: it is its own source
    matrix, rotation = (sample.get(k, eye) for k in ("crop_matrix", "camera_rotation"))
    return str(sample["id"]), matrix, rotation, mirrored, width


def source_frames(samples: Sequence[dict]) -> SourceFrames:
    """Collect the ``SourceFrames`` of protocol crops (``load_crops``), reading each once."""
    rows = [_source_frame(s) for s in samples]
    if not rows:
        raise ValueError("source_frames: no samples")
    ids, matrices, rotations, mirrored, width = zip(*rows, strict=True)
    return SourceFrames(
        np.asarray(ids, str), np.asarray(matrices, np.float64),
        np.asarray(rotations, np.float64), np.asarray(mirrored, bool), np.asarray(width, np.int64),
    )  # fmt: skip


def to_source_frame(frames: SourceFrames, keypoints_3d, keypoints_2d=None, verts=None):
    """Map crop predictions to the original images' camera frames and pixels.

    Args:
      frames: the crops' ``SourceFrames`` ([N] samples).
      keypoints_3d: [N, K, 3] metres, crop camera frame.
      keypoints_2d: optional [N, K, 2] crop pixels.
      verts: optional [N, V, 3] metres, crop camera frame.

    Returns:
      (keypoints_3d, keypoints_2d, verts) float64 in the original camera frame and pixels
      (None where not given).
    """
    rot = frames.camera_rotation
    # Row vectors: crop = X @ R^T, so X = crop @ R.
    kp3, v3 = (None if x is None else np.einsum("nkj,nji->nki", np.asarray(x, np.float64), rot)
               for x in (keypoints_3d, verts))  # fmt: skip
    flip = frames.mirrored[:, None]
    kp3 = np.where(flip[..., None], unmirror_points(kp3), kp3)
    v3 = None if v3 is None else np.where(flip[..., None], unmirror_points(v3), v3)
    kp2 = None
    if keypoints_2d is not None:
        kp2 = np.array(keypoints_2d, np.float64)
        for n, matrix in enumerate(frames.crop_matrix):
            kp2[n] = crop_to_source_pixels(kp2[n], matrix)
        kp2 = np.where(flip[..., None], unmirror_pixels(kp2, width=frames.width[:, None]), kp2)
    return kp3, kp2, v3
