"""Feeding a trained network: sample dicts to sharded global batches, predictions back to numpy.

Host side. Samples are cropped sample dicts (``hand_jax.data.schema``, or pipeline examples);
every process holds the same list and feeds only its rows of each global batch
(``local_rows``); batches are global arrays sharded on the ``data`` mesh axis
(``hand_jax.sharding``). ``run_predictions`` pads the last batch, gathers the predictions to
every process and rotates 3D outputs from the network's view frame back into the crop camera's
frame (``hand_jax.network.forward``), returning numpy [N, ...] arrays with the labels under
``gt_<field>``.
"""

import jax
import numpy as np
from jax.experimental import multihost_utils

from hand_jax.data import pipeline

BATCH_FIELDS = (
    "image", "mask", "mask_full", "mask_amodal", "mask_valid", "keypoints_2d", "keypoints_3d",
    "keypoint_valid", "keypoint_visible", "view_rotation", "K",
)  # fmt: skip


def batch_fields(sample) -> dict:
    """The ``BATCH_FIELDS`` of one cropped sample dict (schema or pipeline example).

    Fields a sample lacks are derived as the input pipeline derives them
    (``hand_jax.data.pipeline.derived_fields``).
    """
    derived = pipeline.derived_fields(sample)
    return {k: sample[k] if k in sample else derived[k] for k in BATCH_FIELDS}


def stack_samples(samples) -> dict:
    """Stack the batch fields of sample dicts into arrays with a leading batch axis."""
    fields = [batch_fields(s) for s in samples]
    return {k: np.stack([f[k] for f in fields]) for k in BATCH_FIELDS}


def local_rows(global_rows: int) -> slice:
    """The rows of a global batch that this process feeds."""
    n = jax.process_count()
    if global_rows % n:
        raise ValueError(f"global batch {global_rows} is not divisible by {n} processes")
    local = global_rows // n
    return slice(jax.process_index() * local, (jax.process_index() + 1) * local)


def to_global(local_batch: dict, sharding) -> dict:
    """Assemble per-process numpy rows into global arrays sharded on the data axis."""
    return {
        k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
        for k, v in local_batch.items()
    }


def run_predictions(predict_fn, state, samples, consts, *, batch_size: int, sharding) -> dict:
    """Predict every sample (padded to whole global batches) and gather to every process.

    Args:
      predict_fn: jitted ``(state, images, K, consts) -> dict of [B, ...]`` (``K`` [B, 3, 3]
        the crops' intrinsics, for a perspective network).
      state: what ``predict_fn`` takes first (the network's variables, a train state, or
        None for a function that carries its own).
      samples: a sequence of cropped sample dicts (the same on every process).
      batch_size: global batch size (divisible by the device count).
      sharding: the batch sharding.

    Returns:
      dict of numpy [N, ...] predictions and the stacked labels under ``gt_<field>``.
    """
    n = len(samples)
    outputs = []
    for start in range(0, n, batch_size):
        idx = [min(i, n - 1) for i in range(start, start + batch_size)]
        batch = stack_samples([samples[i] for i in idx])
        rows = local_rows(batch_size)
        inputs = to_global({"image": batch["image"][rows], "K": batch["K"][rows]}, sharding)
        pred = predict_fn(state, inputs["image"], inputs["K"], consts)
        pred = multihost_utils.process_allgather(pred, tiled=True)
        outputs.append(jax.tree.map(np.asarray, pred))
    merged = {k: np.concatenate([o[k] for o in outputs])[:n] for k in outputs[0]}
    labels = stack_samples([samples[i] for i in range(n)])
    # The network predicts in the view frame (hand_jax.network.forward): back to the crop
    # camera's, keypoints and vertices alike (``*_view`` keep the frame the weak-perspective
    # camera and ``h`` refer to).
    for key in ("kp3d", "verts"):
        if key not in merged:
            continue
        merged[f"{key}_view"] = merged[key]
        merged[key] = np.einsum("nji,nkj->nki", labels["view_rotation"], merged[f"{key}_view"])
    merged.update({f"gt_{k}": v for k, v in labels.items()})
    return merged
