"""Detected hands as estimation items: the crop square and the evidence in crop coordinates."""

import numpy as np
import pytest

from hand_jax.detector.hands import HandDetection
from hand_jax.estimate import detected, photos


def _hand(right_score):
    rng = np.random.default_rng(0)
    kp = np.concatenate([rng.uniform([200, 100], [320, 260], (21, 2)), rng.normal(size=(21, 1))], 1)
    world = rng.normal(size=(21, 3)) * 0.04
    return HandDetection(np.array([260, 180, 300, 0.2]), 0.9, kp, world, 0.8, right_score)


@pytest.mark.parametrize("right_score", [0.9, 0.1])
def test_evidence_is_the_landmarks_in_the_crop_mirrored_for_a_left_hand(right_score):
    photo = np.zeros((400, 500, 3), np.uint8)
    hand = _hand(right_score)
    (item,) = detected.hand_items(
        photo, "a/b.png", 3, [hand], margin=0.25, size=64, camera={"fov_deg": 65.0}, mask_size=16
    )
    left = right_score < 0.5
    assert item["side"] == ("left" if left else "right") and item["stem"] == "00003_b"
    # The square: the landmarks' box grown by the margin, as the training crop.
    lo, hi = hand.keypoints[:, :2].min(0), hand.keypoints[:, :2].max(0)
    side = (hi - lo).max() * 1.5
    np.testing.assert_allclose(item["square"], [*((lo + hi) / 2 - side / 2), side], rtol=1e-9)
    ev = item["evidence"]
    crop_px = (hand.keypoints[:, :2] - item["square"][:2]) * 64 / side
    world = hand.world.copy()
    if left:  # the network sees a right hand: the crop and everything in it are mirrored
        crop_px[:, 0], world[:, 0] = 64 - crop_px[:, 0], -world[:, 0]
    np.testing.assert_allclose(ev["keypoints_2d"], crop_px, atol=1e-4)
    np.testing.assert_allclose(ev["keypoints_3d"], world, atol=1e-6)
    np.testing.assert_array_equal(ev["confidence"], np.full(21, 0.8, np.float32))
    assert ev["mask"].shape == (16, 16) and np.isnan(ev["mask"]).all()  # no mask evidence
    # The crop's intrinsics map the camera ray of a landmark's photo pixel to its crop pixel.
    K_photo = detected.photo_intrinsics(photo.shape, fov_deg=65.0)
    ray = np.linalg.solve(K_photo, np.append(hand.keypoints[4, :2], 1.0))
    if left:
        ray[0] = -ray[0]
    uvw = item["K"] @ ray
    np.testing.assert_allclose(uvw[:2] / uvw[2], crop_px[4], atol=1e-3)


def test_side_given_overrides_the_detector():
    (item,) = detected.hand_items(
        np.zeros((400, 500, 3), np.uint8), "x.png", 0, [_hand(0.1)], margin=0.25, size=64,
        camera={"fov_deg": 65.0}, side="right", mask_size=16,
    )  # fmt: skip
    assert item["side"] == "right"
    assert np.array_equal(item["crop"], photos.crop_photo(
        np.zeros((400, 500, 3), np.uint8), item["square"], size=64))  # fmt: skip


def test_a_user_box_becomes_an_upright_region_around_it():
    np.testing.assert_allclose(detected.box_region((10, 20, 40, 60)), [30, 50, 90, 0])


def test_hand_confidence_falls_with_the_fit_energy_and_the_presence():
    from hand_jax.estimate import job

    assert job.hand_confidence(1.0, 0.0) == 1.0
    assert job.hand_confidence(0.8, 0.0) == pytest.approx(0.8)
    values = [job.hand_confidence(0.9, e) for e in (0.0, 0.05, 0.2, 1.0)]
    assert all(a > b for a, b in zip(values, values[1:], strict=False)) and values[-1] > 0
    assert job.hand_confidence(0.9, -1.0) == pytest.approx(0.9)  # a negative energy is no bonus
