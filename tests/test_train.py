"""Training: one step, loss decrease, resume after a kill, SIGTERM, init_from, bad configs.

Every test uses the same tiny config (ResNet-10 at 32 px, batch 8, joint stage, constant
learning rate) so that the memoised programs compile once for the whole module.
"""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import ml_collections
import numpy as np
import pytest

from hand_jax import checkpoint, sharding
from hand_jax.network import batches as nb
from hand_jax.network import forward
from hand_jax.train import config as train_config
from hand_jax.train import loop as train_loop
from launch.configs import default
from tests.train_helpers import tiny_config, toy_samples

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(**overrides):
    base = {
        "train.e2d_steps": 0,
        "train.e3d_steps": 0,
        "train.num_steps": 6,
        "optim.schedule": "constant",
        "checkpoint.every": 3,
    }
    return tiny_config(**{**base, **overrides})


@pytest.fixture(scope="module")
def data():
    return toy_samples(32, seed=0), toy_samples(8, seed=1)


@pytest.fixture(scope="module")
def built():
    return train_loop.build(_config())


def _batches(samples, mesh, n):
    it = train_loop.BatchIterator(samples, global_batch=8, seed=0)
    batch_sharding = sharding.batch_sharding(mesh)
    return [nb.to_global(next(it), batch_sharding) for _ in range(n)]


def _leaves_close(a, b, **kw):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), **kw)


def test_one_step_changes_params(built, data):
    mesh, consts, programs = built
    state = programs.init(train_loop.init_key(0), h_init=consts.h_init)
    before = jax.device_get(state.params)
    (batch,) = _batches(data[0], mesh, 1)
    new, metrics = programs.steps["joint"](state, batch, jax.random.key(1), consts)
    after = jax.device_get(new.params)
    assert int(new.step) == 1
    assert all(np.isfinite(float(v)) for v in metrics.values())
    for module in ("backbone", "heads", "regressor"):
        deltas = [np.max(np.abs(a - b)) for a, b in zip(
            jax.tree.leaves(after[module]), jax.tree.leaves(before[module]), strict=True
        )]  # fmt: skip
        assert max(deltas) > 0, module
    assert float(metrics["silhouette"]) > 0  # gate "always": the rendered term is on


def test_fifty_steps_lower_the_loss(built, data):
    mesh, consts, programs = built
    state = programs.init(train_loop.init_key(0), h_init=consts.h_init)
    batches = _batches(data[0], mesh, 4)
    losses = []
    for i in range(52):
        state, metrics = programs.steps["joint"](state, batches[i % 4], jax.random.key(1), consts)
        losses.append(float(metrics["loss"]))
    first, last = np.mean(losses[:4]), np.mean(losses[-4:])  # the same 4 batches
    assert np.all(np.isfinite(losses))
    assert last < 0.5 * first, (first, last)


class _Dying:
    """A sample sequence that raises (like a killed host) after ``limit`` reads."""

    def __init__(self, samples, limit):
        self.samples, self.limit, self.reads = samples, limit, 0

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        self.reads += 1
        if self.reads > self.limit:
            raise KeyboardInterrupt("simulated kill")
        return self.samples[i]


class _Sigterm(_Dying):
    """Sends SIGTERM to this process on read number ``limit``."""

    def __getitem__(self, i):
        self.reads += 1
        if self.reads == self.limit:
            os.kill(os.getpid(), signal.SIGTERM)
        return self.samples[i]


def test_resume_after_kill_equals_uninterrupted_run(tmp_path, data):
    train, val = data
    config = _config()
    full = train_loop.train_and_evaluate(
        config, workdir=str(tmp_path / "full"), train_samples=train, val_samples=val
    )
    killed = str(tmp_path / "killed")
    with pytest.raises(KeyboardInterrupt):  # dies while reading step 5's batch
        train_loop.train_and_evaluate(
            config, workdir=killed, train_samples=_Dying(train, 4 * 8), val_samples=val
        )
    assert checkpoint.Checkpointer(killed, keep=3, every=3).latest_step() == 3
    resumed = train_loop.train_and_evaluate(
        config, workdir=killed, train_samples=train, val_samples=val
    )
    assert int(resumed.step) == int(full.step) == 6
    _leaves_close(resumed.params, full.params, rtol=1e-6, atol=1e-7)
    _leaves_close(resumed.opt_state, full.opt_state, rtol=1e-6, atol=1e-7)
    records = [json.loads(x) for x in open(tmp_path / "full" / "metrics.jsonl")]
    assert any("eval" in r and np.isfinite(r["eval"]["kp3d_epe_mm"]) for r in records)
    assert os.path.exists(tmp_path / "full" / "eval" / "step_0000006.png")
    assert json.load(open(tmp_path / "full" / "config.json"))["train"]["num_steps"] == 6


