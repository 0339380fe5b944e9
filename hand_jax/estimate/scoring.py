"""Score a checkpoint on a dataset split, with and without test-time refinement.

The one route that scores a trained network under a benchmark protocol (``launch.evaluate
--checkpoint``); 0 refinement steps scores the network alone. One pass of the estimation
function over the split's protocol crops (cropped as the run's training crops) yields both the
network's and the refined hands (the paper's "w/o refinement" row and its full method); each is
scored with the validation metrics (``hand_jax.network.validation``: root-relative, Z&B and
Procrustes 3D errors, 2D errors, mask IoU, all in the mirrored crop's frame and the loader's
keypoints) and written as a predictions npz that ``hand_jax.eval.evaluate`` scores under the
benchmark protocols. The npz is in the frame of the ground truth: 3D keypoints and vertices in
the original image's camera frame (crop camera rotation undone, left hands un-mirrored), 2D
keypoints in the original image's pixels (inverse crop affine, un-mirrored), keypoint 0 the
wrist (``root_convention="wrist"``; see ``hand_jax.eval.protocol``).
"""

import json
import os
import tempfile

import numpy as np

from hand_jax import outputs, sharding
from hand_jax.estimate import core
from hand_jax.eval import evaluate, protocol
from hand_jax.network import batches, validation

VARIANTS = ("network", "refined")


def _as_predict_fn(estimate):
    """Adapt ``estimate(images, K=K)`` to ``run_predictions``' ``predict(state, images, K, _)``."""

    def predict_fn(_state, images, K, _consts):
        e = estimate(images, K=K)
        return {
            "keypoints2d": e.evidence.keypoints_2d,
            "keypoints2d_hard": e.keypoints_2d_hard,
            "confidence": e.evidence.confidence,
            "mask": e.evidence.mask,
            "kp3d": e.keypoints_3d,
            "verts": e.verts,
            "kp2d": e.keypoints_2d,
            "silhouette": e.silhouette,
            "h": e.h,
            "net_kp3d": e.keypoints_3d_network,
            "net_verts": e.verts_network,
            "net_kp2d": e.keypoints_2d_network,
            "net_silhouette": e.silhouette_network,
            "net_h": e.h_network,
            "energy_before": e.energy_before,
            "energy_after": e.energy_after,
            "usable": e.usable,
        }

    return predict_fn


def _split_variants(p: dict) -> dict:
    """Two ``run_predictions``-style dicts (network, refined) from the merged outputs."""
    shared = {k: v for k, v in p.items() if not k.startswith("net_")}
    network = dict(shared)
    for key in ("kp3d", "verts"):
        # Back to the crop camera frame, as run_predictions does for the refined ones.
        view = p[f"net_{key}"]
        network[f"{key}_view"] = view
        network[key] = np.einsum("nji,nkj->nki", p["gt_view_rotation"], view)
    for key in ("kp2d", "silhouette", "h"):
        network[key] = p[f"net_{key}"]
    return {"network": network, "refined": shared}


