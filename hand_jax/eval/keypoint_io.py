"""Keypoint sets for evaluation: reading predictions and ground truth, matching, the protocol.

A ``KeypointSet`` holds one split's keypoints (predictions or ground truth, host numpy). They
come from an npz (``load_keypoint_npz``; layout in ``hand_jax.eval.evaluate``) or a dataset split
(``load_split_ground_truth``, un-mirrored to the original camera frame), are brought to the
dataset's protocol keypoints (``to_protocol``, ``hand_jax.eval.protocol``), matched by id
(``match_ids``) and checked for non-finite values where they are scored (``check_finite``).
"""

import logging
from pathlib import Path
from typing import NamedTuple

import numpy as np
from tqdm import tqdm

from hand_jax import data as datasets
from hand_jax import keypoints as kp
from hand_jax import safe_npz
from hand_jax.eval import protocol

# A wrist lies ~90 mm from the middle-finger MCP, STB's palm centre about half as far: a set
# said (or assumed) to be wrist-rooted whose keypoint 0 is this close is probably palm-rooted.
PALM_LIKE_MM = 65.0


class KeypointSet(NamedTuple):
    """Keypoints of a split (predictions or ground truth), host numpy."""

    ids: np.ndarray  # [N] str
    keypoints_3d: np.ndarray  # [N, K, 3] metres
    keypoint_valid: np.ndarray  # [N, K] bool
    verts: np.ndarray | None = None  # [N, V, 3] metres
    keypoints_2d: np.ndarray | None = None  # [N, K, 2] pixels
    root_convention: str = "wrist"  # what keypoint 0 is: "wrist" or "palm" (see ``protocol``)


def _numbers(data: dict, key: str, path: Path) -> np.ndarray:
    """``data[key]`` as float64, refusing arrays that do not hold real numbers."""
    if data[key].dtype.kind not in "biuf":
        raise ValueError(f"{path}: {key}: expected numbers, got dtype {data[key].dtype}")
    return np.asarray(data[key], np.float64)


def _ids_as_str(ids: np.ndarray, path: Path) -> np.ndarray:
    if ids.dtype.kind not in "iuUS":
        raise ValueError(f"{path}: ids: expected str or int ids, got dtype {ids.dtype}")
    try:
        return ids.astype(str)
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: ids: bytes ids must be ASCII ({e})") from e


def check_finite(pred: KeypointSet, valid: np.ndarray, source) -> None:
    """Raise ``ValueError`` naming ``source`` and the ids of predictions that are not finite.

    Args:
      pred: predictions in the ground truth's sample order.
      valid: [N, K] the ground truth's labelled keypoints: only these are scored (unlabelled
        entries may hold anything, NaN included); vertices are all scored.
      source: the predictions file or checkpoint, for the message.
    """
    checks = [("keypoints_3d", valid), ("keypoints_2d", valid), ("verts", None)]
    for key, where in checks:
        values = getattr(pred, key)
        if values is None:
            continue
        finite = np.all(np.isfinite(values), axis=-1)
        bad = ~np.all(finite if where is None else finite | ~where, axis=1)
        if np.any(bad):
            raise ValueError(
                f"{source}: {key} of {int(bad.sum())} of {len(bad)} predictions are not finite "
                f"(NaN or inf) where they are scored; ids {pred.ids[bad][:10].tolist()}"
                f"{' ...' if bad.sum() > 10 else ''}"
            )


