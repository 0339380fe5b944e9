"""Photos in, meshes out: the ``launch.estimate`` job.

For each image: read it (``photos.read_photo``), cut the square the network sees (a given hand
box, or the largest centred square), mirror it for a left hand, estimate and refine
(``core.make_estimate_fn``), and write into ``out_dir``:

- ``overlays/<stem>.png``: input and crop | network evidence | network mesh | refined mesh;
- ``meshes/<stem>.obj``: the refined mesh, metres, root-relative, camera-aligned frame (OpenCV
  axes: +x right, +y down, +z away from the camera), mirrored back for a left hand;
- ``animations/<stem>.gif`` for the first ``num_animations`` images: the refinement iterates;
- ``estimates.npz`` and ``estimates.json``: per image the file (``image_file``), the crop
  square (pixels), the side, 2D keypoints in the image's pixels (network evidence, network
  mesh, refined mesh), 3D keypoints (metres, root-relative), the MANO parameters (global
  rotation, 45 articulation axis-angles, betas, the camera: the crop's weak-perspective
  ``(s, tx, ty)`` or, for a perspective network, h's ``(log s, t_u, t_v)`` and the wrist's
  position in the camera frame, ``wrist_translation``, metres), the crop's intrinsics
  ``crop_K`` (of the mirrored crop for a left hand), energies;
- per hand a ``confidence`` in [0, 1] that ranks the estimates (``hand_confidence``: the
  detector's presence and the refined fit's energy);
- ``contact_sheet.png`` (refined meshes) and ``summary.json`` (settings, timings, skipped files
  with the reason).

Stems are ``safe_stem(file name, index)`` (``hand_jax.outputs``): unique and inside ``out_dir``.
An image that cannot be read is reported and skipped; the others are still processed. A job
that estimates no image at all raises ``NothingEstimatedError`` naming why, and leaves
``out_dir`` as it was. The folder is written as a temporary sibling and swapped in when the
job finishes. ``check_run`` refuses bad arguments and an ``out_dir`` that would lose files
before any work (``run`` calls it first; the command calls it before its other start-up work).

Images are read a chunk at a time (``hand_jax.estimate.inputs``: budgets, boxes, the crops'
intrinsics from ``fov_deg`` or ``intrinsics``). An estimate that is not finite is reported as
skipped and no mesh is written for it; the JSON files are strict JSON (no NaN).
"""

import json
import os
import time

import jax
import numpy as np
from tqdm import tqdm

from hand_jax import mesh_io, outputs
from hand_jax.detector import hands as hands_lib
from hand_jax.estimate import core, detected, photos, viz
from hand_jax.estimate import inputs as inputs_lib
from hand_jax.geometry import rotations
from hand_jax.models import dhpe
from hand_jax.network import forward

GIF_FRAMES = 16
MAX_BATCH = 1024  # images per compiled call
MAX_HANDS = 16  # hands per photograph
EVIDENCE = ("detector", "network")
# Refinement against the detector's evidence (benchmarks/detector_refine.py, BUILD.md
# "Photographs"): 2D landmarks and world landmarks, no silhouette (there is no mask evidence).
DETECTOR_WEIGHTS = {"keypoints": 1.0, "keypoints_3d": 1.0, "silhouette": 0.0, "proximity": 1e-2}
# A hand's confidence: presence x exp(-refined energy / CONFIDENCE_ENERGY). Its Spearman rank
# correlation with the true error on 367 validation renders with detector evidence: 0.68
# (Procrustes), 0.54 (root-relative); the presence alone 0.53 / 0.35, the palm score 0.17 / 0.11
# (BUILD.md "Photographs").
CONFIDENCE_ENERGY = 0.1


def hand_confidence(presence: float, energy_after: float) -> float:
    """The confidence in [0, 1] of one estimated hand (higher: likely a smaller error)."""
    return float(presence * np.exp(-max(energy_after, 0.0) / CONFIDENCE_ENERGY))


class NothingEstimatedError(RuntimeError):
    """A job that estimated no image; ``skipped`` maps each input to why it was skipped."""

    def __init__(self, message: str, skipped: dict):
        super().__init__(message)
        self.skipped = skipped


