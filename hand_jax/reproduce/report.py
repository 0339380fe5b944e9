"""The study's tables and pictures, from the evaluations it wrote (no model is run here).

For every row of the ablation (``plan.ROWS``), column (test set) and seed, the row's model and
variant were scored by ``hand_jax.estimate.scoring.evaluate_split`` under the benchmark
protocol (``hand_jax.eval.evaluate``: metrics.json). The report reads, per cell:

- ``auc_20_50``, ``auc_0_50``, ``epe_mm``: the 3D PCK AUCs and the mean end-point error under
  the column's primary alignment (Zimmermann & Brox's ground-truth root and scale for STB, RHD
  and the synthetic sets; the fingertip centroid for Dexter+Object, stated in the table);
- ``pa_epe_mm``: the mean error after Procrustes alignment (articulation and shape only);

and writes into ``out_dir``: ``ablation.{md,csv}`` (mean +- sample standard deviation over the
seeds that finished), ``effects.md`` (each component's change of AUC against the row it adds
to, with a verdict), ``comparison.{md,csv}`` (the published table with this implementation's
row; "not available here" where the study did not evaluate that benchmark),
``pck_<column>.png`` and ``refine_iterations.png`` (``plots``), ``qualitative.png`` and
``results.json`` (every number per seed, and where it came from). The statistics over seeds
and the column titles are ``summary``'s.
"""

import json
import os
import shutil
import subprocess
import time

from hand_jax import outputs
from hand_jax.eval import published, tables
from hand_jax.reproduce import plan, plots
from hand_jax.reproduce.summary import column_title, paired_effect, summarise

METRICS = ("auc_20_50", "auc_0_50", "epe_mm", "pa_epe_mm")
HEADERS = {
    "auc_20_50": "AUC 20-50",
    "auc_0_50": "AUC 0-50",
    "epe_mm": "EPE mm",
    "pa_epe_mm": "PA-EPE mm",
}
# (row, the row it adds a component to, what the component is)
EFFECTS = (
    ("b", "a", "mask loss through the soft rasterizer"),
    ("c", "b", "test-time refinement"),
    ("d", "c", "self-data augmentation"),
    ("b", "e", "stratified instead of direct training"),
)
NOT_AVAILABLE = "not available here"


def read_cell(metrics_path: str) -> dict:
    """The four numbers and the PCK curve of one evaluation's metrics.json."""
    with open(metrics_path) as f:
        m = json.load(f)
    p = m["primary"]
    pa = m["alignments"].get("procrustes", {}).get("epe_mean_mm", float("nan"))
    return {
        "auc_20_50": p["auc_20_50"],
        "auc_0_50": p["auc_0_50"],
        "epe_mm": p["epe_mean_mm"],
        "pa_epe_mm": pa,
        "alignment": p["alignment"],
        "num_samples": m["num_samples"],
        "pck": p["pck_curve"]["pck"],
        "thresholds_mm": p["pck_curve"]["thresholds_mm"],
    }


def collect(cfg, paths, status: dict | None = None) -> dict:
    """``{row: {column: {seed: cell}}}`` for every evaluation present on disk.

    Args:
      status: the runner's ``status`` of the stages; when given, only evaluations whose stage
        is up to date count (never a stale one beside current ones).
    """
    out = {}
    for row, (_, model, variant) in plan.ROWS.items():
        for column in cfg.data.columns:
            train = cfg.data.model_for[column]
            for seed in cfg.seeds:
                folder = paths.eval(int(seed), train, model, column)
                path = os.path.join(folder, variant, "metrics.json")
                stage = f"evaluate/seed{seed}/{model}/{column}"
                if status is not None and status.get(stage) != "done":
                    continue
                if os.path.exists(os.path.join(folder, "refinement.json")):
                    out.setdefault(row, {}).setdefault(column, {})[str(seed)] = read_cell(path)
    return out


def _cell_text(metric: str, values, seeds: int) -> str:
    """``mean ± sd``, with ``(n=k)`` when fewer than ``seeds`` values are finite."""
    mean, sd, n = summarise(values)
    if n == 0:
        return "not run"
    digits = 3 if metric.startswith("auc") else 2
    text = f"{mean:.{digits}f}" + ("" if n == 1 else f" ± {sd:.{digits}f}")
    return text + (f" (n={n})" if n < seeds else "")


