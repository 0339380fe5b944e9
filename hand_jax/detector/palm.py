"""Palm detector post-processing: SSD anchors, decoding, weighted NMS, letterbox, hand ROIs.

A port of what MediaPipe Hands (Apache-2.0) does around ``palm_detection_full.tflite``; the
network itself runs elsewhere (``hand_jax.detector.graph``). Everything here is jax.numpy with
fixed shapes, written for one image (batch with ``jax.vmap``), except the anchors: static numpy
computed once on the host.

Frames and layout (stated once):

- Detector frame: the 192 x 192 network input. *Detector-normalised* coordinates are (x, y) in
  [0, 1] across it; detector pixels are those times 192.
- Image frame: the original image, (H, W). Image pixels are continuous (x, y) = (column, row)
  with pixel ``i``'s centre at ``i + 0.5`` (``hand_jax.camera``): the image spans [0, W] x [0, H]
  edge to edge, and a MediaPipe normalised coordinate is image pixels / (W, H).
- Points are always (x, y), x first. Boxes are centre form ``(x_center, y_center, width,
  height)``, detector-normalised, the layout of the anchors.
- ``Roi``: a rotated square in image pixels: ``center`` (x, y), ``side`` and ``rotation``
  (radians, in [-pi, pi)). The crop's axes in the image are ``(cos r, sin r)`` (crop +x) and
  ``(-sin r, cos r)`` (crop +y, down), so the crop's up direction is ``(sin r, -cos r)``: y
  points down, so a positive rotation turns the crop clockwise on screen. ``r = 0``: fingers up;
  ``r = +pi/2``: a hand pointing right (+x) in the image; ``r = -pi/2``: pointing left.
- Affines are [2, 3] matrices ``A`` with ``dst = A[:, :2] @ src + A[:, 2]``.

MediaPipe parameters used (palm model ``palm_detection_full.tflite``; the files are in
github.com/google-ai-edge/mediapipe; the legacy graph ``modules/palm_detection/
palm_detection_cpu.pbtxt`` and the tasks graph ``tasks/cc/vision/hand_detector/
hand_detector_graph.cc`` set the same values):

- ImageToTensorCalculator (palm_detection_cpu.pbtxt): 192 x 192, ``keep_aspect_ratio: true``,
  ``border_mode: BORDER_ZERO``; the padding is centred (``PadRoi`` in
  ``calculators/tensor/image_to_tensor_utils.cc``). That graph asks for
  ``output_tensor_float_range`` [0, 1]: the input range is the network runner's business.
- SsdAnchorsCalculator (palm_detection_cpu.pbtxt): num_layers 4, min_scale 0.1484375,
  max_scale 0.75, input 192 x 192, anchor_offset 0.5 / 0.5, strides 8, 16, 16, 16,
  aspect_ratios [1.0], fixed_anchor_size true; ``interpolated_scale_aspect_ratio`` is not set
  and defaults to 1.0 (``calculators/tflite/ssd_anchors_calculator.proto``), which adds a second
  anchor per layer: 24 x 24 x 2 + 12 x 12 x 6 = 2016 anchors. Layers of equal stride are merged
  per cell (``calculators/tflite/ssd_anchors_calculator.cc``): anchors 0..1151 are the 24 x 24
  grid (2 per cell), 1152..2015 the 12 x 12 grid (6 per cell), row-major, x fastest.
- TensorsToDetectionsCalculator (palm_detection_cpu.pbtxt;
  ``calculators/tensor/tensors_to_detections_calculator.cc``): num_classes 1, num_boxes 2016,
  num_coords 18, box_coord_offset 0, keypoint_coord_offset 4, num_keypoints 7,
  num_values_per_keypoint 2, sigmoid_score true, score_clipping_thresh 100,
  reverse_output_order true (box format XYWH, keypoints x before y), x/y/w/h_scale 192,
  min_score_thresh 0.5 (the tasks graph: ``min_detection_confidence``, default 0.5);
  ``apply_exponential_on_box_size`` false. Detections with a negative (or NaN) width or height
  are dropped.
- NonMaxSuppressionCalculator (palm_detection_cpu.pbtxt;
  ``calculators/util/non_max_suppression_calculator.cc``): min_suppression_threshold 0.3,
  overlap_type INTERSECTION_OVER_UNION, algorithm WEIGHTED, max_num_detections unset (-1), its
  own min_score_threshold unset. The hand graphs then keep the first ``num_hands``
  (ClipDetectionVectorSizeCalculator in ``modules/hand_landmark/hand_landmark_tracking_cpu.pbtxt``).
- DetectionLetterboxRemovalCalculator (``calculators/util/detection_letterbox_removal_calculator
  .cc``): ``x' = (x - left) / (1 - left - right)``, likewise y, boxes and keypoints.
- DetectionsToRectsCalculator (``modules/hand_landmark/palm_detection_detection_to_roi.pbtxt``;
  ``calculators/util/detections_to_rects_calculator.cc``): rect = the box's centre and size;
  rotation_vector_start_keypoint_index 0 (wrist centre), end index 2 (middle finger MCP),
  target angle 90 degrees: ``rotation = normalize(pi/2 - atan2(-(y2 - y0), x2 - x0))`` with the
  keypoints in image pixels.
- RectTransformationCalculator (same pbtxt; ``calculators/util/rect_transformation_calculator
  .cc``): scale_x = scale_y = 2.6, shift_y -0.5, square_long true. The shift is in the rect's
  rotated frame relative to its (pre-scale) height; ``side = 2.6 * max(w, h)`` in pixels.
- HandLandmarksToRectCalculator (``modules/hand_landmark/calculators/
  hand_landmarks_to_rect_calculator.cc``; ``hand_landmark_landmarks_to_roi.pbtxt``): the
  landmarks 0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18; rotation from the wrist (0) to
  ``((lm5 + lm13) / 2 + lm9) / 2``, the MCP joints of the index, ring and middle fingers (the
  calculator indexes the 12-landmark subset at 4, 8 and 6 under names that say "PIP"; those
  are landmarks 5, 13 and 9), target 90 degrees; the rect is the bounding box of those
  landmarks in that rotated frame. Then RectTransformation with scale 2.0, shift_y -0.1,
  square_long true (the pbtxt, and
  ``tasks/cc/vision/hand_landmarker/hand_landmarks_detector_graph.cc``).
- ImageToTensor for the rotated crop (``image_to_tensor_utils.cc``,
  ``GetRotatedSubRectToRectTransformMatrix``): image point = centre + R(r) diag(w, h) (crop
  point - 1/2) in normalised crop coordinates, ``R(r) = [[cos r, -sin r], [sin r, cos r]]``.
  ``roi_affine`` is that map in pixels with crop pixel ``i`` centred at ``i + 0.5`` (the GL and
  Metal converters' texture convention). MediaPipe's OpenCV converter maps the ROI corner to
  output pixel *centre* 0 instead (``cv::warpPerspective`` with corner correspondences), which
  samples ``0.5 * (1 - side / out_size)`` image pixels away from this convention.
"""

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = [
    "PALM_ANCHOR_OPTIONS",
    "PALM_INPUT_SIZE",
    "PalmDetections",
    "SsdAnchorOptions",
    "box_corners",
    "decode_boxes",
    "ssd_anchors",
    "weighted_nms",
]


