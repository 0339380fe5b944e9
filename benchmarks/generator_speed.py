"""Samples per second of the synthetic generator, default appearance against the photo-like one.

For each appearance it builds a ``synthetic_gen.Generator`` on the embedded default hand, renders
one chunk to compile and warm up, then times ``--samples`` train samples (indices after the
warm-up's) in ``--rounds`` alternating rounds and prints the best and median samples/s of each,
with the 1-minute load average (``os.getloadavg``) read before and after every round: the
generator runs on the host CPU (numpy appearance) and XLA (MANO and the renderer), so other work on
the machine shows directly in the numbers.

Run from the repository root:

    python benchmarks/generator_speed.py                      # default and photo, 128 px
    python benchmarks/generator_speed.py --appearances default --samples 32 --rounds 1
"""

import argparse
import os
import pathlib
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from hand_jax import mano  # noqa: E402
from hand_jax.data import generator_config, synthetic_gen  # noqa: E402


def make_config(appearance: str, *, image_size: int) -> synthetic_gen.GeneratorConfig:
    """The generator config of an appearance name (``default`` or ``photo``)."""
    if appearance == "default":
        return synthetic_gen.GeneratorConfig(image_size=image_size)
    return generator_config.appearance_config(appearance, image_size=image_size)


def _round(generator, first: int, count: int) -> tuple[float, float, float]:
    """Render ``count`` samples from index ``first``: (samples/s, load before, load after)."""
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    generator.samples("train", range(first, first + count))
    seconds = time.perf_counter() - start
    return count / seconds, load_before, os.getloadavg()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--appearances", nargs="+", default=["default", "photo"])
    parser.add_argument("--image_size", type=int, default=128)
    parser.add_argument("--samples", type=int, default=64, help="samples per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    model = mano.load_model()
    generators = {}
    for name in args.appearances:
        config = make_config(name, image_size=args.image_size)
        generators[name] = synthetic_gen.Generator(model, config, seed=0)
        generators[name].samples("train", range(config.chunk))  # compile, load the photos
    results = {name: [] for name in args.appearances}
    for r in range(args.rounds):
        for name, generator in generators.items():
            first = generator.config.chunk + r * args.samples
            results[name].append(_round(generator, first, args.samples))
    print(f"\n{args.samples} samples of {args.image_size} px per round, {args.rounds} rounds\n")
    print("| appearance | best samples/s | median samples/s | 1-min load before -> after |")
    print("|---|---:|---:|---|")
    for name, rows in results.items():
        rates = [rate for rate, _, _ in rows]
        loads = ", ".join(f"{a:.2f} -> {b:.2f}" for _, a, b in rows)
        print(f"| {name} | {max(rates):.1f} | {statistics.median(rates):.1f} | {loads} |")


if __name__ == "__main__":
    main()
