"""The training loop: config validation, data feeding, logging, evaluation, checkpoints.

``train_and_evaluate(config, workdir=..., mano_path=..., data_dir=...)`` is the one call behind
``launch/train.py``. It runs on one CPU or a multi-host TPU pod unchanged: the batch is split over
all devices (``data`` mesh axis), each process reads only its rows of every global batch, only
process 0 writes logs, metrics and PNGs, and every process takes part in checkpoint saves.

Workdir layout: ``config.json`` (resolved config), ``metrics.jsonl`` (one JSON object per log or
evaluation step), ``checkpoints/<step>/``, ``eval/step_<step>.png``.

The data order is a function of the seed only: epoch e visits the training samples in the order
``np.random.default_rng([seed, e]).permutation(N)``, cut into global batches; process p feeds rows
[p * B / P, (p + 1) * B / P) of each. The iterator state (epoch, batch position) is checkpointed,
so a resumed run sees exactly the batches an uninterrupted run would.
"""

import functools
import json
import os
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from hand_jax import checkpoint, data, sharding
from hand_jax.data import pipeline
from hand_jax.network import batches as nb
from hand_jax.network import settings as ns
from hand_jax.network import store, validation
from hand_jax.train import config as train_config
from hand_jax.train import evaluation as te
from hand_jax.train import optimizer
from hand_jax.train import step as tr


class BatchIterator:
    """Deterministic, checkpointable iterator over this process's rows of global batches.

    Args:
      samples: the training split (a sequence of cropped sample dicts).
      global_batch: B.
      seed: data-order seed.
    """

    def __init__(self, samples, *, global_batch: int, seed: int):
        if len(samples) < global_batch:
            raise ValueError(f"training split has {len(samples)} samples < batch {global_batch}")
        self.samples, self.global_batch, self.seed = samples, global_batch, seed
        self.epoch, self.position = 0, 0
        self._rows = nb.local_rows(global_batch)

    def get_state(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed}

    def set_state(self, state: dict) -> None:
        if state["seed"] != self.seed:
            logging.warning("Data seed changed from %d to %d on resume", state["seed"], self.seed)
        self.epoch, self.position = int(state["epoch"]), int(state["position"])

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        per_epoch = len(self.samples) // self.global_batch
        if self.position >= per_epoch:
            self.epoch, self.position = self.epoch + 1, 0
        order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.samples))
        start = self.position * self.global_batch
        rows = order[start : start + self.global_batch][self._rows]
        self.position += 1
        return nb.stack_samples([self.samples[int(i)] for i in rows])


class GrainBatches:
    """This process's batches from the grain input pipeline (``hand_jax.data.pipeline``).

    Crops with augmentation (when ``config.data.augment``), shuffles per epoch and shards by
    process; ``get_state``/``set_state`` are the pipeline iterator's JSON state (exact resume).

    Args:
      samples: the uncropped training split (``hand_jax.data.load_split``).
      config: the training config.
      mixture: more sources, (samples, weight) (``pipeline.make_dataset``).
    """

    def __init__(self, samples, *, config, mixture=()):
        per_host = config.train.global_batch_size // jax.process_count()
        augmentation = pipeline.NO_AUGMENTATION
        if config.data.augment:
            augmentation = pipeline.Augmentation(
                scale=tuple(float(x) for x in config.data.crop_scale),
                shift=float(config.data.crop_shift),
            )
        dataset = pipeline.make_dataset(
            samples, batch_size=per_host, image_size=config.data.image_size, seed=config.seed,
            train=True, augmentation=augmentation, margin=config.data.crop_margin,
            mixture=mixture,
        )  # fmt: skip
        self._iterator = pipeline.make_iterator(dataset, worker_count=config.data.num_workers)

    def get_state(self) -> dict:
        return self._iterator.get_state()

    def set_state(self, state: dict) -> None:
        self._iterator.set_state(state)

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        batch = next(self._iterator)
        return {k: np.asarray(batch[k]) for k in nb.BATCH_FIELDS}


def stage_at(step: int, train_cfg) -> str:
    """The stratified stage of a step: e2d, then e3d, then joint."""
    if step < train_cfg.e2d_steps:
        return "e2d"
    if step < train_cfg.e2d_steps + train_cfg.e3d_steps:
        return "e3d"
    return "joint"


