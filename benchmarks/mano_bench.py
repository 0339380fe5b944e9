"""Benchmark the MANO layer: hand_jax (jit + vmap) against PyTorch smplx's MANO, on CPU.

    python benchmarks/mano_bench.py [--batches 1,64,1024] [--repeats 5] [--framework both]

Both sides pose the same random MANO-format model (MANO sizes: V=778, F=1538, S=10, 16 joints;
real parent tree) in float32: hand_jax reads it from the project's npz, smplx from a pickle
written here in the official layout (plain numpy + scipy sparse ``J_regressor``, no chumpy).
Before timing, the two outputs are compared on the same poses.

Rows per batch size B: forward throughput (hands/s, no gradient) and forward + gradient
throughput (hands/s; the gradient of ``sum(verts * cotangent)`` with respect to pose [B, 48] and
betas [B, 10]: ``jax.value_and_grad`` vs torch ``backward()``), each the best of ``--repeats``
timed loops of at least ``--min_time`` seconds, and the best over ``--rounds`` alternating runs
of the two frameworks (the machine may be shared; best-of is the fair estimate for both); jit
compile time (trace + lower + compile) of
both jitted functions; XLA's compiled memory (arguments + outputs + temporaries) of the gradient
function; and the worker process's peak RSS after that batch (batches run in increasing order in
one process per framework, so it bounds the peak of that batch). Each framework runs in its own
subprocess so neither one's threads or memory disturb the other.

Roofline: the floating-point operations per hand of the compiled forward and forward + gradient,
counted by XLA (``compiled.cost_analysis()["flops"]`` divided by B), and the FLOP/s the same worker
process measures for a plain jitted float32 matmul (``--matmul_size`` square, best of
``--repeats`` timed loops). The fraction printed is ``flops/hand * hands/s / matmul FLOP/s``: how
much of the machine's dense-matmul rate the MANO layer turns into useful work.

smplx is optional: ``pip install -r requirements-bench.txt`` (torch==2.13.0 first, the CPU build).
"""

import argparse
import functools
import json
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, REPO)

NUM_VERTS, NUM_FACES, NUM_BETAS = 778, 1538, 10
PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)


def make_arrays(seed=0):
    """Random MANO-sized model arrays (float64) with the real parent tree."""
    rng = np.random.default_rng(seed)
    weights = rng.random((NUM_VERTS, 16)) ** 4
    j_regressor = np.where(rng.random((16, NUM_VERTS)) < 0.05, rng.random((16, NUM_VERTS)), 0.0)
    return {
        "v_template": rng.normal(scale=0.05, size=(NUM_VERTS, 3)),
        "shapedirs": rng.normal(scale=0.005, size=(NUM_VERTS, 3, NUM_BETAS)),
        "posedirs": rng.normal(scale=0.002, size=(NUM_VERTS, 3, 135)),
        "J_regressor": j_regressor / j_regressor.sum(axis=1, keepdims=True),
        "weights": weights / weights.sum(axis=1, keepdims=True),
        "faces": rng.integers(0, NUM_VERTS, size=(NUM_FACES, 3)).astype(np.int32),
        "hands_components": rng.normal(scale=0.3, size=(45, 45)),
        "hands_mean": rng.normal(scale=0.2, size=45),
    }


def write_official_pkl(arrays, path):
    import scipy.sparse

    data = {k: v for k, v in arrays.items() if k != "faces"}
    data["J_regressor"] = scipy.sparse.csc_matrix(arrays["J_regressor"])
    data["f"] = arrays["faces"].astype(np.uint32)
    data["kintree_table"] = np.stack([np.array(PARENTS) % 2**32, np.arange(16)]).astype(np.int64)
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=2)


def make_inputs(batch, seed=1):
    rng = np.random.default_rng(seed)
    pose = rng.normal(scale=0.5, size=(batch, 48)).astype(np.float32)
    betas = rng.normal(size=(batch, NUM_BETAS)).astype(np.float32)
    cot = rng.normal(size=(batch, NUM_VERTS, 3)).astype(np.float32)
    return pose, betas, cot


