"""absl entry points (``python -m launch.<name>``): flags, then one library call each."""

import os

from absl import app

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_flags(argv):
    """Parse flags; a relative ``--config`` missing from the cwd resolves against the repository."""
    for i, arg in enumerate(argv):
        path = arg.removeprefix("--config=").split(":")[0]
        if arg.startswith("--config=") and not os.path.isabs(path) and not os.path.exists(path):
            if os.path.exists(os.path.join(_REPO, path)):
                argv[i] = "--config=" + os.path.join(_REPO, arg.removeprefix("--config="))
    return app.parse_flags_with_usage(argv)
