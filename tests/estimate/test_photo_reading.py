"""Reading photographs safely: budgets before bytes, first frames, EXIF, every mode, no hangs.

Each test fails on the reader that decoded whole files with ``imageio.v3.imread``: a huge but
tiny-on-disk PNG was decoded (gigabytes), every frame of an animated GIF was decoded, EXIF
orientation was ignored, a CMYK JPEG came out white (K read as alpha), 32-bit integer images
were refused, and opening a FIFO blocked forever. Memory is measured with ``tracemalloc``, which
sees numpy's allocations (the decoded arrays) but not Pillow's own.
"""

import os
import struct
import threading
import time
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from hand_jax.estimate import photos
from tests.npz_helpers import traced_peak


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _write_big_png(path, width: int, height: int) -> None:
    """A valid 8-bit RGB PNG of ``width`` x ``height`` black pixels, streamed row by row."""
    packer, row = zlib.compressobj(9), bytes(1 + 3 * width)  # filter byte + RGB
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)))
        data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
        f.write(_chunk(b"IDAT", data) + _chunk(b"IEND", b""))


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_huge_png_is_refused_from_its_header(tmp_path):
    # 12000 x 12000 (144 Mpx, under Pillow's 179 Mpx guard) but 0.4 MB on disk: decoding it
    # would take 0.4 GB as uint8 RGB and several GB in the old float conversions.
    path = str(tmp_path / "huge.png")
    _write_big_png(path, 12000, 12000)
    assert os.path.getsize(path) < 1_000_000
    start = time.perf_counter()
    out, peak = traced_peak(lambda: photos.read_photo(path))
    assert isinstance(out, photos.PhotoError), out
    assert "huge.png: 12000 x 12000 pixels (144.0 Mpx) is over the budget of 50 Mpx" in str(out)
    assert peak < 5_000_000 and time.perf_counter() - start < 2.0


def test_the_budget_is_a_keyword(tmp_path):
    path = str(tmp_path / "small.png")
    Image.new("RGB", (100, 50), (10, 20, 30)).save(path)
    with pytest.raises(photos.PhotoError, match="small.png: 100 x 50 pixels .* budget of 0.004"):
        photos.read_photo(path, max_pixels=4000)
    assert photos.read_photo(path, max_pixels=5000).shape == (50, 100, 3)


def test_animated_gif_decodes_its_first_frame_only(tmp_path):
    # 40 frames of 1000 x 1000: all of them decoded is 120 MB as RGB, the first one 3 MB.
    path = str(tmp_path / "anim.gif")
    frames = [Image.new("P", (1000, 1000), i % 4) for i in range(40)]
    for frame in frames:
        frame.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9] + [0] * 756)
    frames[0].paste(1, (0, 0, 500, 1000))  # left half green, right half red
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=40)
    assert os.path.getsize(path) < 200_000
    out, peak = traced_peak(lambda: photos.read_photo(path))
    assert out.shape == (1000, 1000, 3)
    np.testing.assert_array_equal(out[:, :500], np.broadcast_to([0, 255, 0], (1000, 500, 3)))
    np.testing.assert_array_equal(out[:, 500:], np.broadcast_to([255, 0, 0], (1000, 500, 3)))
    assert peak < 20_000_000


