"""Embedded assets: the CC0 default hand and the cached MakeHuman/MPFB2 files it is built from.

``DEFAULT_HAND_RIGHT`` is the right hand in the project's MANO npz layout (BUILD.md), built by
``python -m hand_jax.assets.build_default_hand`` (see that module for the frame, rest pose, shape
space and provenance); the left hand is its mirror image, made at load time by ``hand_jax.mano``.
Licence: CC0 1.0, see ``LICENSE-MakeHuman-CC0.txt``.
"""

import pathlib

ASSETS_DIR = pathlib.Path(__file__).resolve().parent
DEFAULT_HAND_RIGHT = ASSETS_DIR / "default_hand_right.npz"
MPFB2_CACHE = ASSETS_DIR / "mpfb2_cache"
LICENSE_FILE = ASSETS_DIR / "LICENSE-MakeHuman-CC0.txt"
