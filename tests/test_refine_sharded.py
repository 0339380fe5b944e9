"""Refinement with the batch sharded over 8 simulated devices equals the unsharded run."""

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import jax, numpy as np
    from hand_jax import mano, refine
    from hand_jax.refine import io as refine_io
    assert jax.device_count() == 8, jax.devices()
    model = mano.load_model()
    _, init, evidence = refine_io.synthetic_problems(
        jax.random.key(5), model, num=8, image_size=32)
    mesh = jax.make_mesh((8,), ("data",))
    sharded = refine.make_refine_fn(model, num_steps=5, image_size=32, mesh=mesh)
    plain = refine.make_refine_fn(model, num_steps=5, image_size=32)
    a, b = sharded(init, evidence), plain(init, evidence)
    assert len(a.losses.sharding.device_set) == 8, a.losses.sharding
    by_row = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    assert a.losses.sharding.is_equivalent_to(by_row, 2), a.losses.sharding  # split by example
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=1e-5)
    print("OK")
    """
)


def test_sharded_refinement_equals_single_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join([repo, env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]