def time_per_call(fn, *, repeats, min_time):
    """Best-of-``repeats`` seconds per call, each timed loop lasting at least ``min_time``."""
    fn()
    t0 = time.perf_counter()
    fn()
    per_call = max(time.perf_counter() - t0, 1e-6)
    iters = max(1, int(min_time / per_call))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        best = min(best, (time.perf_counter() - t0) / iters)
    return best


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def xla_flops(compiled):
    """Floating-point operations of one call of a compiled function, as counted by XLA."""
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):  # older jax: one dict per computation
        cost = cost[0] if cost else {}
    return float((cost or {}).get("flops", float("nan")))


def matmul_flops_per_s(size, repeats, min_time):
    """FLOP/s of a jitted float32 [size, size] @ [size, size] on this process's devices."""
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    a, b = (jnp.asarray(rng.normal(size=(size, size)), jnp.float32) for _ in range(2))
    matmul = jax.jit(jnp.matmul).lower(a, b).compile()
    seconds = time_per_call(
        lambda: jax.block_until_ready(matmul(a, b)), repeats=repeats, min_time=min_time
    )
    return 2.0 * size**3 / seconds


def bench_jax(npz_path, batches, repeats, min_time, check_path, matmul_size=2048):
    import jax
    import jax.numpy as jnp

    from hand_jax import mano

    model = mano.load_model(npz_path)
    forward = jax.vmap(mano.forward, in_axes=(None, 0, 0))

    def loss(model, pose, betas, cot):
        return jnp.sum(forward(model, pose, betas).verts * cot)

    fwd = jax.jit(lambda m, p, b: forward(m, p, b).verts)
    grad = jax.jit(jax.value_and_grad(loss, argnums=(1, 2)))
    pose, betas, _ = make_inputs(8, seed=123)
    np.save(check_path, np.asarray(fwd(model, pose, betas)))
    rows = []
    for batch in batches:
        args = [jnp.asarray(a) for a in make_inputs(batch)]
        t0 = time.perf_counter()
        fwd_c = fwd.lower(model, *args[:2]).compile()
        t_fwd_compile = time.perf_counter() - t0
        t0 = time.perf_counter()
        grad_c = grad.lower(model, *args).compile()
        t_grad_compile = time.perf_counter() - t0
        mem = grad_c.memory_analysis()
        xla_mb = None
        if mem is not None:
            total = mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes
            xla_mb = total / 2**20
        timed = {}
        for key, fn, fn_args in (("fwd", fwd_c, args[:2]), ("grad", grad_c, args)):
            call = functools.partial(fn, model, *fn_args)
            timed[key] = time_per_call(
                lambda call=call: jax.block_until_ready(call()), repeats=repeats, min_time=min_time
            )
        t_fwd, t_grad = timed["fwd"], timed["grad"]
        rows.append(
            dict(
                batch=batch,
                fwd=batch / t_fwd,
                grad=batch / t_grad,
                compile_fwd=t_fwd_compile,
                compile_grad=t_grad_compile,
                xla_mb=xla_mb,
                rss_mb=peak_rss_mb(),
                flops_fwd=xla_flops(fwd_c) / batch,
                flops_grad=xla_flops(grad_c) / batch,
            )
        )
    matmul = matmul_flops_per_s(matmul_size, repeats, min_time)
    for row in rows:
        row["matmul_flops"] = matmul
    return rows


