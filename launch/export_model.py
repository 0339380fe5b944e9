"""Export a training run as a model directory and score it (and the run) on a split.

    python -m launch.export_model --run=out/cpu --out_dir=hand_jax/assets/models/synthetic_cpu \
        --data_dir=out/synthetic --split=test

Writes ``config.json`` and ``params.npz`` (float16 by default) into ``--out_dir`` and
``metrics_<split>.json`` with the validation metrics of the run's float32 parameters and of the
exported ones, so that the storage precision is shown not to move the numbers.
"""

import json
import os

import numpy as np
from absl import app, flags, logging

from hand_jax import data, network

_RUN = flags.DEFINE_string("run", None, "Training run (--workdir) or checkpoint.", required=True)
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Model directory to write.", required=True)
_DTYPE = flags.DEFINE_enum("dtype", "float16", ["float16", "float32"], "Storage dtype.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Synthetic dataset to score on (optional).")
_SPLIT = flags.DEFINE_string("split", "test", "Split to score.")
_MANO_PATH = flags.DEFINE_string("mano_path", None, "MANO .pkl/.npz the run used.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    network.export(_RUN.value, _OUT_DIR.value, dtype=np.dtype(_DTYPE.value),
                   mano_path=_MANO_PATH.value)  # fmt: skip
    logging.info("exported %s to %s", _RUN.value, _OUT_DIR.value)
    if not _DATA_DIR.value:
        return
    config = network.load_run_config(network.find_run_dir(_RUN.value))
    samples = data.load_split(
        config.data.name, _DATA_DIR.value, _SPLIT.value, crop_size=config.data.image_size,
        crop_margin=config.data.crop_margin,
    )  # fmt: skip
    result = {"split": _SPLIT.value, "num_samples": len(samples), "data_dir": _DATA_DIR.value}
    for name, path in (("run_float32", _RUN.value), ("exported", _OUT_DIR.value)):
        result[name] = network.validation_metrics(path, samples, mano_path=_MANO_PATH.value)
        print(name, json.dumps(result[name]))
    with open(os.path.join(_OUT_DIR.value, f"metrics_{_SPLIT.value}.json"), "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    app.run(main)