def _params(h: np.ndarray, settings, side: str) -> dict:
    """MANO parameters of one example from flat h (mirrored to the left hand if asked)."""
    p = dhpe.to_hand_params(np.asarray(h), rot_repr=settings.rot_repr, num_betas=settings.num_betas)
    if settings.rot_repr == "quat":
        matrix = rotations.quaternion_to_matrix(p.global_rot)
    else:
        matrix = rotations.rotation_6d_to_matrix(p.global_rot)
    matrix, pose = np.asarray(matrix, np.float64), np.asarray(p.pose, np.float64)
    if side == "left":
        flip = np.diag([-1.0, 1.0, 1.0])
        matrix, pose = flip @ matrix @ flip, photos.mirror_axis_angle(pose)
    aa = np.asarray(rotations.matrix_to_axis_angle(matrix), np.float64)
    return {
        "global_rot_axis_angle": aa,
        "global_rot_matrix": matrix,
        "pose": pose,
        "betas": np.asarray(p.betas, np.float64),
        "cam": np.asarray(p.cam if settings.camera == "weak" else np.asarray(h)[-3:], np.float64),
    }


def _points(e, i, square, size, side):
    """2D keypoints (image pixels) and 3D (metres) of example ``i``, mirrored back if left."""
    out = {}
    for name, kp in (
        ("evidence", e.evidence.keypoints_2d), ("network", e.keypoints_2d_network),
        ("refined", e.keypoints_2d),
    ):  # fmt: skip
        kp = np.asarray(kp[i], np.float64)
        kp = photos.mirror_points_2d(kp, size=size) if side == "left" else kp
        out[f"keypoints_2d_{name}"] = photos.to_image(kp, square, size=size)
    for name, kp in (("network", e.keypoints_3d_network), ("refined", e.keypoints_3d)):
        kp = np.asarray(kp[i], np.float64)
        out[f"keypoints_3d_{name}"] = photos.mirror_points_3d(kp) if side == "left" else kp
    return out


def _pictures(e, i, item, faces, settings, *, animate: bool):
    """(overlay image, refined panel, GIF frames or None) of example ``i``."""
    K = None if settings.camera == "weak" else item["K"]
    cam = lambda h: np.asarray(h)[-3:]  # noqa: E731
    before = viz.mesh_on_crop(item["crop"], e.verts_network[i], faces, cam(e.h_network[i]), K)
    after = viz.mesh_on_crop(item["crop"], e.verts[i], faces, cam(e.h[i]), K)
    evidence = (e.evidence.keypoints_2d[i], e.evidence.confidence[i], e.evidence.mask[i])
    title = (
        f"{item['name']}  ({item['side']} hand; energy {float(e.energy_before[i]):.4f} -> "
        f"{float(e.energy_after[i]):.4f})"
    )
    source = "detector evidence" if "evidence" in item else "network evidence"
    panel = viz.overlay(item["photo_view"], item["square_view"], item["crop"], evidence, before,
                        after, title=title, evidence_name=source)  # fmt: skip
    frames = None
    if animate and e.trajectory is not None and e.trajectory.shape[1]:
        steps = e.trajectory.shape[1]
        picks = sorted(set(np.linspace(0, steps - 1, GIF_FRAMES).round().astype(int)))
        frames = [before]
        for t in picks:
            h = np.asarray(e.trajectory[i, t])
            verts = item["project"](h, item["K"])
            frames.append(viz.mesh_on_crop(item["crop"], verts, faces, cam(h), K))
    return panel, after, frames


def _check_args(paths, side, batch_size, num_animations, refine_steps, evidence, max_hands):
    if not paths:
        raise ValueError("images: no input files (check the path or glob)")
    if side not in (None, "right", "left"):
        raise ValueError(f"side: expected None (the detector's), 'right' or 'left', got {side!r}")
    if evidence not in EVIDENCE:
        raise ValueError(f"evidence: expected one of {EVIDENCE}, got {evidence!r}")
    if not (isinstance(max_hands, int) and 1 <= max_hands <= MAX_HANDS):
        raise ValueError(f"max_hands: expected an int in 1..{MAX_HANDS}, got {max_hands!r}")
    core.check_steps(refine_steps)
    if not 1 <= batch_size <= MAX_BATCH or num_animations < 0:
        raise ValueError(f"batch_size in 1..{MAX_BATCH} and num_animations >= 0, got "
                         f"{batch_size}, {num_animations}")  # fmt: skip


def _write_example(out_dir, e, i, item, faces, settings, *, animate):
    panel, after, frames = _pictures(e, i, item, faces, settings, animate=animate)
    viz.save_png(os.path.join(out_dir, "overlays", item["stem"] + ".png"), panel)
    verts = np.asarray(e.verts[i], np.float64)
    obj_faces = np.asarray(faces)
    if item["side"] == "left":  # a reflection turns the winding: flip it back
        verts, obj_faces = photos.mirror_points_3d(verts), obj_faces[:, ::-1]
    mesh_io.write_obj(os.path.join(out_dir, "meshes", item["stem"] + ".obj"), verts, obj_faces)
    if frames is not None:
        viz.save_gif(os.path.join(out_dir, "animations", item["stem"] + ".gif"), frames)
    return after


