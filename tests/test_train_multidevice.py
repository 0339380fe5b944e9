"""Scale-out: 8 simulated devices and 2 processes on loopback train exactly like 1 device.

- One subprocess with 8 simulated CPU devices (``--xla_force_host_platform_device_count=8``)
  runs one joint-stage step on a 1-device mesh and on an 8-device mesh (batch split 1 example
  per device, batch norm over the global batch): the states must agree.
- (slow) Three subprocesses run 2 steps of ``train_and_evaluate`` concurrently: 1 process, and
  2 processes with 1 device each joined by ``jax.distributed.initialize`` over loopback, sharing
  one workdir (per-host data rows, the collective orbax save, the evaluation gather). The two
  hosts must hold identical parameters, equal to the single process's.
"""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WORKER = """
import sys, numpy as np, jax
coordinator, num_processes, process_id, out, workdir = sys.argv[1:6]
if coordinator != "none":
    jax.distributed.initialize(coordinator, int(num_processes), int(process_id))
from tests.train_helpers import tiny_config, toy_samples
from hand_jax.train import loop as train_loop
config = tiny_config(**{"train.e2d_steps": 0, "train.e3d_steps": 0, "train.num_steps": 2,
                        "optim.schedule": "constant", "train.eval_every": 2})
train, val = toy_samples(16), toy_samples(8, seed=1)
state = train_loop.train_and_evaluate(config, workdir=workdir, train_samples=train, val_samples=val)
leaves = jax.tree_util.tree_flatten_with_path(jax.device_get(state.params))[0]
np.savez(out, **{jax.tree_util.keystr(k): np.asarray(v) for k, v in leaves})
print("devices", jax.device_count(), "processes", jax.process_count(), "step", int(state.step))
"""

# One step of the joint stage on a 1-device mesh and on an 8-device mesh, same global batch.
MESHES = """
import functools, sys, numpy as np, jax
from tests.train_helpers import tiny_config, toy_samples
from hand_jax import sharding
from hand_jax.network import batches as nb
from hand_jax.train import loop as train_loop
from hand_jax.train import step as tr
assert jax.device_count() == 8
# No silhouette here (compile time): the slow two-process test runs it across processes.
config = tiny_config(**{"train.e2d_steps": 0, "train.e3d_steps": 0, "optim.schedule": "constant",
                        "loss.silhouette_gate": "never"})
_, consts, programs = train_loop.build(config)
init = functools.partial(tr.create_train_state, model=programs.model,
                         optimizer=programs.optimizer, image_size=config.data.image_size)
initial = jax.device_get(jax.jit(init)(train_loop.init_key(0), h_init=consts.h_init))
batch = nb.stack_samples(toy_samples(8))
out = {}
for n in (1, 8):
    mesh = jax.make_mesh((n,), ("data",), axis_types=(jax.sharding.AxisType.Auto,),
                         devices=jax.devices()[:n])
    c = jax.device_put(consts, sharding.replicated(mesh, consts))
    state = jax.device_put(initial, sharding.replicated(mesh, initial))
    b = nb.to_global(batch, sharding.batch_sharding(mesh))
    assert len(b["image"].sharding.device_set) == n
    state, metrics = programs.steps["joint"](state, b, jax.random.key(1), c)
    assert len(state.params["heads"]["heatmap"]["kernel"].sharding.device_set) == n
    for k, v in jax.tree_util.tree_flatten_with_path(jax.device_get(state))[0]:
        out[f"{n}{jax.tree_util.keystr(k)}"] = np.asarray(v)
    out[f"{n}loss"] = np.asarray(metrics["loss"])
np.savez(sys.argv[1], **out)
"""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(out, workdir, *, devices=1, coordinator="none", num_processes=1, process_id=0):
    env = _env(devices)
    args = [sys.executable, "-c", WORKER, coordinator, str(num_processes), str(process_id), out,
            workdir]  # fmt: skip
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def _env(devices):
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
    # Lower backend optimisation: these runs are compile-bound (about 2x faster to compile).
    env["XLA_FLAGS"] = (
        f"--xla_force_host_platform_device_count={devices} --xla_backend_optimization_level=0"
    )
    return env


def test_eight_devices_match_one_device(tmp_path):
    out = tmp_path / "meshes.npz"
    run = subprocess.run([sys.executable, "-c", MESHES, str(out)], cwd=ROOT, env=_env(8),
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stderr[-4000:]
    r = dict(np.load(out))
    names = [k[1:] for k in r if k.startswith("1")]
    assert any("opt_state" in n or "params" in n for n in names)
    for name in names:  # params, batch stats, optimiser state, step, gate, loss
        np.testing.assert_allclose(r["8" + name], r["1" + name], rtol=1e-4, atol=1e-5, err_msg=name)


@pytest.mark.slow
def test_two_processes_agree_and_match_one_process(tmp_path):
    coordinator = f"127.0.0.1:{_free_port()}"
    hosts = dict(coordinator=coordinator, num_processes=2)  # one shared workdir, as on a pod
    procs = {
        "one": _launch(str(tmp_path / "one.npz"), str(tmp_path / "one")),
        "host0": _launch(str(tmp_path / "host0.npz"), str(tmp_path / "hosts"), **hosts),
        "host1": _launch(str(tmp_path / "host1.npz"), str(tmp_path / "hosts"), **hosts,
                         process_id=1),
    }  # fmt: skip
    logs = {}
    for name, proc in procs.items():
        try:
            stdout, stderr = proc.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            for p in procs.values():
                p.kill()
            raise
        assert proc.returncode == 0, f"{name} failed:\n{stderr[-4000:]}"
        logs[name] = stdout
    params = {name: dict(np.load(tmp_path / f"{name}.npz")) for name in procs}
    assert "devices 1 processes 1 step 2" in logs["one"]
    for host in ("host0", "host1"):
        assert "devices 2 processes 2 step 2" in logs[host]
    _assert_same(params["host0"], params["host1"], rtol=0, atol=0)
    _assert_same(params["host0"], params["one"], rtol=1e-4, atol=1e-5)
    steps = os.listdir(tmp_path / "hosts" / "checkpoints")
    assert "2" in steps  # the collective save of both processes completed


def _assert_same(a, b, rtol, atol):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=rtol, atol=atol, err_msg=key)