def ablation_table(cfg, results: dict) -> tables.Table:
    """Rows (a)-(e), per column the four metrics as mean ± sample std over seeds."""
    columns = ["Configuration"]
    for column in cfg.data.columns:
        columns += [f"{column_title(cfg, column)} {HEADERS[m]}" for m in METRICS]
    rows = []
    for row, (label, _, _) in plan.ROWS.items():
        cells = [label]
        for column in cfg.data.columns:
            per_seed = results.get(row, {}).get(column, {})
            cells += [
                _cell_text(m, [c[m] for c in per_seed.values()], len(cfg.seeds)) for m in METRICS
            ]
        rows.append(cells)
    return tables.Table(f"Ablation ({cfg.label})", columns, rows, _notes(cfg, results))


def _notes(cfg, results) -> list[str]:
    alignments = {
        c: sorted({cell["alignment"] for r in results.values() for cell in r.get(c, {}).values()})
        for c in cfg.data.columns
    }
    seeds = sorted({s for r in results.values() for c in r.values() for s in c})
    return [
        f"Mean ± sample standard deviation over seeds {', '.join(seeds) or '-'} (one value: no "
        "spread). AUC: 3D PCK area over 20-50 mm and 0-50 mm (20 thresholds each); EPE: mean "
        "end-point error (mm); all under each column's primary alignment: "
        + "; ".join(f"{column_title(cfg, c)}: {', '.join(a) or '-'}" for c, a in alignments.items())
        + ". PA-EPE: after Procrustes alignment (articulation and shape only).",
        f"Test-time refinement: {cfg.evaluate.refine_steps} steps against the network's own "
        f"evidence ({cfg.evaluate.refine_note}). '(n=k)': only k of the {len(cfg.seeds)} "
        "seeds have finished that cell.",
    ]


def effects_table(cfg, results: dict) -> tables.Table:
    """Each component's change of AUC 20-50 against the row it adds to, with a verdict."""
    columns = ["Component", "Rows"] + [column_title(cfg, c) for c in cfg.data.columns]
    rows = []
    for row, base, what in EFFECTS:
        cells = [what, f"({row}) vs ({base})"]
        for column in cfg.data.columns:
            new = results.get(row, {}).get(column, {})
            old = results.get(base, {}).get(column, {})
            cells.append(paired_effect(new, old))
        rows.append(cells)
    notes = [
        "Mean change of the AUC 20-50 mm over the seeds both rows finished, paired by seed, ± "
        "the half-width of its 95% t interval; 'helps'/'hurts' when that interval excludes "
        "zero, 'no clear change' when it does not."
    ]
    return tables.Table("Does each component help?", columns, rows, notes)


def comparison_table(cfg, results: dict) -> tables.Table:
    """The published comparison with this implementation's full method (row d)."""
    ours = []
    for column in cfg.data.columns:
        loader = cfg.data.sets[column].loader
        cells = results.get("d", {}).get(column, {})
        mean, _, n = summarise([c["auc_20_50"] for c in cells.values()])
        if loader in published.BENCHMARKS and n:
            ours.append(
                tables.ResultSummary(
                    tables.OUR_METHOD,
                    f"full method, {n} seed{'s' if n > 1 else ''}",
                    loader,
                    "",
                    mean,
                    float("nan"),
                    float("nan"),
                    0,
                    (),
                    (),
                    "",
                )
            )
    table = tables.comparison_table(ours, missing=NOT_AVAILABLE)
    table.notes.append(
        "This implementation's row: row (d) of the ablation (mean over seeds), under each "
        "benchmark's protocol (hand_jax/eval/protocol.py): STB rooted at the palm centre and "
        "RHD at the wrist, both with Zimmermann & Brox's ground-truth root and scale; "
        "Dexter+Object on the five fingertips only, aligned by the labelled tips' centroid "
        "(it has no root label)."
    )
    table.notes.append(
        f"This study ({cfg.preset} preset) evaluated: "
        + ", ".join(column_title(cfg, c) for c in cfg.data.columns)
        + f". '{NOT_AVAILABLE}': that benchmark's data is not part of this preset."
    )
    return table


