"""Finding hands: crops against a per-pixel loop, handedness on rendered hands, the pipeline."""

import functools
import glob
import os

import imageio.v3 as iio
import jax.numpy as jnp
import numpy as np
import pytest

from hand_jax import mano
from hand_jax.detector import crops, hands, landmarks, shipped

SAMPLES = sorted(glob.glob(os.path.join(shipped.MODEL_DIR, "..", "..", "samples", "*.png")))


def _bilinear_loop(image, A, size, border):
    """Bilinear sampling one crop pixel at a time (pixel centres at integer + 0.5)."""
    h, w = image.shape[:2]
    out = np.zeros((size, size, 3))
    for r in range(size):
        for c in range(size):
            x, y = A @ np.array([c + 0.5, r + 0.5, 1.0])
            u, v = x - 0.5, y - 0.5
            u0, v0 = int(np.floor(u)), int(np.floor(v))
            for du, dv in ((0, 0), (1, 0), (0, 1), (1, 1)):
                iu, iv = u0 + du, v0 + dv
                wt = (1 - abs(u - iu)) * (1 - abs(v - iv))
                if 0 <= iu < w and 0 <= iv < h:
                    out[r, c] += wt * image[iv, iu]
                elif border == "replicate":
                    out[r, c] += wt * image[min(max(iv, 0), h - 1), min(max(iu, 0), w - 1)]
    return out


@pytest.mark.parametrize("border", ["zero", "replicate"])
def test_rotated_crop_equals_a_per_pixel_loop(border):
    image = np.random.default_rng(0).uniform(0, 1, (13, 17, 3))
    A = landmarks.roi_affine([9.0, 5.0, 14.0, 0.7], size=8)  # rotated, partly outside
    got = crops.warp_affine(image, A, size=8, border=border)
    np.testing.assert_allclose(got, _bilinear_loop(image, A, 8, border), atol=1e-5)


def test_shrinking_crop_averages_blocks_first():
    image = np.random.default_rng(1).integers(0, 256, (40, 40, 3)).astype(np.uint8)
    A = np.array([[4.0, 0.0, 0.0], [0.0, 4.0, 0.0]])  # 4x smaller: 2 x 2 blocks, then 2x
    blocks = image.astype(np.float64).reshape(20, 2, 20, 2, 3).mean(axis=(1, 3)) / 255
    ref = _bilinear_loop(blocks, A / 2, 10, "zero")
    np.testing.assert_allclose(crops.warp_affine(image, A, size=10), ref, atol=1e-5)


def test_crop_to_photo_mapping_agrees_with_the_crop_affine():
    rng = np.random.default_rng(2)
    roi = np.array([120.0, 80.0, 150.0, -2.2], np.float32)
    kp_crop = np.concatenate([rng.uniform(0, 224, (21, 2)), rng.normal(size=(21, 1))], -1)
    world = rng.normal(size=(21, 3)) * 0.05
    kp, w = landmarks.to_photo(jnp.asarray(kp_crop), jnp.asarray(world), jnp.asarray(roi))
    A = landmarks.roi_affine(roi)
    np.testing.assert_allclose(np.asarray(kp)[:, :2], crops.apply_affine(A, kp_crop[:, :2]),
                               atol=1e-3)  # fmt: skip
    # World landmarks turn with the crop: the same rotation as the 2D directions, z unchanged.
    np.testing.assert_allclose(np.asarray(w)[:, :2], world[:, :2] @ (A[:, :2] / (150 / 224)).T,
                               atol=1e-6)  # fmt: skip
    np.testing.assert_allclose(np.asarray(w)[:, 2], world[:, 2], atol=0)


def test_the_embedded_hand_is_a_right_hand():
    """The renders' chirality, from geometry alone: a right hand's fingers curl towards
    (index - pinky knuckle) x (wrist -> middle knuckle)."""
    model = mano.load_model()

    def keypoints(articulation):
        pose = jnp.concatenate([jnp.zeros(3), jnp.asarray(articulation, jnp.float32)])
        return np.asarray(mano.forward(model, pose, jnp.zeros(model.num_betas)).keypoints)

    flat, curled = keypoints(np.zeros(45)), keypoints(2 * np.asarray(model.hands_mean))
    across, along = flat[5] - flat[17], flat[9] - flat[0]
    curl = (curled[[8, 12, 16, 20]] - flat[[8, 12, 16, 20]]).mean(0)
    assert curl @ np.cross(across, along) > 0.1 * np.linalg.norm(curl) * np.linalg.norm(
        np.cross(across, along)
    )


Y0, X0 = 90, 210  # where the sample is pasted into a larger picture


def _pictures():
    """The six samples, one pasted into a grey 300 x 420 picture, and noise: 8 pictures, so
    every call compiles one batch size only."""
    samples = [iio.imread(p)[..., :3] for p in SAMPLES]
    canvas = np.full((300, 420, 3), 90, np.uint8)
    canvas[Y0 : Y0 + 192, X0 : X0 + 192] = samples[3]
    noise = np.random.default_rng(3).integers(0, 256, (200, 260, 3)).astype(np.uint8)
    return samples + [canvas, noise]


@functools.cache
def _fns():
    return hands.make_detect_fn(hands.load_detector())  # compiled once for both calls


@functools.cache
def _found(mirror: bool):
    fns = _fns()
    pictures = [p[:, ::-1] if mirror else p for p in _pictures()]
    return hands.detect_hands(fns, pictures, batch_size=8)


def test_handedness_of_rendered_right_hands_and_their_mirror_images():
    right = [h.right_score for hs in _found(False)[:6] for h in hs]
    left = [h.right_score for hs in _found(True)[:6] for h in hs]
    assert len(right) >= 5 and len(left) >= 5
    assert np.mean(np.asarray(right) > 0.5) >= 0.8 and np.mean(np.asarray(left) < 0.5) >= 0.8
    assert all(h.side == ("right" if h.right_score > 0.5 else "left") for hs in _found(False)
               for h in hs)  # fmt: skip


def test_a_hand_anywhere_in_a_larger_picture_is_found_by_its_palm():
    found = _found(False)
    assert len(found[6]) == 1 and found[6][0].palm_score > 0.5
    kp = found[6][0].keypoints[:, :2]
    assert np.all((kp >= [X0, Y0]) & (kp <= [X0 + 192, Y0 + 192]))
    alone = found[3][0].keypoints[:, :2]
    assert np.median(np.linalg.norm(kp - (alone + [X0, Y0]), axis=-1)) < 6.0
    assert found[7] == []  # noise: no palm, and the whole frame holds no hand
