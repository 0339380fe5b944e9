"""Sample schema, mirroring and crops: projection round trips against plain-numpy references."""

import numpy as np
import pytest

from hand_jax.data import crop, schema


def _project_loop(points, K):
    """Reference pinhole projection, one point at a time."""
    out = np.zeros((len(points), 2))
    for i, p in enumerate(points):
        h = [sum(K[r][c] * p[c] for c in range(3)) for r in range(3)]
        out[i] = (h[0] / h[2], h[1] / h[2])
    return out


def _random_sample(rng, *, height=60, width=80, side="right"):
    K = np.array([[90.0 + rng.uniform(-5, 5), rng.uniform(-1, 1), 41.0],
                  [0.0, 92.0 + rng.uniform(-5, 5), 29.0],
                  [0.0, 0.0, 1.0]])  # fmt: skip
    xyz = rng.normal(size=(21, 3)) * 0.04 + np.array([0.01, -0.01, 0.5])
    return schema.make_sample(
        id="t/0",
        side=side,
        image=rng.integers(0, 256, size=(height, width, 3)),
        mask=rng.integers(0, 2, size=(height, width)),
        keypoints_2d=_project_loop(xyz, K),
        keypoints_3d=xyz,
        K=K,
    )


def test_make_sample_defaults_and_dtypes():
    s = schema.make_sample(
        id="a", image=np.zeros((4, 5, 3)), keypoints_2d=np.zeros((21, 2)),
        keypoints_3d=np.ones((21, 3)), K=np.eye(3),
    )  # fmt: skip
    assert s["image"].dtype == np.uint8 and s["mask"].shape == (4, 5)
    assert not s["mask_valid"] and s["keypoint_valid"].all() and s["original_side"] == "right"


@pytest.mark.parametrize(
    "key, value, match",
    [
        ("keypoints_2d", np.zeros((20, 2), np.float32), "keypoints_2d.*shape"),
        ("image", np.zeros((6, 5, 3), np.float32), "image.*dtype uint8"),
        ("mask", np.zeros((7, 5), np.uint8), "mask.*shape"),
        ("side", "up", "side"),
        ("keypoints_3d", np.full((21, 3), np.nan, np.float32), "keypoints_3d.*non-finite"),
    ],
)
def test_validate_sample_names_the_bad_field(key, value, match):
    s = _random_sample(np.random.default_rng(0))
    s[key] = value
    with pytest.raises(schema.SampleError, match=match):
        schema.validate_sample(s)


def test_validate_sample_missing_field():
    s = _random_sample(np.random.default_rng(0))
    del s["K"]
    with pytest.raises(schema.SampleError, match="missing required field 'K'"):
        schema.validate_sample(s)


def test_crop_intrinsics_closed_form():
    K = np.array([[500.0, 2.0, 320.0], [0.0, 510.0, 240.0], [0.0, 0.0, 1.0]])
    u0, v0, side, out = 100.0, 50.0, 200.0, 64
    s = out / side
    want = np.array([[500 * s, 2 * s, (320 - u0) * s], [0, 510 * s, (240 - v0) * s], [0, 0, 1]])
    np.testing.assert_allclose(crop.crop_intrinsics(K, (u0, v0, side), out_size=out), want)


def test_keypoint_box_margin_and_validity():
    pts = np.array([[10.0, 20.0], [30.0, 25.0], [1000.0, 1000.0]] + [[20.0, 22.0]] * 18)
    valid = np.ones(21, bool)
    valid[2] = False
    u0, v0, side = crop.keypoint_box(pts, valid, margin=0.5)
    assert side == pytest.approx(40.0)  # extent 20 * (1 + 2 * 0.5)
    assert (u0 + side / 2, v0 + side / 2) == pytest.approx((20.0, 22.5))


