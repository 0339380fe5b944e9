"""Photo-like appearance of the synthetic generator: photographic backgrounds (against a numpy
reference on tiny images), cast shadows, the preset's determinism, and the default config's
samples byte for byte as they were before the photo-like options existed."""

import dataclasses
import hashlib

import numpy as np
import pytest
from PIL import Image

from hand_jax import mano
from hand_jax.data import (
    appearance,
    camera_effects,
    generator_config,
    photo_backgrounds,
    synthetic_gen,
)

SMALL = dict(image_size=48, chunk=4, supersample=1)
# Recorded with the generator before the photo-like options were added (see _appearance_only).
BEFORE_APPEARANCE = {
    0: "a7eb078f496068eabd44bf8c5ca59cf955b7a3db8df1226db24b0600cdc3dd27",
    1: "2a957611943f15872caeb2ffb07ecb37b7785e67b9ff2872ed324f638ad23046",
    2: "e8548074ae523ae935272da4379c1843b40f845b3e41285b6b1feb4aadcddad3",
}
BEFORE_DEFAULT_64 = "289cf3533bafdd9ae7faf4173392308b15324662750485d556268a2020d66a48"
BEFORE_SAMPLES = "c3b554839e63ce44d086af0748532a11d29de862fe84db51fe803f909f1a7865"


def _digest(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _disc(size):
    """A disc-shaped 'hand': (rgb premultiplied, alpha, full) of side ``size``."""
    u, v = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5)
    alpha = np.clip(size * 0.3 - np.hypot(u - size / 2, v - size / 2) + 0.5, 0, 1)
    alpha = alpha.astype(np.float32)
    rgb = (alpha[..., None] * np.array([0.8, 0.6, 0.5], np.float32)).astype(np.float32)
    return rgb, alpha, alpha >= 0.5


def _appearance_only(cfg, seed):
    """backdrop + composite of a disc with fixed keypoints, as recorded before the change."""
    rng, size = np.random.default_rng(seed), cfg.image_size
    rgb, alpha, full = _disc(size)
    K = np.array([[size, 0, size / 2], [0, size, size / 2], [0, 0, 1.0]])
    kp3d = np.zeros((21, 3))
    kp3d[:, 0], kp3d[:, 1], kp3d[:, 2] = (
        np.linspace(-0.05, 0.05, 21),
        np.linspace(0.04, -0.06, 21),
        0.5,
    )
    kp3d[[0, 9, 5, 17]] = [[0, 0.06, 0.5], [0, -0.02, 0.5], [-0.03, 0, 0.5], [0.03, 0, 0.5]]
    light = np.array([0.3, -0.4, -0.866])
    under = appearance.backdrop(
        rng, kp3d, K, skin=np.array([0.8, 0.6, 0.5]), light=light / np.linalg.norm(light),
        ambient=0.4, tint=np.ones(3, np.float32), near=0.05, cfg=cfg,
    )  # fmt: skip
    return list(appearance.composite(rng, rgb, alpha, under, full, cfg))


@pytest.fixture(scope="module")
def model():
    return mano.load_model()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_default_appearance_is_byte_identical_to_before(seed):
    cfg = synthetic_gen.GeneratorConfig(**SMALL, occluder_prob=0.9, forearm_prob=1.0, jpeg_prob=0.6)
    assert _digest(_appearance_only(cfg, seed)) == BEFORE_APPEARANCE[seed]


def test_default_config_appearance_at_64_px_is_byte_identical_to_before():
    cfg = synthetic_gen.GeneratorConfig(image_size=64)
    arrays = [a for s in range(6) for a in _appearance_only(cfg, s)]
    assert _digest(arrays) == BEFORE_DEFAULT_64


def test_default_config_samples_are_byte_identical_to_before(model):
    samples = synthetic_gen.Generator(
        model, synthetic_gen.GeneratorConfig(**SMALL), seed=3
    ).samples("train", [0, 1, 2, 5])
    arrays = [s[k] for s in samples for k in ("image", "mask", "mask_full")]
    assert _digest(arrays) == BEFORE_SAMPLES


def test_photo_preset_samples_depend_only_on_seed_split_index(model):
    cfg = generator_config.appearance_config("photo", **SMALL, occluder_prob=0.7)
    gen = synthetic_gen.Generator(model, cfg, seed=5)
    first = gen.samples("train", range(6))
    photo_backgrounds.load_photos.cache_clear()  # decoding again gives the same pixels
    again = gen.samples("train", [4, 5, 1])
    for got, want in zip(again, [first[4], first[5], first[1]], strict=True):
        for key in ("image", "mask", "mask_full", "keypoints_2d", "K"):
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    other = synthetic_gen.Generator(model, cfg, seed=6).samples("train", [4])[0]
    assert not np.array_equal(other["image"], first[4]["image"])
    plain = synthetic_gen.Generator(model, synthetic_gen.GeneratorConfig(**SMALL), seed=5)
    assert not np.array_equal(plain.samples("train", [4])[0]["image"], first[4]["image"])
    for s in first:
        assert s["image"].dtype == np.uint8 and s["image"].shape == (48, 48, 3)


