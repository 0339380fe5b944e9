"""Palm detector post-processing against MediaPipe's formulas, written out here as numpy loops."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hand_jax.detector import palm, rois

# Jitted once per shape: eager scans and op-by-op dispatch would dominate the suite's time.
_nms = jax.jit(palm.weighted_nms, static_argnames=("max_hands",))
_detection_to_roi = jax.jit(rois.detection_to_roi, static_argnames=("image_hw",))
_landmarks_to_roi = jax.jit(rois.landmarks_to_roi)
_decode = jax.jit(palm.decode_boxes, static_argnames=("score_clip",))
_letterbox = jax.jit(rois.letterbox, static_argnums=(0,))
_remove_letterbox = jax.jit(rois.remove_letterbox, static_argnums=(1,))
_transform_points = jax.jit(rois.transform_points)

# ---------------------------------------------------------------------------------------------
# References: MediaPipe's calculators transcribed as plain Python/numpy loops, in MediaPipe's own
# coordinates (normalised to the image, image size passed separately) wherever it uses them.


def _ref_palm_anchors():
    """The palm model's 2016 anchors, spelled out: 24 x 24 x 2, then 12 x 12 x 6."""
    out = []
    for grid, per_cell in ((24, 2), (12, 6)):
        for y in range(grid):
            for x in range(grid):
                for _ in range(per_cell):
                    out.append(((x + 0.5) / grid, (y + 0.5) / grid, 1.0, 1.0))
    return np.asarray(out)


def _ref_decode(raw_boxes, raw_scores, anchors, scale, clip):
    n = raw_boxes.shape[0]
    k = (raw_boxes.shape[1] - 4) // 2
    boxes = np.zeros((n, 4))
    keypoints = np.zeros((n, k, 2))
    scores = np.zeros(n)
    for i in range(n):
        ax, ay, aw, ah = (float(v) for v in anchors[i])
        x, y, w, h = (float(v) for v in raw_boxes[i, :4])  # XYWH (reverse_output_order)
        boxes[i] = (x / scale * aw + ax, y / scale * ah + ay, w / scale * aw, h / scale * ah)
        for j in range(k):
            kx, ky = float(raw_boxes[i, 4 + 2 * j]), float(raw_boxes[i, 5 + 2 * j])
            keypoints[i, j] = (kx / scale * aw + ax, ky / scale * ah + ay)
        s = float(raw_scores[i])
        if clip is not None:
            s = min(max(s, -clip), clip)
        scores[i] = 1.0 / (1.0 + math.exp(-s))
    return boxes, keypoints, scores


def _ref_overlap(a, b):
    """OverlapSimilarity(INTERSECTION_OVER_UNION) on (xmin, ymin, width, height) rectangles."""
    ax0, ay0, ax1, ay1 = a[0], a[1], a[0] + a[2], a[1] + a[3]
    bx0, by0, bx1, by1 = b[0], b[1], b[0] + b[2], b[1] + b[3]
    if bx1 < ax0 or ax1 < bx0 or by1 < ay0 or ay1 < by0:
        return 0.0
    iw = min(ax1, bx1) - max(ax0, bx0)
    ih = min(ay1, by1) - max(ay0, by0)
    inter = iw * ih
    norm = a[2] * a[3] + b[2] * b[3] - inter
    return inter / norm if norm > 0 else 0.0


def _ref_weighted_nms(boxes, keypoints, scores, threshold, min_score):
    """NonMaxSuppressionCalculator::WeightedNonMaxSuppression after TensorsToDetections."""
    dets = []
    for i in range(len(scores)):
        xc, yc, w, h = (float(v) for v in boxes[i])
        if scores[i] < min_score or w < 0 or h < 0:
            continue
        dets.append((i, (xc - w / 2, yc - h / 2, w, h), keypoints[i].astype(np.float64)))
    remaining = sorted(dets, key=lambda d: -float(scores[d[0]]))  # stable: ties by index
    out = []
    while remaining:
        top = remaining[0]
        candidates = [d for d in remaining if _ref_overlap(d[1], top[1]) > threshold]
        rest = [d for d in remaining if _ref_overlap(d[1], top[1]) <= threshold]
        rect, kps = top[1], top[2]
        if candidates:
            total = 0.0
            acc = np.zeros(4)
            acc_kps = np.zeros_like(kps)
            for i, (x0, y0, w, h), kp in candidates:
                s = float(scores[i])
                total += s
                acc += s * np.array([x0, y0, x0 + w, y0 + h])
                acc_kps += s * kp
            x0, y0, x1, y1 = acc / total
            rect, kps = (x0, y0, x1 - x0, y1 - y0), acc_kps / total
        x0, y0, w, h = rect
        out.append(((x0 + w / 2, y0 + h / 2, w, h), kps, float(scores[top[0]])))
        if len(rest) == len(remaining):
            break
        remaining = rest
    return out