def init_key(seed: int):
    """The parameter-initialisation key (RBG generator: compiles far faster than threefry)."""
    return jax.random.key(seed, impl="rbg")


class _Log:
    """JSON lines and a progress line, written by process 0 only."""

    def __init__(self, workdir: str, config):
        self.path = os.path.join(workdir, "metrics.jsonl")
        self.num_steps, self.batch_size = config.train.num_steps, config.train.global_batch_size
        self.log_every, self.gate_mode = config.train.log_every, config.loss.silhouette_gate
        self.primary = jax.process_index() == 0
        self.mark = None

    def start(self, step: int, *, wall_s: float, gate_open: bool) -> None:
        """Start timing at ``step``.

        Args:
          step: the first step of this process's run.
          wall_s: training seconds logged before ``step`` (a resumed run).
          gate_open: whether the silhouette gate is already open.
        """
        self.restart_rate(step)
        self.origin = time.perf_counter() - wall_s
        self.gate_open = gate_open

    def restart_rate(self, step: int) -> None:
        """Measure the next steps/s from now (after an evaluation pause)."""
        self.mark = (time.perf_counter(), step)

    def wall_s(self) -> float:
        """Training wall seconds so far, over resumes (evaluation included)."""
        return time.perf_counter() - self.origin

    def write(self, record: dict) -> None:
        if self.primary:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")

    def train(self, step: int, stage: str, metrics: dict) -> None:
        now, (then, then_step) = time.perf_counter(), self.mark
        rate = (step - then_step) / max(now - then, 1e-9)
        self.mark = (now, step)
        metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
        record = {"step": step, "stage": stage, "steps_per_sec": rate, "wall_s": self.wall_s()}
        self.write({**record, **metrics})
        gate = bool(metrics.get("silhouette_on", 0))
        if gate and not self.gate_open and self.primary:
            logging.info("silhouette loss switched on (gate %s) between steps %d and %d",
                         self.gate_mode, step - self.log_every, step)  # fmt: skip
            self.write({"step": step, "event": "silhouette_on"})
        self.gate_open = gate
        if self.primary:
            eta = (self.num_steps - step) / max(rate, 1e-9)
            terms = " ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k != "silhouette_on")
            logging.info(
                "step %d/%d [%s] %s | sil %s | %.2f steps/s %.1f img/s ETA %s",
                step, self.num_steps, stage, terms, bool(metrics.get("silhouette_on", 0)),
                rate, rate * self.batch_size, time.strftime("%H:%M:%S", time.gmtime(eta)),
            )  # fmt: skip


def _evaluate(state, val_samples, consts, *, predict, config, workdir, step, log, sharding):
    t = time.perf_counter()
    p = nb.run_predictions(
        predict, state, val_samples, consts,
        batch_size=config.train.global_batch_size, sharding=sharding,
    )  # fmt: skip
    if jax.process_index() == 0:
        p.update(validation.mesh_labels(val_samples, consts.hand_model))
        result = validation.compute_metrics(p)
        png = os.path.join(workdir, "eval", f"step_{step:07d}.png")
        te.save_png(p, png, num=config.train.png_examples)
        log.write({"step": step, "wall_s": log.wall_s(), "eval": result,
                   "eval_seconds": time.perf_counter() - t})  # fmt: skip
        logging.info("eval step %d: %s (PNG %s)", step,
                     " ".join(f"{k} {v:.4g}" for k, v in result.items()), png)  # fmt: skip
    log.restart_rate(step)


def _last_wall_s(path: str, step: int) -> float:
    """The training wall seconds logged at or before ``step`` (resuming a run), else 0."""
    if step == 0 or not os.path.exists(path):
        return 0.0
    wall = 0.0
    with open(path) as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill
            if record.get("step", 0) <= step and "wall_s" in record:
                wall = max(wall, float(record["wall_s"]))
    return wall


def _load_samples(config, data_dir, split, *, cropped: bool, count: int = 0):
    if not data_dir:
        raise ValueError(
            f"--data_dir is required to load the {config.data.name!r} data (see BUILD.md)"
        )
    size = config.data.image_size if cropped else None
    samples = data.load_split(
        config.data.name, data_dir, split, crop_size=size, crop_margin=config.data.crop_margin
    )
    return samples if count <= 0 else [samples[i] for i in range(min(count, len(samples)))]