def test_appearance_presets_and_validation():
    assert generator_config.appearance_config("default") == synthetic_gen.GeneratorConfig()
    photo = generator_config.appearance_config("photo", image_size=64)
    changed = {
        f.name
        for f in dataclasses.fields(photo)
        if getattr(photo, f.name) != getattr(synthetic_gen.GeneratorConfig(), f.name)
    }
    assert changed == set(generator_config.PHOTO_LIKE) | {"image_size"}
    with pytest.raises(ValueError, match="appearance"):
        generator_config.appearance_config("glossy")
    bads = (dict(specular=(-0.1, 0.2)), dict(photo_scale=(0.1, 1.5)), dict(shininess=(0.0, 4.0)),
            dict(shadow_strength=(0.2, 1.2)), dict(read_noise=-0.01))  # fmt: skip
    for bad in bads:
        with pytest.raises(ValueError, match=next(iter(bad))):
            synthetic_gen.GeneratorConfig(**bad)


def _rodrigues(p, angle):
    k = np.full(3, 1 / np.sqrt(3))
    return p * np.cos(angle) + np.cross(k, p) * np.sin(angle) + k * (k @ p) * (1 - np.cos(angle))


def _recolour_reference(image, r):
    """Pixel by pixel: hue rotation, saturation about luma, cast; then contrast, brightness."""
    out = np.zeros_like(image, np.float64)
    for idx in np.ndindex(image.shape[:2]):
        p = _rodrigues(image[idx].astype(np.float64), r.hue)
        luma = 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]
        out[idx] = (luma + r.saturation * (p - luma)) * np.asarray(r.cast)
    out = out.mean() + r.contrast * (out - out.mean())
    return np.clip(out * r.brightness, 0, 1)


@pytest.mark.parametrize("flip, turns", [(False, 0), (True, 1), (False, 2), (True, 3)])
def test_crop_flip_turn_and_recolour_match_a_numpy_reference(flip, turns):
    src = np.random.default_rng(turns).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    crop = photo_backgrounds.Crop(0, (3.0, 1.0, 7.0, 5.0), flip, turns)  # 4 x 4 at scale 1
    got = photo_backgrounds.crop_image(Image.fromarray(src), crop, 4)
    want = np.zeros((4, 4, 3))
    for i, j in np.ndindex(4, 4):
        r, c = [(i, j), (j, 3 - i), (3 - i, 3 - j), (3 - j, i)][turns]  # np.rot90, k turns
        want[i, j] = src[1 + r, 3 + (3 - c if flip else c)] / 255
    np.testing.assert_allclose(got, want, atol=1e-6)
    r = photo_backgrounds.draw_recolour(np.random.default_rng(turns), 1.0)
    assert r.hue != 0 and r.saturation != 1 and r.contrast != 1
    np.testing.assert_allclose(
        photo_backgrounds.recolour(got, r), _recolour_reference(got, r), atol=2e-6
    )


def _triangle(n_in, n_out, x0, x1):
    """[n_out, n_in] antialiased bilinear weights of a box [x0, x1) resampled to n_out."""
    scale = (x1 - x0) / n_out
    centres = x0 + (np.arange(n_out) + 0.5) * scale
    w = np.maximum(0, 1 - np.abs(np.arange(n_in) + 0.5 - centres[:, None]) / max(scale, 1.0))
    return w / w.sum(axis=1, keepdims=True)


def test_crop_resampling_is_the_antialiased_bilinear_filter():
    src = np.random.default_rng(1).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    box = (1.3, 0.7, 9.2, 11.9)  # downscaled ~2-3x, fractional edges
    got = photo_backgrounds.crop_image(
        Image.fromarray(src), photo_backgrounds.Crop(0, box, False, 0), 4
    )
    want = np.einsum(
        "ir,rck,jc->ijk",
        _triangle(12, 4, box[1], box[3]),
        src / 255.0,
        _triangle(10, 4, box[0], box[2]),
    )
    np.testing.assert_allclose(got, want, atol=1.5 / 255)  # PIL rounds to 8 bits per pass