def bench_torch(pkl_path, batches, repeats, min_time, check_path, threads=0):
    import smplx
    import torch

    if threads:
        torch.set_num_threads(threads)

    def layer(batch):
        return smplx.MANO(
            pkl_path,
            is_rhand=True,
            use_pca=False,
            flat_hand_mean=True,
            batch_size=batch,
            num_betas=NUM_BETAS,
        )

    pose, betas, _ = make_inputs(8, seed=123)
    with torch.no_grad():
        out = layer(8)(
            betas=torch.from_numpy(betas),
            global_orient=torch.from_numpy(pose[:, :3]),
            hand_pose=torch.from_numpy(pose[:, 3:]),
        )
    np.save(check_path, out.vertices.numpy())
    rows = []
    for batch in batches:
        mano_layer = layer(batch)
        pose, betas, cot = (torch.from_numpy(a) for a in make_inputs(batch))

        def fwd(mano_layer=mano_layer, pose=pose, betas=betas):
            with torch.no_grad():
                return mano_layer(betas=betas, global_orient=pose[:, :3], hand_pose=pose[:, 3:])

        def fwd_bwd(mano_layer=mano_layer, pose=pose, betas=betas, cot=cot):
            p, b = pose.clone().requires_grad_(True), betas.clone().requires_grad_(True)
            verts = mano_layer(betas=b, global_orient=p[:, :3], hand_pose=p[:, 3:]).vertices
            (verts * cot).sum().backward()
            return p.grad, b.grad

        t_fwd = time_per_call(fwd, repeats=repeats, min_time=min_time)
        t_grad = time_per_call(fwd_bwd, repeats=repeats, min_time=min_time)
        rows.append(
            dict(
                batch=batch,
                fwd=batch / t_fwd,
                grad=batch / t_grad,
                rss_mb=peak_rss_mb(),
                threads=torch.get_num_threads(),
            )
        )
    return rows


def run_worker(framework, workdir, args):
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        framework,
        "--workdir",
        workdir,
        "--batches",
        args.batches,
        "--repeats",
        str(args.repeats),
        "--min_time",
        str(args.min_time),
        "--threads",
        str(args.threads),
        "--matmul_size",
        str(args.matmul_size),
    ]
    env = dict(os.environ)
    if args.threads:
        eigen = "true" if args.threads > 1 else "false"
        env["XLA_FLAGS"] = (
            f"--xla_cpu_multi_thread_eigen={eigen} intra_op_parallelism_threads={args.threads}"
        )
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        return None, done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
    return json.loads(done.stdout.strip().splitlines()[-1]), None


def merge_best(best_rows, rows):
    """Keep, per batch, the best throughputs and compile times and the largest memory."""
    if best_rows is None:
        return rows
    merged = []
    for best, row in zip(best_rows, rows, strict=True):
        out = dict(best)
        for key in ("fwd", "grad"):
            out[key] = max(best[key], row[key])
        for key in ("compile_fwd", "compile_grad"):
            if key in best:
                out[key] = min(best[key], row[key])
        out["rss_mb"] = max(best["rss_mb"], row["rss_mb"])
        if "matmul_flops" in best:
            out["matmul_flops"] = max(best["matmul_flops"], row["matmul_flops"])
        merged.append(out)
    return merged


