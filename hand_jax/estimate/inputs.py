"""The photographs of an estimation job: found, read, checked, cropped, with the crop's intrinsics.

``image_files`` turns the command's ``--images`` into a list of files: comma-separated paths,
globs and folders (a folder gives the image files directly inside it, by extension).
``read_chunk`` reads one chunk of image files (``photos.read_photo``: budgets, EXIF orientation,
every colour mode), cuts the square the network sees (``photos.photo_box``: the given hand box
enlarged by the training margin, or the centred square), mirrors it for a left hand and derives
the crop's intrinsics. A box that lies mostly outside an image is refused for that image (a
mesh estimated on padding would be made up). Images are read one chunk at a time, so the job
holds only one chunk of full-size photographs.

Cameras: a photograph's intrinsics are assumed from a field of view across its longer side
(``fov_deg``, a phone's main camera by default; principal point at the image centre) unless
given (``intrinsics`` = fx, fy, cx, cy in pixels, pixel centres at integer + 0.5).
"""

import glob
import os

import numpy as np

from hand_jax import outputs
from hand_jax.data import crop as crop_lib
from hand_jax.data import schema
from hand_jax.estimate import photos

MIN_BOX_INSIDE = 0.5  # the fraction of a given box's area that must lie inside the image


DEFAULT_FOV_DEG = 65.0  # across the longer side: a phone's main camera (about 26 mm equivalent)


def _folder_images(folder: str) -> list[str]:
    """The image files directly inside ``folder`` (by extension; hidden files left out), sorted."""
    extensions = photos.image_extensions()
    try:
        names = sorted(os.listdir(folder))
    except OSError as err:
        raise ValueError(f"{folder}: cannot list the folder ({err.strerror or err})") from err
    found = [
        os.path.join(folder, name) for name in names
        if not name.startswith(".") and os.path.splitext(name)[1].lower() in extensions
        and os.path.isfile(os.path.join(folder, name))
    ]  # fmt: skip
    if not found:
        kinds = ", ".join(photos.FORMATS)
        raise ValueError(f"{folder}: no image files in the folder (looked for {kinds} by name)")
    return found


def _entry_files(entry: str) -> list[str]:
    if os.path.isdir(entry):
        return _folder_images(entry)
    if os.path.lexists(entry):
        return [entry]  # read (and reported and skipped if it is no image) with the others
    if not glob.has_magic(entry):
        raise ValueError(f"{entry}: no such file or folder")
    matches = sorted(glob.glob(entry))
    files = [p for p in matches if not os.path.isdir(p)]
    if not files:
        only = " (only folders, which a glob leaves out; name a folder itself)" if matches else ""
        raise ValueError(f"{entry}: no files match{only}")
    return files


def image_files(spec: str) -> list[str]:
    """The image files ``spec`` names, in order, each once.

    ``spec`` is one or more comma-separated entries: a file (kept as given; one that is no
    readable image is reported and skipped when read), a folder (its image files by extension,
    ``photos.image_extensions``, sorted, not its subfolders, no hidden files) or a glob (its
    matches, sorted, folders left out). A ``spec`` that is an existing path is one entry even if
    it holds a comma.

    Raises:
      ValueError: naming the entry, for an empty ``spec``, a path that does not exist, a glob
        that matches no file, or a folder without image files.
    """
    entries = [spec] if os.path.lexists(spec) else [e.strip() for e in spec.split(",")]
    if not spec or not all(entries):
        raise ValueError(f"{spec!r}: expected paths, globs or folders separated by commas")
    files = {}
    for entry in entries:
        for path in _entry_files(entry):
            files.setdefault(os.path.normpath(path), path)
    return list(files.values())


