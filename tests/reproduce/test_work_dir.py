"""The reproduction's work folder: only an empty folder or a study's own; bad markers are none."""

import json
import os

import pytest

from hand_jax import reproduce
from hand_jax.reproduce import stages


def test_a_foreign_non_empty_folder_is_refused_and_left_alone(tmp_path):
    (tmp_path / "thesis.tex").write_text("mine")
    for create in (True, False):  # a dry run is refused as well
        with pytest.raises(ValueError, match="not a study's work folder"):
            reproduce.check_work_dir(str(tmp_path), create=create)
    assert os.listdir(tmp_path) == ["thesis.tex"]


def test_a_new_folder_is_marked_and_then_accepted(tmp_path):
    work = tmp_path / "w"
    reproduce.check_work_dir(str(work), create=False)  # dry run: nothing made
    assert not work.exists()
    reproduce.check_work_dir(str(work))
    assert (work / reproduce.STUDY_MARKER).is_file()
    (work / "runs").mkdir()
    reproduce.check_work_dir(str(work))  # its own, now non-empty: accepted


def test_a_work_folder_from_before_the_marker_is_accepted(tmp_path):
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "data.json").write_text("{}")
    reproduce.check_work_dir(str(tmp_path))
    assert (tmp_path / reproduce.STUDY_MARKER).is_file()


@pytest.mark.parametrize("text", ["[1, 2]", "3", "null", '"done"', "\udcff"])
def test_a_marker_that_is_not_an_object_counts_as_none(tmp_path, text):
    runner = stages.Runner(str(tmp_path), roots=[str(tmp_path)])
    path = runner._marker_path("train/seed0")
    with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write(text)
    assert runner.marker("train/seed0") is None
    with open(path, "w") as f:
        json.dump({"key": "k"}, f)
    assert runner.marker("train/seed0") == {"key": "k"}
