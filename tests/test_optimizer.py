"""Per-stage learning-rate schedules: each stratified stage warms up and decays on its own."""

import ml_collections
import numpy as np
import pytest

from hand_jax.train import optimizer


def _optim(schedule="cosine"):
    return ml_collections.ConfigDict(
        {"learning_rate": 1e-3, "warmup_steps": 10, "schedule": schedule, "end_factor": 0.1,
         "weight_decay": 0.0, "grad_clip_norm": 0.0}
    )  # fmt: skip


def _reference(step, stages, *, peak=1e-3, warmup=10, end=1e-4):
    """Closed form: linear warm-up from 0, then half-cosine to ``end`` within each stage."""
    for length in stages:
        if length == 0:
            continue
        if step < length or length == stages[-1]:
            w = min(warmup, max(length // 2, 1))
            if step < w:
                return peak * step / w
            t = min((step - w) / max(length - w, 1), 1.0)
            return end + (peak - end) * 0.5 * (1 + np.cos(np.pi * t))
        step -= length
    raise AssertionError


@pytest.mark.parametrize("stages", [(100, 50, 200), (0, 40, 100), (30, 0, 60)])
def test_each_stage_warms_up_and_decays_on_its_own(stages):
    schedule = optimizer.make_schedule(_optim(), stages=stages)
    total = sum(stages)
    got = np.array([float(schedule(i)) for i in range(total)])
    want = np.array([_reference(i, stages) for i in range(total)])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-9)
    # Every non-empty stage starts again from zero (its own warm-up).
    starts = np.cumsum([0, *stages[:-1]])[np.array(stages) > 0]
    assert np.all(got[starts] == 0.0)


def test_stage_lengths_clip_to_the_run():
    train = ml_collections.ConfigDict({"num_steps": 50, "e2d_steps": 40, "e3d_steps": 30})
    assert optimizer.stage_lengths(train) == (40, 10, 0)