def _quadrants(height=40, width=64):
    """An RGB image with four flat quadrants (red, green / blue, white), JPEG-friendly."""
    image = np.zeros((height, width, 3), np.uint8)
    image[: height // 2, : width // 2] = (220, 30, 30)
    image[: height // 2, width // 2 :] = (30, 200, 40)
    image[height // 2 :, : width // 2] = (20, 40, 210)
    image[height // 2 :, width // 2 :] = (250, 250, 250)
    return image


def test_exif_orientation_is_applied(tmp_path):
    # Orientation 6: the stored pixels must be turned 90 degrees clockwise to stand upright.
    source = _quadrants()
    exif = Image.Exif()
    exif[0x0112] = 6
    path = str(tmp_path / "phone.jpg")
    Image.fromarray(source).save(path, quality=95, exif=exif)
    out = photos.read_photo(path)
    assert out.shape == (64, 40, 3)
    upright = np.rot90(source, k=-1)
    assert np.abs(out.astype(int) - upright).mean() < 4


def test_cmyk_jpeg_keeps_its_colours(tmp_path):
    source = _quadrants()
    path = str(tmp_path / "print.jpg")
    Image.fromarray(source).convert("CMYK").save(path, quality=95)
    assert Image.open(path).mode == "CMYK"
    out = photos.read_photo(path)
    error = np.abs(out.astype(int) - source)
    assert error.mean() < 4 and np.percentile(error, 95) < 16


def test_every_mode_becomes_rgb(tmp_path):
    gray = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (12, 1))  # [12, 16]
    want = np.stack([gray] * 3, -1)
    cases = {
        "one_bit.png": (Image.fromarray(gray >= 128), np.where(want >= 128, 255, 0)),
        "i32.tif": (Image.fromarray(gray.astype(np.int32)), want),  # 0..255 stays 0..255
        "i32_16bit.tif": (Image.fromarray(gray.astype(np.int32) * 257), want),
        "i16.png": (Image.fromarray(gray.astype(np.uint16) * 257), want),
        "float.tif": (Image.fromarray(gray.astype(np.float32) / 255.0), want),
    }
    for name, (image, expected) in cases.items():
        image.save(tmp_path / name)
        np.testing.assert_array_equal(photos.read_photo(str(tmp_path / name)), expected, name)


def test_transparency_is_composited_over_white(tmp_path):
    palette = Image.new("P", (16, 12), 0)
    palette.putpalette([0, 0, 0, 200, 10, 10] + [0] * 762)
    palette.paste(1, (0, 0, 8, 12))  # left half red, right half index 0: transparent
    palette.save(tmp_path / "palette.png", transparency=0)
    out = photos.read_photo(str(tmp_path / "palette.png"))
    np.testing.assert_array_equal(out[:, :8], np.broadcast_to([200, 10, 10], (12, 8, 3)))
    np.testing.assert_array_equal(out[:, 8:], 255)
    la = np.zeros((12, 16, 2), np.uint8)
    la[..., 0], la[:, :8, 1] = 40, 255  # left half opaque gray 40, right half transparent
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    out = photos.read_photo(str(tmp_path / "la.png"))
    np.testing.assert_array_equal(out[:, :8], 40)
    np.testing.assert_array_equal(out[:, 8:], 255)


def test_fifo_is_refused_without_opening_it(tmp_path):
    path = str(tmp_path / "pipe.png")
    os.mkfifo(path)
    result = {}
    reader = threading.Thread(target=lambda: result.update(out=_call(photos.read_photo, path)))
    reader.daemon = True
    reader.start()
    reader.join(timeout=10)
    if reader.is_alive():  # the reader blocks in open(): give it a writer so the thread ends
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("read_photo blocked on a FIFO")
    assert isinstance(result["out"], photos.PhotoError)
    assert "pipe.png: not a regular file" in str(result["out"])
    with pytest.raises(photos.PhotoError, match=f"{tmp_path}: not a regular file .a directory"):
        photos.read_photo(str(tmp_path))


def _call(fn, *args):
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 - returned for the test to check
        return e


def test_decoder_failures_are_photo_errors_naming_the_file(tmp_path, monkeypatch):
    path = str(tmp_path / "ok.png")
    Image.new("RGB", (20, 20)).save(path)
    with open(path, "rb") as f:
        blob = f.read()
    (tmp_path / "cut.png").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(photos.PhotoError, match="cut.png: not a readable image"):
        photos.read_photo(str(tmp_path / "cut.png"))

    def out_of_memory(self):
        raise MemoryError

    monkeypatch.setattr(ImageFile.ImageFile, "load", out_of_memory)
    with pytest.raises(photos.PhotoError, match="ok.png: out of memory"):
        photos.read_photo(path)
    monkeypatch.undo()
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 400 px > 2 x 100: Pillow's bomb error
    with pytest.raises(photos.PhotoError, match="ok.png: over Pillow's decompression-bomb"):
        photos.read_photo(path, max_pixels=10**9)
