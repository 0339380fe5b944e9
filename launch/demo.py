"""Pose the hand model in a few poses and shapes; write a PNG contact sheet and OBJ meshes.

python -m launch.demo --out_dir=out/demo [--mano_path=MANO_RIGHT.pkl]
"""

import jax
from absl import app, flags, logging

from hand_jax import demo, mano

_OUT_DIR = flags.DEFINE_string("out_dir", "out/demo", "Output directory.")
_MANO_PATH = flags.DEFINE_string("mano_path", None, "MANO pkl/npz; default: embedded hand.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 192, "Rendered view size, pixels.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Write into a non-empty out_dir.")


def main(argv):
    del argv
    logging.info("devices: %s", jax.devices())
    model = mano.load_model(_MANO_PATH.value)
    summary = demo.run(
        out_dir=_OUT_DIR.value, model=model, image_size=_IMAGE_SIZE.value,
        overwrite=_OVERWRITE.value,
    )  # fmt: skip
    print(f"wrote {summary['num_poses']} poses: {summary['contact_sheet']} and OBJ meshes")


if __name__ == "__main__":
    app.run(main)
