"""Does self-data augmentation help? Narrow-view training, wide-view testing, several seeds.

The setting where the paper's claim can show: a labelled training set whose viewpoints cover a
narrow cone (the synthetic generator's ``--views=narrow``, like STB's frontal views) and a test
set of photograph-like views (``--views=natural``). Per seed:

  base   train on the narrow set (``launch.train``, preset ``--preset``);
  aug    fit base to the narrow training set against its labels, re-render every fit from
         ``--views`` new viewpoints and shapes (``launch.augment``);
  mixed  train again from scratch on the narrow set mixed 1:1 with aug
         (``--config.data.extra_dirs``), same preset and steps;

then both models on the narrow test split and the wide test split (network alone, protocol
alignments). Prints mean +- std over the seeds, writes ``<out>/study.md``, ``study.json`` and a
PNG. Every stage is a launcher command and resumable: rerunning the script continues where it
stopped (finished stages are skipped, an interrupted training resumes from its checkpoint).

    python -m benchmarks.augment_study --study_dir=/work/runs/augment_study --seeds=0,1,2
"""

import json
import os
import subprocess
import sys
import time

import numpy as np
from absl import app, flags

_DIR = flags.DEFINE_string("study_dir", None, "Working folder (data, runs).", required=True)
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Training seeds.")
_PRESET = flags.DEFINE_string("preset", "cpu_small", "Training preset (synthetic.py).")
_NUM_TRAIN = flags.DEFINE_integer("num_train", 2048, "Narrow training samples.")
_NUM_TEST = flags.DEFINE_integer("num_test", 512, "Test samples per test set.")
_VIEWS = flags.DEFINE_integer("views", 2, "New views per fitted training sample.")
_STEPS = flags.DEFINE_integer("num_steps", 0, "Training steps (0: the preset's).")
_OUT = flags.DEFINE_string("out", "results/augment_study", "Output folder for the table and PNG.")

METRICS = ("kp3d_epe_mm", "zb_auc_20_50", "pa_epe_mm", "kp2d_epe_px")


