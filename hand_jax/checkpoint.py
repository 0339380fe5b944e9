"""Orbax checkpoints of a training run, and preemption (SIGTERM) handling.

A checkpoint at step n holds three items: ``state`` (the ``TrainState`` as a dict of arrays,
restored straight into its shardings), ``config`` (the resolved config as JSON) and ``data``
(every process's input-iterator state, JSON, keyed ``"process_<i>"``). Checkpoints live in
``<workdir>/checkpoints/<step>``; the newest ``keep`` are kept. Nothing is pickled, and the MANO
model (licensed) is never saved: it is reloaded from ``--mano_path``.

Resume order (fixed, logged): the latest checkpoint in the workdir (state + data position), else
``init_from`` (parameters and batch statistics only, fresh optimiser and data), else scratch.
"""

import json
import logging as std_logging
import os
import signal
import threading

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from jax.experimental import multihost_utils

_STATE_FIELDS = ("params", "batch_stats")


class Checkpointer:
    """Periodic saves and resume for one workdir.

    Args:
      workdir: the run directory; checkpoints go to ``<workdir>/checkpoints``.
      keep: number of most recent checkpoints kept.
      every: steps between periodic saves (``maybe_save`` saves when ``step % every == 0``).
    """

    def __init__(self, workdir: str, *, keep: int, every: int):
        self.directory = os.path.join(os.path.abspath(workdir), "checkpoints")
        self.every = every
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
        self.manager = ocp.CheckpointManager(
            self.directory, options=options, item_names=("state", "config", "data")
        )

    def latest_step(self):
        """The newest saved step in the workdir, or None."""
        return self.manager.latest_step()

    def save(self, step: int, state, *, config: dict, data_state) -> None:
        """Save now (collective: every process calls it with its own data state).

        Args:
          step: the state's step.
          state: the train state (a NamedTuple of global arrays).
          config: the resolved config as a plain dict.
          data_state: this process's JSON-serialisable input-iterator state.
        """
        data = gather_process_states(data_state)
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state._asdict()),
            config=ocp.args.JsonSave(config),
            data=ocp.args.JsonSave(data),
        )
        self.manager.save(step, args=args, force=True)
        logging.info("Saved checkpoint at step %d in %s", step, self.directory)

    def maybe_save(self, step: int, state, *, config: dict, data_state) -> bool:
        """Save if ``step`` is a multiple of ``every``; returns whether it saved."""
        if step % self.every:
            return False
        self.save(step, state, config=config, data_state=data_state)
        return True

    def restore(self, abstract_state, *, init_from: str = ""):
        """Resume: latest in the workdir, else ``init_from`` (params only), else nothing.

        Args:
          abstract_state: the state's ``jax.ShapeDtypeStruct`` tree with shardings.
          init_from: a checkpoint directory (``<run>/checkpoints`` or one step inside it) or "".

        Returns:
          (source, state or None, data_state or None); source is "workdir", "init" or "scratch".
          For "init", state holds only ``params`` and ``batch_stats`` (a dict).
        """
        step = self.manager.latest_step()
        if step is not None:
            target = ocp.args.StandardRestore(abstract_state._asdict())
            out = self.manager.restore(
                step,
                args=ocp.args.Composite(state=target, data=ocp.args.JsonRestore()),
            )
            state = type(abstract_state)(**out["state"])
            data = out["data"][f"process_{jax.process_index()}"]
            logging.info("Resuming from the latest checkpoint in the workdir: step %d", step)
            return "workdir", state, data
        if init_from:
            abstract = {k: getattr(abstract_state, k) for k in _STATE_FIELDS}
            partial = restore_params(init_from, abstract)
            logging.info("Initialising params and batch stats from %s", init_from)
            return "init", partial, None
        logging.info("No checkpoint in %s and no init_from: training from scratch", self.directory)
        return "scratch", None, None

    def wait(self) -> None:
        """Block until asynchronous saves are written."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def _resolve_step_dir(path: str) -> str:
    """Accept ``<run>/checkpoints``, ``<run>`` or ``<run>/checkpoints/<step>``."""
    path = os.path.abspath(path)
    if os.path.isdir(os.path.join(path, "state")):
        return path
    for candidate in (path, os.path.join(path, "checkpoints")):
        steps = (
            [int(n) for n in os.listdir(candidate) if n.isdigit()]
            if os.path.isdir(candidate)
            else []
        )
        if steps:
            return os.path.join(candidate, str(max(steps)))
    raise FileNotFoundError(
        f"init_from={path!r}: no checkpoint found (expected a directory with numbered step "
        "subdirectories holding a 'state' item, or one such step directory)"
    )


def restore_params(path: str, abstract: dict) -> dict:
    """Restore only ``params`` and ``batch_stats`` from a checkpoint into the given shardings.

    Args:
      path: a run dir, its ``checkpoints`` dir or one step dir.
      abstract: ``{"params": ..., "batch_stats": ...}`` of ``ShapeDtypeStruct`` with shardings
        (what ``hand_jax.network.settings.abstract_variables`` builds, placed on a mesh).

    Returns:
      {"params": ..., "batch_stats": ...} as global arrays.
    """
    step_dir = _resolve_step_dir(path)
    target = {k: abstract[k] for k in _STATE_FIELDS}
    restore_args = ocp.checkpoint_utils.construct_restore_args(target)
    with ocp.PyTreeCheckpointer() as ckptr:
        return ckptr.restore(
            os.path.join(step_dir, "state"),
            args=ocp.args.PyTreeRestore(
                item=target, restore_args=restore_args, partial_restore=True
            ),
        )


def gather_process_states(data_state) -> dict:
    """Collect every process's JSON state into {"process_<i>": state} (collective)."""
    text = json.dumps(data_state)
    if jax.process_count() == 1:
        return {"process_0": json.loads(text)}
    raw = np.frombuffer(text.encode(), np.uint8)
    lengths = multihost_utils.process_allgather(np.int32(raw.size))
    padded = np.zeros(int(np.max(lengths)), np.uint8)
    padded[: raw.size] = raw
    everything = multihost_utils.process_allgather(padded)
    return {
        f"process_{i}": json.loads(bytes(everything[i, : lengths[i]]).decode())
        for i in range(jax.process_count())
    }


class PreemptionGuard:
    """Turn SIGTERM into a flag that the training loop polls between steps.

    The first SIGTERM sets the flag (the loop then saves and returns); the handler is restored on
    ``close``. In multi-process runs ``should_stop`` agrees across processes (a max over them),
    so every process stops at the same step and the collective save does not deadlock.
    """

    def __init__(self):
        self._event = threading.Event()
        self._previous = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame):
        del frame
        logging.warning("Received signal %d: will save a checkpoint and stop", signum)
        self._event.set()

    def should_stop(self) -> bool:
        """Whether any process received SIGTERM (collective when process_count > 1)."""
        flag = np.int32(self._event.is_set())
        if jax.process_count() > 1:
            flag = np.max(multihost_utils.process_allgather(flag))
        return bool(flag)

    def close(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None


class _BelowWarningFromOrbax(std_logging.Filter):
    def filter(self, record):
        return record.levelno >= std_logging.WARNING or "orbax" not in record.pathname


def quiet_orbax_logging() -> None:
    """Drop orbax's INFO/DEBUG records from the absl log (each save logs dozens of lines)."""
    logging.get_absl_handler().addFilter(_BelowWarningFromOrbax())
