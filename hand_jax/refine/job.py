"""Batch refinement job: read evidence, refine in fixed-size batches, write results.

Outputs in ``out_dir``: ``refined.npz`` (ids, initial/final/best ``HandParams``, final energies,
per-step energies [N, T]), ``meshes/<id>.obj`` (best iterate, metres; root-relative for the
weak-perspective camera, camera frame for the perspective variant),
``overlays/<id>.png`` (evidence | initial | refined) and ``animations/<id>.gif`` for the first few
examples, ``summary.json`` (mean energies over the examples with valid evidence, and the ids of
those without). ``<id>`` is the sanitised id with its row (``hand_jax.outputs.safe_stem``), so
no id can name a file outside ``out_dir``. A non-empty ``out_dir`` is replaced only with
``overwrite``, and only once the job has finished.
"""

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from hand_jax import mano, mesh_io, outputs, refine
from hand_jax.params import default_params, default_perspective_params
from hand_jax.refine import io as refine_io
from hand_jax.refine import viz as refine_viz


def _pad(tree, size):
    """Pad the leading axis of every leaf to ``size`` by repeating the last row."""

    def pad(x):
        extra = size - x.shape[0]
        return jnp.concatenate([x, jnp.repeat(x[-1:], extra, axis=0)]) if extra else x

    return jax.tree.map(pad, tree)


def _default_init(model, evidence, n, image_size):
    """The neutral framed hand for every example (per-example K in the perspective variant)."""
    if evidence.K is None:
        return refine_io.tile_params(default_params(model), n)
    place = lambda K: default_perspective_params(model, K, image_size=image_size)  # noqa: E731
    return jax.vmap(place)(jnp.asarray(evidence.K))


def _rows(tree, start, stop):
    """Rows ``start:stop`` of every leaf, as numpy arrays."""
    return jax.tree.map(lambda x: np.asarray(x[start:stop]), tree)


