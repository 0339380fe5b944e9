"""Benchmark the joint-stage train step: images/s, step time, compile time, peak memory.

  python -m benchmarks.train_bench                # every case, one subprocess each
  python -m benchmarks.train_bench --case=cpu_small_sil

Cases: ``cpu_small`` (the preset: ResNet-18 width 16, 64 px, batch 16, silhouette rendered at
32 px for the last fE3D iteration only) and ``r18_128`` (the default config: ResNet-18 width 64,
at 128 px, batch 16, silhouette rendered at 64 px for each of the T = 3 iterations), each with
the silhouette loss on (``_sil``) and off (``_nosil``); joint stage. Each case runs in its own
process so that its peak resident memory (``ru_maxrss``) is its own. Inputs are random crops
with random labels: the cost of a step does not depend on the values (the soft rasterizer's cost
depends on the mesh's screen area, and the network starts at the mean hand framed in the crop).
"""

import json
import resource
import subprocess
import sys
import time

import jax
import numpy as np
from absl import app, flags

from hand_jax import sharding
from hand_jax.network import batches
from hand_jax.train import loop as train_loop
from launch.configs import synthetic

CASES = ("cpu_small_sil", "cpu_small_nosil", "r18_128_sil", "r18_128_nosil")
_CASE = flags.DEFINE_enum("case", None, CASES, "Run one case in this process.")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed steps per case (after one warm-up step).")


def _config(case: str):
    if case.startswith("r18_128"):  # the default model and losses, at 128 px
        config = synthetic.get_config()
        config.data.image_size = 128
    else:
        config = synthetic.get_config("cpu_small")
    config.train.global_batch_size = 16
    config.train.e2d_steps = config.train.e3d_steps = 0
    config.loss.silhouette_gate = "always" if case.endswith("_sil") else "never"
    return config


def _batch(config, seed=0):
    rng = np.random.default_rng(seed)
    b, s = config.train.global_batch_size, config.data.image_size
    mask = (rng.random((b, s, s)) < 0.3).astype(np.uint8)
    return {
        "image": rng.integers(0, 256, (b, s, s, 3), dtype=np.uint8),
        "mask": mask,
        "mask_full": mask,
        "mask_amodal": np.ones(b, bool),
        "mask_valid": np.ones(b, bool),
        "keypoints_2d": rng.uniform(0.2 * s, 0.8 * s, (b, 21, 2)).astype(np.float32),
        "keypoints_3d": rng.normal(0, 0.05, (b, 21, 3)).astype(np.float32),
        "keypoint_valid": np.ones((b, 21), bool),
        "keypoint_visible": np.ones((b, 21), bool),
        "view_rotation": np.broadcast_to(np.eye(3, dtype=np.float32), (b, 3, 3)).copy(),
    }


def run_case(case: str, steps: int) -> dict:
    """Time one case in this process."""
    config = _config(case)
    mesh, consts, programs = train_loop.build(config)
    state = programs.init(train_loop.init_key(0), h_init=consts.h_init)
    batch = batches.to_global(_batch(config), sharding.batch_sharding(mesh))
    key = jax.random.key(1)
    step = programs.steps["joint"]
    t = time.perf_counter()
    compiled = step.lower(state, batch, key, consts).compile()
    compile_s = time.perf_counter() - t
    state, metrics = compiled(state, batch, key, consts)
    jax.block_until_ready(metrics)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        state, metrics = compiled(state, batch, key, consts)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - t)
    step_s = float(np.median(times))
    return {
        "case": case,
        "image_size": config.data.image_size,
        "batch": config.train.global_batch_size,
        "compile_s": compile_s,
        "step_ms": 1000 * step_s,
        "images_per_s": config.train.global_batch_size / step_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "silhouette_on": bool(metrics["silhouette_on"]),
    }


def _table(rows) -> str:
    lines = [
        "| case | input | batch | step (ms) | images/s | compile (s) | peak RSS (MB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['image_size']} px | {r['batch']} | {r['step_ms']:.0f} | "
            f"{r['images_per_s']:.1f} | {r['compile_s']:.1f} | {r['peak_rss_mb']:.0f} |"
        )
    by = {r["case"]: r for r in rows}
    for name in ("cpu_small", "r18_128"):
        if f"{name}_sil" in by and f"{name}_nosil" in by:
            on, off = by[f"{name}_sil"]["step_ms"], by[f"{name}_nosil"]["step_ms"]
            lines.append(f"\n{name}: silhouette loss share of the step time {(on - off) / on:.0%}")
    return "\n".join(lines)


def main(argv):
    del argv
    if _CASE.value:
        print("RESULT " + json.dumps(run_case(_CASE.value, _STEPS.value)))
        return
    rows = []
    for case in CASES:
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.train_bench", f"--case={case}",
             f"--steps={_STEPS.value}"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
        rows.append(json.loads(line[len("RESULT ") :]))
        print(json.dumps(rows[-1]), flush=True)
    print(f"jax {jax.__version__}, {jax.devices()[0].device_kind}, {jax.device_count()} device(s)")
    print(_table(rows))


if __name__ == "__main__":
    app.run(main)