def _ref_padding(image_hw, size=192):
    """PadRoi for the whole image: (left, top) padding as fractions of the square tensor."""
    h, w = image_hw
    tensor_aspect = size / size
    roi_aspect = h / w
    if tensor_aspect > roi_aspect:
        return 0.0, (1.0 - roi_aspect / tensor_aspect) / 2.0
    return (1.0 - tensor_aspect / roi_aspect) / 2.0, 0.0


def _to_detector(points_px, image_hw):
    """Image pixels -> detector-normalised (the inverse of DetectionLetterboxRemoval)."""
    h, w = image_hw
    left, top = _ref_padding(image_hw)
    points = np.asarray(points_px, np.float64)
    return np.stack(
        [left + points[..., 0] / w * (1 - 2 * left), top + points[..., 1] / h * (1 - 2 * top)],
        axis=-1,
    )


def _normalize_radians(angle):
    return angle - 2 * math.pi * math.floor((angle - (-math.pi)) / (2 * math.pi))


def _ref_transform_norm_rect(rect, image_w, image_h, scale, shift_y):
    """RectTransformationCalculator::TransformNormalizedRect (shift_x = 0, square_long)."""
    xc, yc, width, height, rotation = rect
    if rotation == 0.0:
        yc = yc + height * shift_y
    else:
        x_shift = (-image_h * height * shift_y * math.sin(rotation)) / image_w
        y_shift = (image_h * height * shift_y * math.cos(rotation)) / image_h
        xc, yc = xc + x_shift, yc + y_shift
    long_side = max(width * image_w, height * image_h)
    return xc, yc, long_side / image_w * scale, long_side / image_h * scale, rotation


def _ref_detection_roi(box_det, keypoints_det, image_hw):
    """DetectionLetterboxRemoval, DetectionsToRects and RectTransformation, normalised."""
    h, w = image_hw
    left, top = _ref_padding(image_hw)
    xc, yc, bw, bh = (float(v) for v in box_det)
    xmin = (xc - bw / 2 - left) / (1 - 2 * left)
    ymin = (yc - bh / 2 - top) / (1 - 2 * top)
    width, height = bw / (1 - 2 * left), bh / (1 - 2 * top)
    kps = [((x - left) / (1 - 2 * left), (y - top) / (1 - 2 * top)) for x, y in keypoints_det]
    x0, y0 = kps[0][0] * w, kps[0][1] * h
    x1, y1 = kps[2][0] * w, kps[2][1] * h
    rotation = _normalize_radians(math.pi / 2 - math.atan2(-(y1 - y0), x1 - x0))
    rect = (xmin + width / 2, ymin + height / 2, width, height, rotation)
    return _ref_transform_norm_rect(rect, w, h, 2.6, -0.5)


def _ref_landmarks_roi(landmarks_px, image_hw):
    """HandLandmarksToRectCalculator (partial landmarks) and RectTransformation, normalised."""
    h, w = image_hw
    norm = [(float(x) / w, float(y) / h) for x, y in landmarks_px]
    lms = [norm[i] for i in (0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18)]
    x0, y0 = lms[0][0] * w, lms[0][1] * h
    x1 = ((lms[4][0] + lms[8][0]) / 2 + lms[6][0]) / 2 * w
    y1 = ((lms[4][1] + lms[8][1]) / 2 + lms[6][1]) / 2 * h
    rotation = _normalize_radians(math.pi / 2 - math.atan2(-(y1 - y0), x1 - x0))
    reverse = _normalize_radians(-rotation)
    cx = (max(p[0] for p in lms) + min(p[0] for p in lms)) / 2
    cy = (max(p[1] for p in lms) + min(p[1] for p in lms)) / 2
    xs, ys = [], []
    for px, py in lms:
        ox, oy = (px - cx) * w, (py - cy) * h
        xs.append(ox * math.cos(reverse) - oy * math.sin(reverse))
        ys.append(ox * math.sin(reverse) + oy * math.cos(reverse))
    pcx, pcy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    center_x = pcx * math.cos(rotation) - pcy * math.sin(rotation) + w * cx
    center_y = pcx * math.sin(rotation) + pcy * math.cos(rotation) + h * cy
    rect = (center_x / w, center_y / h, (max(xs) - min(xs)) / w, (max(ys) - min(ys)) / h, rotation)
    return _ref_transform_norm_rect(rect, w, h, 2.0, -0.1)