def predict_samples(estimate, samples, *, batch_size: int | None = None) -> dict:
    """Run ``estimate`` over cropped samples; return ``{"network": p, "refined": p}``.

    Each ``p`` is a ``run_predictions`` dict (numpy [N, ...], 3D in the crop camera frame, the
    labels under ``gt_*``) plus ``energy_before``/``energy_after`` [N] and ``usable`` [N].
    """
    mesh = estimate.network.mesh
    batch_size = batch_size or estimate.network.batch_size
    batch_size = -(-batch_size // mesh.size) * mesh.size
    merged = batches.run_predictions(
        _as_predict_fn(estimate), None, samples, None, batch_size=batch_size,
        sharding=sharding.batch_sharding(mesh),
    )  # fmt: skip
    return _split_variants(merged)


def root_relative_errors(p: dict) -> np.ndarray:
    """[N] mean root-relative 3D keypoint error per example, mm (valid keypoints only)."""
    valid = np.asarray(p["gt_keypoint_valid"], bool)
    pred = p["kp3d"] - p["kp3d"][:, :1]
    gt = p["gt_keypoints_3d"] - p["gt_keypoints_3d"][:, :1]
    err = np.linalg.norm(pred - gt, axis=-1) * 1000.0
    per_example = np.sum(np.where(valid, err, 0.0), axis=1) / np.maximum(valid.sum(1), 1)
    return per_example


def score(estimate, samples, *, batch_size: int | None = None, fraction: float = 0.1) -> dict:
    """Validation metrics of both variants, the energies, and the worst ``fraction``.

    Returns:
      dict: ``network``/``refined``: ``compute_metrics`` dicts plus
      ``worst_<pct>pct_root_rel_mm`` (mean root-relative error over the examples where the
      network is worst, the same examples for both), ``mean_energy`` and
      ``num_without_evidence``; ``predictions``: the two prediction dicts.
    """
    preds = predict_samples(estimate, samples, batch_size=batch_size)
    labels = validation.mesh_labels(samples, estimate.network.consts.hand_model)
    for p in preds.values():
        p.update(labels)
    net_err = root_relative_errors(preds["network"])
    worst = np.argsort(net_err)[::-1][: max(1, int(round(fraction * len(net_err))))]
    pct = int(round(100 * fraction))
    out = {"predictions": preds}
    for name in VARIANTS:
        p = preds[name]
        m = validation.compute_metrics(p)
        err = root_relative_errors(p)
        m[f"worst_{pct}pct_root_rel_mm"] = float(np.mean(err[worst]))
        m["mean_energy"] = float(
            np.mean(p["energy_after" if name == "refined" else "energy_before"])
        )
        m["num_without_evidence"] = int(np.sum(~np.asarray(p["usable"], bool)))
        out[name] = m
    return out


def load_protocol_crops(network: core.Network, *, dataset, data_dir, split, count: int = 0):
    """The split's samples cropped as the network's training crops (the protocol crop).

    Each crop also carries its source image's width (``protocol.SOURCE_WIDTH``), which
    un-mirroring a left hand's 2D predictions needs.
    """
    samples = protocol.load_crops(
        dataset, data_dir, split, crop_size=network.image_size, crop_margin=network.crop_margin
    )
    return samples[:count] if count else samples


def write_predictions(path: str, frames: protocol.SourceFrames, p: dict) -> None:
    """Write one variant's predictions npz in the ground truth's frames (module docstring).

    Args:
      path: the npz to write.
      frames: the crops' ``protocol.SourceFrames`` ([N] samples).
      p: a ``predict_samples`` variant: ``kp3d`` [N, 21, 3] and ``verts`` [N, V, 3] metres in
        the crop camera frame, ``kp2d`` [N, 21, 2] crop pixels.
    """
    kp3, kp2, verts = protocol.to_source_frame(frames, p["kp3d"], p["kp2d"], p["verts"])
    np.savez_compressed(path, ids=frames.ids, keypoints_3d=kp3, verts=verts, keypoints_2d=kp2,
                        root_convention="wrist")  # fmt: skip


def _table(result: dict, variants) -> str:
    keys = ("kp3d_epe_mm", "zb_epe_mm", "zb_auc_20_50", "pa_epe_mm", "kp2d_epe_px",
            "silhouette_iou", "worst_10pct_root_rel_mm", "mean_energy")  # fmt: skip
    lines = ["| variant | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name in variants:
        lines.append(f"| {name} | " + " | ".join(f"{result[name][k]:.4g}" for k in keys) + " |")
    return "\n".join(lines) + "\n"


def _write_evaluations(tmp, scratch, frames, preds, *, layout: dict, evaluate_kw: dict) -> dict:
    """Score each variant's predictions under the protocol.

    Args:
      tmp: the staged output folder.
      scratch: a folder for the predictions files.
      frames: the crops' ``protocol.SourceFrames``.
      preds: ``predict_samples`` output.
      layout: {variant: (sub-folder of ``tmp``, table label)}.
      evaluate_kw: arguments of ``hand_jax.eval.evaluate`` shared by the variants.

    Returns:
      {variant: the evaluation's primary block (alignment, AUCs, EPEs)}.
    """
    primary, previous = {}, []
    for name, (folder, label) in layout.items():
        path = os.path.join(scratch, f"{name}.npz")
        write_predictions(path, frames, preds[name])
        target = os.path.join(tmp, folder)
        kw = dict(evaluate_kw, variant=label)
        kw["compare_with"] = [*evaluate_kw.get("compare_with", ()), *previous]
        result = evaluate.evaluate(out_dir=target, predictions=path, **kw)
        primary[name] = {k: v for k, v in result["primary"].items() if k != "pck_curve"}
        previous.append(os.path.join(target, "metrics.json"))
    return primary


def evaluate_split(
    checkpoint, *, dataset: str, data_dir: str, split: str, out_dir: str, refine_steps: int,
    mano_path=None, overwrite: bool = False, batch_size: int | None = None,
    method: str | None = None,
    variant: str | None = None, compare_with=(), **estimate_kw,
) -> dict:  # fmt: skip
    """Score a checkpoint on a split (with and without refinement) under the benchmark protocol.

    With ``refine_steps`` > 0 writes ``out_dir/network/`` and ``out_dir/refined/``
    (``hand_jax.eval.evaluate``: metrics, per-sample errors, tables, PCK plots under the
    dataset's protocol, ``hand_jax.eval.protocol``; the refined run tabulated beside the
    network's), ``out_dir/refinement.json`` (validation metrics of both, energies, the worst
    10%) and ``out_dir/refinement.md``. With 0 steps the network alone: its evaluation straight
    into ``out_dir`` and ``out_dir/scores.{json,md}`` (its validation metrics).

    Args:
      checkpoint: a run directory, checkpoint or model directory (None: the shipped model).
      dataset, data_dir, split: the split to score (``hand_jax.data.load_split``).
      out_dir: the output folder (refused if non-empty unless ``overwrite``).
      refine_steps: refinement steps on the network's own evidence (0: the network alone).
      mano_path: the hand model the network was trained with.
      overwrite: replace a non-empty ``out_dir``.
      batch_size: crops per call (default: the run's training batch, ``Network.batch_size``).
      method, variant, compare_with: table labels and other runs' metrics.json to tabulate
        beside (``hand_jax.eval.evaluate``); ``variant`` defaults to "default" (0 steps) or
        network / refined.
      **estimate_kw: further ``make_estimate_fn`` arguments (learning rate, weights, ...).

    Returns:
      the ``refinement.json`` (``scores.json``) content.
    """
    inputs = [data_dir, checkpoint if isinstance(checkpoint, str) else None, mano_path]
    outputs.check_out_dir(out_dir, overwrite=overwrite, inputs=inputs)
    network = core.load_network(checkpoint, mano_path=mano_path)
    fn = core.make_estimate_fn(network, refine_steps=refine_steps, **estimate_kw)
    samples = load_protocol_crops(network, dataset=dataset, data_dir=data_dir, split=split)
    result = score(fn, samples, batch_size=batch_size)
    preds = result.pop("predictions")
    refined = refine_steps > 0
    if refined:
        layout = {n: (n, n if variant is None else f"{variant} ({n})") for n in VARIANTS}
    else:
        layout = {"network": ("", variant or "default")}  # as a predictions file's run
    summary = {"dataset": dataset, "split": split, "num_samples": len(samples),
               "refine_steps": refine_steps, "checkpoint": str(checkpoint or "shipped model"),
               **{name: result[name] for name in layout}}  # fmt: skip
    evaluate_kw = dict(dataset=dataset, data_dir=data_dir, split=split,
                       compare_with=list(compare_with), source=summary["checkpoint"])  # fmt: skip
    if method is not None:
        evaluate_kw["method"] = method
    name = "refinement" if refined else "scores"
    with (
        outputs.staged_dir(out_dir, overwrite=overwrite, inputs=inputs) as tmp,
        tempfile.TemporaryDirectory() as scratch,
    ):
        frames = protocol.source_frames(samples)
        summary["protocol"] = _write_evaluations(
            tmp, scratch, frames, preds, layout=layout, evaluate_kw=evaluate_kw
        )
        with open(os.path.join(tmp, f"{name}.json"), "w") as f:
            json.dump(summary, f, indent=1)
        with open(os.path.join(tmp, f"{name}.md"), "w") as f:
            f.write(_table(result, tuple(layout)))
    return summary
