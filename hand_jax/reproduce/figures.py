"""The study's pictures that need a model: error against refinement iterations, and a grid.

``refinement_curve`` refines the first seed's "full" model (row b) against its own evidence on
``curve.count`` test crops of every column for ``curve.steps`` iterations, keeping every
iterate, and records per iterate the mean root-relative 3D error (mm) and the 2D reprojection
error (crop pixels) against the labels (a JSON the report draws). The number of steps used in
the tables was chosen on the validation split (BUILD.md); this curve only shows the test-split
behaviour around it. ``qualitative_grid`` draws, for a few test crops per column, input |
network evidence | network mesh | refined mesh, and below them the self-augmentation contact
sheet of the same seed (source crop | fit | new views).
"""

import json
import os

import imageio.v3 as iio
import jax
import numpy as np

from hand_jax import outputs, sharding
from hand_jax.network import batches, forward


def iterate_errors(fn, samples, *, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-iterate errors of a trajectory-returning estimate function over cropped samples.

    Args:
      fn: ``hand_jax.estimate.make_estimate_fn(..., return_trajectory=True)``.
      samples: protocol crops (``estimate.scoring.load_protocol_crops``).
      batch_size: crops per call.

    Returns:
      ([T + 1] mean root-relative 3D error, mm; [T + 1] mean 2D reprojection error, crop
      pixels), iterate 0 being the network's estimate; means over labelled keypoints.
    """
    net = fn.network
    batch_size = -(-batch_size // net.mesh.size) * net.mesh.size
    p = batches.run_predictions(
        lambda _s, images, K, _c: (lambda e: {"traj": e.trajectory, "h": e.h_network})(
            fn(images, K=K)
        ),
        None,
        samples,
        None,
        batch_size=batch_size,
        sharding=sharding.batch_sharding(net.mesh),
    )
    hs = np.concatenate([p["h"][:, None], p["traj"]], axis=1)  # [N, T+1, D]
    K = None if net.runtime.camera == "weak" else p["gt_K"]

    def one(h, k):
        return forward.project(net.consts, h, runtime=net.runtime, image_size=net.image_size, K=k)

    _, kp3d, kp2d = jax.device_get(jax.jit(jax.vmap(jax.vmap(one, in_axes=(0, None))))(hs, K))
    kp3d = np.einsum("nji,ntkj->ntki", p["gt_view_rotation"], kp3d)  # view -> camera frame
    gt3, gt2, valid = p["gt_keypoints_3d"], p["gt_keypoints_2d"], p["gt_keypoint_valid"]
    rel = (kp3d - kp3d[:, :, :1]) - (gt3 - gt3[:, :1])[:, None]
    e3 = np.linalg.norm(rel, axis=-1) * 1000.0
    e2 = np.linalg.norm(kp2d - gt2[:, None], axis=-1)
    w = valid[:, None].astype(np.float64)
    return (e3 * w).sum((0, 2)) / w.sum((0, 2)), (e2 * w).sum((0, 2)) / w.sum((0, 2))


def _crops(cfg, paths, network, column, count):
    from hand_jax.estimate import scoring as ds

    spec = cfg.data.sets[column]
    return ds.load_protocol_crops(
        network,
        dataset=spec.loader,
        data_dir=paths.data(column, spec.kind),
        split=cfg.data.test_split,
        count=count,
    )


def refinement_curve(cfg, paths, seed: int, path: str) -> None:
    """Write ``path`` (JSON): per column, the per-iterate errors of row (b)'s model."""
    from hand_jax import estimate

    result = {"seed": seed, "steps": cfg.curve.steps, "columns": {}}
    for column in cfg.data.columns:
        run = paths.run(seed, cfg.data.model_for[column], "full")
        fn = estimate.make_estimate_fn(run, refine_steps=cfg.curve.steps, return_trajectory=True)
        samples = _crops(cfg, paths, fn.network, column, cfg.curve.count)
        e3, e2 = iterate_errors(fn, samples, batch_size=cfg.evaluate.batch_size)
        result["columns"][column] = {
            "count": len(samples),
            "err3d_mm": e3.tolist(),
            "err2d_px": e2.tolist(),
        }

    outputs.write_text_atomic(path, json.dumps(result, indent=1))


def _overlay_rows(fn, samples, faces, column) -> list[np.ndarray]:
    from hand_jax.estimate import viz

    images = np.stack([s["image"] for s in samples])
    Ks = np.stack([s["K"] for s in samples])
    e = jax.device_get(fn(images, K=Ks))
    weak = fn.network.runtime.camera == "weak"
    rows = []
    for i, s in enumerate(samples):
        K = None if weak else Ks[i]
        before = viz.mesh_on_crop(s["image"], e.verts_network[i], faces, e.h_network[i][-3:], K)
        after = viz.mesh_on_crop(s["image"], e.verts[i], faces, e.h[i][-3:], K)
        evidence = (e.evidence.keypoints_2d[i], e.evidence.confidence[i], e.evidence.mask[i])
        size = s["image"].shape[0]
        rows.append(
            viz.overlay(
                s["image"],
                (0, 0, size),
                s["image"],
                evidence,
                before,
                after,
                title=f"{column}: {s['id']}",
            )
        )
    return rows


def _stack(images: list[np.ndarray]) -> np.ndarray:
    """Stack RGB uint8 images vertically, padding each on the right with white."""
    width = max(im.shape[1] for im in images)
    padded = [
        np.pad(im[..., :3], ((0, 0), (0, width - im.shape[1]), (0, 0)), constant_values=255)
        for im in images
    ]
    return np.concatenate(padded, axis=0)


def qualitative_grid(cfg, paths, seed: int, path: str) -> None:
    """Write ``path`` (PNG): overlays of test crops, then the augmentation contact sheet."""
    from hand_jax import estimate

    rows = []
    for column in cfg.data.columns:
        train = cfg.data.model_for[column]
        fn = estimate.make_estimate_fn(
            paths.run(seed, train, "full"), refine_steps=cfg.evaluate.refine_steps
        )
        samples = _crops(cfg, paths, fn.network, column, cfg.grid.count)
        faces = np.asarray(fn.network.consts.hand_model.faces)
        rows += _overlay_rows(fn, [samples[i] for i in range(len(samples))], faces, column)
    for train in cfg.data.train:
        sheet = os.path.join(paths.aug(seed, train), "contact_sheet.png")
        if os.path.exists(sheet):
            rows.append(np.asarray(iio.imread(sheet))[..., :3])
    outputs.write_atomic(path, lambda tmp: iio.imwrite(tmp, _stack(rows)))
