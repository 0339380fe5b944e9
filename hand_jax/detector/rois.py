"""Hand regions: the detector's letterbox, and rotated hand ROIs from palms or landmarks.

Frames as in ``hand_jax.detector.palm``: image pixels are continuous (x, y) with pixel centres
at ``i + 0.5``; a ``Roi`` is a rotated square in image pixels (``center``, ``side``,
``rotation`` in [-pi, pi)); the crop's axes in the image are ``(cos r, sin r)`` (crop +x) and
``(-sin r, cos r)`` (crop +y, down), so a positive rotation turns the crop clockwise on screen;
``r = 0``: fingers up. Affines are [2, 3] with ``dst = A[:, :2] @ src + A[:, 2]``.

The MediaPipe calculators each function follows, and their parameters, are listed in
``hand_jax.detector.palm``'s docstring (DetectionLetterboxRemoval, DetectionsToRects,
RectTransformation, HandLandmarksToRect, ImageToTensor's rotated sub-rect matrix).
"""

import math
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp

from hand_jax.detector.palm import PALM_INPUT_SIZE, box_corners

__all__ = [
    "LANDMARK_INPUT_SIZE",
    "Letterbox",
    "Roi",
    "detection_to_roi",
    "landmarks_to_roi",
    "letterbox",
    "remove_letterbox",
    "roi_affine",
    "transform_points",
]

PALM_ROI_SCALE = 2.6
PALM_ROI_SHIFT_Y = -0.5
PALM_ROTATION_KEYPOINTS = (0, 2)  # wrist centre -> middle finger MCP
LANDMARK_ROI_SCALE = 2.0
LANDMARK_ROI_SHIFT_Y = -0.1
LANDMARK_ROI_SUBSET = (0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18)
LANDMARK_INPUT_SIZE = 224
_TARGET_ANGLE = 0.5 * math.pi


class Letterbox(NamedTuple):
    """The keep-aspect resize with a centred zero border that makes the detector input."""

    scale: jax.Array  # [] detector pixels per image pixel
    pad: jax.Array  # [2] (x, y) border before the image, detector pixels
    to_image: jax.Array  # [2, 3] detector pixels -> image pixels
    to_input: jax.Array  # [2, 3] image pixels -> detector pixels


def letterbox(image_hw: Sequence[int], size: int = PALM_INPUT_SIZE) -> Letterbox:
    """Return the letterbox transform of an image of ``image_hw`` into a ``size`` square.

    MediaPipe's ImageToTensor with ``keep_aspect_ratio``: the image is scaled by
    ``size / max(H, W)`` and centred, the border is zero (``PadRoi``). Both affines use the
    continuous pixel convention (pixel centres at ``i + 0.5``): sampling the image at
    ``to_image @ (i + 0.5, j + 0.5)`` gives detector pixel (row j, column i). A 640 x 480 image:
    scale 0.3, pad (0, 24).

    Args:
      image_hw: (H, W) of the image, Python ints or a [2] array.
      size: side of the square detector input (static).

    Returns:
      ``Letterbox``.
    """
    hw = jnp.asarray(image_hw, jnp.float32)
    wh = hw[::-1]
    scale = size / jnp.max(wh)
    pad = 0.5 * (size - wh * scale)
    eye = jnp.eye(2, dtype=jnp.float32)
    to_input = jnp.concatenate([scale * eye, pad[:, None]], axis=1)
    to_image = jnp.concatenate([eye / scale, (-pad / scale)[:, None]], axis=1)
    return Letterbox(scale, pad, to_image, to_input)


def transform_points(affine, points):
    """Apply a [2, 3] affine to points [..., 2] (x, y)."""
    affine = jnp.asarray(affine)
    points = jnp.asarray(points)
    return points @ affine[:, :2].T + affine[:, 2]