@dataclasses.dataclass(frozen=True)
class SsdAnchorOptions:
    """The fields of MediaPipe's ``SsdAnchorsCalculatorOptions`` that its default path reads."""

    input_size_height: int
    input_size_width: int
    min_scale: float
    max_scale: float
    strides: tuple[int, ...]
    aspect_ratios: tuple[float, ...] = (1.0,)
    anchor_offset_x: float = 0.5
    anchor_offset_y: float = 0.5
    num_layers: int | None = None  # None: one layer per stride
    feature_map_height: tuple[int, ...] = ()  # if given, used instead of the strides' grids
    feature_map_width: tuple[int, ...] = ()
    reduce_boxes_in_lowest_layer: bool = False
    interpolated_scale_aspect_ratio: float = 1.0  # the proto's default; 0 disables it
    fixed_anchor_size: bool = False


PALM_INPUT_SIZE = 192
PALM_ANCHOR_OPTIONS = SsdAnchorOptions(
    input_size_height=192,
    input_size_width=192,
    min_scale=0.1484375,
    max_scale=0.75,
    strides=(8, 16, 16, 16),
    aspect_ratios=(1.0,),
    anchor_offset_x=0.5,
    anchor_offset_y=0.5,
    num_layers=4,
    fixed_anchor_size=True,
)
PALM_NUM_ANCHORS = 2016
PALM_NUM_KEYPOINTS = 7
PALM_BOX_SCALE = 192.0  # x_scale = y_scale = w_scale = h_scale
PALM_SCORE_CLIP = 100.0
PALM_MIN_SCORE = 0.5
PALM_IOU_THRESHOLD = 0.3


