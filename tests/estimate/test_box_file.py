"""Hand boxes per image from a JSON or CSV file, and reading the hands in them."""

import json
import os

import imageio.v3 as iio
import numpy as np
import pytest

from hand_jax.detector import hands, shipped
from hand_jax.estimate import box_file, detected

SAMPLES = os.path.join(shipped.MODEL_DIR, "..", "..", "samples")


def test_json_and_csv_give_the_same_boxes_keyed_by_real_path(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    entries = [{"image": "a.png", "box": [1, 2, 30, 40], "side": "left"},
               {"image": "a.png", "box": [50, 60, 10, 20]}]  # fmt: skip
    (tmp_path / "b.json").write_text(json.dumps(entries))
    (tmp_path / "b.csv").write_text(
        "image,x,y,w,h,side\na.png,1,2,30,40,left\na.png,50,60,10,20,\n"
    )
    want = {
        os.path.realpath(tmp_path / "a.png"): [((1, 2, 30, 40), "left"), ((50, 60, 10, 20), None)]
    }
    assert box_file.read_boxes(str(tmp_path / "b.json")) == want
    assert box_file.read_boxes(str(tmp_path / "b.csv")) == want


@pytest.mark.parametrize(
    "name, text, match",
    [("b.json", "{}", "JSON list"), ("b.json", "[{\"image\": 3}]", "entry 0"),
     ("b.json", "[{\"image\": \"a\", \"box\": [1, 2, 3]}]", r"\[x, y, w, h\]"),
     ("b.csv", "a.png,1,2,3\n", "line 1"), ("b.csv", "a.png,1,2,0,4\n", "w, h > 0"),
     ("b.csv", "a.png,1,2,nan,4\n", "finite"), ("b.csv", "a.png,1,2,3,4,up\n", "side"),
     ("b.csv", "a.png,x,2,3,4\n", "four numbers"), ("b.csv", "image,x,y,w,h\n", "no boxes"),
     ("b.json", "[oops", "not JSON")],
)  # fmt: skip
def test_bad_files_are_refused_naming_the_file(tmp_path, name, text, match):
    (tmp_path / name).write_text(text)
    with pytest.raises(ValueError, match=match) as info:
        box_file.read_boxes(str(tmp_path / name))
    assert name in str(info.value)


def test_each_boxed_hand_is_read_with_its_side(tmp_path):
    sample = iio.imread(os.path.join(SAMPLES, "sample_3.png"))[..., :3]
    canvas = np.full((220, 420, 3), 90, np.uint8)
    canvas[10:202, 10:202], canvas[10:202, 220:412] = sample, sample[:, ::-1]
    iio.imwrite(tmp_path / "two.png", canvas)
    path = str(tmp_path / "two.png")
    boxes = {os.path.realpath(path): [((40, 40, 130, 150), "left"), ((250, 40, 130, 150), None)]}
    fns = hands.make_detect_fn(hands.load_detector())
    items, skipped = detected.read_chunk(
        [path], 0, detect_fns=fns, box=None, side=None, margin=0.25, size=64,
        camera={"fov_deg": 65.0}, max_hands=2, mask_size=16, batch_size=2, boxes=boxes,
    )  # fmt: skip
    assert skipped == {} and [it["stem"] for it in items] == ["00000_two_hand0", "00000_two_hand1"]
    # The file's side wins over the detector's (a right hand read as left); without one, the
    # detector's (the mirrored sample is a left hand).
    assert items[0]["side"] == "left" and items[1]["side"] == "left"
    assert items[0]["detection"]["right_score"] > 0.5
    for it, x0 in zip(items, (10, 220), strict=True):  # each crop is around its own hand
        u0, v0, side = it["square"]
        assert x0 - 40 < u0 + side / 2 < x0 + 232
