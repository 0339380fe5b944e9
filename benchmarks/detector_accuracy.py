"""The ported MediaPipe Hands on synthetic validation renders: found hands, 2D and 3D error.

Runs ``hand_jax.detector.hands.detect_hands`` on each validation picture (the rendered image
around the hand, as the evaluation protocol crops it) and scores, against the renders' labels:
the fraction of hands found (presence >= 0.5; palm-detected or read from the whole picture),
handedness, the 2D landmark error (pixels of the picture), and the world landmarks' 3D error
(mm) root-relative (wrist on wrist, the detector's own metric scale) and after Procrustes
alignment. The keypoint definitions differ (MediaPipe marks the joints where real-photograph
annotators do, the renders where the hand model's joints are), which the adapter
(``--adapter``) corrects. Prints a Markdown table; writes ``<out>.json``.

    python -m benchmarks.detector_accuracy --data_dir=/work/data/synth_val --count=512
"""

import json
import os
import time

import numpy as np
from absl import app, flags

from hand_jax import data
from hand_jax.detector import hands
from hand_jax.eval import metrics

_DATA_DIR = flags.DEFINE_string("data_dir", None, "Synthetic dataset root.", required=True)
_SPLIT = flags.DEFINE_string("split", "val", "Split scored (never test).")
_COUNT = flags.DEFINE_integer("count", 512, "Samples scored (0: all).")
_SECOND = flags.DEFINE_bool("second_pass", True, "Re-read each hand from its landmarks' region.")
_OUT = flags.DEFINE_string("out", "results/detector_accuracy", "Output path stem (.json).")


def score(samples, found) -> dict:
    """Per-split metrics of the detections ``found`` (one list of hands per sample)."""
    ok = np.array([len(f) > 0 for f in found])
    best = [max(f, key=lambda h: h.presence) if f else None for f in found]
    idx = np.flatnonzero(ok)
    kp2 = np.stack([best[i].keypoints[:, :2] for i in idx])
    world = np.stack([best[i].world for i in idx]).astype(np.float64)
    gt2 = np.stack([samples[i]["keypoints_2d"] for i in idx])
    gt3 = np.stack([samples[i]["keypoints_3d"] for i in idx]).astype(np.float64)
    root_rel = metrics.align_root(world, gt3)
    pa = metrics.align_procrustes(world, gt3)
    return {
        "count": len(samples), "found": float(ok.mean()),
        "palm_found": float(np.mean([bool(f) and f[0].palm_score > 0 for f in found])),
        "right": float(np.mean([best[i].side == samples[i]["side"] for i in idx])),
        "kp2d_epe_px": float(np.linalg.norm(kp2 - gt2, axis=-1).mean()),
        "world_root_rel_mm": 1000 * float(np.linalg.norm(root_rel - gt3, axis=-1).mean()),
        "world_pa_mm": 1000 * float(np.linalg.norm(pa - gt3, axis=-1).mean()),
    }  # fmt: skip


def main(argv):
    del argv
    raw = data.load_split("synthetic", _DATA_DIR.value, _SPLIT.value)
    samples = [
        raw[i] for i in range(len(raw) if _COUNT.value == 0 else min(_COUNT.value, len(raw)))
    ]
    fns = hands.make_detect_fn(hands.load_detector())
    hands.detect_hands(fns, [s["image"] for s in samples[:8]], second_pass=_SECOND.value)
    start = time.perf_counter()
    found = hands.detect_hands(fns, [s["image"] for s in samples], second_pass=_SECOND.value)
    wall = time.perf_counter() - start
    result = {**score(samples, found), "images_per_s": len(samples) / wall,
              "second_pass": _SECOND.value, "split": _SPLIT.value}  # fmt: skip
    print("| " + " | ".join(result) + " |\n|" + "---|" * len(result))
    print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v)
                            for v in result.values()) + " |")  # fmt: skip
    os.makedirs(os.path.dirname(_OUT.value) or ".", exist_ok=True)
    with open(_OUT.value + ".json", "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    app.run(main)
