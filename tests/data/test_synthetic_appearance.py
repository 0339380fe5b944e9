"""Synthetic generator 2.0: natural view distribution, forearm, blur/JPEG, 1/f backgrounds,
determinism, and the legacy (1.0) draw order."""

import dataclasses

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from hand_jax import mano, params
from hand_jax.data import pose_prior, procedural, synthetic_gen
from hand_jax.geometry import rotations

BASE = synthetic_gen.GeneratorConfig(image_size=48, chunk=4, supersample=1)
KEYS = ("image", "mask", "mask_full", "keypoints_2d", "keypoints_3d", "K", "keypoint_visible")


@pytest.fixture(scope="module")
def model():
    return mano.load_model()


def _rotations(views, n, seed=0):
    cfg = dataclasses.replace(BASE, views=views)
    rng = np.random.default_rng(seed)
    return Rotation.from_rotvec([synthetic_gen.global_rotation(rng, cfg) for _ in range(n)])


def test_canonical_views_are_the_documented_ones():
    frontal = np.asarray(rotations.quaternion_to_matrix(np.array(params.FRONTAL_QUATERNION)))
    np.testing.assert_allclose(pose_prior.canonical_view("palm"), frontal, atol=1e-6)
    # Model frame: fingers -x, palm normal -y, thumb +z. Camera: +y down, +z forward.
    fingers, palm, thumb = np.array([-1.0, 0, 0]), np.array([0, -1.0, 0]), np.array([0, 0, 1.0])
    for name in ("palm", "back", "thumb_side", "little_side"):
        np.testing.assert_allclose(pose_prior.canonical_view(name) @ fingers, [0, -1, 0], atol=1e-9)
    np.testing.assert_allclose(pose_prior.canonical_view("palm") @ palm, [0, 0, -1], atol=1e-9)
    np.testing.assert_allclose(pose_prior.canonical_view("back") @ palm, [0, 0, 1], atol=1e-9)
    np.testing.assert_allclose(pose_prior.canonical_view("thumb_side") @ thumb, [0, 0, -1],
                               atol=1e-9)  # fmt: skip
    np.testing.assert_allclose(pose_prior.canonical_view("little_side") @ thumb, [0, 0, 1],
                               atol=1e-9)  # fmt: skip
    ego = pose_prior.canonical_view("egocentric", -60.0)
    assert (ego @ fingers)[1] < -0.3 and (ego @ fingers)[2] > 0.7  # up in the image, away
    assert (ego @ palm)[2] > 0.3  # the back of the hand faces the camera


def test_natural_views_point_fingers_up_and_show_both_palm_sides():
    rot = _rotations("natural", 600)
    fingers = rot.apply([-1.0, 0, 0])
    palm = rot.apply([0, -1.0, 0])
    assert np.mean(fingers[:, 1] < 0) > 0.8  # fingers up-ish in the image
    assert np.mean(fingers[:, 1] > 0.5) < 0.1  # forearm pointing up: rare
    assert np.mean(palm[:, 2] < -0.3) > 0.2 and np.mean(palm[:, 2] > 0.3) > 0.3
    assert np.mean(np.abs(palm[:, 0]) > 0.7) > 0.1  # side views
    assert abs(np.mean(fingers[:, 0])) < 0.1  # rolls left and right alike


def test_uniform_views_are_still_uniform():
    uniform = _rotations("uniform", 3000).as_matrix()
    assert np.abs(uniform.mean(axis=0)).max() < 0.05
    natural = _rotations("natural", 3000).as_matrix()
    assert np.abs(natural.mean(axis=0)).max() > 0.3


def test_unknown_views_are_refused():
    with pytest.raises(ValueError, match="views"):
        synthetic_gen.GeneratorConfig(views="random")


def test_samples_depend_only_on_seed_split_index_with_every_option_on(model):
    cfg = dataclasses.replace(BASE, forearm_prob=1.0, blur_prob=0.5, jpeg_prob=0.5)
    a = synthetic_gen.Generator(model, cfg, seed=9).samples("val", range(5))
    other = dataclasses.replace(cfg, chunk=3)
    b = synthetic_gen.Generator(model, other, seed=9).samples("val", [4, 2, 0])
    for got, want in zip(b, [a[4], a[2], a[0]], strict=True):
        for key in KEYS:
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    assert not np.array_equal(a[0]["image"], a[1]["image"])


