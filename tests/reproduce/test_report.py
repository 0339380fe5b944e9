"""The study's tables from evaluations on disk: mean and spread, verdicts, the comparison."""

import json
import os

import numpy as np
import pytest

from hand_jax.reproduce import plan, report, summary
from launch.configs import reproduce as presets


def _metrics(auc, auc0=0.5, epe=20.0, pa=10.0, alignment="root_scale"):
    curve = np.linspace(0.0, 1.0, 51) * auc
    return {"num_samples": 8, "primary": {"alignment": alignment, "auc_20_50": auc,
            "auc_0_50": auc0, "epe_mean_mm": epe, "pck_curve": {
                "thresholds_mm": np.linspace(0, 50, 51).tolist(), "pck": curve.tolist()}},
            "alignments": {"procrustes": {"epe_mean_mm": pa}}}  # fmt: skip


def _write(paths, cfg, seed, model, column, variant, body):
    folder = paths.eval(seed, cfg.data.model_for[column], model, column)
    os.makedirs(os.path.join(folder, variant), exist_ok=True)
    with open(os.path.join(folder, variant, "metrics.json"), "w") as f:
        json.dump(body, f)
    with open(os.path.join(folder, "refinement.json"), "w") as f:
        f.write("{}")


# AUC 20-50 per (row, seed) on the "narrow" column: b beats a clearly, c = b + tiny noise,
# d worse than c on every seed, e worse than b.
AUCS = {"a": [0.50, 0.52, 0.51], "b": [0.60, 0.63, 0.61], "c": [0.601, 0.629, 0.611],
        "d": [0.55, 0.57, 0.56], "e": [0.58, 0.60, 0.59]}  # fmt: skip


@pytest.fixture
def study(tmp_path):
    cfg = presets.get_config("cpu")
    paths = plan.Paths(str(tmp_path / "work"), str(tmp_path / "out"), {})
    for row, (_, model, variant) in plan.ROWS.items():
        for seed, auc in zip(cfg.seeds, AUCS[row], strict=True):
            _write(paths, cfg, seed, model, "narrow", variant,
                   _metrics(auc, epe=100 * (1 - auc), pa=seed + 1.0))  # fmt: skip
    return cfg, paths


def test_ablation_cells_are_mean_and_sample_std_over_seeds(study):
    cfg, paths = study
    table = report.ablation_table(cfg, report.collect(cfg, paths))
    row_b = next(r for r in table.rows if r[0].startswith("(b)"))
    col = table.columns.index("narrow (synthetic) AUC 20-50")
    v = np.array(AUCS["b"])
    expected = f"{v.mean():.3f} ± {np.sqrt(((v - v.mean()) ** 2).sum() / 2):.3f}"
    assert row_b[col] == expected
    pa = table.columns.index("narrow (synthetic) PA-EPE mm")
    assert row_b[pa] == "2.00 ± 1.00"  # seeds 0, 1, 2 -> 1, 2, 3 mm
    wide = table.columns.index("wide (synthetic) AUC 20-50")
    assert row_b[wide] == "not run"


def test_effects_say_helps_hurts_or_no_clear_change(study):
    cfg, paths = study
    table = report.effects_table(cfg, report.collect(cfg, paths))
    verdict = {r[1]: r[2] for r in table.rows}
    assert verdict["(b) vs (a)"].endswith("(helps)")
    assert verdict["(b) vs (a)"].startswith("+0.103")
    assert verdict["(c) vs (b)"].endswith("(no clear change)")
    assert verdict["(d) vs (c)"].endswith("(hurts)")
    assert verdict["(b) vs (e)"].endswith("(helps)")
    assert all(r[3] == "not run" for r in table.rows)  # the wide column has no evaluations


def test_paired_differences_decide_not_the_spread_of_each_row():
    # Large seed-to-seed spread, but the component helps by 0.01 on every seed.
    new = {str(s): {"auc_20_50": a + 0.01} for s, a in enumerate([0.3, 0.5, 0.7])}
    old = {str(s): {"auc_20_50": a} for s, a in enumerate([0.3, 0.5, 0.7])}
    cfg = presets.get_config("cpu")
    table = report.effects_table(cfg, {"b": {"narrow": new}, "a": {"narrow": old}})
    assert table.rows[0][2] == "+0.010 ± 0.000 (helps)"


