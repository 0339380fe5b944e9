"""Validation curves of a training run, and a per-part profile of the training step.

  python -m benchmarks.train_curve --workdir=out/run [--out=results/train_curve.png]
  python -m benchmarks.train_curve --profile --config=launch/configs/synthetic.py:cpu_small \\
      --data_dir=out/synthetic [--steps=20]

Curve mode reads ``RUN/metrics.jsonl`` (written by ``hand_jax.train.loop``): training records
(``step``, ``stage``, ``steps_per_sec``, loss terms, ``wall_s`` = cumulative training seconds) and
evaluation records (``step``, ``eval``: ``hand_jax.network.validation.compute_metrics`` keys). Where
``wall_s`` is missing (older runs) the training time is integrated from ``steps_per_sec`` over the
logged intervals (evaluation time excluded, as in ``wall_s``). Records repeated by a resume are
taken from the latest run. It prints a markdown table per evaluation and draws validation error
against step and against training wall time, with the stage boundaries of ``RUN/config.json``.

Profile mode times each part of a training step on the config's data: the input pipeline alone
(``train_loop.GrainBatches``, batches/s), each stage's compiled step (``e2d``, ``e3d``, ``joint``
with the silhouette loss off and on; one batch held on device, after a warm-up call) and the
training loop as run (next batch, transfer, joint step with the silhouette off), so that the
bottleneck is visible. Times are wall-clock with ``jax.block_until_ready``.
"""

import json
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from hand_jax import data, sharding
from hand_jax.network import batches as nb
from hand_jax.network import settings as ns
from hand_jax.train import loop as train_loop

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory with metrics.jsonl (curve mode).")
_OUT = flags.DEFINE_string("out", "results/train_curve.png", "PNG of the curves.")
_PROFILE = flags.DEFINE_bool("profile", False, "Profile the training step instead.")
_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config (profile mode).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Dataset root (profile mode).")
_MANO_PATH = flags.DEFINE_string("mano_path", None, "MANO .pkl/.npz; default: embedded hand.")
_STEPS = flags.DEFINE_integer("steps", 20, "Timed batches / steps per case (profile mode).")

COLUMNS = (
    "kp3d_epe_mm", "zb_auc_20_50", "pa_epe_mm", "e2d_epe_frac", "mask_iou", "silhouette_iou",
)  # fmt: skip
PANELS = (
    ("3D EPE (mm)", ("kp3d_epe_mm", "zb_epe_mm", "pa_epe_mm")),
    ("3D AUC", ("kp3d_auc_20_50", "zb_auc_20_50", "pa_auc_0_50")),
    ("2D error / crop, IoU", ("e2d_epe_frac", "mask_iou", "silhouette_iou")),
)


def _environment() -> str:
    return (
        f"jax {jax.__version__}, {jax.devices()[0].device_kind} x {jax.device_count()}; "
        f"{os.cpu_count()} CPUs; XLA_FLAGS={os.environ.get('XLA_FLAGS', '(unset)')!r}; "
        f"load average {os.getloadavg()[0]:.1f}"
    )


# Curve mode.