def _record(e, i, item, settings, size):
    rec = {"image_file": item["path"], "stem": item["stem"], "side": item["side"],
           "crop_square": np.asarray(item["square"], np.float64)}  # fmt: skip
    rec["crop_K"] = np.asarray(item["K"], np.float64)
    if settings.camera == "perspective":  # the wrist in the (unmirrored) camera frame, metres
        _, wrist = forward.perspective_camera(jax.numpy.asarray(e.h[i][-3:]), item["K"],
                                              image_size=size)  # fmt: skip
        wrist = np.asarray(wrist, np.float64)
        rec["wrist_translation"] = (
            photos.mirror_points_3d(wrist) if item["side"] == "left" else wrist
        )
    rec.update(_points(e, i, item["square"], size, item["side"]))
    rec.update(_params(e.h[i], settings, item["side"]))
    rec.update(
        {f"network_{k}": v for k, v in _params(e.h_network[i], settings, item["side"]).items()}
    )
    rec["energy_before"], rec["energy_after"] = float(e.energy_before[i]), float(e.energy_after[i])
    rec["has_evidence"] = bool(e.usable[i])
    presence = item.get("detection", {}).get("presence", 1.0)
    rec["confidence"] = hand_confidence(presence, rec["energy_after"])
    for key, value in item.get("detection", {}).items():
        rec[f"detector_{key}"] = np.asarray(value, np.float64)
    return rec


def _save_records(out_dir, records):
    arrays = {}
    for key in records[0]:
        values = [r[key] for r in records]
        arrays[key] = np.asarray(values, dtype=str if isinstance(values[0], str) else None)
    np.savez_compressed(os.path.join(out_dir, "estimates.npz"), **arrays)
    with open(os.path.join(out_dir, "estimates.json"), "w") as f:
        json.dump(_json_safe(records), f, indent=1, allow_nan=False)


def _summary(records, skipped, *, side, box, steps, checkpoint, size, wall_s, evidence) -> dict:
    if isinstance(checkpoint, str):
        source = checkpoint
    else:
        source = "shipped model" if checkpoint is None else "in-memory network"
    energies = {k: [r[k] for r in records] for k in ("energy_before", "energy_after")}
    if evidence == "detector":
        crop = "the box of the detector's landmarks enlarged by the training margin"
    elif box:
        crop = "the given box enlarged by the training margin"
    else:
        crop = "the largest centred square of each image"
    return {
        "num_images": len(records), "num_hands": len(records), "skipped": skipped,
        "side": side or ("per hand, from the detector" if evidence == "detector" else "right"),
        "evidence": evidence, "crop": crop,
        "box": list(box) if box else None, "refine_steps": steps, "checkpoint": source,
        "network_input_px": size, "wall_s": round(wall_s, 2),
        **{f"mean_{k}": float(np.mean(v)) if v else None for k, v in energies.items()},
    }  # fmt: skip


