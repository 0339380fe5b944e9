"""Speed and memory of the whole estimation function (network + refinement on its own evidence).

For batch sizes 1, 8, 64 and 0, 10, 50 refinement steps at the shipped model's input size:
images/s (steady state, median of repeats), compile time, the compiled program's memory
(arguments + outputs + temporaries, from XLA's memory analysis), and the rasterizer's share of
the refinement time (the same program with the soft rasterizer replaced by a stub that returns
a constant image). Prints a table; run on an otherwise idle machine and quote the load average.

    python -m benchmarks.estimate_bench [--checkpoint=RUN] [--batches=1,8,64] [--steps=0,10,50]
"""

import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from hand_jax import estimate
from hand_jax.estimate import inputs

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Run or model dir (default: shipped).")
_BATCHES = flags.DEFINE_list("batches", ["1", "8", "64"], "Batch sizes.")
_STEPS = flags.DEFINE_list("steps", ["0", "10", "50"], "Refinement steps.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed calls per setting (median).")


def _stub_silhouette(verts_px, faces, *, image_size, sigma):
    del faces, sigma
    return jnp.zeros(image_size, verts_px.dtype) + 0.0 * jnp.sum(verts_px)


def _time(fn, images, repeats):
    K = inputs.centred_crop_intrinsics(images.shape[1], batch=len(images))
    start = time.perf_counter()
    jax.block_until_ready(fn(images, K=K))
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(images, K=K))
        times.append(time.perf_counter() - start)
    return first - float(np.median(times)), float(np.median(times))


def _memory_mb(fn, images):
    net = fn.network
    K = None
    if net.runtime.camera == "perspective":
        K = jnp.asarray(inputs.centred_crop_intrinsics(images.shape[1], batch=len(images)))
    compiled = fn.compiled.lower(net.variables, net.consts, images, None, K).compile()
    m = compiled.memory_analysis()
    if m is None:
        return float("nan")
    total = m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
    return total / 2**20


def main(argv):
    del argv
    net = estimate.load_network(_CHECKPOINT.value)
    size = net.image_size
    rng = np.random.default_rng(0)
    print(f"devices: {jax.devices()}; load average: {os.getloadavg()}; input {size} px")
    print("| batch | steps | compile s | images/s | memory MB | rasterizer share |")
    print("|---|---|---|---|---|---|")
    for batch in (int(b) for b in _BATCHES.value):
        images = jnp.asarray(rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8))
        for steps in (int(s) for s in _STEPS.value):
            fn = estimate.make_estimate_fn(net, refine_steps=steps)
            compile_s, run_s = _time(fn, images, _REPEATS.value)
            share = "-"
            if steps:
                stub = estimate.make_estimate_fn(
                    net, refine_steps=steps, silhouette_fn=_stub_silhouette
                )
                _, stub_s = _time(stub, images, _REPEATS.value)
                base = estimate.make_estimate_fn(net, refine_steps=0)
                _, net_s = _time(base, images, _REPEATS.value)
                share = f"{max(0.0, run_s - stub_s) / max(run_s - net_s, 1e-9):.0%}"
            print(
                f"| {batch} | {steps} | {compile_s:.1f} | {batch / run_s:.1f} | "
                f"{_memory_mb(fn, images):.0f} | {share} |",
                flush=True,
            )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    app.run(main)
