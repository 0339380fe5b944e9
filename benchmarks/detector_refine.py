"""Estimation with the detector's evidence on synthetic validation renders: choose the weights.

Each validation picture goes through what ``launch.estimate --evidence=detector`` does: the
detector finds the hand (``hand_jax.detector``), the network's crop is cut around its landmarks
(``hand_jax.estimate.detected``), and the shipped network's estimate is refined against the
detector's 2D landmarks and world landmarks (``refine.energy``'s ``keypoints_3d`` term) under
each weight setting of ``--grid``; the network alone and the network's own evidence on the same
crops are the baselines, and the detector's world landmarks themselves a reference. The hand's
side is the label's (handedness is scored apart by ``benchmarks/detector_accuracy.py``).
Errors (mm) against the labels: root-relative (wrists aligned) and Procrustes, over the
pictures where the detector found a hand, and over the subset where the detector's world
landmarks are about as good as on real photographs (``--good_mm``): on renders the detector is
far weaker than on photographs (21 mm Procrustes against 11), and the network far stronger (14
against 34), so only that subset resembles the photographs the weights are chosen for.
Prints a Markdown table; writes ``<out>.json``.

    python -m benchmarks.detector_refine --data_dir=/work/data/synth_val --count=256
"""

import json
import os
import time

import jax.numpy as jnp
import numpy as np
from absl import app, flags

from hand_jax import camera, data
from hand_jax.detector import hands
from hand_jax.estimate import core, detected, job
from hand_jax.eval import metrics

_DATA_DIR = flags.DEFINE_string("data_dir", None, "Synthetic dataset root.", required=True)
_SPLIT = flags.DEFINE_string("split", "val", "Split scored (never test).")
_COUNT = flags.DEFINE_integer("count", 256, "Samples scored (0: all).")
_STEPS = flags.DEFINE_integer("steps", core.DEFAULT_STEPS, "Refinement steps.")
_GRID = flags.DEFINE_list(
    "grid", ["0:0.1", "1:0.1", "1:0.01", "3:0.01", "10:0.01", "3:0.001"],
    "keypoints_3d weight : proximity weight settings (2D weight 1, silhouette 0).",
)  # fmt: skip
_OUT = flags.DEFINE_string("out", "results/detector_refine", "Output path stem (.json).")
_GOOD = flags.DEFINE_float(
    "good_mm", 12.0,
    "The 'detector good' subset: pictures whose world landmarks are within this Procrustes "
    "error, the detector's accuracy on real photographs (about 11 mm).",
)  # fmt: skip


def _items(samples, found, net, mask_size):
    items, keep = [], []
    for i, (s, f) in enumerate(zip(samples, found, strict=True)):
        if not f:
            continue
        K = s["K"]
        cam = {"intrinsics": (K[0, 0], K[1, 1], K[0, 2], K[1, 2])}
        items += detected.hand_items(s["image"], s["id"], i, f[:1], margin=net.crop_margin,
                                     size=net.image_size, camera=cam, side=s["side"],
                                     mask_size=mask_size)  # fmt: skip
        keep.append(i)
    return items, keep


def _errors(pred_view, items, gt):
    """Root-relative and Procrustes errors (mm) of view-frame predictions against labels."""
    size = items[0]["crop"].shape[0]
    R = np.stack([np.asarray(camera.view_rotation(jnp.asarray(it["K"]), image_size=size))
                  for it in items])  # fmt: skip
    pred = np.einsum("nji,nkj->nki", R, pred_view).astype(np.float64)  # view -> camera frame
    return _per_sample(pred, gt)


def _per_sample(pred, gt):
    """Per-sample root-relative and Procrustes errors (mm) of camera-frame keypoints."""
    mm = lambda a: 1000 * np.linalg.norm(a - gt, axis=-1).mean(-1)  # noqa: E731
    return mm(metrics.align_root(pred, gt)), mm(metrics.align_procrustes(pred, gt))


def _row(name, errors, good, **extra):
    """Means over every picture and over those where the detector is as good as on photos."""
    root, pa = errors
    return {"setting": name, "root_rel_mm": float(root.mean()), "pa_mm": float(pa.mean()),
            "good_root_rel_mm": float(root[good].mean()), "good_pa_mm": float(pa[good].mean()),
            **extra}  # fmt: skip


