"""Hands found by the detector (``hand_jax.detector``) as estimation inputs and evidence.

For each photograph the detector finds up to ``max_hands`` hands (``hands.detect_hands``) or,
with a user's box, reads the hand in that box. Each hand becomes one estimation item: the
network's square crop around its 21 landmarks with the training crop's margin (the keypoint box
the network was trained on), mirrored for a left hand (the detector's handedness), the crop's
intrinsics, and the refinement evidence in that crop:

- ``keypoints_2d``: the landmarks in crop pixels (mirrored for a left hand), each with the hand's
  presence score as its confidence (the landmark network gives no per-point score);
- ``keypoints_3d``: the world landmarks, metres, in the photograph's camera axes (x mirrored for a
  left hand), fitted up to translation and scale (``refine.energy``);
- ``mask``: NaN (no silhouette evidence; the silhouette weight is 0 with detector evidence).

Stems are ``safe_stem(file name, index)`` plus ``_hand<j>`` when a photograph holds several
hands.
"""

import os

import numpy as np

from hand_jax import outputs
from hand_jax.detector import hands as hands_lib
from hand_jax.estimate import photos
from hand_jax.estimate.inputs import box_inside, crop_intrinsics, photo_intrinsics

__all__ = ["box_region", "find", "hand_items", "landmark_box", "read_chunk"]

BOX_REGION_SCALE = 1.5  # a user's hand box -> the landmark network's region (side / box side)


def landmark_box(keypoints) -> tuple[float, float, float, float]:
    """(x, y, w, h) of the 21 landmarks' bounding box, pixels."""
    kp = np.asarray(keypoints, np.float64)[:, :2]
    lo, hi = kp.min(0), kp.max(0)
    return float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])


def box_region(box) -> np.ndarray:
    """The landmark network's upright region (x, y, side, 0) for a user's hand box (x, y, w, h)."""
    x, y, w, h = (float(v) for v in box)
    return np.array([x + w / 2, y + h / 2, BOX_REGION_SCALE * max(w, h), 0.0], np.float32)


def _evidence(hand, square, *, size: int, mirror: bool, mask_size: int) -> dict:
    u0, v0, side = square
    kp = (np.asarray(hand.keypoints, np.float64)[:, :2] - [u0, v0]) * (size / side)
    world = np.asarray(hand.world, np.float64)
    if mirror:
        kp, world = photos.mirror_points_2d(kp, size=size), photos.mirror_points_3d(world)
    return {
        "keypoints_2d": kp.astype(np.float32),
        "confidence": np.full(21, hand.presence, np.float32),
        "keypoints_3d": world.astype(np.float32),
        "mask": np.full((mask_size, mask_size), np.nan, np.float32),
    }


def hand_items(photo, path: str, index: int, found, *, margin, size, camera, side=None,
               mask_size: int, sides=None) -> list[dict]:  # fmt: skip
    """Estimation items (``inputs.read_chunk``'s keys plus ``evidence``) for one photograph.

    Args:
      photo: [H, W, 3] uint8; path, index: its file and index in the job (stems).
      found: its ``hands.HandDetection`` list.
      margin, size: the network's crop margin and input side.
      camera: ``photo_intrinsics`` keywords.
      side: None (the detector's handedness), or ``"right"``/``"left"`` for every hand.
      mask_size: the evidence mask side M (``core.evidence_mask_size``).
      sides: None, or per hand its side or None (a boxes file's), before ``side``.
    """
    name = os.path.basename(path)
    base = outputs.safe_stem(os.path.splitext(name)[0], index)
    photo_K = photo_intrinsics(photo.shape, **camera)
    items = []
    for j, hand in enumerate(found):
        hand_side = (sides[j] if sides else None) or side or hand.side
        mirror = hand_side == "left"
        square = photos.photo_box(photo.shape, landmark_box(hand.keypoints), margin=margin)
        u0, v0, s = square
        items.append({
            "index": index, "path": path, "name": name,
            "stem": base if len(found) == 1 else f"{base}_hand{j}",
            "photo_view": photo[:, ::-1] if mirror else photo, "square": square,
            "square_view": (photo.shape[1] - u0 - s, v0, s) if mirror else square,
            "crop": photos.crop_photo(photo, square, size=size, mirror=mirror),
            "side": hand_side, "K": crop_intrinsics(photo_K, square, size=size, mirror=mirror),
            "detection": {"palm_score": hand.palm_score, "presence": hand.presence,
                          "right_score": hand.right_score, "region": hand.roi},
            "evidence": _evidence(hand, square, size=size, mirror=mirror, mask_size=mask_size),
        })  # fmt: skip
    return items


