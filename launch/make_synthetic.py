"""Render the synthetic hand dataset (the project's embedded default data).

    python -m launch.make_synthetic --out_dir=out/synthetic --num_train=2048 --num_test=256 \
        --image_size=128 --seed=0

Writes npz shards, ``manifest.json`` (counts, generator version, parameters, timing) and
``contact_sheet.png`` (the first samples with keypoints and mask outlines). Sample i of a split
depends only on (seed, split, i). Format: ``hand_jax/data/synthetic.py``; distribution:
``hand_jax/data/synthetic_gen.py``. Read it back with
``hand_jax.data.load_split("synthetic", out_dir, "train")``.
"""

import dataclasses

import jax
from absl import app, flags, logging

from hand_jax import mano
from hand_jax.data import generator_config, synthetic_gen

_OUT_DIR = flags.DEFINE_string("out_dir", None, "Output directory.", required=True)
_NUM_TRAIN = flags.DEFINE_integer("num_train", 2048, "Training samples.")
_NUM_TEST = flags.DEFINE_integer("num_test", 256, "Test samples.")
_NUM_VAL = flags.DEFINE_integer("num_val", 0, "Validation samples (split 'val').")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 128, "Image side, pixels.")
_SEED = flags.DEFINE_integer("seed", 0, "Dataset seed.")
_MANO_PATH = flags.DEFINE_string("mano_path", None, "MANO .pkl/.npz; default: embedded hand.")
_SHARD_SIZE = flags.DEFINE_integer("shard_size", 1000, "Samples per shard file.")
_VIEWS = flags.DEFINE_enum(
    "views", "natural", list(synthetic_gen.VIEWS),
    "Global rotations: photograph-like canonical views, uniform over SO(3), or a narrow cone "
    "of frontal views (the self-data augmentation study's training set).",
)  # fmt: skip
_OCCLUDER_PROB = flags.DEFINE_float("occluder_prob", 0.5, "Probability of occluders.")
_APPEARANCE = flags.DEFINE_enum(
    "appearance", "default", list(generator_config.APPEARANCES),
    "Appearance preset: 'default' (generator 2.0, byte for byte) or 'photo' (photographic "
    "backgrounds, skin shading beyond Lambertian, cast shadows, camera effects).",
)  # fmt: skip
_SHEET = flags.DEFINE_integer("contact_sheet", 32, "Samples on contact_sheet.png (0: none).")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace a dataset in a non-empty out_dir.")
_PROGRESS = flags.DEFINE_bool("progress", True, "Show a progress bar.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.info("devices: %s", jax.devices())
    splits = {"train": _NUM_TRAIN.value, "test": _NUM_TEST.value}
    if _NUM_VAL.value > 0:
        splits["val"] = _NUM_VAL.value
    try:  # every input is checked before anything is written; a failed run keeps the old data
        config = dataclasses.replace(
            generator_config.appearance_config(_APPEARANCE.value),
            image_size=_IMAGE_SIZE.value,
            occluder_prob=_OCCLUDER_PROB.value,
            views=_VIEWS.value,
        )
        synthetic_gen.check_arguments(
            splits=splits, seed=_SEED.value, config=config, shard_size=_SHARD_SIZE.value,
            sheet_count=_SHEET.value,
        )  # fmt: skip
    except ValueError as e:
        raise app.UsageError(str(e)) from e
    try:
        manifest = synthetic_gen.generate_dataset(
            _OUT_DIR.value, splits=splits, seed=_SEED.value, config=config,
            model_path=_MANO_PATH.value, shard_size=_SHARD_SIZE.value,
            overwrite=_OVERWRITE.value, sheet_count=_SHEET.value, progress=_PROGRESS.value,
        )  # fmt: skip
    except (FileExistsError, FileNotFoundError, NotADirectoryError, mano.HandModelError) as e:
        raise app.UsageError(str(e)) from e
    t = manifest["timing"]
    print(
        f"wrote {sum(splits.values())} samples {splits} to {_OUT_DIR.value} in "
        f"{t['seconds']:.1f} s ({t['samples_per_second']:.1f} samples/s)"
    )


if __name__ == "__main__":
    app.run(main)
