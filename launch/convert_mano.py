r"""Convert an official MANO pickle to the project's npz layout (BUILD.md), once.

  python -m launch.convert_mano --mano_path=/path/to/MANO_RIGHT.pkl --out=mano_right.npz

The pickle is read without chumpy and without executing anything it asks for; a left model's
known ``shapedirs`` defect is fixed on the way (see ``hand_jax.mano``). The npz holds licensed
MANO data: keep it private like the pickle.
"""

import os

from absl import app, flags, logging

from hand_jax import mano, mano_pkl

_MANO_PATH = flags.DEFINE_string("mano_path", None, "Official MANO_RIGHT.pkl or MANO_LEFT.pkl.")
_OUT = flags.DEFINE_string("out", None, "Output .npz path.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace --out if it exists.")
_SIDE = flags.DEFINE_enum(
    "side", None, list(mano.SIDES), "Side of the file; default: from its name, else right."
)
_TIPS = flags.DEFINE_string(
    "tips",
    mano.DEFAULT_TIPS,
    f"Fingertip vertices: a preset {tuple(mano.TIP_PRESETS)} or 5 comma-separated vertex ids.",
)
flags.mark_flags_as_required(["mano_path", "out"])


def _parse_tips(text: str):
    if text in mano.TIP_PRESETS:
        return text
    try:
        return tuple(int(t) for t in text.split(","))
    except ValueError as e:
        raise app.UsageError(f"--tips={text!r}: expected a preset name or 5 integers") from e


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    out = _OUT.value
    if not os.path.isfile(_MANO_PATH.value):
        raise app.UsageError(f"--mano_path={_MANO_PATH.value}: no such file")
    if not out.endswith(".npz"):
        raise app.UsageError(f"--out={out}: expected a .npz path")
    if os.path.exists(out) and not _OVERWRITE.value:
        raise app.UsageError(f"--out={out} exists; pass --overwrite to replace it")
    side = _SIDE.value or mano_pkl.side_from_filename(_MANO_PATH.value) or "right"
    model = mano.load_model(_MANO_PATH.value, side=side, tips=_parse_tips(_TIPS.value))
    source = (
        f"converted from {os.path.basename(_MANO_PATH.value)} by launch/convert_mano.py; MANO "
        "(https://mano.is.tue.mpg.de), licensed: do not redistribute"
    )
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    mano.save_npz(model, out, source=source)
    logging.info(
        "wrote %s: side=%s V=%d F=%d S=%d tips=%s",
        out,
        model.side,
        model.num_verts,
        model.faces.shape[0],
        model.num_betas,
        model.tip_ids,
    )


if __name__ == "__main__":
    app.run(main)
