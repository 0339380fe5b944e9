"""Speed of the ported MediaPipe Hands networks against Google's LiteRT runtime, one machine.

For each network (palm detector 192 px, landmark network 224 px): images per second of the
jit-compiled JAX port (``hand_jax.detector.graph.run_graph_chunked`` with the backend's default
micro-batch, as ``hand_jax.detector.hands`` runs it) at batch 1 and 16, and of the LiteRT
interpreter (XNNPACK, ``--threads`` threads, one image per call as it takes them) on the same
inputs. Quote the load average beside the numbers (``uptime``).

    python -m benchmarks.detector_speed --rounds=5
"""

import functools
import os
import time

import jax
import numpy as np
from absl import app, flags

from hand_jax.detector import graph, shipped

_ROUNDS = flags.DEFINE_integer("rounds", 5, "Timed calls per measurement (best is kept).")
_THREADS = flags.DEFINE_integer("threads", os.cpu_count() or 1, "LiteRT threads.")
_BATCHES = flags.DEFINE_list("batches", ["1", "16"], "Batch sizes of the JAX port.")


def _best(fn, rounds: int) -> float:
    fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _jax_rate(name: str, batch: int, rounds: int) -> float:
    g, weights = shipped.load_network(name)
    x = np.random.default_rng(0).uniform(0, 1, (batch, *g.input_shape)).astype(np.float32)
    micro = graph.default_micro_batch()
    run = jax.jit(functools.partial(graph.run_graph_chunked, g, micro_batch=micro))
    return batch / _best(lambda: jax.block_until_ready(run(weights, x)), rounds)


def _litert_rate(name: str, rounds: int, threads: int) -> float:
    from ai_edge_litert.interpreter import Interpreter

    path = os.path.join(shipped.MODEL_DIR, f"{name}_full.tflite")
    interpreter = Interpreter(model_path=path, num_threads=threads)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    x = np.random.default_rng(0).uniform(0, 1, detail["shape"]).astype(np.float32)

    def call():
        for _ in range(16):
            interpreter.set_tensor(detail["index"], x)
            interpreter.invoke()

    return 16 / _best(call, rounds)


def main(argv):
    del argv
    print(f"load average {os.getloadavg()}; devices {jax.devices()}")
    print("| network | JAX port batch | JAX images/s | LiteRT images/s | LiteRT / JAX |")
    print("|---|---:|---:|---:|---:|")
    for name in shipped.NETWORKS:
        reference = _litert_rate(name, _ROUNDS.value, _THREADS.value)
        for batch in (int(b) for b in _BATCHES.value):
            rate = _jax_rate(name, batch, _ROUNDS.value)
            print(f"| {name} | {batch} | {rate:.1f} | {reference:.1f} | {reference / rate:.2f}x |")
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    app.run(main)
