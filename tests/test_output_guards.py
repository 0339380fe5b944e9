"""Output folders that cannot eat inputs or foreign files (``hand_jax.outputs``).

Each case was a way to lose a user's files: an output folder that is, holds or lies inside an
input; ``--overwrite`` of a folder the command never wrote; files that appear in the folder while
a command runs.
"""

import json
import os

import pytest

from hand_jax import outputs


def _tree(folder):
    return {os.path.relpath(os.path.join(r, n), folder): open(os.path.join(r, n), "rb").read()
            for r, _, names in os.walk(folder) for n in names}  # fmt: skip


@pytest.mark.parametrize(
    "out, given",
    [("photos", "photos/a.png"), (".", "photos/a.png"), ("photos", "photos"),
     ("photos/out", "photos"), (".", "photos")],
)  # fmt: skip
def test_an_output_folder_overlapping_an_input_is_refused(tmp_path, out, given):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.png").write_bytes(b"mine")
    before = _tree(tmp_path)
    with pytest.raises(ValueError, match="input"):
        with outputs.staged_dir(
            str(tmp_path / out), overwrite=True, inputs=[str(tmp_path / given)]
        ):
            pass
    assert _tree(tmp_path) == before


def test_a_file_input_inside_the_output_is_refused_but_a_sibling_is_fine(tmp_path):
    (tmp_path / "in.npz").write_bytes(b"x")
    with pytest.raises(ValueError, match="input"):
        outputs.check_out_dir(str(tmp_path), overwrite=True, inputs=[str(tmp_path / "in.npz")])
    outputs.check_out_dir(str(tmp_path / "out"), overwrite=False, inputs=[str(tmp_path / "in.npz")])


def test_the_package_is_never_an_output(tmp_path):
    package = os.path.dirname(os.path.abspath(outputs.__file__))
    for out in (package, os.path.join(package, "assets"), os.path.dirname(package)):
        with pytest.raises(ValueError, match="package"):
            outputs.check_out_dir(out, overwrite=True)


def test_overwrite_replaces_only_a_folder_of_its_own_results(tmp_path):
    out = tmp_path / "out"
    with outputs.staged_dir(str(out), overwrite=False) as tmp:
        open(os.path.join(tmp, "result.txt"), "w").write("1")
    assert json.load(open(out / outputs.OWNED)) == ["result.txt"]
    with outputs.staged_dir(str(out), overwrite=True) as tmp:  # its own files: replaced
        open(os.path.join(tmp, "result.txt"), "w").write("2")
    assert (out / "result.txt").read_text() == "2"
    (out / "thesis.tex").write_text("years of work")
    with pytest.raises(FileExistsError, match="thesis.tex"):
        outputs.check_out_dir(str(out), overwrite=True)
    assert (out / "thesis.tex").read_text() == "years of work"


def test_files_that_appear_during_a_run_stop_the_swap(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(FileExistsError, match="kept in") as info:
        with outputs.staged_dir(str(out), overwrite=False) as tmp:
            open(os.path.join(tmp, "result.txt"), "w").write("new")
            out.mkdir()
            (out / "late.txt").write_text("someone else's")
    assert (out / "late.txt").read_text() == "someone else's"
    staging = str(info.value).rsplit("kept in ", 1)[1]
    assert open(os.path.join(staging, "result.txt")).read() == "new"