def _run(args: list[str], log: str) -> None:
    """Run one launcher stage, appending to its log; raise if it fails."""
    start = time.perf_counter()
    print(f"  $ {' '.join(args)}", flush=True)
    os.makedirs(os.path.dirname(log), exist_ok=True)
    with open(log, "a") as f:
        done = subprocess.run([sys.executable, "-m", *args], stdout=f, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise RuntimeError(f"stage failed (exit {done.returncode}); see {log}")
    print(f"    done in {time.perf_counter() - start:.0f} s", flush=True)


def _data(root: str) -> dict:
    paths = {"narrow": os.path.join(root, "data", "narrow"),
             "wide": os.path.join(root, "data", "wide")}  # fmt: skip
    common = ["--image_size=128", "--progress=false", "--contact_sheet=16"]
    if not os.path.exists(os.path.join(paths["narrow"], "manifest.json")):
        _run(["launch.make_synthetic", f"--out_dir={paths['narrow']}", "--views=narrow",
              f"--num_train={_NUM_TRAIN.value}", "--num_val=256",
              f"--num_test={_NUM_TEST.value}", "--seed=100", *common],
             os.path.join(root, "data.log"))  # fmt: skip
    if not os.path.exists(os.path.join(paths["wide"], "manifest.json")):
        _run(["launch.make_synthetic", f"--out_dir={paths['wide']}", "--views=natural",
              "--num_train=0", f"--num_test={_NUM_TEST.value}", "--seed=101", *common],
             os.path.join(root, "data.log"))  # fmt: skip
    return paths


def _train(root, seed, name, paths, extra=()) -> str:
    workdir = os.path.join(root, f"seed{seed}", name)
    args = ["launch.train", f"--config=launch/configs/synthetic.py:{_PRESET.value}",
            f"--config.seed={seed}", f"--workdir={workdir}", f"--data_dir={paths['narrow']}",
            *extra]  # fmt: skip
    if _STEPS.value:
        args.append(f"--config.train.num_steps={_STEPS.value}")
    _run(args, os.path.join(root, f"seed{seed}", f"{name}.log"))
    return workdir


def _augment(root, seed, base, paths) -> str:
    out = os.path.join(root, f"seed{seed}", "aug")
    if not os.path.exists(os.path.join(out, "manifest.json")):
        _run(["launch.augment", f"--checkpoint={base}", f"--data_dir={paths['narrow']}",
              "--split=train", f"--views_per_sample={_VIEWS.value}", f"--seed={seed}",
              f"--out_dir={out}", "--progress=false"],
             os.path.join(root, f"seed{seed}", "aug.log"))  # fmt: skip
    return out


def _evaluate(run: str, paths: dict) -> dict:
    from hand_jax import estimate
    from hand_jax.estimate import scoring as ds

    fn = estimate.make_estimate_fn(run, refine_steps=0)
    out = {}
    for name, path in paths.items():
        samples = ds.load_protocol_crops(fn.network, dataset="synthetic", data_dir=path,
                                         split="test")  # fmt: skip
        m = ds.score(fn, samples, batch_size=64)["network"]
        out[name] = {k: float(m[k]) for k in METRICS}
    return out


def _seed(root, seed, paths) -> dict:
    result_path = os.path.join(root, f"seed{seed}", "result.json")
    if os.path.exists(result_path):
        with open(result_path) as f:
            return json.load(f)
    print(f"seed {seed}:", flush=True)
    base = _train(root, seed, "base", paths)
    aug = _augment(root, seed, base, paths)
    mixed = _train(root, seed, "mixed", paths, [f"--config.data.extra_dirs={aug}",
                                                "--config.data.extra_weights=1.0"])  # fmt: skip
    with open(os.path.join(aug, "manifest.json")) as f:
        counts = {k: v for k, v in json.load(f)["augment"].items() if k != "request"}
    result = {"base": _evaluate(base, paths), "mixed": _evaluate(mixed, paths), "aug": counts}
    with open(result_path + ".tmp", "w") as f:
        json.dump(result, f, indent=1)
    os.replace(result_path + ".tmp", result_path)
    return result


def _table(results: dict) -> str:
    lines = ["| model | test views | " + " | ".join(METRICS) + " |",
             "|---|---|" + "---|" * len(METRICS)]  # fmt: skip
    for model in ("base", "mixed"):
        for views in ("narrow", "wide"):
            cells = []
            for k in METRICS:
                v = np.array([r[model][views][k] for r in results.values()])
                cells.append(f"{v.mean():.3f} +- {v.std():.3f}" if "auc" in k
                             else f"{v.mean():.2f} +- {v.std():.2f}")  # fmt: skip
            lines.append(f"| {model} | {views} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _plot(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    for i, views in enumerate(("narrow", "wide")):
        for j, model in enumerate(("base", "mixed")):
            v = np.array([r[model][views]["kp3d_epe_mm"] for r in results.values()])
            x = i * 3 + j
            ax.bar(x, v.mean(), yerr=v.std(), color=("tab:gray", "tab:green")[j],
                   label=model if i == 0 else None)  # fmt: skip
            ax.scatter(np.full(len(v), x), v, color="k", s=8, zorder=3)
    ax.set_xticks([0.5, 3.5], ["narrow-view test", "wide-view test"])
    ax.set_ylabel("root-relative 3D error (mm)")
    ax.set_title(f"self-data augmentation, {len(results)} seeds", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def main(argv):
    del argv
    root = os.path.abspath(_DIR.value)
    os.makedirs(root, exist_ok=True)
    paths = _data(root)
    results = {}
    for seed in _SEEDS.value:
        results[seed] = _seed(root, int(seed), paths)
        table = _table(results)
        print(table, flush=True)
        os.makedirs(_OUT.value, exist_ok=True)
        with open(os.path.join(_OUT.value, "study.json"), "w") as f:
            json.dump({"preset": _PRESET.value, "num_train": _NUM_TRAIN.value,
                       "views": _VIEWS.value, "seeds": results}, f, indent=1)  # fmt: skip
        with open(os.path.join(_OUT.value, "study.md"), "w") as f:
            f.write(table + "\n")
        _plot(results, os.path.join(_OUT.value, "study.png"))


if __name__ == "__main__":
    app.run(main)
