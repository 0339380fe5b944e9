"""Speed of the photograph pipeline per hand: detection, landmarks and refined estimation.

On the shipped sample pictures (repeated to fill the batch): the detector finds each hand
(palm detector, two landmark passes; ``hand_jax.detector.hands``), the network's crop and the
evidence are built (``hand_jax.estimate.detected``), and the shipped network is refined
``--steps`` steps against the detector's evidence (``estimate.job.DETECTOR_WEIGHTS``). Hands per
second at each batch size, after a warm-up call that compiles; the stages timed apart. Quote the
load average printed beside the table.

    python -m benchmarks.photo_pipeline_speed --batches=1,16
"""

import glob
import os
import time

import imageio.v3 as iio
import numpy as np
from absl import app, flags

from hand_jax.detector import hands
from hand_jax.estimate import core, detected, job

_BATCHES = flags.DEFINE_list("batches", ["1", "16"], "Pictures (one hand each) per call.")
_STEPS = flags.DEFINE_integer("steps", core.DEFAULT_STEPS, "Refinement steps.")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Timed rounds (best kept).")
SAMPLES = os.path.join(os.path.dirname(__file__), "..", "hand_jax", "assets", "samples", "*.png")


def _once(fns, estimate, pictures, net, mask_size):
    t0 = time.perf_counter()
    found = hands.detect_hands(fns, pictures, batch_size=len(pictures))
    t1 = time.perf_counter()
    items = []
    for i, (p, f) in enumerate(zip(pictures, found, strict=True)):
        items += detected.hand_items(p, f"{i}.png", i, f[:1], margin=net.crop_margin,
                                     size=net.image_size, camera={"fov_deg": 65.0},
                                     mask_size=mask_size)  # fmt: skip
    keys = ("keypoints_2d", "confidence", "mask", "keypoints_3d")
    evidence = core.refine.Evidence(**{k: np.stack([it["evidence"][k] for it in items])
                                       for k in keys})  # fmt: skip
    e = estimate(np.stack([it["crop"] for it in items]), evidence=evidence,
                 K=np.stack([it["K"] for it in items]))  # fmt: skip
    np.asarray(e.verts)
    t2 = time.perf_counter()
    return len(items), t1 - t0, t2 - t1


def main(argv):
    del argv
    images = [iio.imread(p)[..., :3] for p in sorted(glob.glob(SAMPLES))]
    fns = hands.make_detect_fn(hands.load_detector())
    net = core.load_network()
    estimate = core.make_estimate_fn(net, refine_steps=_STEPS.value, weights=job.DETECTOR_WEIGHTS)
    mask_size = estimate.silhouette.size
    print(f"load average {os.getloadavg()}")
    print("| pictures per call | hands | detection s | estimation s | hands/s |")
    print("|---:|---:|---:|---:|---:|")
    for batch in (int(b) for b in _BATCHES.value):
        pictures = [images[i % len(images)] for i in range(batch)]
        _once(fns, estimate, pictures, net, mask_size)  # compile
        best = min((_once(fns, estimate, pictures, net, mask_size) for _ in range(_ROUNDS.value)),
                   key=lambda r: r[1] + r[2])  # fmt: skip
        n, det, est = best
        print(f"| {batch} | {n} | {det:.3f} | {est:.3f} | {n / (det + est):.1f} |")
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    app.run(main)
