"""--overwrite never destroys previous results before a run has succeeded.

``make_synthetic`` (library and command line) and the demo validate their inputs first and write
into a temporary sibling folder swapped in only when complete: a missing model, a bad argument
or an exception half-way leaves the previous folder byte for byte as it was.
"""

import os
import subprocess
import sys

import pytest

from hand_jax import demo, mano, mesh_io
from hand_jax.data import synthetic, synthetic_gen

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = synthetic_gen.GeneratorConfig(image_size=16, supersample=1, chunk=2)


def _old_dataset(folder):
    folder.mkdir()
    (folder / synthetic.MANIFEST).write_text('{"old": true}')
    (folder / synthetic.shard_name("train", 0, 1)).write_bytes(b"old shard")
    (folder / "notes.txt").write_text("mine")
    return _snapshot(folder)


def _snapshot(folder):
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(model_path="/no/such/MANO_RIGHT.pkl"), FileNotFoundError, "no such hand model"),
        (dict(shard_size=0), ValueError, "shard_size=0"),
        (dict(splits={"train": -1}), ValueError, r"splits\['train'\]=-1"),
        (dict(seed=-3), ValueError, "seed=-3"),
        (dict(splits={"training": 1}), ValueError, "unknown split 'training'"),
    ],
)
def test_bad_inputs_with_overwrite_keep_the_old_dataset(tmp_path, kwargs, error, match):
    out = tmp_path / "synth"
    before = _old_dataset(out)
    args = dict(splits={"train": 1}, seed=0, config=TINY, overwrite=True, progress=False)
    with pytest.raises(error, match=match):
        synthetic_gen.generate_dataset(str(out), **{**args, **kwargs})
    assert _snapshot(out) == before
    assert sorted(os.listdir(tmp_path)) == ["synth"]  # no staging folder left behind


@pytest.mark.parametrize("image_size", [0, 4, 100_000])
def test_bad_image_size_is_refused(image_size):
    with pytest.raises(ValueError, match=f"image_size={image_size}"):
        synthetic_gen.GeneratorConfig(image_size=image_size)


def test_exception_mid_write_keeps_the_old_dataset(tmp_path, monkeypatch):
    out = tmp_path / "synth"
    before = _old_dataset(out)
    calls = []
    write_shard = synthetic.write_shard

    def fail_on_second(path, samples, indices):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt  # an interrupted run, half-way through
        write_shard(path, samples, indices)

    monkeypatch.setattr(synthetic, "write_shard", fail_on_second)
    with pytest.raises(KeyboardInterrupt):
        synthetic_gen.generate_dataset(
            str(out), splits={"train": 2}, seed=0, config=TINY, shard_size=1, overwrite=True,
            sheet_count=0, progress=False,
        )  # fmt: skip
    assert len(calls) == 2 and not calls[0].startswith(str(out) + os.sep)  # written aside
    assert _snapshot(out) == before
    assert sorted(os.listdir(tmp_path)) == ["synth"]
    monkeypatch.setattr(synthetic, "write_shard", write_shard)
    synthetic_gen.generate_dataset(
        str(out), splits={"train": 2}, seed=0, config=TINY, shard_size=1, overwrite=True,
        sheet_count=0, progress=False,
    )  # fmt: skip
    assert len(synthetic.load(str(out), "train")) == 2
    assert (out / "notes.txt").read_text() == "mine"  # a user's file beside the data is kept
    assert sorted(os.listdir(tmp_path)) == ["synth"]


@pytest.mark.parametrize(
    "flag, match",
    [("--mano_path=/no/such/MANO_RIGHT.pkl", "no such hand model"),
     ("--shard_size=0", "shard_size=0"), ("--image_size=0", "image_size=0")],
)  # fmt: skip
def test_command_line_failures_keep_the_old_dataset(tmp_path, flag, match):
    out = tmp_path / "synth"
    before = _old_dataset(out)
    run = subprocess.run(
        [sys.executable, "-m", "launch.make_synthetic", f"--out_dir={out}", "--num_train=1",
         "--num_test=0", "--overwrite", "--noprogress", flag],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, JAX_PLATFORMS="cpu"),
    )  # fmt: skip
    assert run.returncode != 0
    assert match in run.stderr and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert _snapshot(out) == before


def test_demo_failure_keeps_the_previous_output(tmp_path, monkeypatch):
    model = mano.load_model()
    out = tmp_path / "d"
    demo.run(out_dir=str(out), model=model, image_size=16)
    before = _snapshot(out)
    write_obj = mesh_io.write_obj
    calls = []

    def fail_on_third(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 3:
            raise OSError("disk full")
        write_obj(path, *args, **kwargs)

    monkeypatch.setattr(mesh_io, "write_obj", fail_on_third)
    with pytest.raises(OSError, match="disk full"):  # another hand: every file would differ
        demo.run(out_dir=str(out), model=mano.mirror_model(model), image_size=16, overwrite=True)
    assert _snapshot(out) == before
    assert sorted(os.listdir(tmp_path)) == ["d"]


def test_write_atomic_keeps_the_old_file_when_the_write_fails(tmp_path):
    from hand_jax import outputs

    path = tmp_path / "sub" / "results.json"
    outputs.write_text_atomic(str(path), "old")
    assert path.read_text() == "old"

    def fail(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        outputs.write_atomic(str(path), fail)
    assert path.read_text() == "old"
    assert sorted(p.name for p in path.parent.iterdir()) == ["results.json"]  # no temp left
