"""The estimation command's start: which files ``--images`` names, its one-line refusals, the
compilation cache folder and turning it on, and jax's backend probe kept out of the log.

Nothing here compiles a network: the launcher's ``main`` runs in this process with ``job.run``
replaced by a stub, or stops before the job (a refusal).
"""

import logging

import jax
import numpy as np
import pytest
from absl import flags
from absl.testing import flagsaver
from PIL import Image

from hand_jax import compile_cache
from hand_jax.estimate import inputs, job, photos
from launch import estimate as launcher

CACHE_CONFIG = (
    "jax_compilation_cache_dir",
    "jax_persistent_cache_min_compile_time_secs",
    "jax_persistent_cache_min_entry_size_bytes",
)


def _image(path) -> str:
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(path)
    return str(path)


@pytest.fixture()
def jax_cache_config():
    """Restore jax's cache settings and its loggers' levels after a test changes them."""
    before = {name: getattr(jax.config, name) for name in CACHE_CONFIG}
    loggers = [logging.getLogger(name) for name in ("jax", "jax._src.xla_bridge")]
    levels = [logger.level for logger in loggers]
    yield
    for name, value in before.items():
        jax.config.update(name, value)
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


def _main(*args):
    """Run the launcher's main in this process on ``args`` (flags restored afterwards)."""
    with flagsaver.flagsaver():
        flags.FLAGS.unparse_flags()
        flags.FLAGS(["launch.estimate", *args])
        launcher.main(["launch.estimate"])


@pytest.fixture()
def stub_run(monkeypatch):
    """Replace the job by a stub that records its arguments and jax's cache folder."""
    seen = {}

    def run(**kw):
        seen.update(kw, cache_dir=jax.config.jax_compilation_cache_dir)
        return {"num_images": len(kw["paths"]), "crop": "c", "skipped": {}, "wall_s": 0.0}

    monkeypatch.setattr(job, "run", run)
    return seen


# --images


def test_a_folder_gives_its_image_files_sorted_without_subfolders_or_hidden_files(tmp_path):
    want = [_image(tmp_path / "a.JPG"), _image(tmp_path / "b.png"), _image(tmp_path / "c.tif")]
    _image(tmp_path / ".hidden.png")
    (tmp_path / "notes.txt").write_text("not a photo")
    (tmp_path / "sub.png").mkdir()  # a folder with an image's name
    _image(tmp_path / "sub.png" / "deeper.png")
    assert inputs.image_files(str(tmp_path)) == want


def test_comma_separated_entries_keep_their_order_and_name_each_file_once(tmp_path):
    (tmp_path / "d").mkdir()
    folder = [_image(tmp_path / "d" / "1.png"), _image(tmp_path / "d" / "2.png")]
    globbed = [_image(tmp_path / "g1.png"), _image(tmp_path / "g2.png")]
    single = _image(tmp_path / "z.jpg")
    spec = f"{single}, {tmp_path}/g*.png,{tmp_path / 'd'},{folder[1]}"
    assert inputs.image_files(spec) == [single, *globbed, *folder]


def test_a_path_holding_a_comma_is_one_entry(tmp_path):
    path = _image(tmp_path / "hand, left.png")
    assert inputs.image_files(path) == [path]


def test_a_named_file_that_is_no_image_is_kept_for_the_job_to_report(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    assert inputs.image_files(str(tmp_path / "notes.txt")) == [str(tmp_path / "notes.txt")]


@pytest.mark.parametrize(
    "spec, match",
    [("{t}/*.png", r"\*.png: no files match"), ("{t}/missing.jpg", "missing.jpg: no such file"),
     ("{t}/empty", "empty: no image files in the folder"),
     ("{t}/only_dirs*", "only folders"), ("", "expected paths"), ("{t}/x.png,,", "expected")],
)  # fmt: skip
def test_entries_that_name_no_image_are_refused_naming_them(tmp_path, spec, match):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    (tmp_path / "only_dirs_1").mkdir()
    with pytest.raises(ValueError, match=match):
        inputs.image_files(spec.format(t=tmp_path))


def test_an_unreadable_image_says_so_naming_the_file_once(tmp_path):
    (tmp_path / "text.jpg").write_text("hello")
    (tmp_path / "empty.png").write_bytes(b"")
    for name, why in (("text.jpg", "contents not recognised as JPEG, PNG"), ("empty.png", "empty")):
        with pytest.raises(photos.PhotoError) as info:
            photos.read_photo(str(tmp_path / name))
        message = str(info.value)
        assert message.startswith(f"{tmp_path / name}: not a readable image (") and why in message
        assert message.count(name) == 1 and "cannot identify" not in message


# The compilation cache


def test_the_cache_folder_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HAND_JAX_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    home_cache = str(tmp_path / "home" / ".cache" / "hand_jax" / "jax")
    assert compile_cache.default_dir() == home_cache
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")  # the XDG spec: absolute only
    assert compile_cache.default_dir() == home_cache
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compile_cache.default_dir() == str(tmp_path / "xdg" / "hand_jax" / "jax")
    monkeypatch.setenv("HAND_JAX_CACHE", str(tmp_path / "mine"))  # over XDG_CACHE_HOME
    assert compile_cache.default_dir() == str(tmp_path / "mine")
    monkeypatch.setenv("HAND_JAX_CACHE", "")
    assert compile_cache.default_dir() is None


def test_enable_keeps_every_program_in_the_folder(tmp_path, jax_cache_config):
    assert compile_cache.enable("") is None and compile_cache.enable(None) is None
    assert jax.config.jax_compilation_cache_dir != str(tmp_path / "c")
    assert compile_cache.enable(str(tmp_path / "c")) == str(tmp_path / "c")
    assert (tmp_path / "c").is_dir()
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "c")
    assert jax.config.jax_persistent_cache_min_compile_time_secs == 0.0
    assert jax.config.jax_persistent_cache_min_entry_size_bytes == -1


