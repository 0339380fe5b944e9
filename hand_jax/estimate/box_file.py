"""Per-image hand boxes from a file (``launch.estimate --boxes=FILE``).

JSON: a list of ``{"image": path, "box": [x, y, w, h], "side": "left" | "right"}`` objects
(``side`` optional: the detector's handedness). CSV: one hand per row, ``image,x,y,w,h[,side]``,
an optional header row starting with ``image``. Boxes are pixels of the image as stored (after
its EXIF orientation). An ``image`` that is not absolute is relative to the boxes file's folder;
it names the image the same way ``--images`` does, compared by real path. Several rows may name
one image (several hands).
"""

import csv
import io
import json
import math
import os

__all__ = ["MAX_BYTES", "read_boxes"]

MAX_BYTES = 4 << 20
SIDES = ("left", "right")


def _entry(raw, where: str) -> tuple[str, tuple, str | None]:
    if not isinstance(raw, dict) or not isinstance(raw.get("image"), str):
        raise ValueError(f"{where}: expected an object with an 'image' path")
    box, side = raw.get("box"), raw.get("side")
    if not isinstance(box, list) or len(box) != 4:
        raise ValueError(f"{where}: 'box' must be [x, y, w, h]")
    return raw["image"], tuple(box), side


def _rows(text: str, path: str):
    if path.lower().endswith(".json"):
        try:
            data = json.loads(text)
        except ValueError as err:
            raise ValueError(f"{path}: not JSON ({err})") from err
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a JSON list of boxes")
        return [_entry(d, f"{path}: entry {i}") for i, d in enumerate(data)]
    rows = []
    for i, row in enumerate(csv.reader(io.StringIO(text))):
        if not row or (i == 0 and row[0].strip().lower() == "image"):
            continue
        if len(row) not in (5, 6):
            raise ValueError(f"{path}: line {i + 1}: expected image,x,y,w,h[,side]")
        rows.append((row[0].strip(), tuple(row[1:5]), row[5].strip() if len(row) == 6 else None))
    return rows


def _checked(box, side, where: str) -> tuple[tuple[float, ...], str | None]:
    try:
        values = tuple(float(v) for v in box)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: the box {box!r} is not four numbers") from None
    if not all(math.isfinite(v) for v in values) or values[2] <= 0 or values[3] <= 0:
        raise ValueError(f"{where}: the box {values} needs finite values and w, h > 0")
    if side not in (None, "", *SIDES):
        raise ValueError(f"{where}: side {side!r} is not 'left' or 'right'")
    return values, side or None


def read_boxes(path: str) -> dict[str, list[tuple[tuple[float, ...], str | None]]]:
    """Real image path -> its hands' ``(box (x, y, w, h), side or None)`` in file order.

    Raises:
      ValueError: naming the file (and the entry or line) for anything malformed.
    """
    try:
        if os.path.getsize(path) > MAX_BYTES:
            raise ValueError(f"{path}: larger than {MAX_BYTES:,} bytes; not a boxes file")
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot read the boxes file ({err})") from err
    folder = os.path.dirname(os.path.abspath(path))
    boxes = {}
    for i, (image, box, side) in enumerate(_rows(text, path)):
        values = _checked(box, side, f"{path}: entry {i} ({image})")
        real = os.path.realpath(os.path.join(folder, image))
        boxes.setdefault(real, []).append(values)
    if not boxes:
        raise ValueError(f"{path}: holds no boxes")
    return boxes