class Programs(NamedTuple):
    """The run's module, optimiser, settings and jitted functions (memoised per config)."""

    model: Any
    optimizer: Any
    settings: tr.LossSettings
    runtime: ns.RuntimeSettings
    init: Any  # (key, h_init) -> TrainState, jitted into replicated shardings
    abstract: Any  # TrainState of ShapeDtypeStruct with shardings
    steps: dict  # stage -> jitted train step
    predict: Any


def programs_for(config, *, num_betas: int, h_dim: int) -> Programs:
    """The programs of a config, built once per distinct (model, optim, loss, input) settings.

    Args:
      config: the training config.
      num_betas: S, resolved against the hand model.
      h_dim: D, the length of the flat h.
    """
    stages = optimizer.stage_lengths(config.train)
    key = {
        "model": config.model.to_dict(),
        "optim": config.optim.to_dict(),
        "loss": config.loss.to_dict(),
        "data": {"image_size": config.data.image_size},
        "train": {
            "color_jitter": config.train.color_jitter,
            "num_steps": config.train.num_steps,
            "e2d_steps": stages[0],
            "e3d_steps": stages[1],
        },
    }
    return _programs(json.dumps(key, sort_keys=True), num_betas, h_dim)


@functools.lru_cache(maxsize=8)
def _programs(config_json: str, num_betas: int, h_dim: int) -> Programs:
    config = ml_collections.ConfigDict(json.loads(config_json))
    model = ns.make_module(config)
    optim = optimizer.make_optimizer(config.optim, stages=optimizer.stage_lengths(config.train))
    settings = tr.LossSettings.from_config(config)
    runtime = ns.RuntimeSettings.from_config(config, num_betas=num_betas)
    init = functools.partial(
        tr.create_train_state, model=model, optimizer=optim,
        image_size=config.data.image_size,
    )  # fmt: skip
    abstract = jax.eval_shape(init, init_key(0), h_init=jax.ShapeDtypeStruct((h_dim,), jnp.float32))
    shardings = sharding.replicated(sharding.make_mesh(), abstract)
    abstract = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings
    )
    steps = {
        s: tr.make_train_step(
            model=model, optimizer=optim, settings=settings, runtime=runtime, stage=s
        )
        for s in tr.STAGES
    }
    predict = te.make_predict(model=model, runtime=runtime)
    init = jax.jit(init, out_shardings=shardings)
    return Programs(model, optim, settings, runtime, init, abstract, steps, predict)


def _model_dir_variables(path: str, programs: Programs) -> dict:
    """Parameters and batch statistics of an exported model directory, placed like the state's."""
    abstract = {"params": programs.abstract.params, "batch_stats": programs.abstract.batch_stats}
    arrays = store.load_params(os.path.join(path, store.PARAMS_FILE), abstract)
    placed = jax.tree.map(lambda a, s: jax.device_put(a, s.sharding), arrays, abstract)
    logging.info("Initialising params and batch stats from the model directory %s", path)
    return placed


def _initial_state(config, ckpt, programs: Programs, consts):
    """Resume (workdir, then init_from, then scratch) and the data-iterator state.

    ``checkpoint.init_from`` is a run's checkpoint directory or an exported model directory
    (``hand_jax.network.store``, e.g. the shipped model): parameters and batch statistics only.
    """
    init_from = config.checkpoint.init_from
    model_dir = bool(init_from) and store.is_model_dir(init_from)
    source, restored, data_state = ckpt.restore(
        programs.abstract, init_from="" if model_dir else init_from
    )
    if source == "workdir":
        return restored, data_state
    state = programs.init(init_key(config.seed), h_init=consts.h_init)
    if model_dir:
        source, restored = "init", _model_dir_variables(init_from, programs)
    if source == "init":
        state = state._replace(params=restored["params"], batch_stats=restored["batch_stats"])
    return state, None


def build(config, *, mano_path=None):
    """Build the mesh, the replicated step constants and the (memoised) programs of a config.

    Returns:
      (mesh, consts, programs).
    """
    mesh = sharding.make_mesh()
    consts = ns.make_constants(config, mano_path=mano_path)
    h_dim = int(consts.h_init.shape[0])
    num_betas = ns.num_betas_of(consts, rot_repr=config.model.rot_repr)
    consts = jax.device_put(consts, sharding.replicated(mesh, consts))
    return mesh, consts, programs_for(config, num_betas=num_betas, h_dim=h_dim)


