"""Benchmark batch test-time refinement: throughput, compile time, memory, error vs iterations.

    python benchmarks/refine_bench.py [--batches 1,8,64] [--steps 50] [--size 64] [--plot PATH]

Prints one table row per (mesh, batch): compile time, run time of one call after compilation,
refined samples/s, time per iteration, XLA's compiled memory (arguments + outputs + temporaries),
and the per-iteration time with the dense jax.numpy silhouette for the speed ratio (batch <= 8,
3 steps: the dense formulation materialises [H*W, F] and is slow). Then it refines 32 synthetic
validation problems for 200 steps and plots 2D and root-relative 3D keypoint error against the
iteration (PNG).
"""

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from hand_jax import mano, refine  # noqa: E402
from hand_jax.params import hand_forward_3d  # noqa: E402
from hand_jax.refine import io as refine_io  # noqa: E402
from hand_jax.refine import viz as refine_viz  # noqa: E402

DENSE_STEPS = 3


def _dense_fn():
    try:
        from hand_jax.render import dense
    except ImportError:
        return None
    return getattr(dense, "dense_soft_silhouette", None)


def _time_call(fn, args, repeats=3):
    jax.block_until_ready(fn(*args))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t0)
    return best


def _bench_one(model, batch, steps, size, silhouette_fn=None):
    _, init, evidence = refine_io.synthetic_problems(
        jax.random.key(1), model, num=batch, image_size=size
    )
    fn = refine.make_refine_fn(
        model, num_steps=steps, image_size=size, optimizer=optax.adam(1e-2),
        silhouette_fn=silhouette_fn,
    )  # fmt: skip
    t0 = time.perf_counter()
    compiled = fn.compiled.lower(model, init, evidence).compile()
    compile_s = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    mem_mb = (
        (mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes) / 2**20
        if mem is not None
        else float("nan")
    )
    run_s = _time_call(compiled, (model, init, evidence), repeats=2 if batch > 8 else 3)
    return compile_s, run_s, mem_mb


def _mano_model():
    """The user's MANO model (778 verts / 1538 faces) when ``MANO_PATH`` names one, else None."""
    path = os.environ.get("MANO_PATH")
    return mano.load_model(path) if path else None


def table(models, batches, steps, size):
    dense = _dense_fn()
    print(f"\nrefinement: {steps} Adam steps, {size}x{size} silhouettes, devices={jax.devices()}")
    header = (
        "| mesh | V/F | batch | compile s | run s | samples/s | ms/iter | memory MB "
        "| dense ms/iter | speed-up |"
    )
    print(header)
    print("|" + "---|" * 10)
    for name, model in models.items():
        vf = f"{model.v_template.shape[0]}/{model.faces.shape[0]}"
        for batch in batches:
            c, r, m = _bench_one(model, batch, steps, size)
            dense_s, ratio = "n/a", "n/a"
            if dense is not None and batch <= 8:
                # The dense formulation is slow: time DENSE_STEPS steps, compare per iteration.
                _, rd, _ = _bench_one(model, batch, DENSE_STEPS, size, silhouette_fn=dense)
                dense_s = f"{1e3 * rd / DENSE_STEPS:.0f}"
                ratio = f"{(rd / DENSE_STEPS) / (r / steps):.0f}x"
            print(
                f"| {name} | {vf} | {batch} | {c:.1f} | {r:.3f} | {batch / r:.1f} "
                f"| {1e3 * r / steps:.2f} | {m:.0f} | {dense_s} | {ratio} |"
            )


def error_curve(model, size, plot_path, num=32, steps=200):
    gt, init, evidence = refine_io.synthetic_problems(
        jax.random.key(1234), model, num=num, image_size=size
    )
    fn = refine.make_refine_fn(
        model, num_steps=steps, image_size=size, optimizer=optax.adam(1e-2),
        return_trajectory=True,
    )  # fmt: skip
    out, traj = fn(init, evidence)
    kp3d = jax.vmap(jax.vmap(lambda p: hand_forward_3d(model, p)[1]))
    kp2d = jax.vmap(jax.vmap(lambda p: refine.forward(model, p, image_size=size)[2]))
    gt3d = jax.vmap(lambda p: hand_forward_3d(model, p)[1])(gt)
    err3d = 1e3 * jnp.linalg.norm(kp3d(traj) - gt3d[:, None], axis=-1).mean((0, 2))
    err2d = jnp.linalg.norm(kp2d(traj) - evidence.keypoints_2d[:, None], axis=-1).mean((0, 2))
    init3d = 1e3 * float(jnp.linalg.norm(jax.vmap(lambda p: hand_forward_3d(model, p)[1])(init)
                                          - gt3d, axis=-1).mean())  # fmt: skip
    steps_axis = np.arange(0, steps + 1)
    e3 = np.concatenate([[init3d], np.asarray(err3d)])
    init2d = float(jnp.linalg.norm(kp2d(jax.tree.map(lambda x: x[:, None], init))[:, 0]
                                   - evidence.keypoints_2d, axis=-1).mean())  # fmt: skip
    e2 = np.concatenate([[init2d], np.asarray(err2d)])
    refine_viz.save_error_curve(
        plot_path, steps_axis, {"root-relative 3D (mm)": e3, "2D (px)": e2},
        ylabel="mean keypoint error", title=f"refinement on {num} synthetic problems",
    )  # fmt: skip
    print(f"\nerror vs iterations ({num} problems, seed 1234): wrote {plot_path}")
    print("| step | 2D px | 3D mm |\n|---|---|---|")
    for t in (0, 10, 25, 50, 100, steps):
        print(f"| {t} | {e2[t]:.2f} | {e3[t]:.2f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,8,64")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--plot", default="results/refine_error_vs_iterations.png")
    args = parser.parse_args()
    models = {"default hand": mano.load_model()}
    extra = _mano_model()
    if extra is not None:
        models["MANO (MANO_PATH)"] = extra
    table(models, [int(b) for b in args.batches.split(",")], args.steps, args.size)
    os.makedirs(os.path.dirname(args.plot) or ".", exist_ok=True)
    error_curve(models["default hand"], args.size, args.plot)


if __name__ == "__main__":
    main()
