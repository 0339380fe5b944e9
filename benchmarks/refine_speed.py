"""Refinement speed against accuracy: silhouette resolution and proxy meshes, on validation.

For each setting of the estimator's silhouette (``make_estimate_fn(silhouette_size=...,
silhouette_faces=...)``): images/s of the whole estimation function (network + ``--steps``
refinement steps) at each batch size, and the refined accuracy on the synthetic validation split
at the estimator's default steps (root-relative and Procrustes 3D error, 2D reprojection error,
silhouette IoU of the full mesh, and the mean distance of the refined vertices from those of the
first setting run, the full mesh at M = 32), so a faster setting is taken only where the
accuracy holds.
``--profile`` first splits one refinement step's time into its parts (the rasterizer's binning,
its forward pair terms, its backward pass, and the rest: MANO, projection, optimiser), each a
jitted function of a batch of posed hands timed alone. Writes ``results/refine_speed.json``.

    python -m benchmarks.refine_speed --data_dir=/work/data/synth_val [--profile]

Run on an otherwise idle machine; the load average is printed before and after.
"""

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from hand_jax import estimate, params, render
from hand_jax.estimate import scoring
from hand_jax.render import soft

_DATA_DIR = flags.DEFINE_string("data_dir", None, "Synthetic dataset root (validation).")
_SPLIT = flags.DEFINE_string("split", "val", "Split scored (never test).")
_COUNT = flags.DEFINE_integer("count", 512, "Samples scored (0: all).")
_BATCHES = flags.DEFINE_list("batches", ["8", "64"], "Batch sizes timed.")
_STEPS = flags.DEFINE_integer("steps", 50, "Refinement steps timed.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed calls per setting (best).")
_ONLY = flags.DEFINE_list("only", [], "Run only these settings.")
_PROFILE = flags.DEFINE_bool("profile", False, "Split one step's time into its parts first.")
_OUT = flags.DEFINE_string("out", "results/refine_speed.json", "JSON of the results.")

# "M<size>/<faces>": (silhouette size M, proxy faces); None = the network's / every face.
SETTINGS = {
    "M32/all": (32, None),
    "M16/all": (16, None),
    "M16/1650": (16, 1650),
    "M16/826": (16, 826),
    "M32/826": (32, 826),
    "M16/413": (16, 413),
}


def _best_time(fn, *args, repeats):
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return min(times)


def _speed(fn, size, repeats) -> dict:
    rng = np.random.default_rng(0)
    out = {}
    for batch in (int(b) for b in _BATCHES.value):
        images = jnp.asarray(rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8))
        out[batch] = batch / _best_time(fn, images, repeats=repeats)
    return out


def _accuracy(net, name, samples) -> tuple[dict, np.ndarray]:
    """Refined validation metrics of a setting, and its refined vertices [N, V, 3]."""
    size, faces = SETTINGS[name]
    fn = estimate.make_estimate_fn(net, silhouette_size=size, silhouette_faces=faces)
    result = scoring.score(fn, samples, batch_size=64)
    m = result["refined"]
    keys = ("kp3d_epe_mm", "pa_epe_mm", "kp2d_epe_px", "silhouette_iou")
    return {k: m[k] for k in keys}, result["predictions"]["refined"]["verts"]


def _vertex_shift_mm(verts, reference) -> float:
    """Mean distance (mm) between two settings' refined vertices (root-relative meshes)."""
    return float(1000.0 * np.mean(np.linalg.norm(verts - reference, axis=-1)))


def _profile(net, batch: int, size: int) -> None:
    """One refinement step's parts at silhouette size ``size`` (ms per image)."""
    model = net.consts.hand_model
    p = params.default_params(model)
    _, v, _ = params.screen_hand(model, p, image_size=size)
    rng = np.random.default_rng(0)
    verts = jnp.asarray(np.asarray(v)[None] + rng.normal(0, 0.3, (batch, *v.shape)), jnp.float32)
    faces, sigma = model.faces, net.runtime.silhouette_sigma * (size / 32.0) ** 2
    target = jnp.asarray(rng.uniform(size=(batch, size, size)), jnp.float32)

    def bins(x):
        xy, _, valid = soft.face_screen(x, faces, near=0.0)
        return soft.bin_screen_faces(xy, valid, sigma=sigma, tol=1e-4, hw=(size, size),
                                     tile_size=4, capacity=None, chunk=1024)  # fmt: skip

    def forward(x):
        return render.soft_silhouette(x, faces, image_size=size, sigma=sigma)

    def loss(x):
        return jnp.sum((jax.vmap(forward)(x) - target) ** 2)

    parts = {
        "binning": jax.jit(jax.vmap(bins)),
        "binning + forward pair terms": jax.jit(jax.vmap(forward)),
        "forward + backward": jax.jit(jax.grad(loss)),
    }
    print(f"profile, batch {batch}, M = {size}, {faces.shape[0]} faces (ms per image):")
    for label, fn in parts.items():
        ms = 1000 * _best_time(fn, verts, repeats=_REPEATS.value) / batch
        print(f"  {label:32s} {ms:7.3f}", flush=True)


def main(argv):
    del argv
    if _SPLIT.value == "test":
        raise app.UsageError("choices are made on the validation split, never on test")
    net = estimate.load_network()
    print(f"devices {jax.devices()}; load average {os.getloadavg()}")
    if _PROFILE.value:
        for size in (32, 16):
            _profile(net, 64, size)
    samples = None
    if _DATA_DIR.value:
        samples = scoring.load_protocol_crops(net, dataset="synthetic", data_dir=_DATA_DIR.value,
                                              split=_SPLIT.value, count=_COUNT.value)  # fmt: skip
    results, reference = {}, None
    for name, (size, faces) in SETTINGS.items():
        if _ONLY.value and name not in _ONLY.value:
            continue
        fn = estimate.make_estimate_fn(net, refine_steps=_STEPS.value, silhouette_size=size,
                                       silhouette_faces=faces)  # fmt: skip
        row = {"images_per_s": _speed(fn, net.image_size, _REPEATS.value)}
        if samples is not None:
            row["val"], verts = _accuracy(net, name, samples)
            reference = verts if reference is None else reference  # the first setting's
            row["val"]["vertex_shift_mm"] = _vertex_shift_mm(verts, reference)
        results[name] = row
        print(name, json.dumps(row), flush=True)
    print(f"load average after {os.getloadavg()}")
    os.makedirs(os.path.dirname(_OUT.value) or ".", exist_ok=True)
    with open(_OUT.value, "w") as f:
        json.dump({"steps": _STEPS.value, "count": _COUNT.value, "settings": results}, f, indent=1)


if __name__ == "__main__":
    app.run(main)
