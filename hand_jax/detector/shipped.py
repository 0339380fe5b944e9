"""The shipped MediaPipe Hands models: where they live, how they are rebuilt, how they load.

The folder ``hand_jax/assets/models/mediapipe_hands`` holds, for each network, the ``.tflite``
file taken from the ``mediapipe`` wheel (Apache-2.0; NOTICE and MODEL_CARD.md beside it) and the
converted ``.npz`` that the project runs. ``convert_tflite_dir`` rebuilds the npz files from the
``.tflite`` files byte for byte; ``extract_from_wheel`` takes the ``.tflite`` files out of a
downloaded wheel (``pip download --no-deps mediapipe==0.10.14``) first.
"""

import hashlib
import os
import tempfile
import zipfile

from hand_jax.detector.convert import from_tflite, read_model, write_model
from hand_jax.detector.graph import GraphError

__all__ = [
    "MODEL_DIR",
    "NETWORKS",
    "convert_tflite_dir",
    "extract_from_wheel",
    "load_network",
    "sha256",
]

MODEL_DIR = os.path.normpath(
    os.path.join(os.path.dirname(__file__), "..", "assets", "models", "mediapipe_hands")
)
NETWORKS = {  # name -> its path inside the mediapipe wheel (variant filled in)
    "palm_detection": "mediapipe/modules/palm_detection/palm_detection_{}.tflite",
    "hand_landmark": "mediapipe/modules/hand_landmark/hand_landmark_{}.tflite",
}
VARIANTS = ("full", "lite")
MAX_TFLITE_BYTES = 32 << 20


def sha256(path: str) -> str:
    """The file's SHA-256, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {VARIANTS}, got {variant!r}")


def extract_from_wheel(wheel: str, out_dir: str, *, variant: str = "full") -> list[str]:
    """Copy the two ``.tflite`` files of ``variant`` out of a mediapipe wheel into ``out_dir``.

    Returns:
      The written paths.

    Raises:
      GraphError: naming the wheel, if it is not a zip or lacks a file, or a file is too large.
    """
    _check_variant(variant)
    os.makedirs(out_dir, exist_ok=True)
    written = []
    try:
        archive = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as err:
        raise GraphError(f"{wheel}: not a readable wheel ({err})") from err
    with archive:
        for member in (p.format(variant) for p in NETWORKS.values()):
            try:
                info = archive.getinfo(member)
            except KeyError:
                raise GraphError(
                    f"{wheel}: has no {member} (mediapipe 0.10.x wheels ship it; 1.x do not)"
                ) from None
            if info.file_size > MAX_TFLITE_BYTES:
                raise GraphError(f"{wheel}: {member} declares {info.file_size:,} bytes")
            path = os.path.join(out_dir, os.path.basename(member))
            _write_bytes(path, archive.read(info))
            written.append(path)
    return written


def _write_bytes(path: str, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def convert_tflite_dir(tflite_dir: str, out_dir: str, *, variant: str = "full") -> list[str]:
    """Convert ``<network>_<variant>.tflite`` in ``tflite_dir`` into npz files in ``out_dir``."""
    _check_variant(variant)
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for name in NETWORKS:
        source = os.path.join(tflite_dir, f"{name}_{variant}.tflite")
        if os.path.getsize(source) > MAX_TFLITE_BYTES:
            raise GraphError(f"{source}: larger than {MAX_TFLITE_BYTES:,} bytes")
        with open(source, "rb") as f:
            graph, weights = from_tflite(f.read())
        path = os.path.join(out_dir, f"{name}_{variant}.npz")
        write_model(path, graph, weights)
        written.append(path)
    return written


def load_network(name: str, *, variant: str = "full", model_dir: str | None = None):
    """``(Graph, weights)`` of a converted network (``name`` in ``NETWORKS``)."""
    if name not in NETWORKS:
        raise ValueError(f"network: expected one of {list(NETWORKS)}, got {name!r}")
    _check_variant(variant)
    return read_model(os.path.join(model_dir or MODEL_DIR, f"{name}_{variant}.npz"))
