"""Find hands in photographs: palm detection, hand regions, landmarks (MediaPipe Hands' flow).

For each photograph: the palm detector reads the letterboxed 192 x 192 picture; its anchors are
decoded and merged by weighted non-max suppression (``palm``); each palm becomes a rotated hand
region (``rois``); the landmark network reads the 224 x 224 crop of each region
(``landmarks``). With ``second_pass`` the region is recomputed from the landmarks found
(MediaPipe's tracking region) and the landmark network runs again on it, as MediaPipe does on
the next video frame. Hands whose presence score is below ``min_presence`` are dropped.

The networks run jit-compiled at fixed batch sizes (the photographs' crops are padded), so
photographs of any size and any number of hands share two compiled programs; the crops are
sampled on the host (``crops``). Coordinates are photograph pixels with pixel centres at
integer + 0.5.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from hand_jax.detector import landmarks, palm, rois, shipped
from hand_jax.detector.crops import warp_affine
from hand_jax.detector.graph import Graph, default_micro_batch, run_graph_chunked

__all__ = [
    "Detector", "HandDetection", "detect_hands", "find_regions", "load_detector", "make_detect_fn",
    "read_regions",
]  # fmt: skip

PALM_SIZE = palm.PALM_INPUT_SIZE
MIN_PRESENCE = 0.5


class Detector(NamedTuple):
    """The two converted networks: graphs (static) and weights (arrays)."""

    palm_graph: Graph
    palm_weights: dict
    landmark_graph: Graph
    landmark_weights: dict


class HandDetection(NamedTuple):
    """One hand found in one photograph (numpy)."""

    roi: np.ndarray  # [4] (x, y, side, rotation) of the crop the landmarks were read from
    palm_score: float  # 0 for a hand read from the whole picture (no palm found)
    keypoints: np.ndarray  # [21, 3] photograph pixels (x, y) and relative depth
    world: np.ndarray  # [21, 3] metres, the photograph's axes, origin near the hand's centre
    presence: float
    right_score: float  # the landmark network's handedness score (> 0.5: a right hand)

    @property
    def side(self) -> str:
        return "left" if landmarks.is_left(self.right_score) else "right"


def load_detector(*, variant: str = "full", model_dir: str | None = None) -> Detector:
    """Load the shipped (or ``model_dir``'s) palm detector and landmark network."""
    palm_net = shipped.load_network("palm_detection", variant=variant, model_dir=model_dir)
    landmark_net = shipped.load_network("hand_landmark", variant=variant, model_dir=model_dir)
    return Detector(*palm_net, *landmark_net)


def _palms(graph, weights, anchors, images, image_hw, *, max_hands: int, micro_batch):
    """[B] letterboxed inputs -> rois [B, M, 4], scores [B, M], valid [B, M]."""
    out = run_graph_chunked(graph, weights, images, micro_batch=micro_batch)

    def one(raw_boxes, raw_scores, hw):
        boxes, keypoints, scores = palm.decode_boxes(raw_boxes, raw_scores, anchors)
        found = palm.weighted_nms(boxes, keypoints, scores, max_hands=max_hands)
        roi = jax.vmap(lambda b, k: rois.detection_to_roi(b, k, hw).to_array())(
            found.boxes, found.keypoints
        )
        return roi, found.scores, found.valid

    return jax.vmap(one)(out["Identity"], out["Identity_1"], image_hw)


class DetectFns(NamedTuple):
    palms: object  # (images [B, 192, 192, 3], image_hw [B, 2]) -> rois, scores, valid
    landmarks: object  # crops [N, 224, 224, 3] -> crop keypoints, world, presence, right


def make_detect_fn(detector: Detector, *, max_hands: int = 2) -> DetectFns:
    """Compile the two network stages, weights bound (``max_hands`` palms per photograph).

    The networks run a few images at a time on CPU (``graph.default_micro_batch``).
    """
    anchors = jnp.asarray(palm.ssd_anchors())
    micro = default_micro_batch()
    palms = jax.jit(
        functools.partial(_palms, detector.palm_graph, max_hands=max_hands, micro_batch=micro)
    )
    marks = jax.jit(
        functools.partial(landmarks.network_outputs, detector.landmark_graph, micro_batch=micro)
    )
    return DetectFns(
        lambda images, hw: palms(detector.palm_weights, anchors, images, hw),
        lambda crops: marks(detector.landmark_weights, crops),
    )


def _whole_frame(image_hw) -> np.ndarray:
    """The region covering the whole picture, upright: (x, y, side, rotation)."""
    h, w = image_hw
    return np.array([w / 2, h / 2, max(h, w), 0.0], np.float32)


def _letterboxed(image) -> np.ndarray:
    box = rois.letterbox(image.shape[:2], PALM_SIZE)
    return warp_affine(image, np.asarray(box.to_image), size=PALM_SIZE, border="zero")


def _bucket(n: int, cap: int) -> int:
    """The compiled batch size for n items: the next power of two, at most ``cap``."""
    return min(cap, 1 << max(n - 1, 0).bit_length())


def _padded(batch: np.ndarray, size: int) -> np.ndarray:
    """Pad the leading axis with zeros to ``_bucket`` of its length (few compiled shapes)."""
    pad = _bucket(batch.shape[0], size) - batch.shape[0]
    return (
        np.concatenate([batch, np.zeros((pad,) + batch.shape[1:], batch.dtype)]) if pad else batch
    )


def _read(fns: DetectFns, images, rois_per_image, size: int):
    """Landmarks for every (image, roi) pair, batched in chunks of ``size``."""
    pairs = [(i, r) for i, rs in enumerate(rois_per_image) for r in rs]
    results = []
    for start in range(0, len(pairs), size):
        chunk = pairs[start : start + size]
        crops = np.stack([landmarks.crop_rois(images[i], r[None])[0] for i, r in chunk])
        kp, world, presence, right = fns.landmarks(jnp.asarray(_padded(crops, size)))
        roi_arr = jnp.asarray(np.stack([r for _, r in chunk]), jnp.float32)
        kp, world = landmarks.to_photo(kp[: len(chunk)], world[: len(chunk)], roi_arr)
        results += list(zip(np.asarray(kp), np.asarray(world), np.asarray(presence),
                            np.asarray(right), strict=False))  # fmt: skip
    return pairs, results


def find_regions(fns: DetectFns, images, *, batch_size: int = 8, whole_frame: bool = True):
    """Per photograph, the palm detector's hand regions as ``(roi [4], palm score)`` pairs.

    ``whole_frame``: where no palm is found, the whole picture is one region (score 0): a
    photograph already cropped to the hand is too large for the palm detector's anchors.
    """
    found = [[] for _ in images]
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        inputs = _padded(np.stack([_letterboxed(im) for im in chunk]), batch_size)
        hw = _padded(np.array([im.shape[:2] for im in chunk], np.float32), batch_size)
        roi, score, valid = (np.asarray(a) for a in fns.palms(jnp.asarray(inputs), jnp.asarray(hw)))
        for k, image in enumerate(chunk):
            found[start + k] = [(roi[k, m], float(score[k, m])) for m in np.flatnonzero(valid[k])]
            if whole_frame and not found[start + k]:
                found[start + k] = [(_whole_frame(image.shape[:2]), 0.0)]
    return found


def read_regions(
    fns: DetectFns, images, regions, *, batch_size: int = 8, second_pass: bool = True,
    min_presence: float = MIN_PRESENCE, palm_scores=None,
) -> list[list[HandDetection]]:  # fmt: skip
    """Read a hand in each region: per photograph its hands (presence >= ``min_presence``).

    Args:
      fns: ``make_detect_fn``'s compiled stages.
      images: sequence of [H, W, 3] photographs.
      regions: per photograph a list of [4] regions (x, y, side, rotation), pixels.
      batch_size: crops per landmark call (static).
      second_pass: re-read each hand from the region its first landmarks give.
      min_presence: the landmark network's presence score a hand needs.
      palm_scores: per photograph the regions' palm scores (default 0).
    """
    pairs, results = _read(fns, images, regions, batch_size)
    if second_pass:
        again = [[] for _ in images]
        for (i, _), (kp, *_rest) in zip(pairs, results, strict=True):
            again[i].append(np.asarray(rois.landmarks_to_roi(kp).to_array()))
        pairs, results = _read(fns, images, again, batch_size)
    scores = palm_scores or [[0.0] * len(r) for r in regions]
    flat_scores = iter(s for ss in scores for s in ss)
    hands = [[] for _ in images]
    for (i, r), (kp, world, presence, right), s in zip(pairs, results, flat_scores, strict=True):
        if presence >= min_presence:
            hands[i].append(HandDetection(r, s, kp, world, float(presence), float(right)))
    return hands


def detect_hands(
    fns: DetectFns, images, *, batch_size: int = 8, second_pass: bool = True,
    min_presence: float = MIN_PRESENCE, whole_frame: bool = True,
) -> list[list[HandDetection]]:  # fmt: skip
    """Find the hands in each photograph: ``find_regions`` then ``read_regions``.

    Args:
      fns: ``make_detect_fn``'s compiled stages.
      images: sequence of [H, W, 3] uint8 (or float in [0, 1]) photographs.
      batch_size: photographs per palm call and crops per landmark call (static).
      second_pass: re-read each hand from the region its first landmarks give.
      min_presence: the landmark network's presence score a hand needs.
      whole_frame: where no palm is found, read the whole picture as one region.

    Returns:
      Per photograph, its hands in decreasing palm score.
    """
    found = find_regions(fns, images, batch_size=batch_size, whole_frame=whole_frame)
    return read_regions(
        fns, images, [[r for r, _ in f] for f in found], batch_size=batch_size,
        second_pass=second_pass, min_presence=min_presence,
        palm_scores=[[s for _, s in f] for f in found],
    )  # fmt: skip
