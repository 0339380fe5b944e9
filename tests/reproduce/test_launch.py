"""``launch.reproduce`` from the command line: config found from any folder, clear refusals."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(tmp_path, *args):
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-m", "launch.reproduce",
                           f"--work_dir={tmp_path / 'w'}", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_dry_run_lists_the_stages_from_another_folder(tmp_path):
    run = _run(tmp_path, "--dry_run", "--config=launch/configs/reproduce.py:cpu")
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.splitlines()
    assert len(lines) == 43 and lines[0] == "data/narrow (data): to run"
    assert "train/seed2/narrow/selfaug (train): to run" in lines
    assert not (tmp_path / "w").exists()  # a dry run writes nothing


def test_refusals_name_what_is_wrong(tmp_path):
    run = _run(tmp_path, "--dry_run", "--config=launch/configs/reproduce.py:paper")
    assert run.returncode != 0 and "no folder given for dataset 'stb'" in run.stderr
    run = _run(tmp_path, "--dry_run", "--data_dirs=stb")
    assert run.returncode != 0 and "expected name=root, got 'stb'" in run.stderr
    run = _run(tmp_path, "--dry_run", "--force=trian")
    assert run.returncode != 0 and "no stage named ['trian']" in run.stderr
