"""Refinement speed against accuracy: silhouette resolution and proxy meshes, on validation.

For each setting of the estimator's silhouette (``make_estimate_fn(silhouette_size=...,
silhouette_faces=...)``): images/s of the whole estimation function (network + ``--steps``
refinement steps) at each batch size, and the refined accuracy on the synthetic validation split
at the estimator's default steps (root-relative and Procrustes 3D error, 2D reprojection error,
silhouette IoU of the full mesh, and the mean distance of the refined vertices from those of the
first setting run, the full mesh at M = 32), so a faster setting is taken only where the
accuracy holds.
``--profile`` first splits one refinement step's time into its parts (the rasterizer's binning,
its forward pair terms, its backward pass), each a jitted function of a batch of posed hands
timed alone. ``--roofline`` prints, per setting, the FLOPs of one refinement step per image
counted by XLA's cost analysis (the pair kernel's forward and backward per pair, times the pairs
the binning uses, plus one energy gradient with the rasterizer stubbed out: MANO, projection,
priors; XLA counts a loop body once, hence the split), the FLOP/s that the measured step time
gives, and their fraction of a plain float32 matmul's measured FLOP/s on this machine.
Writes ``results/refine_speed.json``.

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

from hand_jax import estimate, params, refine, render
from hand_jax.estimate import inputs, scoring
from hand_jax.render import soft

_DATA_DIR = flags.DEFINE_string("data_dir", None, "Synthetic dataset root (validation).")
_SPLIT = flags.DEFINE_string("split", "val", "Split scored (never test).")
_COUNT = flags.DEFINE_integer("count", 512, "Samples scored (0: all).")
_BATCHES = flags.DEFINE_list("batches", ["8", "64"], "Batch sizes timed.")
_STEPS = flags.DEFINE_integer("steps", 50, "Refinement steps timed.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed calls per setting (best).")
_ONLY = flags.DEFINE_list("only", [], "Run only these settings.")
_PROFILE = flags.DEFINE_bool("profile", False, "Split one step's time into its parts first.")
_ROOFLINE = flags.DEFINE_bool("roofline", False, "FLOPs per step against the matmul's FLOP/s.")
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
        K = inputs.centred_crop_intrinsics(size, batch=batch)
        out[batch] = batch / _best_time(lambda x, k: fn(x, K=k), images, K, repeats=repeats)
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


def _flops(fn, *args) -> float:
    return float(jax.jit(fn).lower(*args).compile().cost_analysis()["flops"])


def matmul_flops_per_s(n: int = 2048) -> float:
    """Measured FLOP/s of a jitted float32 [n, n] @ [n, n] (best of the repeats)."""
    a = jnp.asarray(np.random.default_rng(0).normal(size=(n, n)), jnp.float32)
    return 2.0 * n**3 / _best_time(jax.jit(lambda x: x @ x), a, repeats=5)


def step_flops(net, size: int, faces, batch: int = 64) -> dict:
    """XLA-counted FLOPs of one refinement step per image at silhouette size ``size``."""
    model = net.consts.hand_model
    faces = model.faces if faces is None else jnp.asarray(faces)
    sigma = net.runtime.silhouette_sigma * (size / net.runtime.silhouette_size) ** 2
    p = params.default_params(model)
    _, v, _ = params.screen_hand(model, p, image_size=size)
    pairs = jax.vmap(lambda x: soft.bin_screen_faces(
        *[soft.face_screen(x, faces, near=0.0)[i] for i in (0, 2)], sigma=sigma, tol=1e-4,
        hw=(size, size), tile_size=4, capacity=None, chunk=1024).num_pairs)(
        jnp.broadcast_to(v, (batch, *v.shape)))  # fmt: skip
    chunk = 1024
    px = jnp.zeros((chunk, 16), jnp.float32)
    cols = jnp.zeros((chunk, 15), jnp.float32)
    kernel = lambda q: jnp.sum(soft._log_transmittance(px, px, q, jnp.float32(sigma)))  # noqa: E731
    per_pair = _flops(jax.value_and_grad(kernel), cols) / chunk
    ev = refine.render_evidence(model, p, image_size=net.image_size)
    ev = ev._replace(mask=jnp.zeros((size, size), jnp.float32))

    def stub(verts_px, faces, *, image_size, sigma):
        return jnp.zeros(image_size, verts_px.dtype) + 0.0 * jnp.sum(verts_px)

    energy, _ = refine.optimize.make_energy_fn(image_size=net.image_size,
                                                        silhouette_fn=stub)  # fmt: skip
    x0 = params.zeros_like(p)
    rest = _flops(jax.grad(lambda x: energy(model, x, ev, p)), x0)
    mean_pairs = float(jnp.mean(pairs))
    return {"pairs": mean_pairs, "per_pair": per_pair, "rest": rest,
            "total": rest + mean_pairs * per_pair}  # fmt: skip


def _roofline(net, name, images_per_s: dict, network_per_s: float, matmul: float) -> None:
    size, faces = SETTINGS[name]
    faces = None if faces is None else estimate.core.silhouette_setup(
        net, size=size, faces=faces).faces  # fmt: skip
    size = estimate.core.evidence_mask_size(net) if size is None else size
    f = step_flops(net, size, faces)
    ips = images_per_s[max(images_per_s)]  # the largest batch
    step_s = (1.0 / ips - 1.0 / network_per_s) / _STEPS.value
    rate = f["total"] / step_s
    print(f"  roofline {name}: {f['total'] / 1e6:.2f} MFLOP per image-step ({f['pairs']:.0f} "
          f"pairs x {f['per_pair']:.0f} + {f['rest'] / 1e6:.2f} M), {1e3 * step_s:.3f} ms per "
          f"image-step -> {rate / 1e9:.2f} GFLOP/s = {rate / matmul:.1%} of the matmul's "
          f"{matmul / 1e9:.1f} GFLOP/s", flush=True)  # fmt: skip


def main(argv):
    del argv
    if _SPLIT.value == "test":
        raise app.UsageError("choices are made on the validation split, never on test")
    net = estimate.load_network()
    print(f"devices {jax.devices()}; load average {os.getloadavg()}")
    if _PROFILE.value:
        for size in (32, 16):
            _profile(net, 64, size)
    matmul = matmul_flops_per_s() if _ROOFLINE.value else None
    if matmul:
        print(f"float32 matmul 2048^3: {matmul / 1e9:.1f} GFLOP/s", flush=True)
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
        if _ROOFLINE.value:
            net_only = estimate.make_estimate_fn(net, refine_steps=0)
            speeds = row["images_per_s"]
            base = _speed(net_only, net.image_size, _REPEATS.value)[max(speeds)]
            _roofline(net, name, speeds, base, matmul)
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
