"""Skin shading beyond Lambertian (closed forms, through the hard renderer) and camera effects
(kernels, noise, white balance, the degraded image's dtype and range)."""

import dataclasses

import numpy as np
import pytest
from scipy.spatial import cKDTree

from hand_jax import camera, mano
from hand_jax.data import appearance, camera_effects, generator_config, skin_shading
from hand_jax.data.generator_config import GeneratorConfig
from hand_jax.render.hard import render_hard, vertex_normals


@pytest.fixture(scope="module")
def model():
    return mano.load_model()


@pytest.mark.parametrize("theta_deg", [0.0, 30.0, 60.0, 89.0, 120.0])
@pytest.mark.parametrize("shininess", [1.0, 8.0, 40.0])
def test_blinn_phong_on_a_flat_patch_is_the_closed_form(theta_deg, shininess):
    theta = np.deg2rad(theta_deg)
    normals = np.tile([0.0, 0.0, -1.0], (3, 1))  # facing the camera, which looks along +z
    view = np.tile([0.0, 0.0, -1.0], (3, 1))
    light = np.array([np.sin(theta), 0.0, -np.cos(theta)])
    got = skin_shading.blinn_phong(normals, view, light, shininess=shininess)
    want = np.cos(theta / 2) ** shininess if theta_deg < 90 else 0.0  # half vector at theta / 2
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_flat_patch_renders_lambert_plus_an_undarkened_highlight():
    h, z, size, theta, ambient = 1e-5, 1.0, 6, np.deg2rad(40.0), 0.35
    verts = np.array([[-h, -h, z], [h, -h, z], [h, h, z], [-h, h, z]])
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    f = size / (2 * h / z)
    K = np.array([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1]])
    light = np.array([np.sin(theta), 0.0, -np.cos(theta)])
    tint, skin = np.array([1.1, 1.0, 0.9]), np.tile([0.7, 0.5, 0.4], (4, 1))
    cfg = GeneratorConfig(specular=(0.2, 0.2), shininess=(12.0, 12.0))
    regions = skin_shading.Regions(np.zeros(4), np.zeros(4), np.zeros(0, int), np.zeros(0, int))
    colours = skin_shading.shade_colours(
        np.random.default_rng(0), skin, verts, np.full((21, 3), 5.0), transl=np.zeros(3),
        faces=faces, regions=regions, light=light, ambient=ambient, tint=tint, cfg=cfg,
    )  # fmt: skip
    out = render_hard(
        camera.project_perspective(verts, K, with_depth=True), faces, colours, image_size=size,
        vert_normals=vertex_normals(verts, faces), light_dir=light, ambient=ambient,
        diffuse=1 - ambient,
    )  # fmt: skip
    lambert = skin[0] * tint * (ambient + (1 - ambient) * np.cos(theta))
    highlight = 0.2 * (1 - ambient) * tint * np.cos(theta / 2) ** 12
    np.testing.assert_allclose(np.asarray(out.rgb)[1:-1, 1:-1], np.broadcast_to(
        lambert + highlight, (size - 2, size - 2, 3)), rtol=2e-5)  # fmt: skip


def test_numpy_vertex_normals_match_the_renderers(model):
    verts, faces = np.asarray(model.v_template, np.float64), np.asarray(model.faces)
    want = np.asarray(vertex_normals(verts.astype(np.float32), faces))
    np.testing.assert_allclose(skin_shading.vertex_normals(verts, faces), want, atol=2e-5)


def test_nails_lie_on_the_back_of_the_fingertips_and_creases_on_the_palm_side(model):
    regions = skin_shading.rest_regions(model)
    verts, faces = np.asarray(model.v_template, np.float64), np.asarray(model.faces)
    joints = np.asarray(model.J_regressor, np.float64) @ verts
    palm = np.cross(joints[1] - joints[0], joints[7] - joints[0])
    normals = skin_shading.vertex_normals(verts, faces)
    tips = verts[list(model.tip_ids)]
    nails = regions.nail > 0.5
    to_tip = np.linalg.norm(verts[nails, None] - tips[None], axis=-1)
    assert np.bincount(to_tip.argmin(1), minlength=5).min() >= 3  # every finger has a nail
    dorsal = -normals[nails] @ palm / np.linalg.norm(palm)
    assert to_tip.min(1).max() < 0.02 and dorsal.mean() > 0.5 and (dorsal > 0).mean() > 0.95
    creases = regions.crease > 0.5
    assert creases.sum() >= 10 and (normals[creases] @ palm > 0).all()
    assert not (nails & creases).any()


