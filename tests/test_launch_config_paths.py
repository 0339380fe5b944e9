"""Launchers find their config files from any working directory (relative to the package)."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(args, cwd):
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def test_refine_default_config_resolves_from_another_folder(tmp_path):
    missing = tmp_path / "no_such_evidence.npz"
    run = _run(["launch.refine", f"--input={missing}", f"--out_dir={tmp_path / 'out'}"], tmp_path)
    assert run.returncode != 0
    assert "launch/configs/refine.py" not in run.stderr, run.stderr[-2000:]
    assert "no_such_evidence.npz" in run.stderr  # it got past flag parsing to the input


def test_train_relative_config_resolves_from_another_folder(tmp_path):
    run = _run(["launch.train", "--config=launch/configs/synthetic.py:cpu_small",
                f"--workdir={tmp_path / 'w'}", "--config.train.bogus=1"], tmp_path)  # fmt: skip
    assert run.returncode != 0
    assert "No such file" not in run.stderr, run.stderr[-2000:]
    assert "bogus" in run.stderr  # the config was loaded, and the override refused by name
    assert not (tmp_path / "w").exists()