@pytest.mark.parametrize("seed", range(4))
def test_crop_round_trip_with_augmentation(seed):
    rng = np.random.default_rng(seed)
    s = _random_sample(rng)
    rot, scale, shift = rng.uniform(-np.pi, np.pi), rng.uniform(0.8, 1.3), rng.uniform(-0.1, 0.1, 2)
    c = crop.crop_sample(s, out_size=32, rotation=rot, scale=scale, shift=shift)
    K = c["K"].astype(np.float64)
    assert K[1, 0] == 0 and K[2, 0] == 0 and K[2, 1] == 0  # still a pinhole K
    # 2D labels are the projection of the 3D labels with the new K.
    np.testing.assert_allclose(_project_loop(c["keypoints_3d"], K), c["keypoints_2d"], atol=2e-3)
    # The camera only rolled: depths and distances between keypoints are unchanged.
    np.testing.assert_allclose(c["keypoints_3d"][:, 2], s["keypoints_3d"][:, 2], atol=1e-6)
    d0 = np.linalg.norm(s["keypoints_3d"][:, None] - s["keypoints_3d"][None], axis=-1)
    d1 = np.linalg.norm(c["keypoints_3d"][:, None] - c["keypoints_3d"][None], axis=-1)
    np.testing.assert_allclose(d0, d1, atol=1e-6)
    # The keypoints sit inside the crop the way the box says (centre shifted by `shift`).
    centre = (c["keypoints_2d"].min(0) + c["keypoints_2d"].max(0)) / 2
    np.testing.assert_allclose(centre, 16 - shift * 32, atol=1e-3)


def test_crop_without_rotation_matches_box_arithmetic():
    rng = np.random.default_rng(7)
    s = _random_sample(rng)
    c = crop.crop_sample(s, out_size=48, margin=0.1)
    u0, v0, side = crop.keypoint_box(s["keypoints_2d"], margin=0.1)
    want = (s["keypoints_2d"] - [u0, v0]) * 48 / side
    np.testing.assert_allclose(c["keypoints_2d"], want, atol=1e-3)


def test_identity_warp_is_exact():
    img = np.random.default_rng(1).integers(0, 256, (16, 16, 3)).astype(np.uint8)
    out = crop.warp_image(img, crop.box_matrix((0, 0, 16), out_size=16), out_size=16)
    np.testing.assert_array_equal(out, img)