def _git(*args) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=plan.ROOT, capture_output=True, text=True, timeout=30
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def code_version() -> dict:
    """The commit of the code and whether ``hand_jax/`` or ``launch/`` had changes beyond it."""
    return {
        "commit": _git("rev-parse", "HEAD") or "unknown",
        "uncommitted_changes": bool(_git("status", "--porcelain", "--", "hand_jax", "launch")),
    }


def provenance(cfg, command: str) -> dict:
    """The command, preset and code version of this report."""
    return {"command": command, "preset": cfg.preset, "label": cfg.label, **code_version()}


def _invocations_path(paths) -> str:
    return os.path.join(paths.work, "invocations.json")


def record_invocation(cfg, paths, *, command: str) -> None:
    """Append this run's command, commit and start time to the work folder's history."""
    path = _invocations_path(paths)
    history = []
    if os.path.exists(path):
        with open(path) as f:
            history = json.load(f)
    history.append({**provenance(cfg, command), "started": time.strftime("%Y-%m-%dT%H:%M:%S")})
    os.makedirs(paths.work, exist_ok=True)
    outputs.write_text_atomic(path, json.dumps(history, indent=1))


def _stage_times(paths) -> dict:
    out = {}
    folder = os.path.join(paths.work, "stages")
    names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    # Not a killed write's temp file (``outputs.write_atomic``: <stem>.tmp-<random>.json).
    for name in (n for n in names if n.endswith(".json") and ".tmp-" not in n):
        try:
            with open(os.path.join(folder, name)) as f:
                m = json.load(f)
        except (OSError, json.JSONDecodeError):
            continue
        if m.get("status") == "done":
            stage = name[: -len(".json")].replace("__", "/")
            out[stage] = {k: m.get(k) for k in ("wall_s", "commit", "uncommitted_changes")}
    return out


def write_report(cfg, paths, *, command: str, status: dict | None = None) -> dict:
    """Write every table and picture into ``paths.out``; return results.json's content.

    Args:
      status: the runner's stage status; only up-to-date evaluations are reported.
    """
    os.makedirs(paths.out, exist_ok=True)
    results = collect(cfg, paths, status)
    written = {}
    for name, table in (
        ("ablation", ablation_table(cfg, results)),
        ("effects", effects_table(cfg, results)),
        ("comparison", comparison_table(cfg, results)),
    ):
        tables.write_table(table, paths.out, name)
        written[name] = tables.to_markdown(table)
    plots.plot_pck_curves(cfg, results, paths.out)
    figures = os.path.join(paths.work, "figures")
    curve_path = os.path.join(figures, "refine_curve.json")
    if os.path.exists(curve_path):
        with open(curve_path) as f:
            plots.plot_refinement(json.load(f), os.path.join(paths.out, "refine_iterations.png"))
    if os.path.exists(os.path.join(figures, "qualitative.png")):
        shutil.copyfile(
            os.path.join(figures, "qualitative.png"), os.path.join(paths.out, "qualitative.png")
        )
    strip = {
        r: {
            c: {
                s: {k: v for k, v in cell.items() if k not in ("pck", "thresholds_mm")}
                for s, cell in cols.items()
            }
            for c, cols in row.items()
        }
        for r, row in results.items()
    }
    body = {
        **provenance(cfg, command),
        "seeds": list(cfg.seeds),
        "rows": plan.ROWS,
        "results": strip,
        "stages": _stage_times(paths),
    }
    if os.path.exists(_invocations_path(paths)):
        with open(_invocations_path(paths)) as f:
            body["invocations"] = json.load(f)
    outputs.write_text_atomic(os.path.join(paths.out, "results.json"), json.dumps(body, indent=1))
    summary = "\n".join(
        [
            f"# Reproduction: {cfg.preset} preset",
            "",
            f"`{command}` at commit {body['commit'][:10]}",
            "",
            written["ablation"],
            written["effects"],
            written["comparison"],
        ]
    )
    outputs.write_text_atomic(os.path.join(paths.out, "summary.md"), summary)
    return body
