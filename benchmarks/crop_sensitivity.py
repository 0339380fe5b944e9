"""How a model's accuracy depends on the crop it is given: tight, loose, shifted, whole image.

Training crops are the keypoints' box with a margin and small jitter; a photograph's crop is a
user's box or the centred square (``launch.estimate``). This scores a model on the synthetic
validation split under each crop: the box side times ``--scales`` (1 = the training crop), each
with no shift and with the box centre moved by ``--shift`` of the side in a seeded random
direction, and the whole image's centred square. Metrics are the validation metrics
(``hand_jax.network.validation``): root-relative and Procrustes 3D error (mm), fE2D and reprojected
2D error (crop pixels, at the network's input size). Prints a Markdown table and writes
``results/crop_sensitivity.json`` and ``results/crop_sensitivity.png``.

    python -m benchmarks.crop_sensitivity --data_dir=/work/data/synth_val [--model=DIR]
"""

import json
import os

import numpy as np
from absl import app, flags

from hand_jax import data, network
from hand_jax.data import crop

_DATA_DIR = flags.DEFINE_string("data_dir", None, "Synthetic dataset root.", required=True)
_SPLIT = flags.DEFINE_string("split", "val", "Split scored (never test).")
_MODEL = flags.DEFINE_string("model", None, "Run or model dir (default: the shipped model).")
_COUNT = flags.DEFINE_integer("count", 512, "Samples scored (0: all).")
_SCALES = flags.DEFINE_list("scales", ["0.7", "0.85", "1.0", "1.25", "1.5"], "Box side factors.")
_SHIFT = flags.DEFINE_float("shift", 0.15, "Box centre shift, fraction of the side.")
_OUT = flags.DEFINE_string("out", "results/crop_sensitivity", "Output path stem (.json, .png).")
KEYS = ("kp3d_epe_mm", "pa_epe_mm", "pve_mm", "pa_pve_mm", "e2d_epe_px", "kp2d_epe_px")


def _centred_square(sample, size):
    """The image's largest centred square: what a photograph without a box gets.

    Expressed as ``crop_sample``'s scale and shift of the keypoints' tight box (margin 0).
    """
    h, w = sample["image"].shape[:2]
    side = min(h, w)
    u0, v0, tight = crop.keypoint_box(sample["keypoints_2d"], sample["keypoint_valid"], margin=0.0)
    shift = ((w / 2 - u0 - tight / 2) / side, (h / 2 - v0 - tight / 2) / side)
    return crop.crop_sample(sample, out_size=size, scale=side / tight, shift=shift, margin=0.0)


def _crops(raw, net, scale, shift, rng):
    out = []
    for s in raw:
        angle = rng.uniform(0, 2 * np.pi)
        d = (shift * np.cos(angle), shift * np.sin(angle))
        out.append(crop.crop_sample(s, out_size=net.image_size, margin=net.crop_margin,
                                    scale=scale, shift=d))  # fmt: skip
    return out


def _metrics(net, samples):
    p = network.run_network(net, samples)
    p.update(network.validation.mesh_labels(samples, net.consts.hand_model))
    m = network.validation.compute_metrics(p)
    return {k: float(m[k]) for k in KEYS if k in m}


def _plot(rows, path):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    for shift in sorted({r["shift"] for r in rows if r["scale"] is not None}):
        sel = [r for r in rows if r["shift"] == shift and r["scale"] is not None]
        for ax, key in zip(axes, ("kp3d_epe_mm", "pa_epe_mm"), strict=True):
            ax.plot([r["scale"] for r in sel], [r[key] for r in sel], "o-", label=f"shift {shift}")
            ax.set_xlabel("box side / training box side")
            ax.set_ylabel(key)
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv):
    del argv
    net = network.restore(_MODEL.value)
    raw = data.load_split("synthetic", _DATA_DIR.value, _SPLIT.value)
    raw = [raw[i] for i in range(len(raw) if _COUNT.value == 0 else min(_COUNT.value, len(raw)))]
    rows = []
    for scale in (float(x) for x in _SCALES.value):
        for shift in (0.0, _SHIFT.value):
            rng = np.random.default_rng(0)
            rows.append({"scale": scale, "shift": shift,
                         **_metrics(net, _crops(raw, net, scale, shift, rng))})  # fmt: skip
            print(rows[-1], flush=True)
    centred = [_centred_square(s, net.image_size) for s in raw]
    rows.append({"scale": None, "shift": None, **_metrics(net, centred)})
    print("| crop | " + " | ".join(KEYS) + " |\n|---|" + "---:|" * len(KEYS))
    for r in rows:
        name = "whole image (centred square)" if r["scale"] is None else (
            f"side x{r['scale']:g}, shift {r['shift']:g}")  # fmt: skip
        print(f"| {name} | " + " | ".join(f"{r.get(k, float('nan')):.2f}" for k in KEYS) + " |")
    os.makedirs(os.path.dirname(_OUT.value) or ".", exist_ok=True)
    with open(_OUT.value + ".json", "w") as f:
        json.dump({"model": _MODEL.value or "shipped", "split": _SPLIT.value,
                   "count": len(raw), "rows": rows}, f, indent=1)  # fmt: skip
    _plot(rows, _OUT.value + ".png")


if __name__ == "__main__":
    app.run(main)
