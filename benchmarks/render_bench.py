"""Benchmark of the binned soft silhouette against the dense jax.numpy formulation (and PyTorch3D).

For each mesh (a MANO-sized synthetic hand, 776 verts / 1528 faces, and the default hand
loaded from its npz), image size and batch size, it prints the jitted forward and forward+backward
times (median of ``--reps`` runs after a warm-up), peak memory of the compiled forward+backward
(XLA's ``memory_analysis``: arguments + outputs + temporaries), pixel-face terms evaluated per
second, and the dense formulation's times in the same run with the speed-up (skipped above
``--dense_max_terms`` pixel-face terms, where it needs several GB). PyTorch3D's CPU soft
silhouette is timed beside them only if ``pytorch3d`` is importable (it has no Linux wheel on
PyPI); otherwise a message says it was skipped. The hands are random rotations fitted to 85% of
the crop, sigma = 1 px^2, default tile size, tolerance and capacity.

Run from the repository root:

    python benchmarks/render_bench.py                 # full table
    python benchmarks/render_bench.py --sizes 64 --batches 8 --reps 3
"""

import argparse
import functools
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

TILE = 4  # the renderer's default tile size


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
        one = functools.partial(render.dense_soft_silhouette, image_size=size, sigma=sigma)
    else:
        one = functools.partial(
            render.soft_silhouette, image_size=size, sigma=sigma, tile_size=TILE
        )
    forward = jax.vmap(lambda v: one(v, faces))

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
    kw = dict(image_size=size, sigma=args.sigma, tile_size=TILE, return_info=True)
    info = jax.jit(jax.vmap(lambda v: render.soft_silhouette(v, faces, **kw)[1]))(views)
    assert int(jnp.max(info.overflow)) == 0, "capacity overflow in the benchmark"
    terms = float(jnp.sum(info.num_pairs)) * TILE * TILE  # pixel-face terms evaluated
    row["terms_per_s"] = terms / (row["fwd_ms"] / 1e3)
    dense_terms = batch * size * size * len(faces)
    if dense_terms <= args.dense_max_terms:
        forward, grad = _functions(faces, size, True, args.sigma)
        row["dense_fwd_ms"] = 1e3 * _timed(jax.jit(forward), views, reps=args.dense_reps)
        row["dense_fb_ms"] = 1e3 * _timed(jax.jit(grad), views, cot, reps=args.dense_reps)
        row["dense_peak_mb"] = _peak_bytes(grad, views, cot) / 2**20
    p3d = bench_pytorch3d(np.asarray(views), faces, size, args.sigma, args.reps)
    if p3d is not None:
        row["p3d_fwd_ms"], row["p3d_fb_ms"] = p3d
    return row


def _fmt(row, key, spec):
    return format(row[key], spec) if key in row else "-"


def print_header():
    head = ("| mesh | px | B | fwd ms | fwd+bwd ms | peak MB (f+b) | pixel-face terms/s | "
            "dense fwd ms | dense f+b ms | dense peak MB | speed-up f+b | p3d f+b ms | "
            "speed-up vs p3d |")  # fmt: skip
    print(head)
    print("|" + "---|" * (head.count("|") - 1), flush=True)


def pytorch3d_note():
    try:
        import pytorch3d  # noqa: F401
    except ImportError:
        return ("PyTorch3D is not importable: its CPU soft silhouette comparison is skipped "
                "(it has no Linux wheel on PyPI; build it from source to include it).")  # fmt: skip
    return "PyTorch3D is importable: its CPU soft silhouette is timed in the p3d columns."


def bench_pytorch3d(views, faces, size, sigma_px, reps, faces_per_pixel=50):
    """PyTorch3D CPU soft silhouette (rasterize_meshes + sigmoid_alpha_blend), same views.

    Pixels map to PyTorch3D's NDC (+x left, +y up); its squared NDC distances are compared
    with sigma in NDC^2 = sigma_px * (2 / size)^2, blur radius for D >= 1e-4, as its docs do.
    Returns (forward ms, forward+backward ms), or None if PyTorch3D is absent.
    """
    try:
        import torch
        from pytorch3d.renderer.blending import BlendParams, sigmoid_alpha_blend
        from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes
        from pytorch3d.structures import Meshes
    except ImportError:
        return None
    batch = views.shape[0]
    sigma = sigma_px * (2.0 / size) ** 2
    params = BlendParams(sigma=sigma, gamma=1e-4)
    ndc = np.asarray(views).copy()
    ndc[..., :2] = -(ndc[..., :2] * (2.0 / size) - 1.0)
    verts = torch.tensor(ndc, dtype=torch.float32, requires_grad=True)
    faces_t = torch.tensor(np.asarray(faces), dtype=torch.int64)

    def run(backward):
        meshes = Meshes(verts=list(verts), faces=[faces_t] * batch)
        frags = rasterize_meshes(meshes, image_size=size, faces_per_pixel=faces_per_pixel,
                                 blur_radius=float(np.log(1e4 - 1) * sigma))  # fmt: skip
        pix_to_face, _, _, dists = frags
        colors = torch.ones(pix_to_face.shape + (3,))
        alpha = sigmoid_alpha_blend(colors, _Fragments(pix_to_face, dists), params)[..., 3]
        if backward:
            alpha.sum().backward()

    out = []
    for backward in (False, True):
        run(backward)
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            run(backward)
            times.append(time.perf_counter() - start)
        out.append(1e3 * statistics.median(times))
    return tuple(out)


class _Fragments:
    def __init__(self, pix_to_face, dists):
        self.pix_to_face, self.dists = pix_to_face, dists


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
    p3d = f"{r['p3d_fb_ms'] / r['fb_ms']:.0f}x" if "p3d_fb_ms" in r else "-"
    print(f"| {r['mesh']} | {r['size']} | {r['batch']} | {r['fwd_ms']:.1f} | "
          f"{r['fb_ms']:.1f} | {r['peak_mb']:.0f} | {r['terms_per_s']:.2e} | "
          f"{_fmt(r, 'dense_fwd_ms', '.0f')} | {_fmt(r, 'dense_fb_ms', '.0f')} | "
          f"{_fmt(r, 'dense_peak_mb', '.0f')} | {speed} | {_fmt(r, 'p3d_fb_ms', '.1f')} | "
          f"{p3d} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
