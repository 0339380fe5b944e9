"""The optimiser of the hand mesh estimator: AdamW with one learning-rate schedule per stage.

Stratified training runs three stages (``e2d``: fE2D alone; ``e3d``: fE3D on frozen fE2D
evidence; ``joint``: everything). A single schedule across them would give a late stage a
decayed rate and no warm-up, so each stage gets its own warm-up and cosine (or constant) decay
over its own length. Steps count optimiser updates.
"""

import functools

import jax
import numpy as np
import optax


def stage_lengths(train_cfg) -> tuple[int, int, int]:
    """Steps of the stratified stages (e2d, e3d, joint) of a config's ``train`` section."""
    e2d = min(train_cfg.e2d_steps, train_cfg.num_steps)
    e3d = min(train_cfg.e3d_steps, train_cfg.num_steps - e2d)
    return e2d, e3d, train_cfg.num_steps - e2d - e3d


def _stage_schedule(optim, length: int):
    peak, warmup = optim.learning_rate, min(optim.warmup_steps, max(length // 2, 1))
    if optim.schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(
            0.0, peak, warmup, max(length, warmup + 1), end_value=peak * optim.end_factor
        )
    return optax.join_schedules(
        [optax.linear_schedule(0.0, peak, max(warmup, 1)), optax.constant_schedule(peak)],
        [warmup],
    )


def make_schedule(optim, *, stages):
    """The learning rate per step: each stratified stage has its own warm-up and decay.

    Args:
      optim: the config's ``optim`` section.
      stages: (e2d, e3d, joint) stage lengths in steps (``stage_lengths``); empty stages are
        skipped.

    Returns:
      An Optax schedule (step -> learning rate).
    """
    lengths = [n for n in stages if n > 0] or [1]
    schedules = [_stage_schedule(optim, n) for n in lengths]
    return optax.join_schedules(schedules, list(np.cumsum(lengths)[:-1]))


def make_optimizer(optim, *, stages) -> optax.GradientTransformation:
    """AdamW with a per-stage schedule (``make_schedule``) and optional gradient clipping.

    Args:
      optim: the config's ``optim`` section.
      stages: (e2d, e3d, joint) stage lengths in steps.
    """
    schedule = make_schedule(optim, stages=stages)
    decay_mask = functools.partial(jax.tree.map, lambda p: p.ndim > 1)
    chain = [optax.adamw(schedule, weight_decay=optim.weight_decay, mask=decay_mask)]
    if optim.grad_clip_norm > 0:
        chain.insert(0, optax.clip_by_global_norm(optim.grad_clip_norm))
    return optax.chain(*chain)