def test_crops_stay_inside_their_source_with_the_drawn_aspect():
    sizes = [(40, 30), (25, 60)]
    for seed in range(200):
        c = photo_backgrounds.draw_crop(np.random.default_rng(seed), sizes, scale=(0.2, 0.9),
                                        aspect=(0.75, 1.33))  # fmt: skip
        width, height = sizes[c.source]
        x0, y0, x1, y1 = c.box
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        assert 0.2 * min(width, height) * np.sqrt(0.75) - 1e-9 <= min(x1 - x0, y1 - y0)
        assert c.turns in range(4)


def test_shipped_photographs_are_the_recorded_ones():
    photos = photo_backgrounds.load_photos()
    assert len(photos) == len(photo_backgrounds.PHOTOS) and all(p.mode == "RGB" for p in photos)
    assert all(p.licence for p in photo_backgrounds.PHOTOS)
    wrong = dataclasses.replace(photo_backgrounds.PHOTOS[0], sha256="0" * 16)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(photo_backgrounds, "PHOTOS", (wrong,))
        with pytest.raises(ValueError, match="digest"):
            photo_backgrounds.load_photos.__wrapped__()


def test_photo_background_is_the_photograph_crop_and_is_seeded():
    cfg = synthetic_gen.GeneratorConfig(image_size=32, photo_background_prob=1.0)
    got = appearance.background(np.random.default_rng(3), cfg)
    rng = np.random.default_rng(3)
    rng.uniform()  # the photo choice
    want = photo_backgrounds.photo_background(
        rng, 32, scale=cfg.photo_scale, aspect=cfg.photo_aspect, jitter=cfg.photo_jitter
    )
    np.testing.assert_array_equal(got, want)
    assert got.dtype == np.float32 and got.shape == (32, 32, 3) and 0 <= got.min() <= got.max() <= 1
    again = appearance.background(np.random.default_rng(3), cfg)
    np.testing.assert_array_equal(got, again)


@pytest.mark.parametrize("seed", range(4))
def test_shadows_only_darken_and_only_outside_the_hand(seed):
    rgb, alpha, full = _disc(40)
    under = np.random.default_rng(seed).uniform(0.2, 1.0, (40, 40, 3)).astype(np.float32)
    base = synthetic_gen.GeneratorConfig(image_size=40, occluder_prob=0.0)
    light = np.array([0.5, -0.3, -0.8]) / np.linalg.norm([0.5, -0.3, -0.8])
    plain, _ = appearance.compose(np.random.default_rng(seed), rgb, alpha, under, full, base)
    shadowed, _ = appearance.compose(
        np.random.default_rng(seed), rgb, alpha, under, full,
        dataclasses.replace(base, shadow_prob=1.0), light=light,
    )  # fmt: skip
    assert (shadowed <= plain + 1e-7).all()
    np.testing.assert_array_equal(shadowed[alpha == 1], plain[alpha == 1])
    assert (plain - shadowed)[alpha == 0].max() > 0.05


def test_shadow_falls_away_from_the_light():
    assert np.allclose(
        camera_effects.shadow_shift(np.array([1, 0, -1]) / np.sqrt(2), 10.0), [-10, 0]
    )
    assert np.allclose(camera_effects.shadow_shift(np.array([0, -0.5, -1.0]), 4.0), [0, 2])
    assert np.allclose(camera_effects.shadow_shift(np.array([0, 0, -1.0]), 4.0), [0, 0])
    cover = np.zeros((30, 30), np.float32)
    cover[10:20, 10:20] = 1
    moved = camera_effects.shadow_mask(cover, (5.0, -3.0), 0.3)
    v, u = np.nonzero(moved > 0.5)
    assert (u.mean(), v.mean()) == pytest.approx((19.5, 11.5), abs=0.01)


def test_shadows_need_the_light():
    rgb, alpha, full = _disc(16)
    cfg = synthetic_gen.GeneratorConfig(image_size=16, shadow_prob=1.0, occluder_prob=0.0)
    with pytest.raises(ValueError, match="light"):
        appearance.compose(np.random.default_rng(0), rgb, alpha, rgb, full, cfg)


def test_occluders_cast_shadows_too():
    _, _, full = _disc(40)
    nothing = np.zeros((40, 40), np.float32)  # no hand drawn: only the occluders cover
    under = np.full((40, 40, 3), 0.8, np.float32)
    cfg = synthetic_gen.GeneratorConfig(image_size=40, occluder_prob=1.0, shadow_prob=1.0)
    light = np.array([0.6, 0.0, -0.8])
    black = np.zeros((40, 40, 3), np.float32)
    image, occluded = appearance.compose(
        np.random.default_rng(1), black, nothing, under, full, cfg, light=light
    )
    assert occluded.any() and (0.8 - image[~occluded]).max() > 0.05
