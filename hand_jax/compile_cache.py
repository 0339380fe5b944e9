"""JAX's persistent compilation cache: its folder, and turning it on in a launcher.

A command compiles the same programs on every run: the estimation program and the many small
programs of eager array operations. With the cache on, XLA's compiled executables are written to
a folder and a later run loads them instead of compiling. jax keys each entry on the program,
the jax and jaxlib versions, the devices, the compile options and the XLA flags, so a changed
program or install compiles afresh and never reads a stale entry. jax's defaults keep only
programs that took a second or more to compile; ``enable`` keeps every program, since on a CPU
the small ones add up (``launch.estimate`` on the shipped samples: 92 programs, 1.4 MB).

The folder (``default_dir``): ``$HAND_JAX_CACHE`` if set (set and empty: no cache), else
``$XDG_CACHE_HOME/hand_jax/jax``, else ``~/.cache/hand_jax/jax``. It is never pruned; deleting
it at any time is safe. Importing the library turns nothing on: a launcher calls ``enable``.
"""

import logging
import os

import jax

ENV_VAR = "HAND_JAX_CACHE"


def default_dir() -> str | None:
    """The cache folder from the environment (module docstring); None: the cache is off."""
    if ENV_VAR in os.environ:
        return os.environ[ENV_VAR] or None
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # the XDG spec: a relative value is ignored
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "hand_jax", "jax")


def enable(path: str | None) -> str | None:
    """Cache every program this process compiles from now on in ``path`` (None or '': none).

    Call it before the first compilation; jax reads the folder once, at its first compile.

    Args:
      path: the folder, created if missing.

    Returns:
      the absolute folder, or None when the cache stays off (none asked for, or a folder that
      cannot be created or written: a warning says why and the command runs without it).
    """
    if not path:
        return None
    path = os.path.abspath(os.path.expanduser(path))
    try:
        os.makedirs(path, exist_ok=True)
        problem = None if os.access(path, os.W_OK | os.X_OK) else "not writable"
    except OSError as err:
        problem = err.strerror or str(err)
    if problem:
        logging.warning("compilation cache off: %s: %s", path, problem)
        return None
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)  # -1: no size floor
    return path