def _run(estimate, items, evidence: bool):
    out = []
    for lo in range(0, len(items), 64):
        chunk = items[lo : lo + 64]
        pad = chunk + [chunk[-1]] * (64 - len(chunk))
        ev = None
        if evidence:
            ev = core.refine.Evidence(**{
                k: np.stack([it["evidence"][k] for it in pad])
                for k in ("keypoints_2d", "confidence", "mask", "keypoints_3d")
            })  # fmt: skip
        e = estimate(np.stack([it["crop"] for it in pad]), evidence=ev,
                     K=np.stack([it["K"] for it in pad]))  # fmt: skip
        out.append(
            (np.asarray(e.keypoints_3d)[: len(chunk)], np.asarray(e.energy_after)[: len(chunk)])
        )
    return np.concatenate([o[0] for o in out]), np.concatenate([o[1] for o in out])


def main(argv):
    del argv
    raw = data.load_split("synthetic", _DATA_DIR.value, _SPLIT.value)
    samples = [
        raw[i] for i in range(len(raw) if _COUNT.value == 0 else min(_COUNT.value, len(raw)))
    ]
    found = hands.detect_hands(hands.make_detect_fn(hands.load_detector()),
                               [s["image"] for s in samples])  # fmt: skip
    net = core.load_network()
    mask_size = core.evidence_mask_size(net)
    items, keep = _items(samples, found, net, mask_size)
    gt = np.stack([samples[i]["keypoints_3d"] for i in keep]).astype(np.float64)
    world = np.stack([found[i][0].world for i in keep]).astype(np.float64)
    world_errors = _per_sample(world, gt)
    good = world_errors[1] <= _GOOD.value
    rows = [_row("detector's world landmarks", world_errors, good)]
    for name, steps, weights, evidence in _settings():
        start = time.perf_counter()
        estimate = core.make_estimate_fn(net, refine_steps=steps, weights=weights)
        pred, energy = _run(estimate, items, evidence)
        errors = _errors(pred, items, gt)
        rows.append(_row(name, errors, good, wall_s=round(time.perf_counter() - start, 1),
                         **_confidence_ranks(items, energy, errors)))  # fmt: skip
        print(rows[-1], flush=True)
    print(
        f"{len(keep)} of {len(samples)} pictures with a hand found; {int(good.sum())} where "
        f"the detector's world landmarks are within {_GOOD.value:g} mm (Procrustes)"
    )
    print(
        "| setting | root-relative mm | Procrustes mm | root-relative, detector good | "
        "Procrustes, detector good |\n|---|---:|---:|---:|---:|"
    )
    for r in rows:
        print(
            f"| {r['setting']} | {r['root_rel_mm']:.2f} | {r['pa_mm']:.2f} | "
            f"{r['good_root_rel_mm']:.2f} | {r['good_pa_mm']:.2f} |"
        )
    os.makedirs(os.path.dirname(_OUT.value) or ".", exist_ok=True)
    with open(_OUT.value + ".json", "w") as f:
        json.dump({"found": len(keep), "good": int(good.sum()), "count": len(samples),
                   "rows": rows}, f, indent=1)  # fmt: skip


def _confidence_ranks(items, energy, errors) -> dict:
    """Spearman rank correlation of ``job.hand_confidence`` with minus each error."""
    from scipy.stats import spearmanr

    conf = [job.hand_confidence(it["detection"]["presence"], float(e))
            for it, e in zip(items, energy, strict=True)]  # fmt: skip
    root, pa = errors
    return {"confidence_rank_root_rel": float(spearmanr(conf, -root).correlation),
            "confidence_rank_pa": float(spearmanr(conf, -pa).correlation)}  # fmt: skip


def _settings():
    yield "shipped (job.DETECTOR_WEIGHTS)", _STEPS.value, job.DETECTOR_WEIGHTS, True
    yield "network alone", 0, None, False
    yield "network evidence (default refinement)", _STEPS.value, None, False
    for entry in _GRID.value:
        w3, prox = (float(x) for x in entry.split(":"))
        weights = {"keypoints": 1.0, "silhouette": 0.0, "keypoints_3d": w3, "proximity": prox}
        yield f"detector 2D + 3D x{w3:g}, proximity {prox:g}", _STEPS.value, weights, True


if __name__ == "__main__":
    app.run(main)