def _mediapipe_crop_matrix(roi_norm, image_w, image_h):
    """GetRotatedSubRectToRectTransformMatrix rows 1-2: normalised crop -> normalised image."""
    xc, yc, width, height, rotation = roi_norm
    a, b = width * image_w, height * image_h
    c, d = math.cos(rotation), math.sin(rotation)
    e, f = xc * image_w, yc * image_h
    g, h = 1.0 / image_w, 1.0 / image_h
    return np.array(
        [
            [a * c * g, -b * d * g, (-0.5 * a * c + 0.5 * b * d + e) * g],
            [a * d * h, b * c * h, (-0.5 * b * c - 0.5 * a * d + f) * h],
        ]
    )


def _roi_px(ref_norm, image_hw):
    h, w = image_hw
    xc, yc, width, height, rotation = ref_norm
    assert abs(width * w - height * h) < 1e-6 * max(w, h)  # square in pixels
    return np.array([xc * w, yc * h]), width * w, rotation


# ---------------------------------------------------------------------------------------------
# Anchors


def test_palm_anchors_equal_the_spelled_out_grids():
    anchors = palm.ssd_anchors()
    assert anchors.shape == (2016, 4) and anchors.dtype == np.float32
    np.testing.assert_allclose(anchors, _ref_palm_anchors(), atol=1e-7)
    np.testing.assert_allclose(anchors[0], [0.5 / 24, 0.5 / 24, 1, 1], atol=1e-7)
    np.testing.assert_allclose(anchors[1151, :2], [23.5 / 24, 23.5 / 24], atol=1e-7)
    np.testing.assert_allclose(anchors[1152, :2], [0.5 / 12, 0.5 / 12], atol=1e-7)
    # The three stride-16 layers are merged per cell: 6 anchors share a centre.
    np.testing.assert_allclose(anchors[1152:1158, :2], np.tile([0.5 / 12, 0.5 / 12], (6, 1)))
    np.testing.assert_allclose(anchors[1158, :2], [1.5 / 12, 0.5 / 12], atol=1e-7)
    assert np.all((anchors[:, :2] > 0) & (anchors[:, :2] < 1))


def test_anchor_sizes_follow_the_layer_scales():
    anchors = palm.ssd_anchors(
        dataclasses.replace(palm.PALM_ANCHOR_OPTIONS, fixed_anchor_size=False)
    )
    s = [0.1484375 + (0.75 - 0.1484375) * i / 3 for i in range(4)]
    first = [s[0], math.sqrt(s[0] * s[1])]
    merged = [s[1], math.sqrt(s[1] * s[2]), s[2], math.sqrt(s[2] * s[3]), s[3], math.sqrt(s[3])]
    np.testing.assert_allclose(anchors[:2, 2], first, rtol=1e-6)
    np.testing.assert_allclose(anchors[1152:1158, 2], merged, rtol=1e-6)
    np.testing.assert_allclose(anchors[1158:1164, 3], merged, rtol=1e-6)
    np.testing.assert_allclose(anchors[:, 2], anchors[:, 3])  # aspect ratio 1