def _sheet(fold: float):
    """A 9 x 9 grid (2 mm) z = fold * |x| with upward normals, and its neighbour pairs."""
    x, y = np.meshgrid(np.linspace(-0.008, 0.008, 9), np.linspace(-0.008, 0.008, 9))
    verts = np.stack([x.ravel(), y.ravel(), fold * np.abs(x.ravel())], 1)
    normals = np.stack([-fold * np.sign(verts[:, 0]), np.zeros(81), np.ones(81)], 1)
    pairs = cKDTree(verts).query_pairs(skin_shading.RADIUS, output_type="ndarray")
    i, j = np.concatenate([pairs[:, 0], pairs[:, 1]]), np.concatenate([pairs[:, 1], pairs[:, 0]])
    return verts, normals / np.linalg.norm(normals, axis=1, keepdims=True), i, j


def test_cavity_is_zero_on_flat_and_convex_skin_and_positive_in_a_fold():
    assert np.abs(skin_shading.cavity(*_sheet(0.0))).max() < 1e-12
    assert (skin_shading.cavity(*_sheet(-0.5)).reshape(9, 9)[:, 4] == 0.0).all()  # a ridge
    valley = skin_shading.cavity(*_sheet(0.5)).reshape(9, 9)  # rows y, columns x
    assert valley[:, 4].min() > 0.2
    assert (valley[:, [0, 1, 2, 6, 7, 8]] < valley[:, 4:5]).all()  # deepest in the fold


def test_subsurface_reddens_only_thin_parts_and_specular_only_adds(model):
    rest = mano.forward(model, np.zeros(48, np.float32), np.zeros(model.num_betas, np.float32))
    verts, kps = np.asarray(rest.verts, np.float64), np.asarray(rest.keypoints, np.float64)
    skin = np.tile(np.array([0.8, 0.6, 0.5], np.float32), (len(verts), 1))
    light, tint = np.array([0.3, -0.3, -0.9]) / np.linalg.norm([0.3, -0.3, -0.9]), np.ones(3)

    def shade(**options):
        return skin_shading.shade_colours(
            np.random.default_rng(1), skin, verts, kps, transl=np.array([0, 0, 0.5]),
            faces=np.asarray(model.faces), regions=skin_shading.rest_regions(model), light=light,
            ambient=0.4, tint=tint, cfg=GeneratorConfig(**options),
        )  # fmt: skip

    redness = lambda c: c[:, 0] / c[:, 1]  # noqa: E731
    ratio = redness(shade(subsurface=(0.5, 0.5))) / redness(skin)
    far = skin_shading.bone_distance(verts, kps) >= skin_shading.THIN[1]
    assert far.sum() > 50 and np.allclose(ratio[far], 1.0, atol=1e-6)
    assert ratio.min() > 1 - 1e-6 and ratio.max() > 1.1
    added = shade(specular=(0.3, 0.3)) - skin * tint
    assert added.min() > -1e-6 and added.max() > 0.1


def test_skin_options_switch_shading_on_and_draw_in_a_fixed_order():
    assert not skin_shading.enabled(GeneratorConfig())
    for on in (dict(specular=(0, 0.1)), dict(subsurface=(0, 0.1)), dict(nail_crease=0.5),
               dict(skin_blotch=0.02)):  # fmt: skip
        assert skin_shading.enabled(GeneratorConfig(**on))
    i, j = np.array([0, 1, 1, 2]), np.array([1, 0, 2, 1])
    a = skin_shading.smooth_noise(np.random.default_rng(4), i, j, 3)
    np.testing.assert_array_equal(a, skin_shading.smooth_noise(np.random.default_rng(4), i, j, 3))
    assert a.std() == pytest.approx(1.0)