def _layer_scale(min_scale: float, max_scale: float, index: int, count: int) -> float:
    if count == 1:
        return (min_scale + max_scale) * 0.5
    return min_scale + (max_scale - min_scale) * index / (count - 1.0)


def ssd_anchors(options: SsdAnchorOptions = PALM_ANCHOR_OPTIONS) -> np.ndarray:
    """Generate SSD anchors as MediaPipe's ``SsdAnchorsCalculator`` does (non-multiscale path).

    Consecutive layers with the same stride share one grid: their anchors are interleaved per
    cell (every anchor of the first such layer, then of the next, for one cell before the next
    cell), cells row-major with x fastest.

    Args:
      options: static anchor options; the palm model's by default.

    Returns:
      [N, 4] float32 anchors (x_center, y_center, w, h), normalised to the input size; w = h = 1
      with ``fixed_anchor_size``. N = 2016 for the palm model.
    """
    num_layers = options.num_layers if options.num_layers is not None else len(options.strides)
    # The strides also set the scales and the grouping, so MediaPipe needs them even when the
    # feature map sizes are given (without them its layer loop never advances).
    if len(options.strides) != num_layers:
        raise ValueError(f"expected {num_layers} strides, got {len(options.strides)}")
    if options.feature_map_height and not (
        len(options.feature_map_height) == len(options.feature_map_width) == num_layers
    ):
        raise ValueError("feature_map_height/width must have one entry per layer")
    num_strides = len(options.strides)
    anchors = []
    layer = 0
    while layer < num_layers:
        ratios, scales = [], []
        last = layer
        while last < num_strides and options.strides[last] == options.strides[layer]:
            scale = _layer_scale(options.min_scale, options.max_scale, last, num_strides)
            if last == 0 and options.reduce_boxes_in_lowest_layer:
                ratios += [1.0, 2.0, 0.5]
                scales += [0.1, scale, scale]
            else:
                ratios += list(options.aspect_ratios)
                scales += [scale] * len(options.aspect_ratios)
                if options.interpolated_scale_aspect_ratio > 0.0:
                    following = (
                        1.0
                        if last == num_strides - 1
                        else _layer_scale(
                            options.min_scale, options.max_scale, last + 1, num_strides
                        )
                    )
                    scales.append(math.sqrt(scale * following))
                    ratios.append(options.interpolated_scale_aspect_ratio)
            last += 1
        heights = [s / math.sqrt(r) for s, r in zip(scales, ratios, strict=True)]
        widths = [s * math.sqrt(r) for s, r in zip(scales, ratios, strict=True)]
        if options.feature_map_height:
            rows = options.feature_map_height[layer]
            cols = options.feature_map_width[layer]
        else:
            stride = options.strides[layer]
            rows = math.ceil(options.input_size_height / stride)
            cols = math.ceil(options.input_size_width / stride)
        ys, xs = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        x_center = (xs.reshape(-1) + options.anchor_offset_x) / cols
        y_center = (ys.reshape(-1) + options.anchor_offset_y) / rows
        per_cell = len(heights)
        if options.fixed_anchor_size:
            w = np.ones(per_cell)
            h = np.ones(per_cell)
        else:
            w = np.asarray(widths)
            h = np.asarray(heights)
        layer_anchors = np.stack(
            [
                np.repeat(x_center, per_cell),
                np.repeat(y_center, per_cell),
                np.tile(w, rows * cols),
                np.tile(h, rows * cols),
            ],
            axis=-1,
        )
        anchors.append(layer_anchors)
        layer = last
    return np.concatenate(anchors, axis=0).astype(np.float32)


