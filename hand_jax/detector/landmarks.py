"""The landmark network on rotated hand crops: 21 keypoints in the photograph, world landmarks.

A region of interest (ROI) is a rotated square in photograph pixels: centre (x, y), side, and
rotation theta in radians (positive turns the crop's up direction clockwise on screen, the
image's y axis pointing down; MediaPipe's ``NormalizedRect.rotation``). Crop point (x, y) in
[0, 224]^2 maps to ``centre + R(theta) @ ((x, y) / 224 - 0.5) * side`` (``roi_affine``).

Outputs per crop (MediaPipe's hand landmark model, ``hand_landmark_cpu.pbtxt``):
  keypoints: [21, 3] photograph pixels (x, y) and relative depth z in photograph pixels
    (the network's z / 224 / 0.4 x side: MediaPipe's ``normalize_z: 0.4``), smaller is nearer.
  world: [21, 3] metres, origin near the hand's centre, rotated back into the photograph's
    axes (x right, y down, z away from the camera).
  presence: [] probability that the crop holds a hand (MediaPipe keeps hands above 0.5).
  right: [] the model's handedness output in [0, 1]; see ``is_left``.

Keypoint order is MediaPipe's (wrist, thumb CMC/MCP/IP/tip, then index, middle, ring, pinky
MCP/PIP/DIP/tip), which is the project's canonical 21-keypoint order.
"""

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from hand_jax.detector import rois
from hand_jax.detector.crops import warp_affine
from hand_jax.detector.graph import Graph, run_graph_chunked

__all__ = ["CROP_SIZE", "HandLandmarks", "is_left", "roi_affine", "crop_rois", "run_landmarks"]

CROP_SIZE = 224
NORMALIZE_Z = 0.4
# HANDEDNESS: MediaPipe documents its handedness label as meant for mirrored (selfie)
# pictures. Measured here: the score is above 0.5 for right hands as they appear in the
# picture (renders of the embedded right hand, whose chirality the tests check from its
# geometry; their mirror images score below 0.5), so ``is_left`` reads it that way.


class HandLandmarks(NamedTuple):
    """The landmark model's outputs for a batch of ROIs (leading [B])."""

    keypoints: np.ndarray  # [B, 21, 3] photograph pixels (x, y, relative z)
    world: np.ndarray  # [B, 21, 3] metres, the photograph's axes
    presence: np.ndarray  # [B]
    right: np.ndarray  # [B] the raw handedness score


def roi_affine(roi, *, size: int = CROP_SIZE) -> np.ndarray:
    """The [2, 3] affine from crop pixels to photograph pixels of ``roi = (x, y, side, theta)``."""
    x, y, side, theta = (np.float64(v) for v in roi)
    return np.asarray(rois.roi_affine(rois.Roi(np.array([x, y]), side, theta), size)[0])


def crop_rois(image, rois, *, size: int = CROP_SIZE) -> np.ndarray:
    """[B, size, size, 3] float32 crops in [0, 1] of ``rois`` [B, 4] (edges replicated)."""
    return np.stack([warp_affine(image, roi_affine(r, size=size), size=size,
                                 border="replicate") for r in np.asarray(rois)])  # fmt: skip


def network_outputs(graph: Graph, weights: dict, crops, *, micro_batch: int | None = None):
    """Run the landmark network: crop-pixel keypoints [B, 21, 3], world [B, 21, 3], scores.

    ``micro_batch``: images per step (``graph.run_graph_chunked``; None: all at once).
    """
    out = run_graph_chunked(graph, weights, crops, micro_batch=micro_batch)
    batch = crops.shape[0]
    return (
        out["Identity"].reshape(batch, 21, 3), out["Identity_3"].reshape(batch, 21, 3),
        out["Identity_1"].reshape(batch), out["Identity_2"].reshape(batch),
    )  # fmt: skip


def to_photo(keypoints_crop, world, rois, *, size: int = CROP_SIZE):
    """Map crop outputs into the photograph (jnp; one or many ROIs with leading [B]).

    Args:
      keypoints_crop: [..., 21, 3] crop pixels and the network's z.
      world: [..., 21, 3] metres in the crop's rotated axes.
      rois: [..., 4] (x, y, side, theta).

    Returns:
      keypoints [..., 21, 3] photograph pixels (z scaled as documented), world [..., 21, 3].
    """
    cx, cy, side, theta = (rois[..., i, None] for i in range(4))
    c, s = jnp.cos(theta), jnp.sin(theta)
    u = keypoints_crop[..., 0] / size - 0.5
    v = keypoints_crop[..., 1] / size - 0.5
    x = cx + (c * u - s * v) * side
    y = cy + (s * u + c * v) * side
    z = keypoints_crop[..., 2] / size / NORMALIZE_Z * side
    wx = c * world[..., 0] - s * world[..., 1]
    wy = s * world[..., 0] + c * world[..., 1]
    return jnp.stack([x, y, z], -1), jnp.stack([wx, wy, world[..., 2]], -1)


def run_landmarks(apply_fn, image, rois) -> HandLandmarks:
    """Crop ``rois`` [B, 4] of ``image`` and read them with the compiled ``apply_fn``.

    ``apply_fn(crops [B, 224, 224, 3]) -> (keypoints, world, presence, right)`` in crop frames,
    e.g. ``jax.jit(functools.partial(network_outputs, graph))`` bound to its weights.
    """
    rois = np.asarray(rois, np.float32).reshape(-1, 4)
    kp, world, presence, right = apply_fn(jnp.asarray(crop_rois(image, rois)))
    kp, world = to_photo(kp, world, jnp.asarray(rois))
    return HandLandmarks(*(np.asarray(a) for a in (kp, world, presence, right)))


def is_left(right_score) -> np.ndarray:
    """Whether each hand is a left hand in the photograph as taken (see ``HANDEDNESS``)."""
    return np.asarray(right_score) <= 0.5