def test_anchor_aspect_ratios_and_single_stride_scale():
    options = palm.SsdAnchorOptions(
        input_size_height=64,
        input_size_width=96,
        min_scale=0.2,
        max_scale=0.6,
        strides=(32,),
        aspect_ratios=(1.0, 2.0),
        interpolated_scale_aspect_ratio=0.0,
    )
    anchors = palm.ssd_anchors(options)
    scale = 0.4  # one stride: the mean of min and max
    cell = [[scale, scale], [scale * math.sqrt(2), scale / math.sqrt(2)]]
    expected = [
        [(x + 0.5) / 3, (y + 0.5) / 2, *wh] for y in range(2) for x in range(3) for wh in cell
    ]
    np.testing.assert_allclose(anchors, expected, rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# Decoding


@pytest.mark.parametrize("clip", [None, 3.0])  # float32 sigmoid saturates long before 100
def test_decode_matches_per_anchor_loop(clip):
    rng = np.random.default_rng(0)
    n = 50
    raw_boxes = rng.normal(0, 40, (n, 18)).astype(np.float32)
    raw_scores = rng.normal(0, 5, (n, 1)).astype(np.float32)
    raw_scores[:4, 0] = [150.0, -150.0, 10.0, -10.0]
    anchors = np.stack(
        [rng.uniform(0, 1, n), rng.uniform(0, 1, n), rng.uniform(0.5, 1, n), rng.uniform(1, 2, n)],
        axis=-1,
    ).astype(np.float32)
    boxes, keypoints, scores = _decode(raw_boxes, raw_scores, anchors, score_clip=clip)
    ref_boxes, ref_keypoints, ref_scores = _ref_decode(
        raw_boxes, raw_scores[:, 0], anchors, 192.0, clip
    )
    np.testing.assert_allclose(boxes, ref_boxes, atol=1e-6)
    np.testing.assert_allclose(keypoints, ref_keypoints, atol=1e-6)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-6)
    flat, _, flat_scores = _decode(raw_boxes, raw_scores[:, 0], anchors, score_clip=clip)
    np.testing.assert_array_equal(flat_scores, scores)


def test_decode_on_palm_anchors_zero_offsets_gives_anchor_centres():
    anchors = palm.ssd_anchors()
    raw = np.zeros((2016, 18), np.float32)
    raw[:, 2:4] = 192.0  # w = h = one anchor size = the whole input
    boxes, keypoints, scores = _decode(raw, np.zeros((2016, 1), np.float32), anchors)
    np.testing.assert_allclose(boxes[:, :2], anchors[:, :2])
    np.testing.assert_allclose(boxes[:, 2:], 1.0)
    np.testing.assert_allclose(keypoints, np.repeat(anchors[:, None, :2], 7, axis=1))
    np.testing.assert_allclose(scores, 0.5)


# ---------------------------------------------------------------------------------------------
# Weighted NMS