def print_table(jax_rows, torch_rows):
    torch_by_batch = {r["batch"]: r for r in torch_rows or []}
    print(
        "| batch | hand_jax fwd (hands/s) | smplx fwd (hands/s) | hand_jax fwd+grad (hands/s) "
        "| smplx fwd+bwd (hands/s) | fwd+grad ratio | jit compile fwd / grad (s) "
        "| XLA grad memory (MB) | peak RSS jax / torch (MB) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in jax_rows:
        t = torch_by_batch.get(r["batch"])
        cell = lambda v: f"{v:,.0f}" if v is not None else "n/a"  # noqa: E731
        ratio = f"{r['grad'] / t['grad']:.2f}x" if t else "n/a"
        xla = f"{r['xla_mb']:.1f}" if r["xla_mb"] is not None else "n/a"
        print(
            f"| {r['batch']} | {cell(r['fwd'])} | {cell(t and t['fwd'])} | {cell(r['grad'])} "
            f"| {cell(t and t['grad'])} | {ratio} | {r['compile_fwd']:.2f} / "
            f"{r['compile_grad']:.2f} | {xla} | {r['rss_mb']:.0f} / "
            f"{cell(t and t['rss_mb'])} |"
        )
    print_roofline(jax_rows)


def print_roofline(jax_rows):
    """FLOPs per hand counted by XLA, and the fraction of the measured matmul FLOP/s reached."""
    matmul = jax_rows[0]["matmul_flops"]
    print(
        f"\nRoofline: plain float32 matmul measured at {matmul / 1e9:.1f} GFLOP/s in the jax "
        "worker; FLOPs per hand counted by XLA (cost_analysis) of the compiled batch.\n"
    )
    print(
        "| batch | MFLOP/hand fwd | MFLOP/hand fwd+grad | GFLOP/s fwd | GFLOP/s fwd+grad "
        "| fraction of matmul fwd / fwd+grad |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for r in jax_rows:
        rate_fwd, rate_grad = r["flops_fwd"] * r["fwd"], r["flops_grad"] * r["grad"]
        print(
            f"| {r['batch']} | {r['flops_fwd'] / 1e6:.3f} | {r['flops_grad'] / 1e6:.3f} "
            f"| {rate_fwd / 1e9:.1f} | {rate_grad / 1e9:.1f} "
            f"| {rate_fwd / matmul:.1%} / {rate_grad / matmul:.1%} |"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,64,1024")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--min_time", type=float, default=0.5, help="seconds per timed loop")
    parser.add_argument("--framework", choices=("both", "jax", "torch"), default="both")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs; best kept")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="intra-op threads for both frameworks (0: each framework's default)",
    )
    parser.add_argument(
        "--matmul_size", type=int, default=2048, help="square matmul timed for the roofline"
    )
    parser.add_argument("--worker", choices=("jax", "torch"), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    if args.worker:
        bench = bench_jax if args.worker == "jax" else bench_torch
        path = os.path.join(args.workdir, "mano.npz" if args.worker == "jax" else "MANO_RIGHT.pkl")
        check = os.path.join(args.workdir, f"check_{args.worker}.npy")
        extra = (
            {"threads": args.threads}
            if args.worker == "torch"
            else {"matmul_size": args.matmul_size}
        )
        print(json.dumps(bench(path, batches, args.repeats, args.min_time, check, **extra)))
        return
    from hand_jax import mano

    with tempfile.TemporaryDirectory() as workdir:
        arrays = make_arrays()
        mano.save_npz(
            mano.make_model(**arrays, tip_ids="manopth"), os.path.join(workdir, "mano.npz")
        )
        write_official_pkl(arrays, os.path.join(workdir, "MANO_RIGHT.pkl"))
        results = {}
        for round_index in range(args.rounds):
            # Alternate which framework goes first: the machine's load drifts over time.
            order = ("jax", "torch") if round_index % 2 == 0 else ("torch", "jax")
            for framework in order:
                if args.framework not in (framework, "both"):
                    continue
                rows, error = run_worker(framework, workdir, args)
                if error:
                    print(f"{framework}: not measured ({error})")
                    continue
                results[framework] = merge_best(results.get(framework), rows)
        if results.get("jax") and results.get("torch"):
            a, b = (np.load(os.path.join(workdir, f"check_{f}.npy")) for f in ("jax", "torch"))
            print(
                f"max |verts_hand_jax - verts_smplx| on 8 random hands: {np.abs(a - b).max():.2e} m"
            )
        torch_threads = (results.get("torch") or [{}])[0].get("threads", "n/a")
        threads = f"{args.threads} (XLA_FLAGS set to match)" if args.threads else "default"
        print(
            f"CPU: {os.cpu_count()} cores; --threads={threads}; torch threads: {torch_threads}; "
            f"float32; best of {args.rounds} rounds; load average {os.getloadavg()[0]:.1f}"
        )
        if results.get("jax"):
            print_table(results["jax"], results.get("torch"))


if __name__ == "__main__":
    main()