def test_sigterm_saves_and_stops(tmp_path, data):
    train, val = data
    config = _config(**{"checkpoint.every": 100})
    workdir = str(tmp_path / "run")
    # SIGTERM arrives while step 2's batch is read: step 2 finishes, is saved, and the run ends.
    state = train_loop.train_and_evaluate(
        config, workdir=workdir, train_samples=_Sigterm(train, 8 + 3), val_samples=val
    )
    assert int(state.step) == 2
    assert checkpoint.Checkpointer(workdir, keep=3, every=100).latest_step() == 2
    assert signal.getsignal(signal.SIGTERM) is not None  # handler restored


def test_init_from_restores_params_only(tmp_path, built, data):
    mesh, consts, programs = built
    state = programs.init(train_loop.init_key(3), h_init=consts.h_init)
    (batch,) = _batches(data[0], mesh, 1)
    state, _ = programs.steps["joint"](state, batch, jax.random.key(1), consts)
    source_dir = str(tmp_path / "source")
    ckpt = checkpoint.Checkpointer(source_dir, keep=1, every=1)
    ckpt.save(1, state, config={}, data_state={"epoch": 0})
    ckpt.close()
    fresh = checkpoint.Checkpointer(str(tmp_path / "new"), keep=1, every=1)
    config = _config(**{"checkpoint.init_from": source_dir})
    restored, data_state = train_loop._initial_state(config, fresh, programs, consts)
    fresh.close()
    assert data_state is None and int(restored.step) == 0
    _leaves_close(restored.params, state.params, rtol=0, atol=0)
    _leaves_close(restored.batch_stats, state.batch_stats, rtol=0, atol=0)
    initial = programs.init(train_loop.init_key(config.seed), h_init=consts.h_init)
    _leaves_close(restored.opt_state, initial.opt_state, rtol=0, atol=0)


def test_init_from_an_exported_model_directory(tmp_path, built, data):
    """A model directory (float32 export) initialises params and statistics exactly."""
    from hand_jax.network import store

    mesh, consts, programs = built
    state = programs.init(train_loop.init_key(4), h_init=consts.h_init)
    (batch,) = _batches(data[0], mesh, 1)
    state, _ = programs.steps["joint"](state, batch, jax.random.key(1), consts)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text(_config().to_json())
    trees = {"params": state.params, "batch_stats": state.batch_stats}
    store.save_params(str(model_dir / store.PARAMS_FILE), trees, dtype=np.float32)
    fresh = checkpoint.Checkpointer(str(tmp_path / "new"), keep=1, every=1)
    config = _config(**{"checkpoint.init_from": str(model_dir)})
    restored, data_state = train_loop._initial_state(config, fresh, programs, consts)
    fresh.close()
    assert data_state is None and int(restored.step) == 0
    _leaves_close(restored.params, state.params, rtol=0, atol=0)
    _leaves_close(restored.batch_stats, state.batch_stats, rtol=0, atol=0)


def test_batch_iterator_state_round_trip(data):
    a = train_loop.BatchIterator(data[0], global_batch=8, seed=5)
    for _ in range(5):  # crosses the epoch boundary (4 batches per epoch)
        next(a)
    b = train_loop.BatchIterator(data[0], global_batch=8, seed=5)
    b.set_state(a.get_state())
    for _ in range(3):
        np.testing.assert_array_equal(next(a)["image"], next(b)["image"])
    epoch0 = train_loop.BatchIterator(data[0], global_batch=8, seed=5)
    ids = np.concatenate([next(epoch0)["keypoints_2d"][:, 0, 0] for _ in range(4)])
    expected = [s["keypoints_2d"][0, 0] for s in data[0]]
    assert sorted(ids.tolist()) == sorted(expected)  # one epoch visits every sample once


def test_stages_follow_the_config():
    cfg = _config(**{"train.e2d_steps": 2, "train.e3d_steps": 3}).train
    assert [train_loop.stage_at(s, cfg) for s in range(7)] == ["e2d"] * 2 + ["e3d"] * 3 + [
        "joint"
    ] * 2


def _dict_config(config, section, key, value):
    d = config.to_dict()
    d[section][key] = value
    return ml_collections.ConfigDict(d)