def photo_intrinsics(shape, *, fov_deg: float = DEFAULT_FOV_DEG, intrinsics=None) -> np.ndarray:
    """[3, 3] intrinsics of a photograph of ``shape`` (H, W, ...): given, or from a field of view.

    Args:
      shape: the photo's shape.
      fov_deg: field of view across the longer side, degrees (0, 180).
      intrinsics: (fx, fy, cx, cy) pixels, or None.
    """
    if intrinsics is not None:
        fx, fy, cx, cy = (float(x) for x in intrinsics)
        if not (fx > 0 and fy > 0 and np.isfinite([fx, fy, cx, cy]).all()):
            raise ValueError(f"intrinsics: expected fx, fy > 0 and finite cx, cy; got {intrinsics}")
        return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    if not 0.0 < fov_deg < 180.0:
        raise ValueError(f"fov: expected degrees in (0, 180), got {fov_deg}")
    h, w = shape[:2]
    f = 0.5 * max(h, w) / np.tan(np.radians(fov_deg) / 2.0)
    return np.array([[f, 0.0, w / 2.0], [0.0, f, h / 2.0], [0.0, 0.0, 1.0]])


def crop_intrinsics(photo_K, square, *, size: int, mirror: bool) -> np.ndarray:
    """[3, 3] float32 intrinsics of the crop the network sees (mirrored for a left hand)."""
    K = crop_lib.crop_intrinsics(photo_K, square, out_size=size)
    return (schema.mirror_intrinsics(K, size) if mirror else K).astype(np.float32)


def centred_crop_intrinsics(size: int, *, fov_deg: float = 60.0, batch: int = 1) -> np.ndarray:
    """[batch, 3, 3] float32 intrinsics of a square crop of ``size`` px seeing ``fov_deg`` across
    its side, principal point at its centre (benchmarks and probes, where K's values do not
    matter but a perspective network needs one)."""
    f = 0.5 * size / np.tan(np.radians(fov_deg) / 2.0)
    K = np.array([[f, 0.0, size / 2.0], [0.0, f, size / 2.0], [0.0, 0.0, 1.0]], np.float32)
    return np.tile(K, (batch, 1, 1))


def box_inside(box, shape) -> bool:
    """Whether at least ``MIN_BOX_INSIDE`` of the box (x, y, w, h) lies inside an image."""
    x, y, w, h = (float(v) for v in box)
    height, width = shape[:2]
    iw = max(0.0, min(x + w, width) - max(x, 0.0))
    ih = max(0.0, min(y + h, height) - max(y, 0.0))
    return w > 0 and h > 0 and iw * ih >= MIN_BOX_INSIDE * w * h


def read_chunk(paths, start: int, *, box, margin, size, side, camera: dict):
    """Read and crop image files; return (items, skipped {path: reason}).

    Args:
      paths: the chunk's files; ``start`` the index of its first in the whole job (stems).
      box: (x, y, w, h) pixels or None; margin: the training crop margin.
      size: the network's input side; side: ``"right"`` or ``"left"``.
      camera: ``photo_intrinsics`` keywords (``fov_deg``, ``intrinsics``).
    """
    items, skipped = [], {}
    for index, path in enumerate(paths, start):
        try:
            photo = photos.read_photo(path)
        except photos.PhotoError as err:
            skipped[path] = str(err)
            continue
        if box is not None and not box_inside(box, photo.shape):
            skipped[path] = (f"{path}: the box {tuple(box)} lies outside the "
                             f"{photo.shape[1]} x {photo.shape[0]} image")  # fmt: skip
            continue
        square = photos.photo_box(photo.shape, box, margin=margin)
        mirror = side == "left"
        crop = photos.crop_photo(photo, square, size=size, mirror=mirror)
        K = crop_intrinsics(photo_intrinsics(photo.shape, **camera), square, size=size,
                            mirror=mirror)  # fmt: skip
        # What the panels show: the photo as the network saw it (mirrored for a left hand).
        view = photo[:, ::-1] if mirror else photo
        u0, v0, s = square
        square_view = (photo.shape[1] - u0 - s, v0, s) if mirror else square
        name = os.path.basename(path)
        stem = outputs.safe_stem(os.path.splitext(name)[0], index)
        items.append({
            "index": index, "path": path, "name": name, "stem": stem,
            "photo_view": view, "square": square, "square_view": square_view, "crop": crop,
            "side": side, "K": K,
        })  # fmt: skip
    return items, skipped