def remove_letterbox(points, image_hw: Sequence[int], *, size: int = PALM_INPUT_SIZE):
    """Map detector-normalised points to image pixels (DetectionLetterboxRemoval, then x W, H).

    Args:
      points: [..., 2] (x, y) detector-normalised.
      image_hw: (H, W) of the image.
      size: side of the square detector input.

    Returns:
      [..., 2] (x, y) image pixels.
    """
    points = jnp.asarray(points)
    to_image = letterbox(image_hw, size).to_image.astype(points.dtype)
    return transform_points(to_image, points * size)


class Roi(NamedTuple):
    """A rotated square region of the image (see the module docstring for the frame)."""

    center: jax.Array  # [2] (x, y) image pixels
    side: jax.Array  # [] image pixels
    rotation: jax.Array  # [] radians in [-pi, pi)

    def to_array(self):
        """Return [..., 4] (x, y, side, rotation), the layout of ``detector.landmarks``."""
        center = jnp.asarray(self.center)
        rest = jnp.stack([jnp.asarray(self.side), jnp.asarray(self.rotation)], axis=-1)
        return jnp.concatenate([center, rest.astype(center.dtype)], axis=-1)


def _normalize_radians(angle):
    return angle - 2 * jnp.pi * jnp.floor((angle + jnp.pi) / (2 * jnp.pi))


def _rotation_to_up(start, end):
    """MediaPipe's rect rotation: the angle that turns start -> end (image pixels) upright."""
    d = end - start
    return _normalize_radians(_TARGET_ANGLE - jnp.arctan2(-d[1], d[0]))


def _transform_rect(center, width, height, rotation, *, scale: float, shift_y: float) -> Roi:
    """RectTransformationCalculator in pixels: shift in the rotated frame, square_long, scale."""
    c, s = jnp.cos(rotation), jnp.sin(rotation)
    shift = height * shift_y * jnp.stack([-s, c])  # shift_x is 0 in both hand graphs
    side = jnp.maximum(width, height) * scale
    return Roi(center + shift, side, rotation)


def detection_to_roi(
    box,
    keypoints,
    image_hw: Sequence[int],
    *,
    size: int = PALM_INPUT_SIZE,
    scale: float = PALM_ROI_SCALE,
    shift_y: float = PALM_ROI_SHIFT_Y,
    rotation_keypoints: tuple[int, int] = PALM_ROTATION_KEYPOINTS,
) -> Roi:
    """Turn one palm detection into the hand ROI in image pixels (palm_detection_detection_to_roi).

    The letterbox is removed first, then DetectionsToRects (the box's centre and size, the
    rotation that makes wrist -> middle MCP point up, in image pixels) and RectTransformation
    (centre moved by ``shift_y`` box heights along the rotated y axis, i.e. half a box height
    towards the fingers; side ``scale * max(w, h)``).

    Args:
      box: [4] (x_center, y_center, width, height), detector-normalised.
      keypoints: [K, 2] (x, y), detector-normalised.
      image_hw: (H, W) of the image.
      size: side of the square detector input.
      scale: ROI side over the box's longer side.
      shift_y: centre shift in box heights along the ROI's y axis (negative: towards the top).
      rotation_keypoints: (start, end) keypoint indices of the up direction.

    Returns:
      ``Roi`` in image pixels.
    """
    box = jnp.asarray(box)
    keypoints = jnp.asarray(keypoints, box.dtype)
    corners = remove_letterbox(box_corners(box).reshape(2, 2), image_hw, size=size)  # [2, 2]
    width, height = corners[1] - corners[0]
    center = 0.5 * (corners[0] + corners[1])
    points = remove_letterbox(keypoints, image_hw, size=size)
    start, end = rotation_keypoints
    rotation = _rotation_to_up(points[start], points[end])
    return _transform_rect(center, width, height, rotation, scale=scale, shift_y=shift_y)


