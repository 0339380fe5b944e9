"""Choose test-time refinement's steps and weights on the validation split (never on test).

For each candidate setting, the estimation function (``hand_jax.estimate``) refines the
network's estimate against its own evidence for ``--steps`` steps, keeping every iterate; the
3D and 2D errors of the iterate after each step are measured against the labels, so one run
per setting gives the whole error-against-iterations curve. Prints a table (network, and each
setting at its best step count and at ``--steps``), writes ``results/refine_choice.png`` (root
relative 3D error and 2D reprojection error against iterations) and ``results/refine_choice.json``.

    python -m benchmarks.refine_choice --data_dir=/work/data/synthetic_v2 --count=256
"""

import json
import os
import time

import numpy as np
from absl import app, flags

from hand_jax import estimate
from hand_jax.estimate import scoring as ds
from hand_jax.reproduce import figures

_DATA_DIR = flags.DEFINE_string("data_dir", None, "Synthetic dataset root.", required=True)
_SPLIT = flags.DEFINE_string("split", "val", "Split to choose on (never test).")
_COUNT = flags.DEFINE_integer("count", 256, "Samples of the split (0: all).")
_STEPS = flags.DEFINE_integer("steps", 60, "Refinement steps per setting.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Run or model dir (default: shipped).")
_OUT = flags.DEFINE_string("out", "results/refine_choice", "Output path stem (.png, .json).")
_ONLY = flags.DEFINE_list("only", [], "Run only these setting names.")

# name: (learning rate, weights over estimate.core.DEFAULT_WEIGHTS)
SETTINGS = {
    "default": (0.05, {}),
    "prox_1e-2": (0.05, {"proximity": 1e-2}),
    "prox_1e-1": (0.05, {"proximity": 1e-1}),
    "keypoints_only": (0.05, {"proximity": 1e-2, "silhouette": 0.0}),
    "silhouette_only": (0.05, {"proximity": 1e-2, "keypoints": 0.0}),
    "lr_0.02_prox_1e-2": (0.02, {"proximity": 1e-2}),
}


def main(argv):
    del argv
    if _SPLIT.value == "test":
        raise app.UsageError("choices are made on the validation split, never on test")
    net = estimate.load_network(_CHECKPOINT.value)
    samples = ds.load_protocol_crops(
        net, dataset="synthetic", data_dir=_DATA_DIR.value, split=_SPLIT.value, count=_COUNT.value
    )
    results = {}
    for name, (lr, weights) in SETTINGS.items():
        if _ONLY.value and name not in _ONLY.value:
            continue
        start = time.time()
        fn = estimate.make_estimate_fn(
            net, refine_steps=_STEPS.value, learning_rate=lr, weights=weights,
            return_trajectory=True,
        )  # fmt: skip
        e3, e2 = figures.iterate_errors(fn, samples, batch_size=64)
        results[name] = {"lr": lr, "weights": weights, "err3d_mm": e3.tolist(),
                         "err2d_px": e2.tolist(), "wall_s": time.time() - start}  # fmt: skip
        best = int(np.argmin(e3))
        _save(results, len(samples))  # after every setting: a stopped run keeps what it measured
        print(
            f"{name:20s} network {e3[0]:6.2f} mm {e2[0]:5.2f} px | best at step {best:3d}: "
            f"{e3[best]:6.2f} mm | step {len(e3) - 1}: {e3[-1]:6.2f} mm {e2[-1]:5.2f} px "
            f"({time.time() - start:.0f} s)",
            flush=True,
        )


def _save(results, count):
    os.makedirs(os.path.dirname(_OUT.value) or ".", exist_ok=True)
    with open(_OUT.value + ".json", "w") as f:
        json.dump({"split": _SPLIT.value, "count": count, "settings": results}, f)
    _plot(results, _OUT.value + ".png", count)


def _plot(results, path, count):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, r in results.items():
        axes[0].plot(r["err3d_mm"], label=name)
        axes[1].plot(r["err2d_px"], label=name)
    axes[0].set(xlabel="refinement step", ylabel="root-relative 3D error (mm)")
    axes[1].set(xlabel="refinement step", ylabel="2D reprojection error (px)")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Refinement on the network's own evidence ({count} validation crops)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    app.run(main)