def _clustered(seed, n=64, clusters=5):
    """Jittered boxes around a few centres, tied scores, low scores and negative sizes mixed in."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0.15, 0.85, (clusters, 2))
    sizes = rng.uniform(0.05, 0.2, clusters)
    which = rng.integers(0, clusters, n)
    size = sizes[which][:, None] * rng.uniform(0.8, 1.2, (n, 2))
    centre = centres[which] + rng.normal(0, 0.08, (n, 2)) * size
    boxes = np.concatenate([centre, size], axis=-1)
    keypoints = centre[:, None, :] + rng.normal(0, 0.3, (n, 7, 2)) * size[:, None, :]
    scores = np.round(rng.uniform(0.3, 1.0, n), 2)  # two decimals: many exact ties
    scores[rng.integers(0, n, 4)] = scores[0]
    boxes[rng.integers(0, n, 3), 2] *= -1  # negative widths are dropped, whatever the score
    return boxes.astype(np.float32), keypoints.astype(np.float32), scores.astype(np.float32)


def _assert_matches_reference(result, ref, max_hands):
    count = min(len(ref), max_hands)
    np.testing.assert_array_equal(result.valid, np.arange(max_hands) < count)
    for slot in range(count):
        box, kps, score = ref[slot]
        np.testing.assert_allclose(result.boxes[slot], box, atol=2e-6)
        np.testing.assert_allclose(result.keypoints[slot], kps, atol=2e-6)
        np.testing.assert_allclose(result.scores[slot], score, atol=0)


@pytest.mark.parametrize("seed", range(6))
def test_weighted_nms_matches_mediapipe_loop(seed):
    boxes, keypoints, scores = _clustered(seed)
    ref = _ref_weighted_nms(boxes, keypoints, scores, 0.3, 0.5)
    assert len(ref) >= 3  # the clusters survive as separate hands
    result = _nms(boxes, keypoints, scores, max_hands=3)
    _assert_matches_reference(result, ref, 3)


def test_weighted_nms_averages_a_cluster_by_score():
    boxes = np.array(
        [[0.5, 0.5, 0.2, 0.2], [0.52, 0.5, 0.2, 0.2], [0.1, 0.1, 0.1, 0.1]], np.float32
    )
    keypoints = np.zeros((3, 7, 2), np.float32)
    keypoints[:, :, 0] = np.array([0.4, 0.7, 0.1])[:, None]
    scores = np.array([0.9, 0.6, 0.45], np.float32)  # the third is below min_score
    result = _nms(boxes, keypoints, scores, max_hands=3)
    np.testing.assert_array_equal(result.valid, [True, False, False])
    np.testing.assert_allclose(result.boxes[0], [0.508, 0.5, 0.2, 0.2], atol=1e-6)
    np.testing.assert_allclose(result.keypoints[0, :, 0], 0.52, atol=1e-6)
    np.testing.assert_allclose(result.scores[0], 0.9)
    assert np.all(np.isfinite(result.boxes)) and np.all(result.scores[1:] == 0)


def test_weighted_nms_fewer_candidates_than_slots():
    boxes, keypoints, scores = _clustered(3, clusters=2)
    ref = _ref_weighted_nms(boxes, keypoints, scores, 0.3, 0.5)
    assert 1 <= len(ref) < 3
    result = _nms(boxes, keypoints, scores, max_hands=3)
    _assert_matches_reference(result, ref, 3)
    assert not result.valid[len(ref) :].any()
    assert np.all(np.isfinite(result.boxes)) and np.all(np.isfinite(result.keypoints))


def test_weighted_nms_picks_nothing_below_min_score():
    boxes, keypoints, scores = _clustered(1)
    result = _nms(boxes, keypoints, scores * 0.49, max_hands=3)
    assert not result.valid.any()


def test_weighted_nms_stops_after_a_zero_area_best():
    # MediaPipe: the best gathers nothing (IoU with itself is 0), it is output, the loop ends.
    boxes = np.array([[0.3, 0.3, 0.0, 0.2], [0.7, 0.7, 0.2, 0.2], [0.1, 0.7, 0.1, 0.1]], np.float32)
    keypoints = np.zeros((3, 7, 2), np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    result = _nms(boxes, keypoints, scores, max_hands=3)
    ref = _ref_weighted_nms(boxes, keypoints, scores, 0.3, 0.5)
    assert len(ref) == 1
    _assert_matches_reference(result, ref, 3)


def test_weighted_nms_jit_equals_eager_and_vmap_equals_loop():
    batch = [_clustered(seed) for seed in (10, 11, 12)]
    stacked = [np.stack(parts) for parts in zip(*batch, strict=True)]
    batched = jax.vmap(lambda b, k, s: palm.weighted_nms(b, k, s, max_hands=3))(*stacked)
    eager = palm.weighted_nms(*batch[0], max_hands=3)
    for a, b in zip(eager, _nms(*batch[0], max_hands=3), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-7)
    for i, parts in enumerate(batch):
        for a, b in zip(_nms(*parts, max_hands=3), batched, strict=True):
            np.testing.assert_allclose(a, b[i], atol=1e-7)


# ---------------------------------------------------------------------------------------------
# Letterbox


def test_letterbox_landscape_known_values():
    box = _letterbox((480, 640))
    np.testing.assert_allclose(box.scale, 0.3)
    np.testing.assert_allclose(box.pad, [0.0, 24.0], atol=1e-5)
    corners = np.array([[0.0, 0.0], [640.0, 480.0]])
    np.testing.assert_allclose(
        _transform_points(box.to_input, corners), [[0, 24], [192, 168]], atol=1e-4
    )
    np.testing.assert_allclose(_transform_points(box.to_image, [96.0, 96.0]), [320, 240])


def test_letterbox_portrait_pads_left_and_right():
    box = _letterbox((640, 480))
    np.testing.assert_allclose(box.pad, [24.0, 0.0], atol=1e-5)
    np.testing.assert_allclose(_transform_points(box.to_image, [24.0, 0.0]), [0, 0], atol=1e-4)


@pytest.mark.parametrize("image_hw", [(480, 640), (101, 37), (300, 300)])
def test_remove_letterbox_inverts_mediapipe_padding(image_hw):
    rng = np.random.default_rng(1)
    h, w = image_hw
    points = rng.uniform(0, 1, (20, 2)) * [w, h]
    detector = _to_detector(points, image_hw)
    np.testing.assert_allclose(
        _remove_letterbox(detector.astype(np.float32), image_hw), points, rtol=1e-5, atol=1e-3
    )
    box = _letterbox(image_hw)
    there = _transform_points(box.to_input, points.astype(np.float32))
    np.testing.assert_allclose(there / 192, detector, atol=1e-5)
    np.testing.assert_allclose(_transform_points(box.to_image, there), points, atol=1e-3)


# ---------------------------------------------------------------------------------------------
# ROIs


IMAGE_HW = (480, 640)


def _detection(center_px, box_wh_px, wrist_px, mcp_px, image_hw=IMAGE_HW):
    """A detector-normalised detection from image-pixel geometry."""
    cx, cy = center_px
    bw, bh = box_wh_px
    corners = _to_detector([[cx - bw / 2, cy - bh / 2], [cx + bw / 2, cy + bh / 2]], image_hw)
    box = np.concatenate([corners.mean(axis=0), corners[1] - corners[0]])
    keypoints = np.tile(_to_detector(center_px, image_hw), (7, 1))
    keypoints[0] = _to_detector(wrist_px, image_hw)
    keypoints[2] = _to_detector(mcp_px, image_hw)
    return box.astype(np.float32), keypoints.astype(np.float32)


@pytest.mark.parametrize(
    ("direction", "rotation"),
    [((0, -1), 0.0), ((1, 0), math.pi / 2), ((-1, 0), -math.pi / 2), ((0, 1), -math.pi),
     ((1, -1), math.pi / 4)],
)  # fmt: skip
def test_detection_roi_rotation_points_the_hand_up(direction, rotation):
    wrist = np.array([300.0, 260.0])
    box, keypoints = _detection((300, 240), (60, 60), wrist, wrist + 50 * np.array(direction))
    roi = _detection_to_roi(box, keypoints, IMAGE_HW)
    np.testing.assert_allclose(roi.rotation, rotation, atol=1e-5)


@pytest.mark.parametrize(
    ("direction", "box_wh", "shift"),
    [((0, -1), (60, 40), (0, -20)), ((1, 0), (40, 60), (30, 0)), ((-1, 0), (40, 60), (-30, 0))],
)
def test_detection_roi_side_and_shift(direction, box_wh, shift):
    centre = np.array([320.0, 200.0])
    box, keypoints = _detection(centre, box_wh, centre, centre + 30 * np.array(direction))
    roi = _detection_to_roi(box, keypoints, IMAGE_HW)
    np.testing.assert_allclose(roi.side, 2.6 * max(box_wh), rtol=1e-5)
    np.testing.assert_allclose(roi.center, centre + np.array(shift), atol=1e-3)


@pytest.mark.parametrize("image_hw", [(480, 640), (640, 360)])
def test_detection_roi_matches_mediapipe_normalised_chain(image_hw):
    rng = np.random.default_rng(2)
    for _ in range(5):
        box = np.concatenate([rng.uniform(0.3, 0.7, 2), rng.uniform(0.05, 0.3, 2)])
        keypoints = rng.uniform(0.2, 0.8, (7, 2))
        ref = _ref_detection_roi(box, keypoints, image_hw)
        roi = _detection_to_roi(box.astype(np.float32), keypoints.astype(np.float32), image_hw)
        centre, side, rotation = _roi_px(ref, image_hw)
        np.testing.assert_allclose(roi.center, centre, atol=2e-3)
        np.testing.assert_allclose(roi.side, side, rtol=1e-5)
        np.testing.assert_allclose(roi.rotation, rotation, atol=1e-5)


def test_roi_affine_matches_mediapipe_crop_matrix():
    rng = np.random.default_rng(3)
    h, w = IMAGE_HW
    out = 224
    for rotation in (0.0, 0.7, -2.0, math.pi / 2):
        centre = rng.uniform(100, 400, 2)
        side = rng.uniform(50, 300)
        roi = rois.Roi(jnp.asarray(centre, jnp.float32), jnp.float32(side), jnp.float32(rotation))
        to_image, to_crop = rois.roi_affine(roi, out)
        matrix = _mediapipe_crop_matrix(
            (centre[0] / w, centre[1] / h, side / w, side / h, rotation), w, h
        )
        crop = np.array(
            [[112, 112], [0, 0], [224, 0], [224, 224], [0, 224], [112, 0], [3.5, 200.5]]
        )
        norm = crop / out
        ref = (norm @ matrix[:, :2].T + matrix[:, 2]) * [w, h]
        np.testing.assert_allclose(_transform_points(to_image, crop), ref, atol=2e-3)
        np.testing.assert_allclose(_transform_points(to_image, crop[0]), centre, atol=1e-3)
        up = centre + side / 2 * np.array([math.sin(rotation), -math.cos(rotation)])
        np.testing.assert_allclose(_transform_points(to_image, crop[5]), up, atol=2e-3)
        np.testing.assert_allclose(_transform_points(to_crop, ref), crop, atol=2e-3)


def test_roi_to_array_layout():
    roi = rois.Roi(
        jnp.asarray([[1.0, 2.0], [5.0, 6.0]]), jnp.asarray([3.0, 7.0]), jnp.asarray([0.5, -1.0])
    )
    np.testing.assert_array_equal(roi.to_array(), [[1, 2, 3, 0.5], [5, 6, 7, -1]])


def test_roi_affine_inverse_is_identity():
    roi = rois.Roi(jnp.asarray([210.0, 130.0]), jnp.float32(170.0), jnp.float32(-2.5))
    to_image, to_crop = rois.roi_affine(roi)
    compose = np.asarray(to_crop)[:, :2] @ np.asarray(to_image)
    compose[:, 2] += np.asarray(to_crop)[:, 2]
    np.testing.assert_allclose(compose, [[1, 0, 0], [0, 1, 0]], atol=1e-4)


def _landmarks(rng, center=(300.0, 250.0), spread=60.0):
    return np.asarray(center) + rng.normal(0, spread, (21, 2))


@pytest.mark.parametrize("image_hw", [(480, 640), (720, 405)])
def test_landmarks_roi_matches_mediapipe(image_hw):
    rng = np.random.default_rng(4)
    for _ in range(5):
        landmarks = _landmarks(rng)
        ref = _ref_landmarks_roi(landmarks, image_hw)
        roi = _landmarks_to_roi(landmarks.astype(np.float32))
        centre, side, rotation = _roi_px(ref, image_hw)
        np.testing.assert_allclose(roi.center, centre, atol=2e-3)
        np.testing.assert_allclose(roi.side, side, rtol=1e-5)
        np.testing.assert_allclose(roi.rotation, rotation, atol=1e-5)


def test_landmarks_roi_upright_hand_known_values():
    landmarks = np.zeros((21, 2))
    landmarks[:] = [100.0, 200.0]
    landmarks[0] = [100.0, 300.0]  # wrist
    # MCPs of index, middle, ring: their weighted mean is straight above the wrist.
    landmarks[5], landmarks[9], landmarks[13] = [80.0, 220.0], [100.0, 215.0], [120.0, 220.0]
    # PIPs: their mean is not (an implementation aiming at them gets a tilted ROI).
    landmarks[6], landmarks[10], landmarks[14] = [60.0, 150.0], [100.0, 140.0], [110.0, 150.0]
    landmarks[17] = [130.0, 230.0]
    landmarks[8] = [500.0, -400.0]  # a fingertip: not part of the rect
    roi = _landmarks_to_roi(landmarks)
    np.testing.assert_allclose(roi.rotation, 0.0, atol=1e-6)
    # Bounds of the subset: x 60..130, y 140..300 -> centre (95, 220), 70 x 160.
    np.testing.assert_allclose(roi.center, [95.0, 220.0 - 0.1 * 160.0], atol=1e-4)
    np.testing.assert_allclose(roi.side, 2.0 * 160.0, rtol=1e-6)