def test_a_folder_that_cannot_be_made_leaves_the_cache_off(tmp_path, jax_cache_config, caplog):
    (tmp_path / "file").write_text("x")
    with caplog.at_level(logging.WARNING):
        assert compile_cache.enable(str(tmp_path / "file" / "cache")) is None
    assert "compilation cache off" in caplog.text
    assert jax.config.jax_compilation_cache_dir != str(tmp_path / "file" / "cache")


@pytest.mark.parametrize("flag, env, want", [
    (None, "env", "env"), ("--compile_cache={t}/flag", "env", "flag"),
    ("--compile_cache=", "env", None), (None, "", None),
])  # fmt: skip
def test_the_launcher_turns_the_cache_on_before_the_job(
    tmp_path, monkeypatch, jax_cache_config, stub_run, flag, env, want
):
    monkeypatch.setenv("HAND_JAX_CACHE", str(tmp_path / env) if env else "")
    jax.config.update("jax_compilation_cache_dir", None)
    args = [f"--out_dir={tmp_path / 'out'}", f"--images={_image(tmp_path / 'a.png')}"]
    _main(*args, *([flag.format(t=tmp_path)] if flag else []))
    assert stub_run["cache_dir"] == (str(tmp_path / want) if want else None)
    assert stub_run["paths"] == [str(tmp_path / "a.png")]


# One-line refusals and the backend probe


def _refusal(capsys, *args) -> str:
    with pytest.raises(SystemExit) as info:
        _main(*args)
    assert info.value.code not in (0, None)
    message = str(info.value.code)
    assert message.startswith("launch.estimate: error: ") and "\n" not in message
    return message


def test_refusals_are_one_line_and_stop_before_the_job(tmp_path, capsys, stub_run):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    image = _image(tmp_path / "a.png")
    assert "not empty" in _refusal(capsys, f"--out_dir={out}", f"--images={image}")
    assert "no files match" in _refusal(
        capsys, f"--out_dir={tmp_path}/o", f"--images={tmp_path}/*.jpg"
    )
    assert "no such file" in _refusal(capsys, f"--out_dir={tmp_path}/o", "--images=nothere.png")
    assert not stub_run and (out / "mine.txt").read_text() == "keep"


def test_a_run_that_estimated_nothing_fails_naming_why(tmp_path, capsys, monkeypatch):
    def nothing(**kw):
        raise job.NothingEstimatedError("no image estimated, all 1 skipped (a.png: why)", {})

    monkeypatch.setattr(job, "run", nothing)
    image = _image(tmp_path / "a.png")
    message = _refusal(capsys, f"--out_dir={tmp_path}/o", f"--images={image}", "--compile_cache=")
    assert "all 1 skipped (a.png: why)" in message


@pytest.mark.parametrize("verbosity, quiet", [(None, True), ("--verbosity=0", False)])
def test_the_backend_probe_is_kept_out_of_the_log(
    tmp_path, jax_cache_config, stub_run, verbosity, quiet
):
    # absl shows INFO by default, and jax logs "Unable to initialize backend 'tpu'" at INFO on
    # every machine without one; its warnings (a GPU present but unused) must stay.
    probe = logging.getLogger("jax._src.xla_bridge")
    probe.setLevel(logging.NOTSET)
    logging.getLogger("jax").setLevel(logging.INFO)  # as under absl's default verbosity
    args = [f"--out_dir={tmp_path}/o", f"--images={_image(tmp_path / 'a.png')}",
            "--compile_cache="]  # fmt: skip
    _main(*args, *([verbosity] if verbosity else []))
    assert probe.isEnabledFor(logging.INFO) is not quiet  # asked for with --verbosity
    assert probe.isEnabledFor(logging.WARNING)
