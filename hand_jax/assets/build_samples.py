"""Build the sample photographs that ship with the package (``hand_jax/assets/samples``).

    python -m hand_jax.assets.build_samples

They are rendered from the embedded CC0 hand by the synthetic generator with seed ``SEED``
(no training or evaluation set uses it), each cut to a ``SIZE`` square around the hand with
the evaluation crop's margin plus a random shift and zoom, so the hand is roughly but not
exactly where the network expects it: the README's main command runs on them. CC0 like the
hand they show (``LICENSE-MakeHuman-CC0.txt``).
"""

import os

import imageio.v3 as iio
import numpy as np

from hand_jax import mano
from hand_jax.data import crop, synthetic_gen

SEED = 31415  # distinct from every dataset seed the project trains, validates or tests on
COUNT = 6
SIZE = 192
OUT = os.path.join(os.path.dirname(__file__), "samples")


def build(out_dir: str = OUT) -> list[str]:
    """Render the samples and write ``sample_<i>.png``; return the paths."""
    model = mano.load_model()
    config = synthetic_gen.GeneratorConfig(image_size=2 * SIZE)
    generator = synthetic_gen.Generator(model, config, seed=SEED)
    samples = generator.samples("test", list(range(COUNT)))
    rng = np.random.default_rng(SEED)
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for i, sample in enumerate(samples):
        shift = rng.uniform(-0.06, 0.06, size=2)
        cropped = crop.crop_sample(sample, out_size=SIZE, scale=rng.uniform(0.9, 1.1), shift=shift)
        path = os.path.join(out_dir, f"sample_{i}.png")
        iio.imwrite(path, cropped["image"])
        paths.append(path)
    return paths


if __name__ == "__main__":
    for p in build():
        print(p)