@pytest.mark.parametrize("radius", [0.6, 1.5, 3.2])
def test_defocus_kernel_is_a_normalised_symmetric_disk(radius):
    k = camera_effects.defocus_kernel(radius)
    half = k.shape[0] // 2
    y, x = np.mgrid[-half : half + 1, -half : half + 1]
    assert k.sum() == pytest.approx(1.0) and np.allclose(k, k.T) and np.allclose(k, k[::-1])
    assert (k[np.hypot(x, y) >= radius + 0.5] == 0).all() and k[half, half] == k.max()


def test_motion_kernel_is_a_normalised_segment_along_its_angle():
    k = camera_effects.motion_kernel(7.0, 0.0)
    half = k.shape[0] // 2
    assert k.sum() == pytest.approx(1.0) and np.count_nonzero(k[np.arange(len(k)) != half]) == 0
    u = np.arange(len(k)) - half
    var = (k[half] * u**2).sum()
    assert 49 / 12 <= var <= 49 / 12 + 0.5  # uniform over 7 px, plus the splats' spread
    np.testing.assert_allclose(camera_effects.motion_kernel(7.0, np.pi / 2), k.T, atol=1e-7)


def test_sensor_noise_grows_with_the_signal_and_keeps_float32():
    shape = (16, 16, 3)
    dark, bright = np.full(shape, 0.2, np.float32), np.full(shape, 0.8, np.float32)
    noisy = [camera_effects.sensor_noise(np.random.default_rng(2), x, shot=0.01, read=0.0)
             for x in (dark, bright)]  # fmt: skip
    assert all(n.dtype == np.float32 for n in noisy)
    np.testing.assert_allclose(noisy[1] - bright, 2 * (noisy[0] - dark), atol=1e-6)
    same = camera_effects.sensor_noise(np.random.default_rng(2), dark, shot=0.0, read=0.0)
    np.testing.assert_array_equal(same, dark)


def test_white_balance_keeps_green_and_exposure_scales_all():
    gains = camera_effects.draw_gains(np.random.default_rng(0), balance=0.2, exposure=0.0)
    assert gains[1] == 1.0 and np.all(np.abs(np.log(gains)) <= 0.2) and gains[0] != gains[2]
    gains = camera_effects.draw_gains(np.random.default_rng(0), balance=0.0, exposure=0.5)
    assert gains[0] == gains[1] == gains[2] != 1.0
    image = np.full((2, 2, 3), 0.5, np.float32)
    np.testing.assert_allclose(
        camera_effects.white_balance(image, [2, 1, 0.5])[0, 0], [1, 0.5, 0.25]
    )


def test_optics_off_returns_the_image_untouched():
    image = np.random.default_rng(0).uniform(size=(8, 8, 3)).astype(np.float32)
    assert camera_effects.optics(np.random.default_rng(0), image, GeneratorConfig()) is image


@pytest.mark.parametrize("seed", range(3))
def test_degrade_with_every_camera_effect_keeps_dtype_and_range(seed):
    cfg = generator_config.appearance_config("photo", image_size=32, jpeg_prob=1.0,
                                             defocus_prob=1.0, motion_blur_prob=1.0)  # fmt: skip
    rng = np.random.default_rng(seed)
    image = rng.uniform(-0.2, 1.2, (32, 32, 3)).astype(np.float32)  # highlights beyond 1
    out = appearance.degrade(rng, image, cfg)
    assert out.dtype == np.uint8 and out.shape == (32, 32, 3)
    flat = np.full((32, 32, 3), 0.5, np.float32)
    quiet = dataclasses.replace(cfg, white_balance=0.0, exposure=0.0)
    out = appearance.degrade(np.random.default_rng(seed), flat, quiet)
    assert abs(out.mean() / 255 - 0.5) < 0.02 and out.std() / 255 < 0.06