def load_keypoint_npz(path: str | Path, *, what: str) -> KeypointSet:
    """Read a predictions or ground-truth npz (layout in the module docstring).

    Args:
      path: the npz file.
      what: ``"predictions"`` or ``"ground truth"``, for error messages.

    Returns:
      A ``KeypointSet`` (``keypoint_valid`` all True when the file has none, ``root_convention``
      "wrist" when the file has none).

    Raises:
      FileNotFoundError: no such file. ValueError: naming the file (and key) for an unreadable
      or malformed file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file {path} does not exist")
    data = safe_npz.read_npz(path, what=what)
    expected = "ids [N] and keypoints_3d [N, K, 3] (metres)"
    for key in ("ids", "keypoints_3d"):
        if key not in data:
            raise ValueError(f"{path}: missing key {key!r}; expected {expected}; has {list(data)}")
    kp3, ids = _numbers(data, "keypoints_3d", path), data["ids"]
    if kp3.ndim != 3 or kp3.shape[-1] != 3 or ids.shape != kp3.shape[:1]:
        raise ValueError(f"{path}: expected {expected}, got {ids.shape} and {kp3.shape}")
    if kp3.shape[0] == 0 or kp3.shape[1] == 0:
        raise ValueError(f"{path}: no samples or no keypoints: keypoints_3d {kp3.shape}")
    valid = _numbers(data, "keypoint_valid", path) if "keypoint_valid" in data else None
    valid = np.ones(kp3.shape[:2], bool) if valid is None else valid != 0
    if valid.shape != kp3.shape[:2]:
        raise ValueError(f"{path}: keypoint_valid: expected {kp3.shape[:2]}, got {valid.shape}")
    optional = {}
    for key, width in (("verts", 3), ("keypoints_2d", 2)):
        if key in data:
            arr = _numbers(data, key, path)
            if arr.ndim != 3 or arr.shape[0] != len(ids) or arr.shape[-1] != width:
                raise ValueError(
                    f"{path}: {key}: expected [N={len(ids)}, *, {width}], got {arr.shape}"
                )
            optional[key] = arr
    if "root_convention" in data:
        optional["root_convention"] = protocol.check_root_convention(data["root_convention"], path)
    return KeypointSet(_ids_as_str(ids, path), kp3, valid, **optional)


def load_split_ground_truth(name: str, data_dir: str | Path, split: str) -> KeypointSet:
    """Read ground truth from ``hand_jax.data.load_split``.

    Args:
      name: dataset name (synthetic | rhd | stb | dexter_object | freihand).
      data_dir: the dataset's root directory.
      split: split name passed to the loader.

    Returns:
      A ``KeypointSet`` with ``keypoints_2d`` from the samples, loaded with the protocol's
      options (STB: the labelled palm centre as keypoint 0) and un-mirrored (original camera
      frame and pixels).
    """
    samples = datasets.load_split(name, data_dir, split, **protocol.ground_truth_options(name))
    fields = {"id": [], "keypoints_3d": [], "keypoint_valid": [], "keypoints_2d": []}
    for i in tqdm(range(len(samples)), desc=f"reading {name}/{split}", unit="sample"):
        # Read one at a time: only the labels are kept, not the images.
        sample = protocol.unmirror(samples[i])
        for key, values in fields.items():
            values.append(sample[key])
    if not fields["id"]:
        raise ValueError(f"--data_dir={data_dir}: split {split!r} of {name!r} has no samples")
    kp3, kp2 = (np.asarray(fields[k], np.float64) for k in ("keypoints_3d", "keypoints_2d"))
    valid = np.asarray(fields["keypoint_valid"], bool)
    ids = np.asarray(fields["id"]).astype(str)
    root = protocol.protocol_for(name).root  # what the protocol's loader options give
    return KeypointSet(ids, kp3, valid, keypoints_2d=kp2, root_convention=root)


def to_protocol(ks: KeypointSet, dataset: str, source) -> KeypointSet:
    """Convert a keypoint set to ``dataset``'s protocol (keypoint 0, scored keypoints).

    Args:
      ks: predictions or ground truth, in its own ``root_convention``.
      dataset: dataset name (``protocol.protocol_for``).
      source: the file or directory it came from, for error messages.

    Returns:
      The set in the protocol's root convention, ``keypoint_valid`` restricted to the
      keypoints the protocol scores.
    """
    root = ks.root_convention
    if root == "wrist" and protocol.protocol_for(dataset).root == "palm":
        _warn_if_palm_like(ks, source)

    def convert(x):
        if x is None:
            return None
        return protocol.to_protocol_keypoints(dataset, x, root_convention=root)

    try:
        kp3, kp2 = convert(ks.keypoints_3d), convert(ks.keypoints_2d)
        valid = protocol.to_protocol_valid(dataset, ks.keypoint_valid, root_convention=root)
    except ValueError as e:
        raise ValueError(f"{source}: {e}") from e
    valid = protocol.scored_valid(dataset, valid)
    return ks._replace(keypoints_3d=kp3, keypoints_2d=kp2, keypoint_valid=valid,
                       root_convention=protocol.protocol_for(dataset).root)  # fmt: skip


def _warn_if_palm_like(ks: KeypointSet, source) -> float:
    """Warn when keypoint 0 of a wrist-rooted set sits where a palm centre would; return mm."""
    both = ks.keypoint_valid[:, 0] & ks.keypoint_valid[:, kp.CANONICAL_MCP["middle"]]
    if not np.any(both):
        return float("nan")
    d = ks.keypoints_3d[both, 0] - ks.keypoints_3d[both, kp.CANONICAL_MCP["middle"]]
    median = float(np.median(np.linalg.norm(d, axis=-1)) * 1000.0)
    if median < PALM_LIKE_MM:
        logging.warning(
            "%s: keypoint 0 lies a median %.0f mm from the middle-finger MCP, closer than a wrist "
            "(~90 mm): if it is STB's palm centre, store root_convention='palm' in the file, or "
            "it is converted to the palm a second time", source, median,
        )  # fmt: skip
    return median


def match_ids(pred_ids: np.ndarray, gt_ids: np.ndarray) -> np.ndarray:
    """Return ``order`` with ``pred_ids[order] == gt_ids``; clear errors on any mismatch."""
    for ids, what in ((pred_ids, "predictions"), (gt_ids, "ground truth")):
        uniq, counts = np.unique(ids, return_counts=True)
        if np.any(counts > 1):
            raise ValueError(f"{what}: duplicate ids, e.g. {uniq[counts > 1][:5].tolist()}")
    position = {i: n for n, i in enumerate(pred_ids.tolist())}
    missing = [i for i in gt_ids.tolist() if i not in position]
    extra = sorted(set(position) - set(gt_ids.tolist()))
    if missing or extra:
        raise ValueError(
            f"ids: {len(missing)} ground-truth ids have no prediction (e.g. {missing[:5]}), "
            f"{len(extra)} predicted ids are not in the ground truth (e.g. {extra[:5]})"
        )
    return np.array([position[i] for i in gt_ids.tolist()], dtype=np.int64)
