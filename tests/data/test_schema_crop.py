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
