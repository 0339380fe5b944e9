"""Result tables: the paper's comparison table with published numbers, and an ablation table.

Our numbers come from ``metrics.json`` files written by ``hand_jax.eval.evaluate`` (one file per
(method, variant, dataset) run). A table is plain data (``Table``) rendered as Markdown or CSV.
Cells for benchmarks a configuration was not run on say ``not run`` instead of a number; cells
of published methods that did not report a benchmark are empty (Markdown shows ``-``).
AUC is the 3D PCK AUC over 20-50 mm, 20 thresholds; EPE is the mean end-point error in mm;
both after the dataset's primary alignment (recorded in each metrics.json).
"""

import csv
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from hand_jax.eval import published

NOT_RUN = "not run"
OUR_METHOD = "hand_jax"


class ResultSummary(NamedTuple):
    """The numbers of one evaluation run that tables and plots need."""

    method: str
    variant: str
    dataset: str
    alignment: str
    auc_20_50: float
    epe_mean_mm: float
    epe_median_mm: float
    num_samples: int
    thresholds_mm: tuple[float, ...]  # the run's plotted PCK curve
    pck: tuple[float, ...]
    path: str

    @property
    def label(self) -> str:
        """Row label: the method, with the variant in parentheses unless it is the default."""
        return self.method if self.variant in ("", "default") else f"{self.method} ({self.variant})"


@dataclasses.dataclass
class Table:
    """A rendered-agnostic table: a header, rows of cell strings, and footnotes."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    notes: list[str] = dataclasses.field(default_factory=list)


def load_result(path: str | Path) -> ResultSummary:
    """Read the summary of one ``metrics.json`` written by ``evaluate``.

    Args:
      path: the metrics.json file.

    Returns:
      A ``ResultSummary``. Raises ValueError naming the file and key when a key is missing.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read an evaluation metrics.json: {e}") from e
    try:
        primary = data["primary"]
        curve = primary["pck_curve"]
        return ResultSummary(
            method=str(data["method"]),
            variant=str(data["variant"]),
            dataset=str(data["dataset"]),
            alignment=str(primary["alignment"]),
            auc_20_50=float(primary["auc_20_50"]),
            epe_mean_mm=float(primary["epe_mean_mm"]),
            epe_median_mm=float(primary["epe_median_mm"]),
            num_samples=int(data["num_samples"]),
            thresholds_mm=tuple(float(x) for x in curve["thresholds_mm"]),
            pck=tuple(float(x) for x in curve["pck"]),
            path=str(path),
        )
    except (KeyError, TypeError) as e:
        raise ValueError(f"{path}: not an evaluation metrics.json (missing key {e})") from e


def _index_results(results: Sequence[ResultSummary]) -> dict[tuple[str, str], ResultSummary]:
    index: dict[tuple[str, str], ResultSummary] = {}
    for r in results:
        key = (r.label, r.dataset)
        if key in index:
            raise ValueError(
                f"two results for {r.label!r} on {r.dataset!r}: {index[key].path} and {r.path}; "
                "give each run its own --variant"
            )
        index[key] = r
    return index


