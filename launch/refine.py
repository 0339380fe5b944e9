"""Refine hand parameters against 2D evidence.

    python -m launch.refine --input=evidence.npz --out_dir=out/refine
    python -m launch.refine --input=synthetic --out_dir=out/refine   # self-check problems

The evidence npz format is documented in ``hand_jax/refine/io.py``.
"""

import os
import tempfile

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from hand_jax import mano
from hand_jax.refine import io as refine_io
from hand_jax.refine import job as refine_job

_CONFIG = config_flags.DEFINE_config_file(  # resolved against this package, not the cwd
    "config", os.path.join(os.path.dirname(__file__), "configs", "refine.py"), "Refine config."
)
_INPUT = flags.DEFINE_string("input", None, "Evidence npz, or 'synthetic'.", required=True)
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Output directory.", required=True)
_MANO_PATH = flags.DEFINE_string("mano_path", None, "MANO pkl/npz; default: embedded hand.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Write into a non-empty out_dir.")


def main(argv):
    del argv
    config = _CONFIG.value
    logging.info("devices: %s", jax.devices())
    model = mano.load_model(_MANO_PATH.value)
    input_path = _INPUT.value
    out_dir, overwrite = _OUT_DIR.value, _OVERWRITE.value
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not overwrite:
        raise app.UsageError(f"--out_dir={out_dir} is not empty; pass --overwrite")
    with tempfile.TemporaryDirectory() as scratch:
        copy_input = input_path == "synthetic"
        if copy_input:  # written beside the results as evidence.npz
            input_path = os.path.join(scratch, "evidence.npz")
            s = config.synthetic
            _, init, evidence = refine_io.synthetic_problems(
                jax.random.key(config.seed), model, num=s.num, image_size=s.image_size,
                pose_std=s.pose_std, betas_std=s.betas_std, cam_rel=s.cam_rel,
            )  # fmt: skip
            refine_io.save_evidence(input_path, evidence, init_params=init)
        summary = refine_job.run(
            input_path=input_path, out_dir=out_dir, model=model,
            num_steps=config.num_steps, learning_rate=config.learning_rate,
            weights=config.weights.to_dict(), sigma=config.sigma, batch_size=config.batch_size,
            num_animations=config.num_animations, precondition=config.precondition,
            overwrite=overwrite, copy_input=copy_input,
        )  # fmt: skip
    logging.info("refinement summary: %s", summary)
    print(summary)


if __name__ == "__main__":
    app.run(main)