def _setup(config, *, mano_path, data_dir, train_samples, val_samples):
    """Build the programs and the data: in-memory cropped samples, else the grain pipeline."""
    mesh, consts, programs = build(config, mano_path=mano_path)
    if train_samples is not None:
        batches = BatchIterator(
            train_samples, global_batch=config.train.global_batch_size, seed=config.seed
        )
    else:
        split = config.data.train_split
        extra = [
            (data.load_split("synthetic", d, split), w) for d, w in train_config.mixture(config)
        ]  # the extra dirs are in the synthetic format (launch.augment writes it)
        batches = GrainBatches(
            _load_samples(config, data_dir, split, cropped=False), config=config, mixture=extra
        )
    if val_samples is None:
        val_samples = _load_samples(
            config, data_dir, config.data.val_split, cropped=True,
            count=config.train.eval_examples,
        )  # fmt: skip
    return mesh, consts, programs, batches, val_samples


def train_and_evaluate(
    config, *, workdir: str, mano_path=None, data_dir=None, train_samples=None, val_samples=None
):
    """Train (resuming if possible), evaluate every ``eval_every`` steps, checkpoint.

    Args:
      config: the training config (``launch/configs/default.py``); validated first.
      workdir: run directory (created).
      mano_path: MANO ``.pkl``/``.npz``; None = the embedded default hand.
      data_dir: root of the dataset named by ``config.data.name``.
      train_samples, val_samples: sequences of cropped samples to use instead of loading
        ``data_dir`` (tests, notebooks).

    Returns:
      The final ``TrainState`` (after a SIGTERM: the state saved at the stopping step).
    """
    train_config.validate_config(config)
    train_config.check_devices(config)
    os.makedirs(workdir, exist_ok=True)
    mesh, consts, programs, batches, val_samples = _setup(
        config, mano_path=mano_path, data_dir=data_dir,
        train_samples=train_samples, val_samples=val_samples,
    )  # fmt: skip
    ckpt = checkpoint.Checkpointer(workdir, keep=config.checkpoint.keep,
                                   every=config.checkpoint.every)  # fmt: skip
    guard = checkpoint.PreemptionGuard()
    try:
        state, data_state = _initial_state(config, ckpt, programs, consts)
        if data_state is not None:
            batches.set_state(data_state)
        if jax.process_index() == 0:
            with open(os.path.join(workdir, "config.json"), "w") as f:
                f.write(config.to_json(indent=2))
        loop = functools.partial(_loop, config, workdir=workdir, mesh=mesh, ckpt=ckpt, guard=guard)
        return loop(state, batches, consts, programs, val_samples)
    finally:
        ckpt.close()
        guard.close()


def _loop(config, state, batches, consts, programs, val_samples, *, workdir, mesh, ckpt, guard):
    """Run steps until ``num_steps`` or SIGTERM; save at the end."""
    cfg, batch_sharding = config.train, sharding.batch_sharding(mesh)
    config_dict = json.loads(config.to_json())
    step_key = jax.random.fold_in(jax.random.key(config.seed), 1)
    log = _Log(workdir, config)
    step = int(jax.device_get(state.step))
    log.start(step, wall_s=_last_wall_s(log.path, step),
              gate_open=bool(jax.device_get(state.silhouette_on)))  # fmt: skip
    saved = False
    while step < cfg.num_steps:
        stage = stage_at(step, cfg)
        batch = nb.to_global(next(batches), batch_sharding)
        state, metrics = programs.steps[stage](state, batch, step_key, consts)
        step += 1
        if step % cfg.log_every == 0 or step == cfg.num_steps:
            log.train(step, stage, metrics)
        if step % cfg.eval_every == 0 or step == cfg.num_steps:
            _evaluate(state, val_samples, consts, predict=programs.predict, config=config,
                      workdir=workdir, step=step, log=log, sharding=batch_sharding)  # fmt: skip
        saved = ckpt.maybe_save(step, state, config=config_dict, data_state=batches.get_state())
        if guard.should_stop():
            logging.warning("Stopping at step %d on SIGTERM", step)
            break
    if not saved and step > 0 and ckpt.latest_step() != step:
        ckpt.save(step, state, config=config_dict, data_state=batches.get_state())
    return state
