"""Estimate hand meshes in photographs: overlays, OBJ meshes, parameters, GIFs, a contact sheet.

    python -m launch.estimate --images='photos/*.jpg' --out_dir=out/estimate
    python -m launch.estimate --images=photos,more/hand.png --out_dir=out/mine
    python -m launch.estimate --images=hand.png --box=120,80,200,220 --side=left \
        --out_dir=out/left --refine_steps=50
    python -m launch.estimate --images=hand.png --evidence=network --out_dir=out/paper

By default the ported MediaPipe Hands detector finds up to ``--max_hands`` hands anywhere in each
photograph, tells left from right, and gives the refinement its 2D and 3D landmarks
(``hand_jax.estimate.detected``); ``--evidence=network`` is the paper's test time instead (the
network's own evidence on the box or the centred square).

``--images`` takes comma-separated files, folders (the image files directly inside, by their
extension) and globs; without it the sample photographs that ship with the package are used
(rendered from the embedded hand). Without ``--checkpoint`` the shipped model is used. Outputs:
``hand_jax/estimate/job.py``. Compiled programs are kept on disk between runs, so a second run
loads them instead of compiling (``hand_jax/compile_cache.py``; ``--compile_cache=`` turns that
off). A refusal (a non-empty ``--out_dir`` without ``--overwrite``, ``--images`` that name no
file, a run in which every image was skipped) is one line on stderr and a non-zero exit.
"""

import logging as std_logging
import os
from typing import NoReturn

import jax
from absl import app, flags, logging

from hand_jax import compile_cache
from hand_jax.estimate import box_file, core, inputs, job, photos

SAMPLES = os.path.join(os.path.dirname(__file__), "..", "hand_jax", "assets", "samples")

_IMAGES = flags.DEFINE_string(
    "images", None, "Comma-separated image files, folders (the image files in them) and globs "
    "(default: the shipped samples)."
)  # fmt: skip
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Output directory.", required=True)
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Run or model dir (default: shipped model).")
_BOX = flags.DEFINE_string(
    "box", None, "x,y,w,h: the hand's box in pixels (default: found by the detector; with "
    "--evidence=network, the centred square)."
)  # fmt: skip
_SIDE = flags.DEFINE_enum(
    "side", None, ["right", "left"], "Which hand the images show (default: the detector's "
    "handedness per hand; with --evidence=network, right)."
)  # fmt: skip
_EVIDENCE = flags.DEFINE_enum(
    "evidence", "detector", list(job.EVIDENCE), "Refinement evidence: the detector's landmarks "
    "or the network's own fE2D (the paper's test time)."
)  # fmt: skip
_MAX_HANDS = flags.DEFINE_integer("max_hands", 2, "Most hands per photograph (detector).")
_BOXES = flags.DEFINE_string(
    "boxes", None, "A JSON or CSV file of hand boxes per image (image,x,y,w,h[,side]; "
    "hand_jax/estimate/box_file.py); images without a box are searched."
)  # fmt: skip
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
_CACHE = flags.DEFINE_string(
    "compile_cache", None, "Folder of compiled programs kept between runs ('': none; default: "
    f"${compile_cache.ENV_VAR}, else $XDG_CACHE_HOME/hand_jax/jax or ~/.cache/hand_jax/jax)."
)  # fmt: skip


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


def _fail(message) -> NoReturn:
    raise SystemExit(f"launch.estimate: error: {message}")  # one line, exit status 1


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not flags.FLAGS["verbosity"].present:  # jax logs every backend it cannot start at INFO
        std_logging.getLogger("jax._src.xla_bridge").setLevel(std_logging.WARNING)
    try:
        box = photos.parse_box(_BOX.value)
    except ValueError as err:
        raise app.UsageError(str(err)) from err
    try:
        paths = inputs.image_files(
            os.path.normpath(SAMPLES) if _IMAGES.value is None else _IMAGES.value
        )
    except ValueError as err:
        _fail(f"--images: {err}")
    kw = dict(
        paths=paths, out_dir=_OUT_DIR.value, checkpoint=_CHECKPOINT.value, side=_SIDE.value,
        refine_steps=_STEPS.value, mano_path=_MANO_PATH.value, batch_size=_BATCH.value,
        num_animations=_ANIMATIONS.value, overwrite=_OVERWRITE.value, fov_deg=_FOV.value,
        intrinsics=_intrinsics(_INTRINSICS.value), evidence=_EVIDENCE.value,
        max_hands=_MAX_HANDS.value,
    )  # fmt: skip
    try:
        job.check_run(**kw)
        boxes = box_file.read_boxes(_BOXES.value) if _BOXES.value else None
    except (ValueError, OSError) as err:
        _fail(err)
    cache = compile_cache.enable(
        compile_cache.default_dir() if _CACHE.value is None else _CACHE.value
    )
    logging.info("devices: %s; compilation cache: %s", jax.devices(), cache or "off")
    try:
        summary = job.run(**kw, box=box, boxes=boxes, progress=_PROGRESS.value)
    except job.NothingEstimatedError as err:
        _fail(err)
    print(
        f"{summary['num_images']} hands -> {_OUT_DIR.value} ({summary['crop']}; "
        f"{len(summary['skipped'])} skipped; {summary['wall_s']:.1f} s)"
    )


if __name__ == "__main__":
    app.run(main)
