"""Rebuild the shipped MediaPipe Hands models (``hand_jax/assets/models/mediapipe_hands``).

    pip download --no-deps mediapipe==0.10.14 -d /tmp/wheels
    python -m launch.convert_mediapipe --wheel=/tmp/wheels/mediapipe-0.10.14-*.whl

With ``--wheel`` the ``.tflite`` files are first copied out of the wheel into ``--out_dir``;
without it the ``.tflite`` files already there are converted. Either way the converted ``.npz``
files are byte for byte the committed ones (``tests/detector/test_port.py`` checks it).
"""

import glob

from absl import app, flags

from hand_jax.detector import shipped

_WHEEL = flags.DEFINE_string("wheel", None, "A mediapipe 0.10.x wheel (path or glob).")
_OUT_DIR = flags.DEFINE_string("out_dir", shipped.MODEL_DIR, "Folder of the .tflite and .npz.")
_VARIANT = flags.DEFINE_enum("variant", "full", list(shipped.VARIANTS), "Model variant.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if _WHEEL.value:
        wheels = sorted(glob.glob(_WHEEL.value))
        if len(wheels) != 1:
            raise app.UsageError(f"--wheel={_WHEEL.value!r}: matches {len(wheels)} files, not 1")
        shipped.extract_from_wheel(wheels[0], _OUT_DIR.value, variant=_VARIANT.value)
    for path in shipped.convert_tflite_dir(_OUT_DIR.value, _OUT_DIR.value, variant=_VARIANT.value):
        print(f"{shipped.sha256(path)}  {path}")


if __name__ == "__main__":
    app.run(main)