def landmarks_to_roi(
    landmarks,
    *,
    scale: float = LANDMARK_ROI_SCALE,
    shift_y: float = LANDMARK_ROI_SHIFT_Y,
) -> Roi:
    """The tracking ROI from 21 hand landmarks (HandLandmarkLandmarksToRoi), image pixels.

    For the next frame (or a second pass on the same frame, re-cropping around the landmarks
    found in the palm ROI): the rotation makes the wrist (0) -> ``((lm5 + lm13) / 2 + lm9) / 2``
    (index, ring and middle MCP) point up; the rect is the bounding box of landmarks 0, 1, 2,
    3, 5, 6, 9, 10, 13, 14, 17, 18 (no fingertips) in that rotated frame, then shifted by
    ``shift_y`` heights along the ROI's y axis and squared to ``scale`` times its longer side.
    All in pixels, so the image size is not needed. MediaPipe initialises its maxima with
    ``FLT_MIN`` (not ``-FLT_MAX``), which matters only when every landmark has a negative
    normalised coordinate (the hand wholly left of or above the image); the true bounds are
    used here.

    Args:
      landmarks: [21, 2+] landmarks, (x, y, ...) image pixels; extra columns (z) are ignored.
      scale: ROI side over the rect's longer side.
      shift_y: centre shift in rect heights along the ROI's y axis.

    Returns:
      ``Roi`` in image pixels.
    """
    landmarks = jnp.asarray(landmarks)
    if landmarks.ndim != 2 or landmarks.shape[0] != 21 or landmarks.shape[1] < 2:
        raise ValueError(f"landmarks must be [21, 2+]; got {landmarks.shape}")
    points = landmarks[jnp.asarray(LANDMARK_ROI_SUBSET), :2]  # [12, 2]
    target = 0.5 * (0.5 * (landmarks[5, :2] + landmarks[13, :2]) + landmarks[9, :2])
    rotation = _rotation_to_up(landmarks[0, :2], target)
    aligned_center = 0.5 * (points.min(axis=0) + points.max(axis=0))
    c, s = jnp.cos(rotation), jnp.sin(rotation)
    rot = jnp.stack([jnp.stack([c, -s]), jnp.stack([s, c])])  # rect frame -> image
    projected = (points - aligned_center) @ rot  # rows: R^T (p - centre), the rect frame
    lo, hi = projected.min(axis=0), projected.max(axis=0)
    center = rot @ (0.5 * (lo + hi)) + aligned_center
    width, height = hi - lo
    return _transform_rect(center, width, height, rotation, scale=scale, shift_y=shift_y)


def roi_affine(roi: Roi, out_size: int = LANDMARK_INPUT_SIZE):
    """Return the affines between the ``out_size`` square crop of ``roi`` and the image.

    ``image = roi.center + (side / out_size) R(r) (crop - out_size / 2)`` with
    ``R(r) = [[cos r, -sin r], [sin r, cos r]]`` (MediaPipe's rotated sub-rect matrix), both in
    continuous pixels (centres at ``i + 0.5``): crop pixel (row j, column i) samples the image
    at ``to_image @ (i + 0.5, j + 0.5)``; the crop's centre maps to the ROI's centre and its
    corner (0, 0) to the ROI's top-left corner ``center + side/2 R(r) (-1, -1)``.

    Args:
      roi: ``Roi`` in image pixels.
      out_size: side of the crop in pixels (224 for the landmark model).

    Returns:
      ``(to_image, to_crop)``, two [2, 3] affines: crop pixels -> image pixels and back.
    """
    center = jnp.asarray(roi.center)
    side = jnp.asarray(roi.side, center.dtype)
    rotation = jnp.asarray(roi.rotation, center.dtype)
    c, s = jnp.cos(rotation), jnp.sin(rotation)
    rot = jnp.stack([jnp.stack([c, -s]), jnp.stack([s, c])])
    half = 0.5 * out_size
    linear = rot * (side / out_size)
    to_image = jnp.concatenate([linear, (center - linear @ jnp.full(2, half))[:, None]], axis=1)
    inverse = rot.T * (out_size / side)
    to_crop = jnp.concatenate([inverse, (half - inverse @ center)[:, None]], axis=1)
    return to_image, to_crop
