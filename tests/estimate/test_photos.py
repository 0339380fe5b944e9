"""Reading a user's images, the crop the network sees, and mirroring for left hands."""

import imageio.v3 as iio
import numpy as np
import pytest

from hand_jax.estimate import photos


def test_reads_and_converts_common_image_kinds(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    iio.imwrite(tmp_path / "rgb.png", rgb)
    np.testing.assert_array_equal(photos.read_photo(str(tmp_path / "rgb.png")), rgb)
    gray = rgb[..., 0]
    iio.imwrite(tmp_path / "gray.png", gray)
    np.testing.assert_array_equal(
        photos.read_photo(str(tmp_path / "gray.png")), np.stack([gray] * 3, -1)
    )
    rgba = np.concatenate([rgb, np.full((20, 30, 1), 0, np.uint8)], -1)
    rgba[:10, :, 3] = 255  # top half opaque, bottom half transparent -> white
    iio.imwrite(tmp_path / "rgba.png", rgba)
    got = photos.read_photo(str(tmp_path / "rgba.png"))
    np.testing.assert_array_equal(got[:10], rgb[:10])
    np.testing.assert_array_equal(got[10:], 255)
    deep = gray.astype(np.uint16) * 257  # 16-bit gray: 255 * 257 = 65535
    iio.imwrite(tmp_path / "deep.png", deep)
    np.testing.assert_array_equal(
        photos.read_photo(str(tmp_path / "deep.png")), np.stack([gray] * 3, -1)
    )


def test_bad_files_name_the_file(tmp_path):
    with pytest.raises(photos.PhotoError, match="missing.png: no such file"):
        photos.read_photo(str(tmp_path / "missing.png"))
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    with pytest.raises(photos.PhotoError, match="junk.png: not a readable image"):
        photos.read_photo(str(tmp_path / "junk.png"))
    iio.imwrite(tmp_path / "tiny.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(photos.PhotoError, match="tiny.png: image"):
        photos.read_photo(str(tmp_path / "tiny.png"))


def test_boxes():
    # shape is (H, W): a tall image keeps its full width, a wide one its full height.
    assert photos.photo_box((100, 60), None, margin=0.2) == (0.0, 20.0, 60.0)
    assert photos.photo_box((60, 100), None, margin=0.2) == (20.0, 0.0, 60.0)
    # A 40 x 20 box centred at (30, 40): side 40 * 1.4 = 56 around the same centre.
    u0, v0, side = photos.photo_box((100, 100), (10, 30, 40, 20), margin=0.2)
    assert side == pytest.approx(56.0) and (u0 + side / 2, v0 + side / 2) == pytest.approx((30, 40))
    assert photos.parse_box("1,2,3,4") == (1.0, 2.0, 3.0, 4.0)
    for bad in ("1,2,3", "a,b,c,d", "1,2,0,4", "1,2,nan,4"):
        with pytest.raises(ValueError, match="--box"):
            photos.parse_box(bad)


def test_crop_and_back_to_image_pixels():
    # A bright dot at image pixel (37, 21): in the crop of the square (30, 10, 16) at 32 px it
    # is at ((37.5 - 30) * 2, (21.5 - 10) * 2) = (15, 23) (pixel centres at + 0.5).
    image = np.zeros((50, 60, 3), np.uint8)
    image[21, 37] = 255
    square = (30.0, 10.0, 16.0)
    out = photos.crop_photo(image, square, size=32)
    v, u = np.unravel_index(np.argmax(out[..., 0]), out.shape[:2])
    assert (u, v) in {(14, 22), (15, 22), (14, 23), (15, 23)}
    np.testing.assert_allclose(
        photos.to_image(np.array([[15.0, 23.0]]), square, size=32), [[37.5, 21.5]]
    )
    mirrored = photos.crop_photo(image, square, size=32, mirror=True)
    np.testing.assert_array_equal(mirrored, out[:, ::-1])


def test_mirroring_is_a_reflection():
    kp = np.array([[1.0, 2.0], [30.5, 4.0]])
    np.testing.assert_allclose(photos.mirror_points_2d(kp, size=32), [[31.0, 2.0], [1.5, 4.0]])
    np.testing.assert_allclose(
        photos.mirror_points_2d(photos.mirror_points_2d(kp, size=32), size=32), kp
    )
    # Axis-angle mirroring is conjugation by diag(-1, 1, 1): check on rotation matrices.
    from hand_jax.geometry import rotations

    aa = np.array([0.3, -0.7, 0.4])
    flip = np.diag([-1.0, 1.0, 1.0])
    want = flip @ np.asarray(rotations.axis_angle_to_matrix(aa)) @ flip
    got = np.asarray(rotations.axis_angle_to_matrix(photos.mirror_axis_angle(aa)))
    np.testing.assert_allclose(got, want, atol=1e-6)
    q = np.array([0.9, 0.1, -0.3, 0.2])
    q /= np.linalg.norm(q)
    got = np.asarray(rotations.quaternion_to_matrix(photos.mirror_quaternion(q)))
    want = flip @ np.asarray(rotations.quaternion_to_matrix(q)) @ flip
    np.testing.assert_allclose(got, want, atol=1e-6)