def comparison_table(
    results: Sequence[ResultSummary] = (),
    *,
    benchmarks: Sequence[str] = published.BENCHMARKS,
    published_rows: Sequence[published.PublishedAUC] | None = None,
    missing: str = NOT_RUN,
) -> Table:
    """Build the paper's comparison table (3D PCK AUC 20-50 mm) with our rows added.

    Args:
      results: our runs; each distinct label becomes a row after the published ones. With no
        results a placeholder row ``hand_jax`` says ``not run`` everywhere.
      benchmarks: the columns.
      published_rows: published numbers (default ``published.load_published_auc()``).
      missing: the text of our cells without a result.

    Returns:
      A ``Table`` with numbered footnotes citing each published method and its sources.
    """
    pub = published.load_published_auc() if published_rows is None else published_rows
    methods: dict[str, dict[str, published.PublishedAUC]] = {}
    for p in pub:
        methods.setdefault(p.method, {})[p.benchmark] = p
    rows, notes = [], []
    for i, (method, cells) in enumerate(methods.items(), start=1):
        rows.append(
            [f"{method} [{i}]"] + [cells[b].reported if b in cells else "" for b in benchmarks]
        )
        first = next(iter(cells.values()))
        sources = "; ".join(f"{published.title(b)}: {c.source}" for b, c in cells.items())
        notes.append(f"[{i}] {first.citation}. {sources}")
    index = _index_results(results)
    labels = list(dict.fromkeys(r.label for r in results)) or [OUR_METHOD]
    for label in labels:
        row = [f"{label} (this implementation)"]
        for b in benchmarks:
            r = index.get((label, b))
            row.append(f"{r.auc_20_50:.3f}" if r else missing)
        rows.append(row)
    notes.append(
        "Published values as reported (third decimal +-0.005: papers integrate on different "
        "threshold grids); this implementation: np.linspace(20, 50, 20) mm, see "
        f"hand_jax/eval/metrics.py. '{missing}': no result for that benchmark."
    )
    columns = ["Method"] + [published.title(b) for b in benchmarks]
    return Table("3D PCK AUC, 20-50 mm", columns, rows, notes)


def ablation_table(
    results: Sequence[ResultSummary],
    *,
    variants: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
) -> Table:
    """Build an ablation table: rows configurations, columns datasets, cells AUC and EPE.

    Args:
      results: runs of the configurations (labels ``method (variant)``).
      variants: row labels in order (default: order of first appearance); rows without any
        result are kept and say ``not run``.
      datasets: datasets in order (default: order of first appearance).

    Returns:
      A ``Table`` with two columns per dataset: AUC 20-50 mm and mean EPE in mm.
    """
    index = _index_results(results)
    labels = (
        list(variants) if variants is not None else list(dict.fromkeys(r.label for r in results))
    )
    names = (
        list(datasets) if datasets is not None else list(dict.fromkeys(r.dataset for r in results))
    )
    columns = ["Configuration"]
    for d in names:
        columns += [f"{published.title(d)} AUC", f"{published.title(d)} EPE (mm)"]
    rows = []
    for label in labels:
        row = [label]
        for d in names:
            r = index.get((label, d))
            row += [f"{r.auc_20_50:.3f}", f"{r.epe_mean_mm:.2f}"] if r else [NOT_RUN, NOT_RUN]
        rows.append(row)
    notes = [
        "AUC: 3D PCK over 20-50 mm (20 thresholds); EPE: mean end-point error; both after each "
        "dataset's primary alignment (see each run's metrics.json)."
    ]
    return Table("Ablation", columns, rows, notes)


def to_markdown(table: Table) -> str:
    """Render a table as GitHub Markdown (title, table, footnotes)."""

    def line(cells):
        return "| " + " | ".join(c.replace("|", "\\|") if c else "-" for c in cells) + " |"

    out = [f"### {table.title}", "", line(table.columns)]
    out.append("|" + "|".join(["---"] + [":---:"] * (len(table.columns) - 1)) + "|")
    out += [line(row) for row in table.rows]
    if table.notes:
        out.append("")
        out += [f"{note}  " for note in table.notes]
    return "\n".join(out) + "\n"


def write_table(table: Table, out_dir: str | Path, name: str) -> tuple[Path, Path]:
    """Write ``<name>.md`` (Markdown) and ``<name>.csv`` (header and cells) into ``out_dir``.

    Returns:
      The two paths.
    """
    out_dir = Path(out_dir)
    md, csv_path = out_dir / f"{name}.md", out_dir / f"{name}.csv"
    md.write_text(to_markdown(table))
    with csv_path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(table.columns)
        writer.writerows(table.rows)
    return md, csv_path
