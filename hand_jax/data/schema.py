"""The sample record every data source returns, its validation, and left-to-right mirroring.

A sample is a plain ``dict`` (host-side numpy, one example, uncropped unless said otherwise):

=====================  ==============  ===========================================================
key                    dtype, shape    meaning
=====================  ==============  ===========================================================
``id``                 str             unique within the split, e.g. ``"rhd/test/00042"``
``image``              uint8 [H,W,3]   RGB
``mask``               uint8 [H,W]     hand foreground, 1 = hand, 0 = not (zeros if unknown)
``mask_valid``         bool            whether ``mask`` is a real label
``keypoints_2d``       float32 [21,2]  (u, v) pixels; pixel i's centre at i + 0.5
``keypoints_3d``       float32 [21,3]  metres, camera frame (OpenCV: +x right, +y down, +z fwd)
``keypoint_valid``     bool [21]       the keypoint is labelled (False: its values are meaningless)
``K``                  float32 [3,3]   intrinsics: ``uv = (K @ xyz)[:2] / z``
``side``               str             ``"right"``: every sample is a right hand after loading
``original_side``      str             ``"left"`` if the loader mirrored it, else ``"right"``
=====================  ==============  ===========================================================

Optional keys (present only where the source has them):

=====================  ==============  ===========================================================
``mask_full``          uint8 [H,W]     the whole hand, occluded parts included (synthetic data)
``keypoint_visible``   bool [21]       the keypoint is visible in the image (RHD, synthetic)
``mano_pose``          float32 [48]    MANO axis-angle, global rotation first, radians
``mano_betas``         float32 [S]     MANO shape coefficients
``mano_trans``         float32 [3]     MANO translation, metres
``scale``              float32 []      the source's metric reference length, metres (FreiHAND)
``crop_matrix``        float32 [3,3]   after ``crop.crop_sample``: source pixels -> crop pixels
``camera_rotation``    float32 [3,3]   after ``crop.crop_sample``: source -> crop camera frame
=====================  ==============  ===========================================================

Keypoints are in the canonical OpenPose/FreiHAND order of ``hand_jax.keypoints``.
"""

from collections.abc import Mapping
from typing import Any

import numpy as np

from hand_jax import keypoints as kp

NUM_KEYPOINTS = kp.NUM_KEYPOINTS
SIDES = ("right", "left")

# key -> (dtype, shape); "H", "W", "S" are free dimensions (H and W must agree with the image).
REQUIRED_FIELDS: Mapping[str, tuple[Any, tuple]] = {
    "image": (np.uint8, ("H", "W", 3)),
    "mask": (np.uint8, ("H", "W")),
    "mask_valid": (np.bool_, ()),
    "keypoints_2d": (np.float32, (NUM_KEYPOINTS, 2)),
    "keypoints_3d": (np.float32, (NUM_KEYPOINTS, 3)),
    "keypoint_valid": (np.bool_, (NUM_KEYPOINTS,)),
    "K": (np.float32, (3, 3)),
}
OPTIONAL_FIELDS: Mapping[str, tuple[Any, tuple]] = {
    "mask_full": (np.uint8, ("H", "W")),
    "keypoint_visible": (np.bool_, (NUM_KEYPOINTS,)),
    "mano_pose": (np.float32, (48,)),
    "mano_betas": (np.float32, ("S",)),
    "mano_trans": (np.float32, (3,)),
    "scale": (np.float32, ()),
    "crop_matrix": (np.float32, (3, 3)),
    "camera_rotation": (np.float32, (3, 3)),
}
STRING_FIELDS = ("id", "side", "original_side")


class SampleError(ValueError):
    """A sample record does not follow the schema."""


def make_sample(*, id: str, side: str = "right", **fields) -> dict:
    """Build a sample: cast every array to its schema dtype, fill defaults, and validate.

    Args:
      id: unique sample id within the split.
      side: the hand's side as stored in the source (``"right"`` or ``"left"``); the record is
        not mirrored here (see ``mirror_sample``), so ``side`` and ``original_side`` both get it.
      **fields: the schema's array fields. ``mask`` may be omitted (zeros, ``mask_valid``
        False); ``keypoint_valid`` may be omitted (all True).

    Returns:
      A validated sample dict.
    """
    image = np.asarray(fields["image"]) if "image" in fields else None
    if image is not None and "mask" not in fields and image.ndim == 3:
        fields["mask"] = np.zeros(image.shape[:2], np.uint8)
        fields.setdefault("mask_valid", False)
    fields.setdefault("mask_valid", True)
    fields.setdefault("keypoint_valid", np.ones(NUM_KEYPOINTS, bool))
    sample = {"id": id, "side": side, "original_side": side}
    specs = {**REQUIRED_FIELDS, **OPTIONAL_FIELDS}
    for key, value in fields.items():
        if key not in specs:
            raise SampleError(f"{id}: unknown sample field {key!r}; expected one of {list(specs)}")
        sample[key] = np.asarray(value, dtype=specs[key][0])
    validate_sample(sample)
    return sample