def decode_boxes(
    raw_boxes,
    raw_scores,
    anchors,
    *,
    scale: float = PALM_BOX_SCALE,
    score_clip: float | None = PALM_SCORE_CLIP,
):
    """Decode the palm model's raw regressors against the anchors (TensorsToDetections).

    Raw layout per anchor (``reverse_output_order``): ``x, y, w, h`` then ``x, y`` per keypoint,
    in detector pixels relative to the anchor centre; anchor w and h (1 for fixed-size anchors)
    multiply the offsets. Scores are ``sigmoid(clip(logit, -score_clip, score_clip))``.

    Args:
      raw_boxes: [N, 4 + 2 K] raw regressors (model output ``Identity`` without its batch axis).
      raw_scores: [N, C] or [N] raw score logits (``Identity_1``); with C classes the best class
        counts, as in MediaPipe.
      anchors: [N, 4] (x_center, y_center, w, h) from ``ssd_anchors``.
      scale: the x/y/w/h scale (192 for the palm model).
      score_clip: logit clipping threshold; None for no clipping.

    Returns:
      ``(boxes, keypoints, scores)``: boxes [N, 4] (x_center, y_center, width, height) and
      keypoints [N, K, 2] (x, y), detector-normalised; scores [N] in [0, 1].
    """
    raw_boxes = jnp.asarray(raw_boxes)
    dtype = raw_boxes.dtype
    anchors = jnp.asarray(anchors, dtype)
    raw_scores = jnp.asarray(raw_scores, dtype)
    if raw_boxes.ndim != 2 or raw_boxes.shape[-1] < 4 or (raw_boxes.shape[-1] - 4) % 2:
        raise ValueError(f"raw_boxes must be [N, 4 + 2K]; got {raw_boxes.shape}")
    n = raw_boxes.shape[0]
    if anchors.shape != (n, 4):
        raise ValueError(f"anchors must be [{n}, 4]; got {anchors.shape}")
    if raw_scores.ndim == 2:
        if raw_scores.shape[0] != n:
            raise ValueError(f"raw_scores must be [{n}, C] or [{n}]; got {raw_scores.shape}")
        raw_scores = raw_scores.max(axis=-1)  # sigmoid and clipping are monotone
    elif raw_scores.shape != (n,):
        raise ValueError(f"raw_scores must be [{n}, C] or [{n}]; got {raw_scores.shape}")
    anchor_xy = anchors[:, None, :2]  # [N, 1, 2]
    anchor_wh = anchors[:, None, 2:]
    offsets = raw_boxes.reshape(n, -1, 2)  # [N, 2 + K, 2]: centre, size, keypoints
    centre = offsets[:, 0:1] / scale * anchor_wh + anchor_xy
    size = offsets[:, 1:2] / scale * anchor_wh
    boxes = jnp.concatenate([centre, size], axis=1).reshape(n, 4)
    keypoints = offsets[:, 2:] / scale * anchor_wh + anchor_xy
    if score_clip is not None:
        raw_scores = jnp.clip(raw_scores, -score_clip, score_clip)
    return boxes, keypoints, jax.nn.sigmoid(raw_scores)


class PalmDetections(NamedTuple):
    """Palm detections after NMS, ``max_hands`` slots, best first; detector-normalised.

    Invalid slots hold a finite placeholder (the whole detector input, keypoints at its centre,
    score 0) so that geometry computed from them stays finite; mask with ``valid``.
    """

    boxes: jax.Array  # [M, 4] (x_center, y_center, width, height)
    keypoints: jax.Array  # [M, K, 2] (x, y)
    scores: jax.Array  # [M], the score of the slot's best detection
    valid: jax.Array  # [M] bool


def box_corners(boxes):
    centre, size = boxes[..., :2], boxes[..., 2:]
    return jnp.concatenate([centre - 0.5 * size, centre + 0.5 * size], axis=-1)


def _iou(box, boxes):
    """IoU of one corner box [4] with corner boxes [N, 4]; 0 where the union is empty."""
    lo = jnp.maximum(box[:2], boxes[:, :2])
    hi = jnp.minimum(box[2:], boxes[:, 2:])
    inter = jnp.prod(jnp.maximum(hi - lo, 0.0), axis=-1)
    area = jnp.prod(box[2:] - box[:2])
    areas = jnp.prod(boxes[:, 2:] - boxes[:, :2], axis=-1)
    union = area + areas - inter
    return jnp.where(union > 0, inter / jnp.where(union > 0, union, 1.0), 0.0)