def find(detect_fns, photos_, *, box=None, given=None, max_hands: int, batch_size: int):
    """Per photograph its ``HandDetection`` list.

    A photograph with boxes (``given[k]``, a list of (x, y, w, h); or ``box`` for every one)
    gets the hand read in each box, in order and whatever its presence score (the user says a
    hand is there); the others are searched by the detector (at most ``max_hands``, most
    present first).
    """
    n = len(photos_)
    regions = [None] * n
    for k in range(n):
        if given is not None and given[k]:
            regions[k] = [box_region(b) for b in given[k]]
        elif box is not None:
            regions[k] = [box_region(box)]
    found = [None] * n
    search = [k for k in range(n) if regions[k] is None]
    if search:
        res = hands_lib.detect_hands(
            detect_fns, [photos_[k] for k in search], batch_size=batch_size
        )
        for k, f in zip(search, res, strict=True):
            found[k] = sorted(f, key=lambda h: -h.presence)[:max_hands]
    boxed = [k for k in range(n) if regions[k] is not None]
    if boxed:
        res = hands_lib.read_regions(detect_fns, [photos_[k] for k in boxed],
                                     [regions[k] for k in boxed], batch_size=batch_size,
                                     min_presence=0.0)  # fmt: skip
        for k, f in zip(boxed, res, strict=True):
            found[k] = f
    return found


def read_chunk(paths, start: int, *, detect_fns, box, side, margin, size, camera: dict,
               max_hands: int, mask_size: int, batch_size: int, boxes=None):  # fmt: skip
    """Read image files and find their hands; return (items, skipped {path: reason}).

    The arguments are ``inputs.read_chunk``'s, plus the compiled detector (``detect_fns``), the
    most hands per photograph, the evidence mask side and the detector's batch size; ``side``
    None takes each hand's side from the detector; ``boxes`` (``box_file.read_boxes``) gives
    some photographs their hands' boxes and sides.
    """
    pictures, skipped = [], {}
    for index, path in enumerate(paths, start):
        try:
            photo = photos.read_photo(path)
        except photos.PhotoError as err:
            skipped[path] = str(err)
            continue
        entries = (boxes or {}).get(os.path.realpath(path), [])
        outside = [b for b in ([box] if box is not None and not entries else [])
                   + [b for b, _ in entries] if not box_inside(b, photo.shape)]  # fmt: skip
        if outside:
            skipped[path] = (f"{path}: the box {tuple(outside[0])} lies outside the "
                             f"{photo.shape[1]} x {photo.shape[0]} image")  # fmt: skip
            continue
        pictures.append((index, path, photo, entries))
    found = find(detect_fns, [p[2] for p in pictures], box=box,
                 given=[[b for b, _ in p[3]] for p in pictures], max_hands=max_hands,
                 batch_size=batch_size) if pictures else []  # fmt: skip
    items = []
    for (index, path, photo, entries), hands_found in zip(pictures, found, strict=True):
        if not hands_found:
            skipped[path] = f"{path}: no hand found"
            continue
        items += hand_items(photo, path, index, hands_found, margin=margin, size=size,
                            camera=camera, side=side, mask_size=mask_size,
                            sides=[s for _, s in entries] or None)  # fmt: skip
    return items, skipped
