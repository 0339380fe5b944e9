"""Train the hand mesh estimator.

  python -m launch.train --config=launch/configs/synthetic.py:cpu_small --workdir=out/run \\
      --data_dir=out/synthetic [--config.train.num_steps=1000 ...]

Multi-host: on Cloud TPU the processes find each other by themselves; elsewhere pass
--coordinator_address=host:port --num_processes=N --process_id=i on every host. Rerunning the same
command resumes from the latest checkpoint in --workdir.
"""

import jax
from absl import app, flags, logging
from ml_collections import config_flags

import launch
from hand_jax import checkpoint
from hand_jax.train import config as train_config
from hand_jax.train import loop as train_loop
from launch.configs import default

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file, optionally with a preset: file.py:preset.", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, metrics, PNGs).")
_MANO_PATH = flags.DEFINE_string("mano_path", None, "MANO .pkl/.npz; default: embedded hand.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Root of the dataset named in the config.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes (hosts).")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "Index of this process.")
_DISTRIBUTED = flags.DEFINE_enum(
    "distributed", "auto", ["auto", "on", "off"],
    "auto: initialise jax.distributed when flags are given or a cluster (Cloud TPU) is detected.",
)  # fmt: skip
flags.mark_flags_as_required(["config", "workdir"])


def _initialize_distributed() -> None:
    explicit = _COORDINATOR.value is not None or _NUM_PROCESSES.value is not None
    if _DISTRIBUTED.value == "off" and not explicit:
        return
    kwargs = dict(
        coordinator_address=_COORDINATOR.value,
        num_processes=_NUM_PROCESSES.value,
        process_id=_PROCESS_ID.value,
    )
    if explicit or _DISTRIBUTED.value == "on":
        jax.distributed.initialize(**kwargs)
        return
    try:  # auto: cluster detection (Cloud TPU, SLURM, ...); a plain machine has none
        jax.distributed.initialize()
    except (ValueError, RuntimeError) as err:
        logging.info("Single process (no cluster detected: %s)", err)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    config = _CONFIG.value
    train_config.validate_config(config, reference=default.get_config())
    _initialize_distributed()
    checkpoint.quiet_orbax_logging()
    logging.info(
        "Process %d/%d, %d local / %d global devices: %s",
        jax.process_index(), jax.process_count(), jax.local_device_count(),
        jax.device_count(), jax.devices(),
    )  # fmt: skip
    train_loop.train_and_evaluate(
        config, workdir=_WORKDIR.value, mano_path=_MANO_PATH.value, data_dir=_DATA_DIR.value
    )


if __name__ == "__main__":
    app.run(main, flags_parser=launch.parse_flags)