def test_halving_with_supersampling_is_block_mean():
    img = np.random.default_rng(2).uniform(0, 255, (16, 16)).astype(np.float32)
    out = crop.warp_image(img, crop.box_matrix((0, 0, 16), out_size=8), out_size=8, supersample=2)
    want = img.reshape(8, 2, 8, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(out, want, rtol=1e-5)


@pytest.mark.parametrize("rotation", [0.0, 0.7, -2.0])
def test_image_content_follows_the_keypoints(rotation):
    """A bright blob drawn at a keypoint lands where the cropped keypoint says."""
    rng = np.random.default_rng(3)
    s = _random_sample(rng, height=120, width=160)
    s["K"] = np.array([[150.0, 0, 80], [0, 150.0, 60], [0, 0, 1]], np.float32)
    s["keypoints_2d"] = _project_loop(s["keypoints_3d"], s["K"]).astype(np.float32)
    image = np.zeros((120, 160, 3), np.uint8)
    u, v = s["keypoints_2d"][8]
    yy, xx = np.mgrid[:120, :160] + 0.5
    image[(xx - u) ** 2 + (yy - v) ** 2 < 2.5**2] = 255
    s["image"] = image
    c = crop.crop_sample(s, out_size=64, rotation=rotation, margin=0.3, antialias=False)
    weight = c["image"][..., 0].astype(np.float64)
    yy, xx = np.mgrid[:64, :64] + 0.5
    blob = np.array([(weight * xx).sum(), (weight * yy).sum()]) / weight.sum()
    np.testing.assert_allclose(blob, c["keypoints_2d"][8], atol=0.35)


def test_mirror_is_consistent_and_an_involution():
    s = _random_sample(np.random.default_rng(4), side="left")
    m = schema.to_right_hand(s)
    assert m["side"] == "right" and m["original_side"] == "left"
    np.testing.assert_array_equal(m["image"], s["image"][:, ::-1])
    np.testing.assert_allclose(m["keypoints_2d"][:, 0], 80 - s["keypoints_2d"][:, 0], atol=1e-5)
    reprojected = _project_loop(m["keypoints_3d"], m["K"])
    np.testing.assert_allclose(reprojected, m["keypoints_2d"], atol=1e-3)
    back = schema.mirror_sample(m)
    for key in ("image", "mask", "keypoints_2d", "keypoints_3d", "K"):
        np.testing.assert_allclose(back[key], s[key], atol=1e-5)


def test_mirror_pixel_content_matches_mirrored_keypoint():
    s = _random_sample(np.random.default_rng(5), side="left")
    s["image"][:] = 0
    u, v = s["keypoints_2d"][0]
    s["image"][int(v), int(u)] = 255  # pixel containing the keypoint
    m = schema.mirror_sample(s)
    mu, mv = m["keypoints_2d"][0]
    assert m["image"][int(mv), int(mu), 0] == 255


def test_crop_intrinsics_agrees_with_the_camera_module():
    """The host-side numpy crop K is the same convention as hand_jax.camera's (jax) one."""
    from hand_jax import camera

    K = np.array([[500.0, 1.5, 320.0], [0.0, 510.0, 240.0], [0.0, 0.0, 1.0]])
    box = (97.5, 41.25, 183.0)
    want = np.asarray(camera.crop_intrinsics(K.astype(np.float32), np.array(box), out_size=128))
    np.testing.assert_allclose(crop.crop_intrinsics(K, box, out_size=128), want, rtol=1e-5)
    uv = np.array([[100.0, 50.0], [250.0, 200.0]], np.float32)
    want_uv = np.asarray(camera.crop_points(uv, np.array(box, np.float32), out_size=128))
    got_uv = crop.apply_affine(crop.box_matrix(box, out_size=128), uv)
    np.testing.assert_allclose(got_uv, want_uv, rtol=1e-5)


def test_load_split_rejects_unknown_sources(tmp_path):
    from hand_jax.data import SOURCES, load_split

    assert set(SOURCES) == {"synthetic", "rhd", "stb", "dexter_object", "freihand"}
    with pytest.raises(ValueError, match="unknown source name='mpii'"):
        load_split("mpii", str(tmp_path), "test")


def _bilinear_loop(image, matrix, out_size):
    """Reference resampling, one output pixel at a time: the output pixel centre mapped back to
    the source, bilinear between the four source pixel centres around it, zero outside."""
    img = np.asarray(image, np.float64)
    inv = np.linalg.inv(matrix)
    out = np.zeros((out_size, out_size) + img.shape[2:])
    for r in range(out_size):
        for c in range(out_size):
            u, v, _ = inv @ [c + 0.5, r + 0.5, 1.0]
            x, y = u - 0.5, v - 0.5  # continuous source index (pixel i's centre at index i)
            x0, y0 = int(np.floor(x)), int(np.floor(y))
            fx, fy = x - x0, y - y0
            for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
                xi, yi = x0 + dx, y0 + dy
                if 0 <= xi < img.shape[1] and 0 <= yi < img.shape[0]:
                    w = (fx if dx else 1 - fx) * (fy if dy else 1 - fy)
                    out[r, c] += w * img[yi, xi]
    return out


def test_warp_samples_bilinearly_at_a_fractional_position():
    img = np.arange(20, dtype=np.float32).reshape(4, 5) ** 1.5  # no two pixels alike
    # Source = output shifted by (0.25, 0.6) px: output (1, 2) samples source index (2.25, 1.6).
    matrix = crop.box_matrix((0.25, 0.6, 5), out_size=5)
    out = crop.warp_image(img, matrix, out_size=5)
    want = (0.75 * 0.4 * img[1, 2] + 0.25 * 0.4 * img[1, 3]
            + 0.75 * 0.6 * img[2, 2] + 0.25 * 0.6 * img[2, 3])  # fmt: skip
    assert out[1, 2] == pytest.approx(want, rel=1e-6)
    assert abs(out[1, 2] - img[1, 2]) > 1.0  # a swapped weight would not give `want`
    np.testing.assert_allclose(out, _bilinear_loop(img, matrix, 5), rtol=1e-5)


@pytest.mark.parametrize("seed", range(3))
def test_warp_matches_loop_reference_under_a_random_affine(seed):
    rng = np.random.default_rng(seed)
    img = rng.uniform(0, 255, (13, 17, 2)).astype(np.float32)
    angle, scale = rng.uniform(-np.pi, np.pi), rng.uniform(0.7, 1.4)
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    matrix = np.array([[c, -s, rng.uniform(0, 6)], [s, c, rng.uniform(-3, 3)], [0, 0, 1]])
    out = crop.warp_image(img, matrix, out_size=11)
    np.testing.assert_allclose(out, _bilinear_loop(img, matrix, 11), rtol=1e-5, atol=1e-3)


def _sample_with_box(image, mask, box):
    """A sample whose keypoints' bounding box is exactly ``box`` (so margin 0 crops ``box``)."""
    u0, v0, side = box
    kp = np.tile([[u0 + side / 2, v0 + side / 2]], (21, 1))
    kp[0], kp[1] = (u0, v0), (u0 + side, v0 + side)
    K = np.array([[100.0, 0, 0], [0, 100.0, 0], [0, 0, 1]])
    xyz = np.concatenate([kp / 100.0, np.ones((21, 1))], axis=1)  # depth 1 m, projects to kp
    return schema.make_sample(id="t/box", image=image, mask=mask, keypoints_2d=kp,
                              keypoints_3d=xyz, K=K)  # fmt: skip


def test_crop_antialiases_a_fine_checkerboard():
    """A one-pixel checkerboard shrunk ~12x is a flat grey; without anti-aliasing it aliases."""
    yy, xx = np.mgrid[:200, :200]
    board = (((yy + xx) % 2) * 255).astype(np.uint8)
    image = np.repeat(board[..., None], 3, axis=-1)
    s = _sample_with_box(image, board > 0, (3.3, 4.1, 190.0))
    c = crop.crop_sample(s, out_size=16, margin=0.0)
    grey = c["image"][..., 0].astype(np.float64)
    # 4 x 4 samples a pixel over a 2-pixel-periodic pattern: every average is 1/2 (up to rounding).
    assert np.abs(grey - 127.5).max() <= 2, np.abs(grey - 127.5).max()
    aliased = crop.crop_sample(s, out_size=16, margin=0.0, antialias=False)
    assert np.abs(aliased["image"][..., 0] - 127.5).max() > 80  # what the test guards against


@pytest.mark.parametrize("box, out_size", [((5.25, 2.75, 24.0), 24), ((4.0, 6.0, 24.0), 12)])
def test_crop_mask_is_the_thresholded_resampled_mask(box, out_size):
    """The cropped mask is exactly (resampled mask >= 1/2): no dilation, no erosion."""
    rng = np.random.default_rng(0)
    mask = np.zeros((36, 40), np.uint8)
    mask[8:25, 10:30] = 1
    mask[rng.uniform(size=mask.shape) < 0.15] ^= 1  # ragged edges and holes
    image = np.zeros((36, 40, 3), np.uint8)
    s = _sample_with_box(image, mask, box)
    s["mask_full"] = mask.copy()
    c = crop.crop_sample(s, out_size=out_size, margin=0.0)
    matrix = crop.box_matrix(box, out_size=out_size)
    np.testing.assert_allclose(c["crop_matrix"], matrix, atol=1e-5)
    n = round(box[2] / out_size)  # the supersampling factor: 2x2 samples for a 2x shrink
    if n == 1:
        soft = _bilinear_loop(mask, matrix, out_size)
    else:
        fine = crop.box_matrix(box, out_size=out_size * n)
        soft = _bilinear_loop(mask, fine, out_size * n)
        soft = soft.reshape(out_size, n, out_size, n).mean(axis=(1, 3))
    assert np.any(np.abs(soft - 0.5) < 0.3)  # many pixels are fractional before the threshold
    want = (soft >= 0.5 - 1e-9).astype(np.uint8)
    np.testing.assert_array_equal(c["mask"], want)
    np.testing.assert_array_equal(c["mask_full"], want)


def test_keypoint_box_defaults_and_limits():
    pts = np.array([[10.0, 20.0], [30.0, 24.0]] + [[20.0, 22.0]] * 19)
    u0, v0, side = crop.keypoint_box(pts)  # default margin 0.25: side = 20 * 1.5
    assert (u0, v0, side) == pytest.approx((5.0, 7.0, 30.0))
    one = np.full((21, 2), np.nan)
    one[3] = (40.0, 50.0)  # a single finite keypoint: a min_side (8 px) box around it
    assert tuple(crop.keypoint_box(one)) == pytest.approx((36.0, 46.0, 8.0))
    with pytest.raises(ValueError, match="^keypoint_box: no valid, finite keypoint"):
        crop.keypoint_box(np.full((21, 2), np.nan))
    with pytest.raises(ValueError, match="^keypoint_box: no valid"):
        crop.keypoint_box(pts, np.zeros(21, bool))


def test_box_matrix_accepts_any_positive_side():
    np.testing.assert_allclose(
        crop.box_matrix((1.0, 2.0, 0.5), out_size=4), [[8, 0, -8], [0, 8, -16], [0, 0, 1]]
    )
    for side in (0.0, -3.0):
        with pytest.raises(ValueError, match="^box: side must be positive, got"):
            crop.box_matrix((1.0, 2.0, side), out_size=4)


def test_crop_transform_defaults_scale_shift_and_a_scaled_K():
    """Defaults crop the keypoint box (margin DEFAULT_MARGIN) with no roll; scale and shift move
    the box as documented; K given up to scale (K[2, 2] = 2) is normalised first."""
    box = (10.0, 20.0, 30.0)
    s = _sample_with_box(np.zeros((80, 80, 3), np.uint8), np.zeros((80, 80), bool), box)
    side = box[2] * (1 + 2 * crop.DEFAULT_MARGIN)
    centre = np.array([25.0, 35.0])
    for K in (s["K"], 2.0 * s["K"]):
        matrix, R, K_crop = crop.crop_transform(dict(s, K=K), out_size=32)
        np.testing.assert_array_equal(R, np.eye(3))
        k = 32 / side
        want = [[k, 0, 16 - k * centre[0]], [0, k, 16 - k * centre[1]], [0, 0, 1]]
        np.testing.assert_allclose(matrix, want, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(K_crop, np.asarray(want) @ s["K"], rtol=1e-12, atol=1e-12)
    matrix, _, _ = crop.crop_transform(s, out_size=32, margin=0.0, scale=2.0, shift=(0.25, -0.5))
    # the box side doubles (60 px) and its centre moves by (0.25, -0.5) of the new side
    k = 32 / 60.0
    new_centre = centre + np.array([0.25, -0.5]) * 60.0
    want = [[k, 0, 16 - k * new_centre[0]], [0, k, 16 - k * new_centre[1]], [0, 0, 1]]
    np.testing.assert_allclose(matrix, want, rtol=1e-12, atol=1e-12)


def test_crop_transform_refuses_a_projective_last_row_naming_the_sample():
    s = _sample_with_box(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), bool), (1.0, 1.0, 4.0))
    K = s["K"].copy()
    K[2] = [0.0, 1.0, 1.0]
    with pytest.raises(
        ValueError, match=r"^t/box: K must have last row \(0, 0, 1\), got \[0\. 1\. 1\.\]$"
    ):
        crop.crop_transform(dict(s, K=K), out_size=8)


