"""Evaluate 3D keypoint predictions against ground truth and write the benchmark artefacts.

Inputs (host-side numpy):

- predictions npz: ``ids`` [N] (str or int), ``keypoints_3d`` [N, K, 3] metres, canonical order,
  camera frame of the original image (a left hand is not mirrored); optional ``verts``
  [N, V, 3] metres (same frame), ``keypoints_2d`` [N, K, 2] pixels of the original image and
  ``root_convention`` (scalar str, ``"wrist"`` when absent, or ``"palm"``: what keypoint 0 is).
- ground truth: an npz with the same keys plus optional ``keypoint_valid`` [N, K] bool, or a
  dataset split read with ``hand_jax.data.load_split(name, data_dir, split, **options)``
  (``protocol.ground_truth_options``; left hands un-mirrored with ``protocol.unmirror``).

Both sides are converted to the dataset's protocol before scoring (``protocol``: STB is scored
at its palm centre, a wrist-rooted set is converted once; Dexter+Object scores the fingertips
only), and the protocol is recorded in metrics.json's ``protocol`` block and the tables' notes.

Predictions are matched to the ground truth by id (every ground-truth id needs exactly one
prediction and vice versa). Metrics are computed under every alignment the labels allow
(``none``, ``root``, ``root_scale``, ``centroid``, ``procrustes``; see ``metrics``); each
dataset has a primary one for its table (``PRIMARY_ALIGNMENT``): STB and RHD use Zimmermann &
Brox's ground-truth root and scale; FreiHAND Procrustes; Dexter+Object (fingertips only, no
root label) the centroid of the valid fingertips - the project's decision, recorded in the
output (``protocol.PROTOCOLS``). Written into ``out_dir``: ``metrics.json``, ``per_sample.npz``
(the matched predictions in the protocol's keypoints, with their ``root_convention``, reusable
as ``--predictions``, plus per-keypoint errors), ``comparison.{md,csv}``, ``ablation.{md,csv}``
and ``pck_<dataset>.png``.
"""

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from hand_jax import keypoints as kp
from hand_jax import outputs
from hand_jax.eval import metrics, plots, protocol, tables
from hand_jax.eval.keypoint_io import (  # noqa: F401  (re-exported: evaluate's public readers)
    KeypointSet,
    check_finite,
    load_keypoint_npz,
    load_split_ground_truth,
    match_ids,
    to_protocol,
)

PRIMARY_ALIGNMENT = protocol.PRIMARY_ALIGNMENT
DEFAULT_ALIGNMENT = protocol.DEFAULT_PROTOCOL.alignment
ALIGNMENTS = ("none", "root", "root_scale", "centroid", "procrustes")
# Labelled keypoints a sample needs for an alignment. Centroid: with one point the aligned error
# is 0 by construction and with two it is halved, so such samples would inflate the AUC.
MIN_VALID = {"none": 1, "root": 1, "root_scale": 1, "centroid": 3, "procrustes": 3}
ROOT = 0
CURVE_MM = np.linspace(0.0, 50.0, 51)  # the plotted PCK curve
FORMAT = "hand_jax.eval/1"


