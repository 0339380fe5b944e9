"""The whole study at smoke scale (``quick`` preset), then resumed, then partly forced."""

import json
import os
import subprocess
import sys

import pytest

from hand_jax.reproduce import plan

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _reproduce(tmp_path, *extra):
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
    args = [sys.executable, "-m", "launch.reproduce", f"--work_dir={tmp_path / 'work'}",
            f"--out_dir={tmp_path / 'out'}", *extra]  # fmt: skip
    run = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout


@pytest.mark.slow
def test_quick_study_runs_resumes_and_forces(tmp_path):
    first = _reproduce(tmp_path)  # the default config is the quick preset
    assert "17 stages" in first and "ETA" in first
    out = tmp_path / "out"
    results = json.loads((out / "results.json").read_text())
    for row in plan.ROWS:
        for column in ("narrow", "wide"):
            cell = results["results"][row][column]["0"]
            assert 0.0 <= cell["auc_20_50"] <= 1.0 and cell["epe_mm"] > 0, (row, column)
    # Row (c) is row (b)'s model refined: same network, a different estimate.
    assert results["results"]["c"]["narrow"]["0"] != results["results"]["b"]["narrow"]["0"]
    for name in ("ablation.md", "effects.md", "comparison.md", "pck_narrow.png", "pck_wide.png",
                 "refine_iterations.png", "qualitative.png", "summary.md"):  # fmt: skip
        assert (out / name).stat().st_size > 0, name
    assert "not run" not in (out / "ablation.md").read_text()
    # The refinement curve (its own code path) starts at row (b)'s error and ends at row (c)'s.
    curve = json.loads((tmp_path / "work" / "figures" / "refine_curve.json").read_text())
    scored = tmp_path / "work" / "seed0" / "narrow" / "eval" / "full" / "narrow"
    refinement = json.loads((scored / "refinement.json").read_text())
    e3 = curve["columns"]["narrow"]["err3d_mm"]
    assert e3[0] == pytest.approx(refinement["network"]["kp3d_epe_mm"], rel=1e-3)
    assert e3[-1] == pytest.approx(refinement["refined"]["kp3d_epe_mm"], rel=1e-3)
    second = _reproduce(tmp_path)
    assert second.count("up to date, skipped") == 17
    third = _reproduce(tmp_path, "--force=grid")
    assert third.count("up to date, skipped") == 16 and "grid/seed0: running" in third
