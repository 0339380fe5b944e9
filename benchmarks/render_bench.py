"""Benchmark of the binned soft silhouette against the dense jax.numpy formulation (and PyTorch3D).

For each mesh (a MANO-sized synthetic hand, 776 verts / 1528 faces, and the default hand
loaded from its npz), image size and batch size, it prints the jitted forward and forward+backward
times (median of ``--reps`` runs after a warm-up), peak memory of the compiled forward+backward
(XLA's ``memory_analysis``: arguments + outputs + temporaries), pixel-face terms evaluated per
second, and the dense formulation's times in the same run with the speed-up. The hands are
random rotations fitted to 85% of the crop, sigma = 1 px^2, default tolerance and capacity.

Run from the repository root:

    python benchmarks/render_bench.py                 # full table
    python benchmarks/render_bench.py --sizes 64 --batches 8 --reps 3
"""

import argparse
import pathlib
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from hand_jax import render  # noqa: E402
from tests.render import hand_in_crop, load_default_hand, synthetic_hand_mesh  # noqa: E402


def _timed(fn, *args, reps):
    jax.block_until_ready(fn(*args))  # compile + warm up
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _peak_bytes(fn, *args):
    stats = jax.jit(fn).lower(*args).compile().memory_analysis()
    if stats is None:
        return float("nan")
    return (stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes
            - stats.alias_size_in_bytes)  # fmt: skip


def _functions(faces, size, dense, sigma):
    if dense:
        one = lambda v: render.dense_soft_silhouette(v, faces, image_size=size, sigma=sigma)  # noqa: E731
    else:
        one = lambda v: render.soft_silhouette(v, faces, image_size=size, sigma=sigma)  # noqa: E731
    forward = jax.vmap(one)

    def loss(verts, cotangent):
        return jnp.sum(cotangent * forward(verts))

    return forward, jax.grad(loss)


def _views(verts, size, batch, seed):
    rng = np.random.default_rng(seed)
    rots = [rng.uniform(-np.pi, np.pi, 3) for _ in range(batch)]
    return np.stack([hand_in_crop(verts, size, rot=r) for r in rots])


def bench_one(name, verts, faces, size, batch, args):
    views = jnp.asarray(_views(verts, size, batch, size))
    cot = jnp.asarray(np.random.default_rng(0).normal(size=(batch, size, size)), jnp.float32)
    row = {"mesh": name, "size": size, "batch": batch}
    forward, grad = _functions(faces, size, False, args.sigma)
    row["fwd_ms"] = 1e3 * _timed(jax.jit(forward), views, reps=args.reps)
    row["fb_ms"] = 1e3 * _timed(jax.jit(grad), views, cot, reps=args.reps)
    row["peak_mb"] = _peak_bytes(grad, views, cot) / 2**20
    info = jax.jit(jax.vmap(lambda v: render.soft_silhouette(
        v, faces, image_size=size, sigma=args.sigma, return_info=True)[1]))(views)  # fmt: skip
    assert int(jnp.max(info.overflow)) == 0, "capacity overflow in the benchmark"
    terms = float(jnp.sum(info.num_pairs)) * 16  # tile 4: 16 pixels per pair
    row["terms_per_s"] = terms / (row["fwd_ms"] / 1e3)
    dense_terms = batch * size * size * len(faces)
    if dense_terms <= args.dense_max_terms:
        forward, grad = _functions(faces, size, True, args.sigma)
        row["dense_fwd_ms"] = 1e3 * _timed(jax.jit(forward), views, reps=args.dense_reps)
        row["dense_fb_ms"] = 1e3 * _timed(jax.jit(grad), views, cot, reps=args.dense_reps)
        row["dense_peak_mb"] = _peak_bytes(grad, views, cot) / 2**20
    return row


def _fmt(row, key, spec):
    return format(row[key], spec) if key in row else "-"


def print_header():
    head = ("| mesh | px | B | fwd ms | fwd+bwd ms | peak MB (f+b) | pixel-face terms/s | "
            "dense fwd ms | dense f+b ms | dense peak MB | speed-up f+b |")  # fmt: skip
    print(head)
    print("|" + "---|" * (head.count("|") - 1), flush=True)


def pytorch3d_note():
    try:
        import pytorch3d  # noqa: F401
    except ImportError:
        return ("PyTorch3D is not importable: its CPU soft silhouette comparison is skipped "
                "(it has no Linux wheel on PyPI; build it from source to include it).")  # fmt: skip
    return ("PyTorch3D is importable, but its comparison is not implemented in this script "
            "yet; no numbers are reported for it.")  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128, 224])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--meshes", nargs="+", default=["synthetic", "default"])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--dense_reps", type=int, default=1)
    parser.add_argument("--sigma", type=float, default=1.0)
    parser.add_argument(
        "--dense_max_terms",
        type=float,
        default=6e7,
        help="skip the dense baseline above this many pixel-face terms",
    )
    args = parser.parse_args()
    meshes = {"synthetic": synthetic_hand_mesh()}
    default = load_default_hand()
    if default is not None:
        meshes["default"] = default
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; sigma {args.sigma} px^2")
    for name, (verts, faces) in meshes.items():
        print(f"mesh {name}: {len(verts)} verts, {len(faces)} faces")
    print(pytorch3d_note())
    print_header()
    for name in args.meshes:
        if name not in meshes:
            print(f"mesh {name} unavailable, skipped")
            continue
        for size in args.sizes:
            for batch in args.batches:
                _print_row(bench_one(name, *meshes[name], size, batch, args))


def _print_row(r):
    speed = f"{r['dense_fb_ms'] / r['fb_ms']:.0f}x" if "dense_fb_ms" in r else "-"
    print(f"| {r['mesh']} | {r['size']} | {r['batch']} | {r['fwd_ms']:.1f} | "
          f"{r['fb_ms']:.1f} | {r['peak_mb']:.0f} | {r['terms_per_s']:.2e} | "
          f"{_fmt(r, 'dense_fwd_ms', '.0f')} | {_fmt(r, 'dense_fb_ms', '.0f')} | "
          f"{_fmt(r, 'dense_peak_mb', '.0f')} | {speed} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