def _usable(alignment: str, valid: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """[N] samples whose labels support ``alignment``."""
    usable = valid.sum(1) >= MIN_VALID[alignment]
    if alignment in ("root", "root_scale"):
        usable &= valid[:, ROOT]
    if alignment == "root_scale":
        a, b = metrics.REF_BONE
        usable &= valid[:, a] & valid[:, b] & (np.linalg.norm(gt[:, b] - gt[:, a], axis=-1) > 0)
    return usable


_ALIGN = {
    "none": lambda p, g, v: p,
    "root": lambda p, g, v: metrics.align_root(p, g, ROOT),
    "root_scale": lambda p, g, v: metrics.align_root_scale(p, g, ROOT, metrics.REF_BONE),
    "centroid": metrics.align_centroid,
    "procrustes": metrics.align_procrustes,
}


def _json(x, scale=1.0):
    """Numbers for JSON: ``x * scale`` as float or list, NaN -> None (mm: ``scale=1000``)."""
    arr = np.asarray(x, np.float64) * scale
    out = [round(float(v), 8) if np.isfinite(v) else None for v in arr.ravel()]
    return out if arr.ndim else out[0]


def _block(errors: np.ndarray, valid: np.ndarray) -> dict:
    """Metrics of one alignment from errors [N, K] (metres) and the usable validity [N, K]."""
    r = metrics.keypoint_metrics_from_errors(errors, valid, thresholds=metrics.make_thresholds())
    r20 = metrics.keypoint_metrics_from_errors(
        errors, valid, thresholds=metrics.AUC_20_50_GRIDS["linspace_20_50_20"]
    )
    fine = metrics.keypoint_metrics_from_errors(
        errors, valid, thresholds=metrics.make_thresholds(steps=100)
    )
    curve = metrics.keypoint_metrics_from_errors(errors, valid, thresholds=CURVE_MM / 1000.0)
    per_kp = {
        "valid_count": r.valid_count.tolist(),
        "epe_mean_mm": _json(r.epe_mean_per_keypoint, 1000.0),
        "epe_median_mm": _json(r.epe_median_per_keypoint, 1000.0),
        "auc_20_50": _json(r20.auc_per_keypoint),
    }
    if errors.shape[1] == kp.NUM_KEYPOINTS:
        per_kp["names"] = list(kp.CANONICAL_NAMES)
    return {
        "samples_used": int(np.any(valid, axis=1).sum()),
        "epe_mean_mm": _json(r.epe_mean, 1000.0),
        "epe_median_mm": _json(r.epe_median, 1000.0),
        "epe_mean_pooled_mm": _json(r.epe_mean_pooled, 1000.0),
        "epe_median_pooled_mm": _json(r.epe_median_pooled, 1000.0),
        "auc_20_50": r20.auc,
        "auc_0_50": r.auc,
        "auc_0_50_100steps": fine.auc,
        "auc_20_50_grids": metrics.auc_grids(errors, valid),
        "excluded_keypoints": list(r.excluded_keypoints),
        "pck_curve": {"thresholds_mm": CURVE_MM.tolist(), "pck": _json(curve.pck)},
        "per_keypoint": per_kp,
    }


def _f_scores(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray, desc: str) -> np.ndarray:
    """[N, 2] F@5mm, F@15mm per sample over the valid points (NaN where none)."""
    out = np.full((len(gt), len(metrics.FSCORE_THRESHOLDS)), np.nan)
    for n in tqdm(range(len(gt)), desc=desc, unit="sample", leave=False):
        if np.any(valid[n]):
            p, g = pred[n][valid[n]], gt[n][valid[n]]
            out[n] = [s.f for s in metrics.f_score_thresholds(p, g, metrics.FSCORE_THRESHOLDS)]
    return out


def _f_summary(scores: np.ndarray) -> dict:
    names = [f"{round(t * 1000)}mm" for t in metrics.FSCORE_THRESHOLDS]
    return {k: float(np.nanmean(scores[:, i])) for i, k in enumerate(names)}


def _alignment_blocks(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray):
    """Metrics under every alignment the labels allow: (blocks, skipped, per-sample arrays)."""
    blocks, skipped, per_sample = {}, {}, {}
    for name in ALIGNMENTS:
        usable = _usable(name, valid, gt)
        if not np.any(usable):
            skipped[name] = "no sample has the labels this alignment needs"
            continue
        v = valid & usable[:, None]
        # Unlabelled entries may hold anything (NaN, sentinels): zero them before aligning.
        p3, g3 = (np.where(v[..., None], x, 0.0) for x in (pred, gt))
        aligned = _ALIGN[name](p3, g3, v)
        errors = np.where(v, np.linalg.norm(aligned - g3, axis=-1), np.nan)
        blocks[name] = _block(np.nan_to_num(errors), v)
        blocks[name]["samples_excluded"] = int((~usable).sum())
        per_sample[f"errors_{name}"] = errors
        if name == "procrustes":
            f = _f_scores(aligned, g3, v, "F-scores (keypoints)")
            blocks[name]["f_score_keypoints"] = _f_summary(f)
            per_sample["f_score_keypoints"] = f
    return blocks, skipped, per_sample


def _check_shapes(pred: KeypointSet, gt: KeypointSet) -> None:
    for key in ("keypoints_3d", "verts", "keypoints_2d"):
        p, g = getattr(pred, key), getattr(gt, key)
        if p is not None and g is not None and p.shape != g.shape:
            raise ValueError(f"{key}: predictions {p.shape} vs ground truth {g.shape}: must match")


def compute_metrics(pred: KeypointSet, gt: KeypointSet, *, dataset: str) -> tuple[dict, dict]:
    """Compute every applicable alignment's metrics (mm) and the per-sample arrays (metres).

    Args:
      pred: predictions, already in the ground truth's sample order.
      gt: ground truth.
      dataset: dataset name; picks the primary alignment.

    Returns:
      (metrics dict for metrics.json, per-sample arrays for per_sample.npz).
    """
    _check_shapes(pred, gt)
    blocks, skipped, per_sample = _alignment_blocks(
        pred.keypoints_3d, gt.keypoints_3d, gt.keypoint_valid
    )
    primary, notes = PRIMARY_ALIGNMENT.get(dataset, DEFAULT_ALIGNMENT), []
    if primary not in blocks:
        fallback = next(
            a for a in ("root_scale", "root", "centroid", "procrustes", "none") if a in blocks
        )
        notes.append(
            f"primary alignment {primary!r} not computable ({skipped[primary]}); used {fallback!r}"
        )
        primary = fallback
    keys = ("auc_20_50", "auc_0_50", "epe_mean_mm", "epe_median_mm", "pck_curve")
    block = {"root": ROOT, "ref_bone": list(metrics.REF_BONE), "pck": "error <= threshold",
             "auc_20_50": "np.linspace(20, 50, 20) mm", "auc_0_50": "np.linspace(0, 50, 20) mm",
             "epe": "mean over keypoints of per-keypoint mean/median (hand3d)",
             **protocol.describe(dataset)}  # fmt: skip
    body = {
        "primary": {"alignment": primary, **{k: blocks[primary][k] for k in keys}},
        "protocol": block,
        "alignments": blocks,
        "skipped_alignments": skipped,
        "notes": notes,
    }
    if pred.verts is not None and gt.verts is not None:
        body["mesh"] = _verts_metrics(pred.verts, gt.verts, per_sample)
    if pred.keypoints_2d is not None and gt.keypoints_2d is not None:
        r2 = metrics.keypoint_metrics(
            pred.keypoints_2d, gt.keypoints_2d, gt.keypoint_valid, lo=0, hi=30, steps=20
        )
        body["keypoints_2d"] = {
            "epe_mean_px": r2.epe_mean,
            "epe_median_px": r2.epe_median,
            "auc_0_30px": r2.auc,
        }
    return body, per_sample


def _verts_metrics(pred_v: np.ndarray, gt_v: np.ndarray, per_sample: dict) -> dict:
    """FreiHAND mesh metrics: Procrustes-aligned vertex error and F-scores (aligned, raw)."""
    aligned = metrics.align_procrustes(pred_v, gt_v)
    errors = np.linalg.norm(aligned - gt_v, axis=-1)
    valid = np.ones(errors.shape, bool)
    f_al = _f_scores(aligned, gt_v, valid, "F-scores (verts, aligned)")
    f_raw = _f_scores(pred_v, gt_v, valid, "F-scores (verts)")
    per_sample.update(f_score_verts=f_al, f_score_verts_unaligned=f_raw)
    return {
        "procrustes_epe_mean_mm": _json(errors.mean(), 1000.0),
        "f_score": _f_summary(f_al),
        "f_score_unaligned": _f_summary(f_raw),
    }


def _check_units(pred: KeypointSet, gt: KeypointSet) -> None:
    """Warn when the predicted hands are far from the ground truth's size (units mix-up)."""
    v = gt.keypoint_valid
    size = [np.median([np.ptp(x[n][v[n]], axis=0).max() for n in range(len(v)) if v[n].any()])
            for x in (pred.keypoints_3d, gt.keypoints_3d)]  # fmt: skip
    if not 0.1 < size[0] / max(size[1], 1e-12) < 10:
        logging.warning("predicted hands are %.3gx the ground truth's size: units (metres?)",
                        size[0] / max(size[1], 1e-12))  # fmt: skip


def evaluate(
    *,
    out_dir: str | Path,
    dataset: str,
    predictions: str | Path | None = None,
    ground_truth: str | Path | None = None,
    data_dir: str | Path | None = None,
    split: str = "test",
    method: str = tables.OUR_METHOD,
    variant: str = "default",
    compare_with: Sequence[str | Path] = (),
    overwrite: bool = False,
    source: str | None = None,
) -> dict:
    """Evaluate a predictions file; write metrics.json, per_sample.npz, tables and plots.

    A trained network is scored by ``hand_jax.estimate.scoring.evaluate_split``, which writes
    its predictions and calls this.

    Args:
      out_dir: output directory (refused if non-empty unless ``overwrite``); written as a
        temporary sibling swapped in when complete, so a failed run keeps the previous one.
      dataset: dataset name: the table column and the primary alignment.
      predictions: predictions npz.
      ground_truth: ground-truth npz (or ``data_dir``).
      data_dir: dataset root for ``hand_jax.data.load_split(dataset, data_dir, split)``.
      split: dataset split.
      method, variant: row label of this run in the tables.
      compare_with: other runs' metrics.json drawn and tabulated beside this one.
      overwrite: replace a non-empty out_dir.
      source: what to record as the predictions' origin in metrics.json (default: the path).

    Returns:
      The metrics dict written to metrics.json.

    Raises:
      ValueError: unreadable or malformed inputs, non-finite predictions (naming the file and
        the sample ids), ids that do not match.
    """
    if predictions is None:
        raise ValueError("predictions: pass the predictions npz to score")
    if (ground_truth is None) == (data_dir is None):
        raise ValueError("pass exactly one of --ground_truth and --data_dir")
    others = [tables.load_result(p) for p in compare_with]
    inputs = [predictions, ground_truth, data_dir]
    outputs.check_out_dir(out_dir, overwrite=overwrite, inputs=inputs)  # before any work
    if ground_truth is not None:
        gt = load_keypoint_npz(ground_truth, what="ground truth")
    else:
        gt = load_split_ground_truth(dataset, data_dir, split)
    pred = load_keypoint_npz(predictions, what="predictions")
    sources = (source or predictions, ground_truth or data_dir)
    pred, gt, body, per_sample = _score(pred, gt, dataset=dataset, sources=sources)
    inputs = {
        "predictions": str(source or predictions),
        "ground_truth": str(ground_truth or data_dir),
    }
    result = {"format": FORMAT, "dataset": dataset, "method": method, "variant": variant,
              "split": split, "num_samples": len(gt.ids), "inputs": inputs, **body}  # fmt: skip
    with outputs.staged_dir(out_dir, overwrite=overwrite, inputs=inputs) as staging:
        write_outputs(Path(staging), result, pred, gt, per_sample, others)
    return result


def _score(pred: KeypointSet, gt: KeypointSet, *, dataset: str, sources) -> tuple:
    """Match, convert to the protocol, check and score: (pred, gt, metrics body, per-sample)."""
    order = match_ids(pred.ids, gt.ids)
    pred = pred._replace(**{k: v[order] for k, v in pred._asdict().items()
                            if isinstance(v, np.ndarray)})  # fmt: skip
    _check_shapes(pred, gt)
    conventions = {"predictions": pred.root_convention, "ground_truth": gt.root_convention}
    labelled = int(gt.keypoint_valid.sum())
    pred, gt = (to_protocol(x, dataset, src) for x, src in zip((pred, gt), sources, strict=True))
    check_finite(pred if gt.verts is not None else pred._replace(verts=None),
                 gt.keypoint_valid, sources[0])  # fmt: skip
    _check_units(pred, gt)
    body, per_sample = compute_metrics(pred, gt, dataset=dataset)
    body["protocol"]["root_convention_in"] = conventions
    dropped = labelled - int(gt.keypoint_valid.sum())
    if dropped:
        scored = list(protocol.protocol_for(dataset).scored)
        body["notes"].append(f"{dropped} ground-truth labels not scored under the {dataset} "
                             f"protocol (it scores keypoints {scored})")  # fmt: skip
    return pred, gt, body, per_sample


def write_outputs(
    out: Path,
    result: dict,
    pred: KeypointSet,
    gt: KeypointSet,
    per_sample: dict,
    others: Sequence[tables.ResultSummary] = (),
) -> None:
    """Write metrics.json, per_sample.npz, the comparison and ablation tables and the plots."""
    (out / "metrics.json").write_text(json.dumps(result, indent=1))
    extra = {k: getattr(pred, k) for k in ("verts", "keypoints_2d") if getattr(pred, k) is not None}
    # The protocol's keypoints, marked as such: reused as --predictions, not converted again.
    np.savez_compressed(out / "per_sample.npz", ids=gt.ids, keypoints_3d=pred.keypoints_3d,
                        keypoints_3d_gt=gt.keypoints_3d, keypoint_valid=gt.keypoint_valid,
                        root_convention=pred.root_convention, **extra, **per_sample)  # fmt: skip
    results = [tables.load_result(out / "metrics.json"), *others]
    notes = [protocol.protocol_for(d).note for d in dict.fromkeys(r.dataset for r in results)]
    for name, table in (("comparison", tables.comparison_table(results)),
                        ("ablation", tables.ablation_table(results))):  # fmt: skip
        table.notes += [f"Protocol: {note}" for note in notes if note]
        tables.write_table(table, out, name)
    plots.plot_results(results, out)