def test_forearm_lies_behind_the_hand_and_outside_the_masks(model):
    cfg = dataclasses.replace(BASE, image_size=64, occluder_prob=0.0, pixel_noise=0.0,
                              blur_prob=0.0, jpeg_prob=0.0, sleeve_prob=0.0)  # fmt: skip
    with_arm = synthetic_gen.Generator(model, dataclasses.replace(cfg, forearm_prob=1.0), seed=2)
    without = synthetic_gen.Generator(model, dataclasses.replace(cfg, forearm_prob=0.0), seed=2)
    for a, b in zip(with_arm.samples("train", range(4)), without.samples("train", range(4)),
                    strict=True):  # fmt: skip
        for key in ("mask", "mask_full", "keypoints_2d", "keypoints_3d", "keypoint_visible"):
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        hand = a["mask_full"].astype(bool)
        np.testing.assert_array_equal(a["image"][hand], b["image"][hand])
        changed = np.abs(a["image"].astype(int) - b["image"].astype(int)).sum(-1) > 3
        assert changed.sum() > 20 and not (changed & hand).any()
        # The forearm extends from the wrist away from the fingers.
        vs, us = np.nonzero(changed)
        centroid = np.array([us.mean(), vs.mean()]) + 0.5
        wrist, mcp = a["keypoints_2d"][0], a["keypoints_2d"][9]
        if np.linalg.norm(wrist - mcp) > 3:  # not a view along the forearm
            assert np.dot(centroid - wrist, wrist - mcp) > 0


def test_jpeg_keeps_the_image_close(model):
    cfg = dataclasses.replace(BASE, image_size=64, blur_prob=0.0, pixel_noise=0.0)
    plain = synthetic_gen.Generator(model, dataclasses.replace(cfg, jpeg_prob=0.0), seed=4)
    jpeg = synthetic_gen.Generator(model, dataclasses.replace(cfg, jpeg_prob=1.0), seed=4)
    for a, b in zip(plain.samples("test", range(4)), jpeg.samples("test", range(4)), strict=True):
        err = (a["image"].astype(float) - b["image"].astype(float)) ** 2
        psnr = 10 * np.log10(255**2 / err.mean())
        hand_psnr = 10 * np.log10(255**2 / err[a["mask"].astype(bool)].mean())
        assert 24 < psnr < 60 and hand_psnr > 22, (psnr, hand_psnr)  # unrelated images: ~10
        np.testing.assert_array_equal(a["mask"], b["mask"])
    smooth = (procedural.gradient(np.random.default_rng(0), 64) * 255).astype(np.uint8)
    errors = [np.abs(procedural.jpeg_roundtrip(smooth, q) - smooth.astype(float)).mean()
              for q in (30, 90)]  # fmt: skip
    assert errors[1] < min(errors[0], 1.5)


def test_blur_smooths_and_keeps_the_mean():
    image = np.random.default_rng(0).uniform(size=(32, 32, 3)).astype(np.float32)
    blurred = procedural.gaussian_blur(image, 1.0)
    np.testing.assert_allclose(blurred.mean(), image.mean(), atol=1e-3)
    assert blurred.std() < 0.5 * image.std()


def test_pink_noise_has_a_falling_power_spectrum():
    image = procedural.pink_noise_texture(np.random.default_rng(1), 128).mean(-1)
    power = np.abs(np.fft.fft2(image - image.mean())) ** 2
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(128), np.fft.fftfreq(128)))
    bands = [(0.02, 0.04), (0.2, 0.4)]
    low, high = (power[(f >= lo) & (f < hi)].mean() for lo, hi in bands)
    slope = np.log(high / low) / np.log(10.0)  # per decade of frequency
    assert -3.6 < slope < -1.2, slope


def test_tapered_band_covers_its_axis_and_widens():
    centres = np.array([[10.0, 32.0], [54.0, 32.0]])
    cover, along, across = procedural.tapered_band(64, centres, np.array([2.0, 8.0]),
                                                   np.array([0.0, 1.0]))  # fmt: skip
    assert cover[32, 12] == 1 and cover[32, 52] == 1 and cover[2, 12] == 0
    assert cover[:, 12].sum() < cover[:, 50].sum()
    assert along[32, 12] < 0.1 < 0.9 < along[32, 52]
    assert across[30, 40] * across[34, 40] < 0  # opposite sides of the axis


def test_legacy_config_reproduces_generator_1_0(model):
    gen = synthetic_gen.Generator(model, synthetic_gen.legacy_config(
        image_size=48, chunk=4, supersample=1, occluder_prob=0.7), seed=5)  # fmt: skip
    got = gen.samples("train", [0, 2])
    # Recorded with generator 1.0 (commit 7a08748).
    want_pose = [[-1.1930157, 2.674606, 0.18264595, 0.11659768],
                 [-1.8996683, 0.25961593, -0.8366141, 0.04147781]]  # fmt: skip
    want_betas = [[-1.1814468, 0.7380419], [1.3297441, -1.2763076]]
    for s, pose, betas, mean, full in zip(got, want_pose, want_betas, [138.202, 150.678],
                                          [352, 336], strict=True):  # fmt: skip
        np.testing.assert_allclose(s["mano_pose"][:4], pose, rtol=1e-6)
        np.testing.assert_allclose(s["mano_betas"][:2], betas, rtol=1e-6)
        assert abs(s["image"].astype(float).mean() - mean) < 1.0
        assert abs(int(s["mask_full"].sum()) - full) <= 4
