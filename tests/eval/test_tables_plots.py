"""Tests of the published data, the table builders and the PCK plots."""

import csv
import json

import imageio.v3 as iio
import numpy as np
import pytest

from hand_jax.eval import metrics, plots, published, tables


def _summary(label="default", dataset="stb", auc=0.9, epe=12.0, method="hand_jax"):
    t = np.linspace(0, 50, 51)
    return tables.ResultSummary(
        method, label, dataset, "root_scale", auc, epe, epe - 1, 10,
        tuple(t), tuple(np.clip(t / 40, 0, 1)), f"/runs/{label}/{dataset}/metrics.json",
    )  # fmt: skip


def test_published_auc_table_is_complete_and_sane():
    rows = published.load_published_auc()
    assert {r.benchmark for r in rows} == set(published.BENCHMARKS)
    assert len({(r.method, r.benchmark) for r in rows}) == len(rows)
    for r in rows:
        assert r.citation and r.source
        assert float(r.reported.lstrip("~")) == pytest.approx(r.auc)
    baek = {r.benchmark: r.reported for r in rows if r.method.startswith("Baek")}
    assert baek == {"stb": "0.995", "rhd": "0.926", "dexter_object": "~0.65"}


def test_published_curves_reintegrate_to_published_auc():
    """The transcribed curves and the quoted AUCs are independent data: they must agree."""
    auc = {(r.method, r.benchmark): r.auc for r in published.load_published_auc()}
    curves = published.load_published_curves()
    assert len(curves) == 12
    for c in curves:
        assert np.all((c.pck >= 0) & (c.pck <= 1)) and np.all(np.diff(c.pck) >= -1e-9)
        assert published.reintegrate(c) == pytest.approx(auc[(c.method, c.benchmark)], abs=0.0055)


def test_reintegrate_matches_pck_auc_on_the_curve_nodes():
    (zb,) = [c for c in published.load_published_curves("stb") if c.method.startswith("Zimm")]
    np.testing.assert_allclose(zb.thresholds_mm, np.linspace(0, 50, 20)[8:], atol=1e-4)
    assert published.reintegrate(zb) == pytest.approx(metrics.pck_auc(zb.thresholds_mm, zb.pck))


def test_comparison_table_without_results_says_not_run():
    table = tables.comparison_table()
    assert table.columns == ["Method", "STB", "RHD", "Dexter+Object"]
    assert table.rows[-1] == ["hand_jax (this implementation)"] + ["not run"] * 3
    pso = next(r for r in table.rows if r[0].startswith("PSO"))
    assert pso[1:] == ["0.709", "", ""]
    md = tables.to_markdown(table)
    assert "| PSO [1] | 0.709 | - | - |" in md
    assert len(table.notes) == len(table.rows)  # one citation per published method + legend


def test_comparison_table_with_results():
    results = [_summary(dataset="stb", auc=0.98765), _summary("no_refine", "rhd", auc=0.5)]
    table = tables.comparison_table(results)
    assert table.rows[-2] == ["hand_jax (this implementation)", "0.988", "not run", "not run"]
    ours = ["hand_jax (no_refine) (this implementation)", "not run", "0.500", "not run"]
    assert table.rows[-1] == ours
    with pytest.raises(ValueError, match="two results for 'hand_jax' on 'stb'"):
        tables.comparison_table([_summary(), _summary()])


def test_ablation_table_rows_columns_and_missing_cells():
    results = [_summary("a", "stb", 0.91, 10.0), _summary("b", "rhd", 0.8, 20.5)]
    table = tables.ablation_table(
        results, variants=["hand_jax (b)", "hand_jax (a)", "hand_jax (c)"]
    )
    assert table.columns == ["Configuration", "STB AUC", "STB EPE (mm)", "RHD AUC", "RHD EPE (mm)"]
    assert table.rows == [
        ["hand_jax (b)", "not run", "not run", "0.800", "20.50"],
        ["hand_jax (a)", "0.910", "10.00", "not run", "not run"],
        ["hand_jax (c)"] + ["not run"] * 4,
    ]


def test_write_table_markdown_and_csv(tmp_path):
    table = tables.Table("T", ["a", "b"], [["x|y", ""], ["1", "2"]], ["note"])
    md, csv_path = tables.write_table(table, tmp_path, "t")
    lines = md.read_text().splitlines()
    assert lines[0] == "### T" and lines[2] == "| a | b |" and lines[4] == "| x\\|y | - |"
    with csv_path.open() as f:
        assert list(csv.reader(f)) == [["a", "b"], ["x|y", ""], ["1", "2"]]


def test_load_result_errors_name_the_file(tmp_path):
    bad = tmp_path / "metrics.json"
    bad.write_text(json.dumps({"method": "m"}))
    with pytest.raises(ValueError, match=r"metrics.json: not an evaluation metrics.json"):
        tables.load_result(bad)
    with pytest.raises(ValueError, match="cannot read"):
        tables.load_result(tmp_path / "missing.json")


def test_plots_write_pngs(tmp_path):
    results = [_summary("a", "stb"), _summary("b", "stb"), _summary("a", "synthetic")]
    paths = plots.plot_results(results, tmp_path)
    assert [p.name for p in paths] == ["pck_stb.png", "pck_synthetic.png"]
    for p in paths:
        image = iio.imread(p)
        assert image.ndim == 3 and image.shape[0] > 100 and image.std() > 0
    with pytest.raises(ValueError, match="nothing to plot"):
        plots.plot_pck([], tmp_path / "x.png", title="x")
