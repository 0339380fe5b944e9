"""Estimate hand meshes in photographs: overlays, OBJ meshes, parameters, GIFs, a contact sheet.

    python -m launch.estimate --images='photos/*.jpg' --out_dir=out/estimate
    python -m launch.estimate --images=hand.png --box=120,80,200,220 --side=left \
        --out_dir=out/left --refine_steps=50

Without ``--images`` the sample photographs that ship with the package are used (rendered
from the embedded hand). Without ``--checkpoint`` the shipped model is used. Outputs:
``hand_jax/estimate/job.py``.
"""

import glob
import os

from absl import app, flags

from hand_jax.estimate import core, inputs, job, photos

SAMPLES = os.path.join(os.path.dirname(__file__), "..", "hand_jax", "assets", "samples", "*.png")

_IMAGES = flags.DEFINE_string("images", None, "Image path or glob (default: the shipped samples).")
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Output directory.", required=True)
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Run or model dir (default: shipped model).")
_BOX = flags.DEFINE_string("box", None, "x,y,w,h: the hand's box in pixels (default: centred).")
_SIDE = flags.DEFINE_enum("side", "right", ["right", "left"], "Which hand the images show.")
_STEPS = flags.DEFINE_integer("refine_steps", core.DEFAULT_STEPS, "Refinement steps (0: none).")
_MANO_PATH = flags.DEFINE_string("mano_path", None, "Hand model the network was trained with.")
_BATCH = flags.DEFINE_integer("batch_size", 8, "Images per compiled call.")
_ANIMATIONS = flags.DEFINE_integer("num_animations", 2, "GIFs of refinement for the first images.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace a non-empty out_dir.")
_PROGRESS = flags.DEFINE_bool("progress", True, "Show a progress bar.")
_FOV = flags.DEFINE_float(
    "fov", inputs.DEFAULT_FOV_DEG, "The photos' field of view across the longer side, degrees."
)
_INTRINSICS = flags.DEFINE_string(
    "intrinsics", None, "fx,fy,cx,cy: the photos' intrinsics in pixels (overrides --fov)."
)


def _intrinsics(text: str | None):
    if text is None:
        return None
    try:
        values = tuple(float(x) for x in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise app.UsageError(f"--intrinsics={text!r}: expected four numbers fx,fy,cx,cy")
    return values


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    pattern = _IMAGES.value or os.path.normpath(SAMPLES)
    paths = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
    if not paths:
        raise app.UsageError(f"--images={pattern}: no files match")
    try:
        box = photos.parse_box(_BOX.value)
    except ValueError as err:
        raise app.UsageError(str(err)) from err
    summary = job.run(
        paths=paths, out_dir=_OUT_DIR.value, checkpoint=_CHECKPOINT.value, box=box,
        side=_SIDE.value, refine_steps=_STEPS.value, mano_path=_MANO_PATH.value,
        batch_size=_BATCH.value, num_animations=_ANIMATIONS.value, overwrite=_OVERWRITE.value,
        progress=_PROGRESS.value, fov_deg=_FOV.value, intrinsics=_intrinsics(_INTRINSICS.value),
    )  # fmt: skip
    print(
        f"{summary['num_images']} images -> {_OUT_DIR.value} ({summary['crop']}; "
        f"{len(summary['skipped'])} skipped; {summary['wall_s']:.1f} s)"
    )


if __name__ == "__main__":
    app.run(main)