@pytest.mark.parametrize(
    "section, key, value, message",
    [
        ("train", "bogus", 1, "unknown key 'train.bogus'"),
        ("train", "num_steps", "10", "'train.num_steps' must be of type int"),
        ("model", "rot_repr", "euler", "model.rot_repr='euler'"),
        ("data", "image_size", 48, "multiple of 32"),
        ("loss", "silhouette_gate", "sometimes", "loss.silhouette_gate"),
        ("train", "global_batch_size", 0, "global_batch_size"),
    ],
)
def test_bad_config_is_a_clear_error(section, key, value, message):
    config = _dict_config(default.get_config(), section, key, value)
    with pytest.raises(ValueError) as err:
        train_config.validate_config(config, reference=default.get_config())
    assert message in str(err.value)


def test_launcher_rejects_bad_config_before_compute(tmp_path):
    workdir = tmp_path / "never"
    for flag, needle in [
        ("--config.train.bogus=1", "bogus"),
        ("--config.train.num_steps=abc", "num_steps"),
    ]:
        run = subprocess.run(
            [sys.executable, "-m", "launch.train",
             "--config=launch/configs/synthetic.py:cpu_small", f"--workdir={workdir}", flag],
            cwd=ROOT, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert run.returncode != 0
        assert needle in run.stderr, run.stderr[-2000:]
    assert not workdir.exists()


def _tiny_flags(workdir, data_dir, num_steps):
    overrides = {
        "model.depth": 10, "model.width": 4, "model.head_width": 8, "model.hidden": 16,
        "model.conv_width": 8, "model.num_iterations": 2, "data.image_size": 32,
        "loss.silhouette_size": 16, "train.global_batch_size": 8, "train.num_steps": num_steps,
        "train.e2d_steps": 0, "train.e3d_steps": 0, "train.log_every": 1,
        "train.eval_every": 100000, "train.eval_examples": 8, "checkpoint.every": 100000,
    }  # fmt: skip
    return [
        sys.executable, "-m", "launch.train", "--config=launch/configs/synthetic.py:cpu_small",
        f"--workdir={workdir}", f"--data_dir={data_dir}",
        *(f"--config.{k}={v}" for k, v in overrides.items()),
    ]  # fmt: skip


@pytest.mark.slow
def test_launcher_sigterm_saves_exits_cleanly_and_resumes(tmp_path):
    data_dir, workdir = tmp_path / "synthetic", tmp_path / "run"
    subprocess.run(
        [sys.executable, "-m", "launch.make_synthetic", f"--out_dir={data_dir}", "--num_train=32",
         "--num_test=8", "--num_val=8", "--image_size=64", "--progress=false",
         "--contact_sheet=0"],
        cwd=ROOT, check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    proc = subprocess.Popen(_tiny_flags(workdir, data_dir, 100000), cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    metrics = workdir / "metrics.jsonl"
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    stopped = checkpoint.Checkpointer(str(workdir), keep=3, every=1).latest_step()
    assert stopped is not None and stopped >= 3 and "Stopping at step" in stderr
    resume = subprocess.run(_tiny_flags(workdir, data_dir, stopped + 2), cwd=ROOT, text=True,
                            capture_output=True, timeout=600)  # fmt: skip
    assert resume.returncode == 0, resume.stderr[-3000:]
    assert f"Resuming from the latest checkpoint in the workdir: step {stopped}" in resume.stderr
    steps = [json.loads(x).get("step") for x in metrics.read_text().splitlines()]
    assert steps[-1] == stopped + 2


def test_one_step_moves_every_keypoint_a_bounded_amount_from_the_mean_hand(built, data):
    # The first estimate is exactly the mean hand, and one optimiser step at the configured
    # learning rate moves the projected keypoints by a fraction of a pixel, not tens of pixels
    # (the camera shift in metres once moved them ~25 px per 0.1 of output).
    mesh, consts, programs = built
    state = programs.init(train_loop.init_key(0), h_init=consts.h_init)
    images = np.stack([s["image"] for s in data[1]])
    size = images.shape[1]
    project = jax.jit(jax.vmap(
        lambda h: forward.project(consts, h, runtime=programs.runtime, image_size=size)[2]
    ))  # fmt: skip
    mean_kp2d = np.asarray(project(consts.h_init[None]))[0]
    before = programs.predict(state, images, None, consts)
    np.testing.assert_allclose(before["kp2d"], np.broadcast_to(mean_kp2d, before["kp2d"].shape),
                               atol=1e-4)  # fmt: skip
    (batch,) = _batches(data[0], mesh, 1)
    state, _ = programs.steps["joint"](state, batch, jax.random.key(1), consts)
    after = np.asarray(programs.predict(state, images, None, consts)["kp2d"])
    moved = np.linalg.norm(after - mean_kp2d, axis=-1)  # [B, K] pixels of a 32 px crop
    assert 1e-4 < moved.max() < 1.0, moved.max()  # measured 0.25 px
