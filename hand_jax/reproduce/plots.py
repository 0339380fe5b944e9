"""The study's curves: PCK per test column (mean over seeds per row), error per refinement step."""

import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hand_jax.eval import plots as eval_plots
from hand_jax.eval import published, tables
from hand_jax.reproduce import plan
from hand_jax.reproduce.summary import column_title, summarise


def _mean_curve(cells: dict) -> tuple[list, list]:
    curves = np.asarray([c["pck"] for c in cells.values()], np.float64)
    return next(iter(cells.values()))["thresholds_mm"], np.nanmean(curves, axis=0).tolist()


def plot_pck_curves(cfg, results: dict, out_dir: str) -> list[str]:
    """``pck_<column>.png``: each row's PCK curve (mean over seeds), published ones beside."""
    written = []
    for column in cfg.data.columns:
        loader = cfg.data.sets[column].loader
        ours = []
        for row, (label, _, _) in plan.ROWS.items():
            cells = results.get(row, {}).get(column, {})
            if cells:
                t, pck = _mean_curve(cells)
                auc, _, n = summarise([c["auc_20_50"] for c in cells.values()])
                ours.append(
                    tables.ResultSummary(
                        tables.OUR_METHOD,
                        f"{label}, {n} seed{'s' if n > 1 else ''}",
                        loader,
                        "",
                        auc,
                        0.0,
                        0.0,
                        0,
                        tuple(t),
                        tuple(pck),
                        "",
                    )
                )
        if not ours:
            continue
        path = os.path.join(out_dir, f"pck_{column}.png")
        if loader in published.BENCHMARKS:
            eval_plots.plot_benchmark(loader, ours, path)
        else:
            curves = [
                (f"{r.variant} (AUC {r.auc_20_50:.3f})", r.thresholds_mm, r.pck) for r in ours
            ]
            eval_plots.plot_pck(curves, path, title=f"{column_title(cfg, column)}: 3D PCK")
        written.append(path)
    return written


def plot_refinement(curve: dict, path: str) -> None:
    """Two panels: root-relative 3D error and 2D error against refinement iterations."""
    fig = Figure(figsize=(9, 3.6), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    for column, c in curve["columns"].items():
        steps = np.arange(len(c["err3d_mm"]))
        axes[0].plot(steps, c["err3d_mm"], label=f"{column} ({c['count']} crops)")
        axes[1].plot(steps, c["err2d_px"], label=column)
    axes[0].set(xlabel="refinement iteration", ylabel="root-relative 3D error (mm)")
    axes[1].set(xlabel="refinement iteration", ylabel="2D reprojection error (px)")
    for ax in axes:
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(
        f"Test-time refinement of row (b)'s model, seed {curve['seed']} (iteration 0: the network)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path)