def _check_array(sample: dict, key: str, dtype, shape: tuple, dims: dict) -> None:
    value = sample[key]
    name = f"{sample.get('id', '<sample>')}: field {key!r}"
    if not isinstance(value, np.ndarray) or value.dtype != np.dtype(dtype):
        got = getattr(value, "dtype", type(value).__name__)
        raise SampleError(f"{name}: expected a numpy array of dtype {np.dtype(dtype)}, got {got}")
    if value.ndim != len(shape):
        raise SampleError(f"{name}: expected shape {shape}, got {value.shape}")
    for axis, (want, got) in enumerate(zip(shape, value.shape, strict=True)):
        if isinstance(want, str):
            want = dims.setdefault(want, got)
        if want != got:
            raise SampleError(
                f"{name}: expected shape {shape} (with {dims}), got {value.shape} (axis {axis})"
            )


def validate_sample(sample: Mapping[str, Any]) -> None:
    """Check a sample against the schema.

    Args:
      sample: a sample dict.

    Raises:
      SampleError: a field is missing, has the wrong dtype or shape, or holds non-finite
        values where the keypoint is marked valid; the message names the sample and the field.
    """
    name = sample.get("id", "<sample without id>")
    for key in (*STRING_FIELDS, *REQUIRED_FIELDS):
        if key not in sample:
            raise SampleError(f"{name}: missing required field {key!r}")
    for key in STRING_FIELDS:
        if not isinstance(sample[key], str):
            raise SampleError(f"{name}: field {key!r} must be a str, got {type(sample[key])}")
    for key in ("side", "original_side"):
        if sample[key] not in SIDES:
            raise SampleError(f"{name}: field {key!r} must be one of {SIDES}, got {sample[key]!r}")
    dims: dict[str, int] = {}
    for key, (dtype, shape) in REQUIRED_FIELDS.items():
        _check_array(sample, key, dtype, shape, dims)
    for key, (dtype, shape) in OPTIONAL_FIELDS.items():
        if key in sample:
            _check_array(sample, key, dtype, shape, dims)
    valid = sample["keypoint_valid"]
    for key in ("keypoints_2d", "keypoints_3d"):
        if not np.all(np.isfinite(sample[key][valid])):
            raise SampleError(f"{name}: field {key!r} has non-finite values at valid keypoints")
    if not np.all(np.isfinite(sample["K"])) or sample["K"][2, 2] == 0:
        raise SampleError(f"{name}: field 'K' must be finite with K[2, 2] != 0, got {sample['K']}")


def mirror_intrinsics(K: np.ndarray, width: int) -> np.ndarray:
    """Return the intrinsics of a horizontally flipped image of mirrored (x -> -x) points.

    With ``u' = W - u`` (pixel-edge convention) and ``X' = -X``: ``K' = F K diag(-1, 1, 1)``,
    ``F = [[-1, 0, W], [0, 1, 0], [0, 0, 1]]``; i.e. ``cx' = W - cx`` and the skew changes sign.

    Args:
      K: [3, 3] intrinsics.
      width: image width W in pixels.

    Returns:
      [3, 3] mirrored intrinsics, same dtype.
    """
    flip_image = np.array([[-1.0, 0.0, width], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    flip_points = np.diag([-1.0, 1.0, 1.0])
    return (flip_image @ np.asarray(K, np.float64) @ flip_points).astype(K.dtype)


def mirror_sample(sample: Mapping[str, Any]) -> dict:
    """Mirror a sample left-right: image, masks, 2D/3D keypoints and K, consistently.

    The image is flipped horizontally (column c -> W - 1 - c), so continuous pixel coordinates
    map as ``u' = W - u``; camera-frame points as ``X' = -X``; ``K`` by ``mirror_intrinsics``, so
    that projecting the mirrored 3D keypoints with the mirrored K gives the mirrored 2D ones.
    ``side`` flips; ``original_side`` is kept. MANO parameters cannot be mirrored without the
    model and are dropped (no mirrored source in this project has them); so are the crop fields.

    Args:
      sample: a valid sample dict.

    Returns:
      A new sample dict.
    """
    out = dict(sample)
    width = sample["image"].shape[1]
    out["image"] = np.ascontiguousarray(sample["image"][:, ::-1])
    for key in ("mask", "mask_full"):
        if key in sample:
            out[key] = np.ascontiguousarray(sample[key][:, ::-1])
    kp2 = sample["keypoints_2d"].copy()
    kp2[:, 0] = width - kp2[:, 0]
    kp3 = sample["keypoints_3d"].copy()
    kp3[:, 0] = -kp3[:, 0]
    out["keypoints_2d"], out["keypoints_3d"] = kp2, kp3
    out["K"] = mirror_intrinsics(sample["K"], width)
    out["side"] = "left" if sample["side"] == "right" else "right"
    for key in ("mano_pose", "mano_betas", "mano_trans", "crop_matrix", "camera_rotation"):
        out.pop(key, None)
    return out


def to_right_hand(sample: Mapping[str, Any]) -> dict:
    """Return the sample as a right hand: mirrored if it is a left hand, unchanged otherwise."""
    return mirror_sample(sample) if sample["side"] == "left" else dict(sample)