def test_verdict_uses_the_t_interval_and_gives_none_for_one_seed():
    cell = lambda values: {str(s): {"auc_20_50": v} for s, v in enumerate(values)}  # noqa: E731
    base = cell([0.5, 0.5, 0.5])
    # Paired differences 0.01, 0.03, 0.02: mean 0.02, sd 0.01, t(0.975, 2) = 4.303
    # -> half-width 4.303 * 0.01 / sqrt(3) = 0.0248 > 0.02: no clear change (two standard
    # errors, 0.0115, would have called it "helps").
    assert (
        summary.paired_effect(cell([0.51, 0.53, 0.52]), base) == "+0.020 ± 0.025 (no clear change)"
    )
    assert summary.paired_effect(cell([0.9]), cell([0.5])) == "+0.400 (one seed: no verdict)"
    assert summary.paired_effect({}, base) == "not run"


def test_cells_with_fewer_seeds_say_so_and_stale_evaluations_are_left_out(study):
    cfg, paths = study
    results = report.collect(cfg, paths)
    del results["d"]["narrow"]["2"]
    table = report.ablation_table(cfg, results)
    row_d = next(r for r in table.rows if r[0].startswith("(d)"))
    assert row_d[1] == "0.560 ± 0.014 (n=2)"
    status = {f"evaluate/seed{s}/{m}/narrow": "done" for s in cfg.seeds for m in plan.MODELS}
    status["evaluate/seed1/full/narrow"] = "stale"
    fresh = report.collect(cfg, paths, status)
    assert set(fresh["b"]["narrow"]) == set(fresh["c"]["narrow"]) == {"0", "2"}
    assert set(fresh["a"]["narrow"]) == {"0", "1", "2"}


def test_comparison_fills_only_evaluated_benchmarks(study):
    cfg, paths = study
    table = report.comparison_table(cfg, report.collect(cfg, paths))
    ours = table.rows[-1]
    assert ours[0].startswith("hand_jax")
    assert ours[1:] == [report.NOT_AVAILABLE] * 3  # synthetic study: no STB, RHD, D+O
    paper = presets.get_config("paper")
    results = {"d": {"stb": {"0": {"auc_20_50": 0.9}, "1": {"auc_20_50": 0.8}}}}
    ours = report.comparison_table(paper, results).rows[-1]
    assert ours[1:] == ["0.850", report.NOT_AVAILABLE, report.NOT_AVAILABLE]
    assert "2 seeds" in ours[0]


def test_write_report_writes_tables_pictures_and_provenance(study):
    cfg, paths = study
    os.makedirs(os.path.join(paths.work, "stages"))
    with open(os.path.join(paths.work, "stages", "a__x.json.tmp-1234"), "w") as f:
        f.write('{"key": ')  # a marker write killed half-way
    with open(os.path.join(paths.work, "stages", "a__x.json"), "w") as f:
        json.dump({"status": "done", "wall_s": 3.0, "commit": "abc"}, f)
    body = report.write_report(cfg, paths, command="python -m launch.reproduce --x")
    out = paths.out
    for name in ("ablation.md", "ablation.csv", "effects.md", "comparison.md", "pck_narrow.png",
                 "results.json", "summary.md"):  # fmt: skip
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    assert not os.path.exists(os.path.join(out, "pck_wide.png"))  # nothing evaluated there
    assert body["preset"] == "cpu" and len(body["commit"]) >= 7
    assert body["results"]["d"]["narrow"]["2"]["auc_20_50"] == pytest.approx(0.56)
    assert body["stages"]["a/x"] == {"wall_s": 3.0, "commit": "abc", "uncommitted_changes": None}
    assert "python -m launch.reproduce --x" in open(os.path.join(out, "summary.md")).read()
