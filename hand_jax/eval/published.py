"""Published benchmark numbers and curves, as data with their provenance.

Two CSV files beside this module (``#`` lines are comments):

- ``published_auc.csv``: one row per (method, benchmark): the 3D PCK AUC over 20-50 mm that the
  method's authors published (``../shared/PAPER.md`` section 6), the text to show in tables
  (``reported``, e.g. ``~0.65``), a citation, and a source note saying where the number comes
  from and whether this project re-integrated it from public curve data.
- ``published_curves.csv``: published 3D PCK curves (threshold in mm, PCK in [0, 1]) transcribed
  from the public files named in each row (Zhang et al.'s STB baselines as stored in
  lmb-freiburg/hand3d; the curves released with Boukhayma et al.'s code, boukhayma/3dhand).

Published numbers were integrated by their authors on different threshold grids (see
``hand_jax.eval.metrics``): treat their third decimal as +-0.005.
"""

import csv
from pathlib import Path
from typing import NamedTuple

import numpy as np

DATA_DIR = Path(__file__).resolve().parent
AUC_FILE = DATA_DIR / "published_auc.csv"
CURVES_FILE = DATA_DIR / "published_curves.csv"

# The paper's comparison benchmarks, in the paper's column order.
BENCHMARKS = ("stb", "rhd", "dexter_object")
TITLES = {
    "stb": "STB",
    "rhd": "RHD",
    "dexter_object": "Dexter+Object",
    "freihand": "FreiHAND",
    "synthetic": "Synthetic",
}


class PublishedAUC(NamedTuple):
    """One published AUC (20-50 mm) of one method on one benchmark."""

    method: str
    citation: str
    benchmark: str
    auc: float
    reported: str  # as shown in tables, e.g. "0.57" or "~0.65"
    source: str


class PublishedCurve(NamedTuple):
    """A published PCK curve."""

    method: str
    benchmark: str
    thresholds_mm: np.ndarray  # [T]
    pck: np.ndarray  # [T]
    source: str


def title(benchmark: str) -> str:
    """Return the display name of a benchmark (the name itself if unknown)."""
    return TITLES.get(benchmark, benchmark)


def _read_rows(path: Path, columns: tuple[str, ...]) -> list[dict]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the published-results table is missing")
    with path.open(newline="") as f:
        reader = csv.DictReader(line for line in f if not line.startswith("#"))
        if tuple(reader.fieldnames or ()) != columns:
            raise ValueError(f"{path}: expected columns {columns}, got {reader.fieldnames}")
        return list(reader)


def load_published_auc(path: str | Path = AUC_FILE) -> list[PublishedAUC]:
    """Read the published AUC table.

    Args:
      path: CSV with columns method, citation, benchmark, auc_20_50, reported, source.

    Returns:
      The rows in file order (the table's row order).
    """
    columns = ("method", "citation", "benchmark", "auc_20_50", "reported", "source")
    out = []
    for i, row in enumerate(_read_rows(Path(path), columns)):
        try:
            auc = float(row["auc_20_50"])
        except ValueError:
            msg = f"{path}: row {i + 1}: auc_20_50 {row['auc_20_50']!r} is not a number"
            raise ValueError(msg) from None
        if not 0.0 <= auc <= 1.0:
            raise ValueError(f"{path}: row {i + 1}: auc_20_50 {auc} outside [0, 1]")
        out.append(
            PublishedAUC(
                row["method"],
                row["citation"],
                row["benchmark"],
                auc,
                row["reported"],
                row["source"],
            )
        )
    return out


def load_published_curves(
    benchmark: str | None = None, path: str | Path = CURVES_FILE
) -> list[PublishedCurve]:
    """Read the published PCK curves.

    Args:
      benchmark: keep only this benchmark's curves (None: all).
      path: CSV with columns benchmark, method, threshold_mm, pck, source.

    Returns:
      One ``PublishedCurve`` per (benchmark, method), in file order, thresholds increasing.
    """
    columns = ("benchmark", "method", "threshold_mm", "pck", "source")
    grouped: dict[tuple[str, str], list[dict]] = {}
    for row in _read_rows(Path(path), columns):
        if benchmark is None or row["benchmark"] == benchmark:
            grouped.setdefault((row["benchmark"], row["method"]), []).append(row)
    curves = []
    for (bench, method), rows in grouped.items():
        t = np.array([float(r["threshold_mm"]) for r in rows])
        p = np.array([float(r["pck"]) for r in rows])
        if np.any(np.diff(t) <= 0):
            raise ValueError(f"{path}: {bench}/{method}: thresholds must increase")
        curves.append(PublishedCurve(method, bench, t, p, rows[0]["source"]))
    return curves


def reintegrate(curve: PublishedCurve, lo_mm: float = 20.0, hi_mm: float = 50.0) -> float:
    """Return a published curve's AUC over [lo_mm, hi_mm], integrated on its own nodes.

    The curve is linearly interpolated at ``lo_mm`` and ``hi_mm`` when they are not nodes (the
    curve must cover the range); the trapezoid runs over the nodes inside, normalised by the
    range. This is how the source notes of ``published_auc.csv`` were checked.

    Args:
      curve: a ``PublishedCurve``.
      lo_mm, hi_mm: integration range in mm.

    Returns:
      The normalised area.
    """
    t, p = curve.thresholds_mm, curve.pck
    if t[0] > lo_mm + 1e-6 or t[-1] < hi_mm - 1e-6:
        lo_mm, hi_mm = max(lo_mm, t[0]), min(hi_mm, t[-1])  # e.g. hand3d's 21.05-50 mm grid
    inside = (t > lo_mm) & (t < hi_mm)
    nodes = np.concatenate([[lo_mm], t[inside], [hi_mm]])
    return float(np.trapezoid(np.interp(nodes, t, p), nodes) / (hi_mm - lo_mm))