def _write_visuals(out_dir, model, view, i, name, data, outputs, trajectory):
    """Write example ``i``'s OBJ, overlay and (with a trajectory) animation.

    ``view(model, params, K)`` is the jitted ``refine.silhouette_and_keypoints``, built once per
    run so that drawing many examples compiles it once.
    """
    evidence, init, images = data
    K = None if evidence.K is None else evidence.K[i]
    take = lambda tree: jax.tree.map(lambda x: x[i], tree)  # noqa: E731
    _, a0, k0 = view(model, take(init), K)
    verts, a1, k1 = view(model, take(outputs.best_params), K)
    mesh_io.write_obj(
        os.path.join(out_dir, "meshes", f"{name}.obj"), verts, model.faces, overwrite=True
    )
    image = None if images is None else images[i]
    mask = np.asarray(evidence.mask[i])
    kp_ev = np.asarray(evidence.keypoints_2d[i])
    refine_viz.save_overlay(
        os.path.join(out_dir, "overlays", f"{name}.png"), image, mask, kp_ev,
        (np.asarray(a0), np.asarray(k0)), (np.asarray(a1), np.asarray(k1)), title=f"{name}",
    )  # fmt: skip
    if trajectory is None:
        return
    steps = trajectory.cam.shape[1]
    frames = []
    for t in sorted({*range(0, steps, max(1, steps // 20)), steps - 1}):  # about 20, and the last
        _, a, k = view(model, jax.tree.map(lambda x: x[i, t], trajectory), K)  # noqa: B023
        frames.append((t + 1, float(outputs.losses[i, t]), np.asarray(a), np.asarray(k)))
    refine_viz.save_animation(
        os.path.join(out_dir, "animations", f"{name}.gif"), image, mask, kp_ev, frames
    )


def run(
    *,
    input_path: str,
    out_dir: str,
    model: mano.HandModel,
    num_steps: int,
    learning_rate: float,
    weights: dict,
    sigma: float,
    batch_size: int,
    num_animations: int = 2,
    overwrite: bool = False,
    precondition: bool = True,
    copy_input: bool = False,
):
    """Refine every example of an evidence file and write the outputs; return a summary dict.

    ``out_dir`` is written as a temporary sibling swapped in when the job finishes (a failed run
    keeps the previous results); with ``copy_input`` the evidence file is copied into it as
    ``evidence.npz``. Output names are ``hand_jax.outputs.safe_stem(id, row)``.
    """
    evidence, init, images, ids = refine_io.load_evidence(input_path)
    n, image_size = evidence.keypoints_2d.shape[0], evidence.mask.shape[1]
    if images is not None and images.shape[1] != image_size:
        raise refine_io.EvidenceError(
            f"{input_path}: 'image' is {images.shape[1]} px but 'mask' {image_size} px; the "
            "refinement job needs the mask at the crop's resolution"
        )
    outputs.check_out_dir(out_dir, overwrite=overwrite, inputs=[input_path])
    if init is None:
        init = _default_init(model, evidence, n, image_size)
    refine_fn = refine.make_refine_fn(
        model, num_steps=num_steps, image_size=image_size, optimizer=optax.adam(learning_rate),
        sigma=sigma, weights=weights, return_trajectory=True, precondition=precondition,
    )  # fmt: skip
    view = jax.jit(
        lambda m, p, K: refine.silhouette_and_keypoints(
            m, p, image_size=image_size, sigma=sigma, K=K
        )
    )
    stems = [outputs.safe_stem(x, i) for i, x in enumerate(ids.tolist())]
    usable = np.asarray(jax.vmap(refine.evidence_is_usable)(jax.tree.map(jnp.asarray, evidence)))
    with outputs.staged_dir(out_dir, overwrite=overwrite, inputs=[input_path]) as tmp:
        for sub in ("meshes", "overlays", "animations"):
            os.makedirs(os.path.join(tmp, sub))
        if copy_input:
            shutil.copyfile(input_path, os.path.join(tmp, "evidence.npz"))
        results = []
        for start in tqdm(range(0, n, batch_size), desc="refine", unit="batch"):
            stop = min(start + batch_size, n)
            chunk = _rows((init, evidence), start, stop)
            out, traj = refine_fn(*_pad(jax.tree.map(jnp.asarray, chunk), batch_size))
            out, traj = _rows((out, traj), 0, stop - start)
            data = chunk[1], chunk[0], None if images is None else images[start:stop]
            for j in range(stop - start):
                keep = traj if start + j < num_animations else None
                _write_visuals(tmp, model, view, j, stems[start + j], data, out, keep)
            results.append(out)
        merged = jax.tree.map(lambda *xs: np.concatenate(xs), *results)
        summary = _save_results(tmp, merged, init, ids, stems, usable, num_steps)
    return summary


def _save_results(out_dir, merged, init, ids, stems, usable, num_steps) -> dict:
    arrays = {"ids": np.asarray(ids), "stems": np.asarray(stems), "has_evidence": usable,
              "losses": merged.losses, "best_loss": merged.best_loss}  # fmt: skip
    for prefix, p in (("init", init), ("final", merged.params), ("best", merged.best_params)):
        arrays.update({f"{prefix}_{k}": np.asarray(v) for k, v in p._asdict().items()})
    np.savez_compressed(os.path.join(out_dir, "refined.npz"), **arrays)
    ok = usable.astype(bool)
    summary = {
        "num_examples": len(stems),
        "num_steps": num_steps,
        # Without evidence the energy is only the priors: not a fit, so not averaged in.
        "no_valid_evidence": [str(x) for x in np.asarray(ids)[~ok].tolist()],
        "mean_initial_energy": float(np.mean(merged.init_loss[ok])) if ok.any() else None,
        "mean_best_energy": float(np.mean(merged.best_loss[ok])) if ok.any() else None,
    }
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return summary