def read_records(path: str) -> tuple[list[dict], list[dict]]:
    """Training and evaluation records of a metrics.jsonl, one per step (the latest), by step."""
    train, evals = {}, {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a kill
                continue
            if "eval" in r:
                evals[r["step"]] = r
            elif "steps_per_sec" in r or "wall_s" in r:
                train[r["step"]] = r
    return [train[s] for s in sorted(train)], [evals[s] for s in sorted(evals)]


def wall_seconds(train: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(steps, cumulative training seconds) at the logged steps, starting at (0, 0).

    Uses ``wall_s`` where every record has it, else integrates ``1 / steps_per_sec`` over each
    logged interval.
    """
    steps = np.array([0] + [r["step"] for r in train], float)
    if train and all("wall_s" in r for r in train):
        return steps, np.array([0.0] + [r["wall_s"] for r in train])
    dt = [
        (r["step"] - prev) / r["steps_per_sec"] if r.get("steps_per_sec", 0) > 0 else 0.0
        for prev, r in zip(steps[:-1], train, strict=True)
    ]
    return steps, np.concatenate([[0.0], np.cumsum(dt)])


def _stage_steps(workdir: str) -> list[int]:
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        cfg = json.load(f).get("train", {})
    if "e2d_steps" not in cfg or "e3d_steps" not in cfg:
        return []
    return [cfg["e2d_steps"], cfg["e2d_steps"] + cfg["e3d_steps"]]


def _fmt(x) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:.4g}"


def curve_table(evals: list[dict], minutes: np.ndarray) -> str:
    """A markdown table: one row per evaluation."""
    lines = [
        "| step | wall (min) | " + " | ".join(COLUMNS) + " |",
        "|---" * (2 + len(COLUMNS)) + "|",
    ]
    for r, m in zip(evals, minutes, strict=True):
        cells = [_fmt(r["eval"].get(k)) for k in COLUMNS]
        lines.append(f"| {r['step']} | {m:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_curves(evals, minutes, boundaries, boundary_minutes, path: str, *, title: str) -> None:
    """Validation metrics against step (top row) and wall minutes (bottom row)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.array([r["step"] for r in evals])
    fig, axes = plt.subplots(2, len(PANELS), figsize=(4.2 * len(PANELS), 6.4), squeeze=False)
    for row, (x, xlabel, marks) in enumerate(
        ((steps, "step", boundaries), (minutes, "training wall time (min)", boundary_minutes))
    ):
        for ax, (name, keys) in zip(axes[row], PANELS, strict=True):
            for k in keys:
                y = np.array([r["eval"].get(k, np.nan) for r in evals], float)
                if np.any(np.isfinite(y)):
                    ax.plot(x, y, marker="o", markersize=3, label=k)
            for b in marks:
                ax.axvline(b, color="grey", linestyle=":", linewidth=1)
            ax.set_xlabel(xlabel)
            ax.set_title(name, fontsize=9)
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
    fig.suptitle(f"{title} (dotted: stage boundaries e2d | e3d | joint)", fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def curves(workdir: str, out: str) -> None:
    """Print the validation table of a run and write the curves' PNG to ``out``."""
    train, evals = read_records(os.path.join(workdir, "metrics.jsonl"))
    if not evals:
        raise app.UsageError(f"{workdir}/metrics.jsonl has no evaluation records")
    steps, wall = wall_seconds(train)
    source = "wall_s" if train and all("wall_s" in r for r in train) else "1/steps_per_sec"
    minutes = np.interp([r["step"] for r in evals], steps, wall) / 60.0
    boundaries = [b for b in _stage_steps(workdir) if 0 < b <= max(steps.max(), evals[-1]["step"])]
    boundary_minutes = list(np.interp(boundaries, steps, wall) / 60.0)
    print(f"{workdir}: {len(train)} training and {len(evals)} evaluation records; wall time from "
          f"{source}; stage boundaries at steps {boundaries or 'n/a'}")  # fmt: skip
    print(curve_table(evals, minutes))
    plot_curves(evals, minutes, boundaries, boundary_minutes, out, title=workdir)
    print(f"wrote {out}")


# Profile mode.


def _time(fn, n: int) -> float:
    """Seconds per call of ``fn`` over ``n`` calls (the last result blocked on)."""
    t = time.perf_counter()
    out = None
    for _ in range(n):
        out = fn()
    jax.block_until_ready(out)
    return (time.perf_counter() - t) / n


def profile(config, *, data_dir: str, mano_path, steps: int) -> None:
    """Time the input pipeline, each stage's step and the loop; print a table."""
    config = config.copy_and_resolve_references()
    config.loss.silhouette_gate = "never"
    samples = data.load_split(
        config.data.name, data_dir, config.data.train_split, crop_margin=config.data.crop_margin
    )
    batches = train_loop.GrainBatches(samples, config=config)
    rows = []
    t = time.perf_counter()
    next(batches)
    rows.append(("input: first batch (pipeline start)", time.perf_counter() - t, None))
    # At least 16 batches: a prefetch buffer filled during the first call would flatter a few.
    rows.append(("input: GrainBatches next()", _time(lambda: next(batches), max(steps, 16)),
                 "batch"))  # fmt: skip

    mesh, consts, programs = train_loop.build(config, mano_path=mano_path)
    batch_sharding = sharding.batch_sharding(mesh)
    batch = nb.to_global(next(batches), batch_sharding)
    state = programs.init(train_loop.init_key(config.seed), h_init=consts.h_init)
    key = jax.random.fold_in(jax.random.key(config.seed), 1)

    config_on = config.copy_and_resolve_references()
    config_on.loss.silhouette_gate = "always"
    h_dim = consts.h_init.shape[0]
    num_betas = ns.num_betas_of(consts, rot_repr=config.model.rot_repr)
    programs_on = train_loop.programs_for(config_on, num_betas=num_betas, h_dim=h_dim)
    cases = (
        ("e2d", programs, False),
        ("e3d", programs, False),
        ("joint, silhouette off", programs, False),
        ("joint, silhouette on", programs_on, True),
    )
    box = {"state": state}  # the state is donated: keep the latest one

    def run(step_fn, b):
        box["state"], metrics = step_fn(box["state"], b, key, consts)
        return metrics

    for name, progs, sil in cases:
        step_fn = progs.steps[name.split(",")[0]]
        # Keep the state's sharding: an uncommitted leaf would make the next call recompile.
        gate = jax.device_put(jnp.asarray(sil, bool), box["state"].silhouette_on.sharding)
        box["state"] = box["state"]._replace(silhouette_on=gate)
        t = time.perf_counter()
        metrics = jax.block_until_ready(run(step_fn, batch))
        rows.append((f"step {name}: compile + first call", time.perf_counter() - t, None))
        jax.block_until_ready(run(step_fn, batch))  # warm-up on the step's own output state
        on = "on" if bool(metrics["silhouette_on"]) else "off"  # the gate the step applied
        rows.append((f"step {name} (gate {on})", _time(lambda f=step_fn: run(f, batch), steps),
                     "step"))  # fmt: skip
    joint = programs.steps["joint"]
    loop = _time(lambda: run(joint, nb.to_global(next(batches), batch_sharding)), steps)
    rows.append(("loop: next + to_global + joint step (sil off)", loop, "step"))

    b = config.train.global_batch_size
    print(f"{config.data.name} at {config.data.image_size} px, global batch {b}, "
          f"data.num_workers={config.data.num_workers}, {steps} timed calls per row")  # fmt: skip
    print("| part | ms / call | calls / s | images / s |\n|---|---|---|---|")
    for name, sec, unit in rows:
        rate = f"{1 / sec:.2f} {unit}/s | {b / sec:.1f}" if unit else "- | -"
        print(f"| {name} | {1000 * sec:.1f} | {rate} |")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    print(_environment())
    if _PROFILE.value:
        if _CONFIG.value is None or not _DATA_DIR.value:
            raise app.UsageError("--profile needs --config and --data_dir")
        profile(_CONFIG.value, data_dir=_DATA_DIR.value, mano_path=_MANO_PATH.value,
                steps=_STEPS.value)  # fmt: skip
    elif _WORKDIR.value:
        curves(_WORKDIR.value, _OUT.value)
    else:
        raise app.UsageError("pass --workdir=RUN or --profile")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    app.run(main)