def _batch_of(items, batch_size: int, devices: int, last: bool):
    """Crops [B, S, S, 3], intrinsics [B, 3, 3] and the detector's evidence (or None) of a
    chunk, padded by repeating its last item: to ``batch_size`` (one compiled shape), or for the
    last chunk only to the device count."""
    n = len(items)
    rows = -(-n // devices) * devices if last else batch_size
    pick = [items[min(i, n - 1)] for i in range(rows)]
    evidence = None
    if "evidence" in items[0]:
        fields = items[0]["evidence"]
        evidence = core.refine.Evidence(**{k: np.stack([it["evidence"][k] for it in pick])
                                           for k in fields})  # fmt: skip
    return np.stack([it["crop"] for it in pick]), np.stack([it["K"] for it in pick]), evidence


def _finite(e, i) -> bool:
    """Whether example ``i`` of an estimate is finite everywhere a record or mesh reads."""
    parts = (e.h[i], e.h_network[i], e.verts[i], e.keypoints_3d[i], e.keypoints_2d[i],
             e.keypoints_3d_network[i], e.keypoints_2d_network[i])  # fmt: skip
    return all(bool(np.all(np.isfinite(np.asarray(x)))) for x in parts)


def _json_safe(value):
    """Lists and plain numbers, with non-finite floats as None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _process_chunk(tmp, estimate, items, ctx: dict, *, last: bool):
    """Estimate one chunk and write its examples; returns (records, panels, skipped)."""
    net = estimate.network
    crops, Ks, evidence = _batch_of(items, ctx["batch_size"], net.mesh.size, last)
    e = jax.device_get(estimate(crops, evidence=evidence, K=Ks))
    records, panels, skipped = [], [], {}
    for i, item in enumerate(items):
        if not _finite(e, i):
            skipped[item["path"]] = f"{item['path']}: the estimate is not finite (no mesh written)"
            continue
        item["project"] = ctx["project"]
        animate = ctx["animated"] < ctx["num_animations"]
        ctx["animated"] += animate
        panels.append(_write_example(tmp, e, i, item, ctx["faces"], net.runtime, animate=animate))
        records.append(_record(e, i, item, net.runtime, net.image_size))
    return records, panels, skipped


def _given(paths, checkpoint, mano_path) -> list:
    """The job's input paths (an out_dir may not be, hold or lie inside any of them)."""
    return [*paths, checkpoint if isinstance(checkpoint, str) else None, mano_path]


def check_run(
    *, paths, out_dir: str, checkpoint=None, side: str | None = None,
    refine_steps: int = core.DEFAULT_STEPS, mano_path=None, batch_size: int = 8,
    num_animations: int = 2, overwrite: bool = False,
    fov_deg: float = inputs_lib.DEFAULT_FOV_DEG, intrinsics=None, evidence: str = "detector",
    max_hands: int = 2,
) -> None:  # fmt: skip
    """Refuse what ``run`` would refuse before any work; the arguments are ``run``'s.

    Raises:
      ValueError: no paths, a bad side, step count, batch size, animation count or camera, an
        ``out_dir`` that is, holds or lies inside an input.
      FileExistsError, NotADirectoryError: an ``out_dir`` that is a file, or non-empty without
        ``overwrite`` (``hand_jax.outputs.check_out_dir``).
    """
    _check_args(paths, side, batch_size, num_animations, refine_steps, evidence, max_hands)
    inputs_lib.photo_intrinsics((1, 1), fov_deg=fov_deg, intrinsics=intrinsics)
    given = _given(paths, checkpoint, mano_path)
    outputs.check_out_dir(out_dir, overwrite=overwrite, inputs=given)


def _nothing_message(skipped: dict, out_dir: str) -> str:
    reasons = list(skipped.values())
    more = f"; and {len(reasons) - 1} more" if len(reasons) > 1 else ""
    return (f"no image estimated, all {len(reasons)} skipped ({reasons[0]}{more}); "
            f"nothing written to {out_dir}")  # fmt: skip


def run(
    *, paths, out_dir: str, checkpoint: str | None = None, box=None, side: str | None = None,
    refine_steps: int = core.DEFAULT_STEPS, mano_path=None, batch_size: int = 8,
    num_animations: int = 2, overwrite: bool = False, progress: bool = True,
    fov_deg: float = inputs_lib.DEFAULT_FOV_DEG, intrinsics=None, evidence: str = "detector",
    max_hands: int = 2, boxes: dict | None = None,
) -> dict:  # fmt: skip
    """Estimate a hand mesh in every image of ``paths``; write ``out_dir`` (module docstring).

    Args:
      paths: image files.
      out_dir: output folder (refused if non-empty unless ``overwrite``, or if it is, holds or
        lies inside an input).
      checkpoint: run or exported model (None: the shipped model), or a ``core.Network``.
      box: (x, y, w, h) pixels, the hand's box in every image; None: the detector finds the
        hands (network evidence: the centred square).
      side: ``"right"`` or ``"left"`` for every hand; None: the detector's handedness (network
        evidence: right).
      refine_steps: refinement steps (0: the network alone), at most ``core.MAX_STEPS``.
      mano_path: the hand model the network was trained with (None: embedded default hand).
      batch_size: images per compiled call, 1..``MAX_BATCH`` (the last batch is padded only to
        the device count).
      num_animations: GIFs for the first images.
      overwrite: replace a non-empty ``out_dir`` of this command's own results.
      progress: show a progress bar.
      fov_deg: the photos' field of view across the longer side, degrees (perspective).
      intrinsics: (fx, fy, cx, cy) of every photo, pixels (overrides ``fov_deg``).
      evidence: ``"detector"`` (MediaPipe Hands' landmarks and world landmarks, found anywhere
        in the photograph; ``hand_jax.estimate.detected``) or ``"network"`` (the network's own
        fE2D evidence on one crop per image, the paper's test time).
      max_hands: the most hands estimated per photograph (detector evidence).
      boxes: per image (real path) its hands' ``(box, side or None)`` list
        (``box_file.read_boxes``; detector evidence): those hands are read in their boxes, the
        other images searched.

    Returns:
      the summary written to ``summary.json``.

    Raises:
      ValueError, FileExistsError, NotADirectoryError: before any work (``check_run``).
      NothingEstimatedError: when every image was skipped (``out_dir`` is left as it was).
    """
    check_run(paths=paths, out_dir=out_dir, checkpoint=checkpoint, side=side,
              refine_steps=refine_steps, mano_path=mano_path, batch_size=batch_size,
              num_animations=num_animations, overwrite=overwrite, fov_deg=fov_deg,
              intrinsics=intrinsics, evidence=evidence, max_hands=max_hands)  # fmt: skip
    camera = {"fov_deg": fov_deg, "intrinsics": intrinsics}
    given = _given(paths, checkpoint, mano_path)
    start = time.time()
    estimate = core.make_estimate_fn(
        checkpoint, refine_steps=refine_steps, return_trajectory=num_animations > 0,
        mano_path=mano_path, weights=DETECTOR_WEIGHTS if evidence == "detector" else None,
    )  # fmt: skip
    net = estimate.network
    ctx = {"batch_size": batch_size, "num_animations": num_animations, "animated": 0,
           "faces": np.asarray(net.consts.hand_model.faces),
           "project": _projector(net)}  # fmt: skip
    if boxes and evidence != "detector":
        raise ValueError("boxes: a boxes file needs the detector's evidence")
    read = _reader(evidence, net, box=box, side=side, camera=camera, max_hands=max_hands,
                   batch_size=batch_size, mask_size=estimate.silhouette.size,
                   boxes=boxes)  # fmt: skip
    records, panels, skipped = [], [], {}
    with outputs.staged_dir(out_dir, overwrite=overwrite, inputs=given) as tmp:
        for sub in ("overlays", "meshes", "animations"):
            os.makedirs(os.path.join(tmp, sub))
        bar = tqdm(total=len(paths), desc="estimate", unit="image", disable=not progress)
        for lo in range(0, len(paths), batch_size):
            items, bad = read(paths[lo : lo + batch_size], lo)
            for k in range(0, len(items), batch_size):  # several hands per photograph
                last = lo + batch_size >= len(paths) and k + batch_size >= len(items)
                part = items[k : k + batch_size]
                recs, pans, bad2 = _process_chunk(tmp, estimate, part, ctx, last=last)
                records, panels, bad = records + recs, panels + pans, {**bad, **bad2}
            for reason in bad.values():
                tqdm.write(f"skipped {reason}")
            skipped.update(bad)
            bar.update(len(paths[lo : lo + batch_size]))
        bar.close()
        if not records:  # raised inside: the staged folder is dropped, out_dir kept as it was
            raise NothingEstimatedError(_nothing_message(skipped, out_dir), skipped)
        _finish(tmp, records, panels, skipped, box=box, side=side, steps=refine_steps,
                checkpoint=checkpoint, size=net.image_size, wall_s=time.time() - start,
                evidence=evidence)  # fmt: skip
    return _summary_of(out_dir)


def _reader(evidence, net, *, box, side, camera, max_hands, batch_size, mask_size, boxes):
    """``read(paths, start) -> (items, skipped)`` for the job's evidence."""
    common = dict(box=box, margin=net.crop_margin, size=net.image_size, camera=camera)
    if evidence == "network":
        return lambda paths, start: inputs_lib.read_chunk(
            paths, start, side=side or "right", **common
        )
    fns = hands_lib.make_detect_fn(hands_lib.load_detector(), max_hands=max_hands)
    return lambda paths, start: detected.read_chunk(
        paths, start, detect_fns=fns, side=side, max_hands=max_hands, mask_size=mask_size,
        batch_size=batch_size, boxes=boxes, **common,
    )  # fmt: skip


def _projector(net):
    """Jitted ``(h, K) -> vertices`` of the network (the animation frames)."""
    weak = net.runtime.camera == "weak"
    return jax.jit(
        lambda h, k: forward.project(
            net.consts, h, runtime=net.runtime, image_size=net.image_size, K=None if weak else k
        )[0]
    )


def _finish(tmp, records, panels, skipped, **summary_kw):
    _save_records(tmp, records)
    names = [os.path.basename(r["image_file"]) for r in records[:24]]
    viz.save_png(os.path.join(tmp, "contact_sheet.png"), viz.contact_sheet(panels[:24], names))
    summary = _summary(records, skipped, **summary_kw)
    with open(os.path.join(tmp, "summary.json"), "w") as f:
        json.dump(_json_safe(summary), f, indent=1, allow_nan=False)


def _summary_of(out_dir: str) -> dict:
    with open(os.path.join(out_dir, "summary.json")) as f:
        return json.load(f)
