"""PCK curve figures (PNG), one per benchmark: our variants beside each other, published curves
for reference.

Uses matplotlib's object API with the Agg canvas (no pyplot, no global backend switch), so it
runs headless and in tests. Thresholds are in millimetres, PCK in [0, 1]. The paper's three
benchmarks are drawn over 20-50 mm as in the paper's figures, others over 0-50 mm.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hand_jax.eval import published
from hand_jax.eval.tables import ResultSummary

PAPER_RANGE_MM = (20.0, 50.0)
FULL_RANGE_MM = (0.0, 50.0)


def plot_pck(
    curves: Sequence[tuple[str, Sequence[float], Sequence[float]]],
    path: str | Path,
    *,
    title: str,
    reference: Sequence[tuple[str, Sequence[float], Sequence[float]]] = (),
    xlim: tuple[float, float] = FULL_RANGE_MM,
) -> Path:
    """Draw PCK curves into a PNG.

    Args:
      curves: (label, thresholds_mm [T], pck [T]) of the curves to emphasise (solid, coloured).
      path: output PNG path.
      title: figure title.
      reference: (label, thresholds_mm, pck) drawn thin and dashed (published curves).
      xlim: threshold range shown, mm.

    Returns:
      The written path.
    """
    if not curves and not reference:
        raise ValueError(f"{path}: nothing to plot (no curves and no reference curves)")
    fig = Figure(figsize=(6.4, 4.8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    lows = []
    # Published curves: thin, dashed, a sequential palette; ours: thick, solid, tab10.
    shades = colormaps["viridis"](np.linspace(0.0, 0.9, max(len(reference), 1)))
    for (label, t, p), color in zip(reference, shades, strict=False):
        ax.plot(t, p, linestyle="--", linewidth=1.1, color=color, label=label)
        lows.append(_visible_min(t, p, xlim))
    for i, (label, t, p) in enumerate(curves):
        ax.plot(t, p, linewidth=2.4, color=colormaps["Set1"](i % 9), label=label)
        lows.append(_visible_min(t, p, xlim))
    low = min(x for x in lows if np.isfinite(x)) if any(np.isfinite(lows)) else 0.0
    ax.set_xlim(*xlim)
    ax.set_ylim(max(0.0, np.floor((low - 0.02) * 20) / 20), 1.0)
    ax.set_xlabel("error threshold (mm)")
    ax.set_ylabel("3D PCK")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, format="png")
    return path


def _visible_min(t, p, xlim) -> float:
    t, p = np.asarray(t, float), np.asarray(p, float)
    inside = (t >= xlim[0]) & (t <= xlim[1])
    return float(np.min(p[inside])) if np.any(inside) else np.nan


def plot_benchmark(
    benchmark: str,
    results: Sequence[ResultSummary],
    path: str | Path,
    *,
    with_published: bool = True,
) -> Path:
    """Draw one benchmark's figure: our runs on it plus the published curves for it.

    Args:
      benchmark: dataset name (e.g. ``stb``); only results on it are drawn.
      results: our runs (any datasets).
      path: output PNG path.
      with_published: add the published reference curves of ``published_curves.csv``.

    Returns:
      The written path.
    """
    ours = [
        (f"{r.label} (AUC {r.auc_20_50:.3f})", r.thresholds_mm, r.pck)
        for r in results
        if r.dataset == benchmark
    ]
    reference = []
    if with_published:
        reported = {
            p.method: p.reported for p in published.load_published_auc() if p.benchmark == benchmark
        }
        for c in published.load_published_curves(benchmark):
            auc = reported.get(c.method)
            label = f"{c.method} (AUC {auc})" if auc else c.method
            reference.append((label, c.thresholds_mm, c.pck))
    xlim = PAPER_RANGE_MM if benchmark in published.BENCHMARKS else FULL_RANGE_MM
    title = f"{published.title(benchmark)}: 3D PCK"
    return plot_pck(ours, path, title=title, reference=reference, xlim=xlim)


def plot_results(
    results: Sequence[ResultSummary], out_dir: str | Path, *, with_published: bool = True
) -> list[Path]:
    """Write ``pck_<dataset>.png`` into ``out_dir`` for every dataset among ``results``."""
    datasets = list(dict.fromkeys(r.dataset for r in results))
    return [
        plot_benchmark(d, results, Path(out_dir) / f"pck_{d}.png", with_published=with_published)
        for d in datasets
    ]
