"""Reproduce the paper's ablation and comparison tables (resumable; rerun to continue).

    python -m launch.reproduce --config=launch/configs/reproduce.py:quick \
        --work_dir=/tmp/reproduce_quick --out_dir=results/reproduce_quick
    python -m launch.reproduce --config=launch/configs/reproduce.py:cpu \
        --work_dir=runs/reproduce_cpu --out_dir=results/reproduce_cpu
    python -m launch.reproduce --config=launch/configs/reproduce.py:paper \
        --work_dir=/shared/reproduce --data_dirs=stb=/data/STB,rhd=/data/RHD,dexter_object=/data/DO

Stages, layout and outputs: ``hand_jax/reproduce``. ``--force=train`` (a stage kind, or a
stage's full name such as ``train/seed1/narrow/full``) reruns those stages and what depends on
them; ``--adopt=train/seed0/stb/full`` takes over a run made outside the study (e.g. on a
pod) instead of deleting it; ``--report_only`` rewrites the tables from the evaluations that
are up to date; ``--dry_run`` lists the stages and which are up to date.
"""

import os
import sys

os.environ.setdefault("TQDM_DISABLE", "1")  # before tqdm is imported: it reads this once

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

import launch  # noqa: E402
from hand_jax import reproduce  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(  # resolved against this package, not the cwd
    "config",
    os.path.join(os.path.dirname(__file__), "configs", "reproduce.py") + ":quick",
    "Study config and preset.",
)
_WORK_DIR = flags.DEFINE_string("work_dir", None, "Data, runs, logs, stage markers.", required=True)
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Tables and pictures (default results/<preset>).")
_DATA_DIRS = flags.DEFINE_list("data_dirs", [], "name=root for the preset's real datasets.")
_FORCE = flags.DEFINE_list("force", [], "Stages (kinds or full names) to rerun.")
_ADOPT = flags.DEFINE_list("adopt", [], "Stages whose outputs made elsewhere are taken over.")
_REPORT_ONLY = flags.DEFINE_bool("report_only", False, "Only rewrite the report.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "List the stages and exit.")


def _data_dirs() -> dict:
    out = {}
    for item in _DATA_DIRS.value:
        name, sep, root = item.partition("=")
        if not sep or not name or not root:
            raise app.UsageError(f"--data_dirs: expected name=root, got {item!r}")
        out[name] = root
    return out


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    cfg = _CONFIG.value
    # One progress line per stage: the stages' own logs hold the details.
    logging.set_verbosity(logging.WARNING)
    out_dir = _OUT_DIR.value or os.path.join("results", f"reproduce_{cfg.preset}")
    try:
        reproduce.run(
            cfg,
            work_dir=_WORK_DIR.value,
            out_dir=out_dir,
            data_dirs=_data_dirs(),
            force=_FORCE.value,
            adopt=_ADOPT.value,
            command=" ".join(["python -m launch.reproduce", *sys.argv[1:]]),
            report_only=_REPORT_ONLY.value,
            dry_run=_DRY_RUN.value,
        )
    except ValueError as e:
        raise app.UsageError(str(e)) from e


if __name__ == "__main__":
    app.run(main, flags_parser=launch.parse_flags)