@pytest.mark.parametrize("shrink, n", [(1.4, 1), (1.6, 2), (2.4, 2), (2.6, 3), (3.6, 4), (9.0, 4)])
def test_antialiasing_supersamples_round_shrink_capped_at_four(shrink, n):
    """The documented rule: shrinking by more than 1.5x supersamples n x n per output pixel,
    n = min(4, ceil(shrink - 1/2)); checked against warp_image with that n."""
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (160, 160, 3), dtype=np.uint8)
    s = _sample_with_box(image, np.zeros((160, 160), bool), (2.0, 3.0, 16 * shrink))
    c = crop.crop_sample(s, out_size=16, margin=0.0)
    matrix, _, _ = crop.crop_transform(s, out_size=16, margin=0.0)
    want = crop.warp_image(image, matrix, out_size=16, supersample=n)
    np.testing.assert_array_equal(c["image"], np.clip(np.rint(want), 0, 255).astype(np.uint8))
    if n > 1:  # and the rule matters: one sample per pixel gives another image
        plain = crop.warp_image(image, matrix, out_size=16)
        assert np.abs(plain - want).max() > 5


def test_crop_sample_records_its_matrix_and_camera_rotation():
    s = _sample_with_box(np.zeros((40, 40, 3), np.uint8), np.zeros((40, 40), bool), (5, 6, 20))
    c = crop.crop_sample(s, out_size=16, rotation=0.3, scale=1.2)
    matrix, R, K_crop = crop.crop_transform(s, out_size=16, rotation=0.3, scale=1.2)
    c0, s0 = np.cos(0.3), np.sin(0.3)
    np.testing.assert_allclose(
        c["camera_rotation"], [[c0, -s0, 0], [s0, c0, 0], [0, 0, 1]], atol=1e-7
    )
    np.testing.assert_allclose(c["crop_matrix"], matrix, rtol=1e-6)
    np.testing.assert_allclose(c["K"], K_crop, rtol=1e-6)
    assert c["camera_rotation"].dtype == c["crop_matrix"].dtype == np.float32