def weighted_nms(
    boxes,
    keypoints,
    scores,
    *,
    max_hands: int,
    iou_threshold: float = PALM_IOU_THRESHOLD,
    min_score: float = PALM_MIN_SCORE,
) -> PalmDetections:
    """MediaPipe's WEIGHTED non-max suppression, unrolled for a fixed number of outputs.

    Candidates are the detections with ``score >= min_score`` and a non-negative width and
    height (TensorsToDetections drops the rest). Each of ``max_hands`` steps takes the best
    remaining candidate (ties: the lowest anchor index), gathers every remaining candidate whose
    IoU with it exceeds ``iou_threshold`` (itself included), and outputs the score-weighted mean
    of their corners (xmin, ymin, xmax, ymax) and keypoints with the best one's score; they are
    removed. MediaPipe repeats until no candidate remains and the hand graph keeps the first
    ``num_hands``; the first ``max_hands`` outputs are the same here. As in MediaPipe, a best
    candidate that gathers nothing, not even itself (a box of zero area), is output unchanged and
    ends the suppression (the later slots are invalid). MediaPipe's ``std::sort`` leaves the
    order of equal scores unspecified; the lowest index first is one of its orders.

    Args:
      boxes: [N, 4] (x_center, y_center, width, height), detector-normalised.
      keypoints: [N, K, 2] (x, y), detector-normalised.
      scores: [N] in [0, 1].
      max_hands: static number of output slots.
      iou_threshold: overlap above which a candidate joins the best one's cluster.
      min_score: candidates need at least this score.

    Returns:
      ``PalmDetections`` with ``max_hands`` slots, best first.
    """
    boxes = jnp.asarray(boxes)
    dtype = boxes.dtype
    keypoints = jnp.asarray(keypoints, dtype)
    scores = jnp.asarray(scores, dtype)
    n = boxes.shape[0]
    if boxes.shape != (n, 4) or scores.shape != (n,) or keypoints.shape[:1] != (n,):
        raise ValueError(
            f"expected boxes [N, 4], keypoints [N, K, 2], scores [N]; got {boxes.shape}, "
            f"{keypoints.shape}, {scores.shape}"
        )
    corners = box_corners(boxes)  # [N, 4] xmin, ymin, xmax, ymax
    flat_keypoints = keypoints.reshape(n, -1)
    candidates = (scores >= min_score) & (boxes[:, 2] >= 0) & (boxes[:, 3] >= 0)
    placeholder_box = jnp.asarray([0.5, 0.5, 1.0, 1.0], dtype)
    placeholder_keypoints = jnp.full(keypoints.shape[1:], 0.5, dtype)

    def step(carry, _):
        remaining, stopped = carry
        best = jnp.argmax(jnp.where(remaining, scores, -jnp.inf))
        found = remaining[best] & ~stopped
        cluster = remaining & (_iou(corners[best], corners) > iou_threshold)
        weights = jnp.where(cluster, scores, 0.0)
        total = weights.sum()
        safe_total = jnp.where(total > 0, total, 1.0)
        gathered = cluster.any()
        # Masked before the sums so that a NaN outside the cluster cannot leak in.
        in_corners = jnp.where(cluster[:, None], corners, 0.0)
        in_keypoints = jnp.where(cluster[:, None], flat_keypoints, 0.0)
        mean_corners = jnp.where(gathered, weights @ in_corners / safe_total, corners[best])
        mean_keypoints = jnp.where(
            gathered, weights @ in_keypoints / safe_total, flat_keypoints[best]
        )
        box = jnp.concatenate(
            [0.5 * (mean_corners[:2] + mean_corners[2:]), mean_corners[2:] - mean_corners[:2]]
        )
        box = jnp.where(found, box, placeholder_box)
        kps = jnp.where(found, mean_keypoints.reshape(keypoints.shape[1:]), placeholder_keypoints)
        score = jnp.where(found, scores[best], 0.0)
        remaining = remaining & ~(cluster & found)
        stopped = stopped | (found & ~gathered)
        return (remaining, stopped), (box, kps, score, found)

    _, (out_boxes, out_keypoints, out_scores, valid) = lax.scan(
        step, (candidates, jnp.asarray(False)), None, length=max_hands
    )
    return PalmDetections(out_boxes, out_keypoints, out_scores, valid)
