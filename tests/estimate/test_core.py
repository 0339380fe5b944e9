"""The estimation function: network + refinement on the network's own evidence, one program.

A tiny untrained network (``tests.train_helpers.tiny_config``) is enough: every property here
holds for any weights (refinement lowers the energy of its own evidence; zero steps is the
network; batching, compilation and sharding do not change the numbers).
"""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hand_jax import estimate, refine
from hand_jax.models import dhpe
from hand_jax.network import forward
from hand_jax.train import loop as train_loop
from tests.train_helpers import tiny_config, toy_samples


def tiny_network(seed: int = 0) -> estimate.Network:
    config = tiny_config()
    mesh, consts, programs = train_loop.build(config)
    state = programs.init(jax.random.key(seed), h_init=consts.h_init)
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    return estimate.Network(
        programs.model, variables, consts, programs.runtime, config.data.image_size,
        config.data.crop_margin, mesh, config.train.global_batch_size,
    )  # fmt: skip


@pytest.fixture(scope="module")
def net():
    return tiny_network()


@pytest.fixture(scope="module")
def images():
    return np.stack([s["image"] for s in toy_samples(4, seed=3)])


def test_zero_steps_is_the_network(net, images):
    e = estimate.make_estimate_fn(net, refine_steps=0)(images)
    p = forward.predict(net.variables, jnp.asarray(images), net.consts, module=net.module,
                        runtime=net.runtime)  # fmt: skip
    np.testing.assert_allclose(e.h, p["h"], atol=1e-6)
    np.testing.assert_allclose(e.h_network, p["h"], atol=1e-6)
    np.testing.assert_allclose(e.keypoints_3d, p["kp3d"], atol=1e-6)
    np.testing.assert_allclose(e.verts, p["verts"], atol=1e-6)
    np.testing.assert_allclose(e.energy_before, e.energy_after)
    assert e.energy.shape == (4, 0)


def test_refinement_lowers_every_energy(net, images):
    e = estimate.make_estimate_fn(net, refine_steps=15)(images)
    assert np.all(np.asarray(e.usable))
    assert np.all(np.asarray(e.energy_after) < np.asarray(e.energy_before)), (
        e.energy_before, e.energy_after,
    )  # fmt: skip
    # The energy before is that of the network's estimate: the first entry of the trace.
    np.testing.assert_allclose(e.energy[:, 0], e.energy_before, rtol=1e-5)
    # The refined h is a different hand whose reprojection is what the Estimate reports.
    assert float(jnp.abs(e.h - e.h_network).max()) > 1e-3
    p = dhpe.to_hand_params(e.h, rot_repr=net.runtime.rot_repr, num_betas=net.runtime.num_betas)
    kp2d = jax.vmap(lambda q: refine.forward(net.consts.hand_model, q, image_size=32)[2])(p)
    np.testing.assert_allclose(kp2d, e.keypoints_2d, atol=1e-3)


def test_evidence_resolution_and_confidences(net, images):
    p = forward.predict(net.variables, jnp.asarray(images), net.consts, module=net.module,
                        runtime=net.runtime)  # fmt: skip
    e = estimate.make_estimate_fn(net, refine_steps=0, confidence_floor=0.5)(images)
    # By default the mask is compared at its own resolution: the network's map, unresized.
    np.testing.assert_allclose(e.evidence.mask, p["mask"], atol=1e-6)
    m = net.runtime.silhouette_size
    wide = estimate.make_estimate_fn(net, refine_steps=0, silhouette_size=m)(images)
    assert wide.evidence.mask.shape == (4, m, m) and m != p["mask"].shape[1]
    assert float(e.evidence.mask.min()) >= 0.0 and float(e.evidence.mask.max()) <= 1.0
    conf = np.asarray(e.evidence.confidence)
    assert conf.min() >= 0.0 and conf.max() <= 1.0
    # The floor zeroes low confidences.
    raw = np.asarray(p["confidence"])
    np.testing.assert_allclose(conf, np.where(raw >= 0.5, raw, 0.0), atol=1e-6)
    np.testing.assert_allclose(e.evidence.keypoints_2d, p["keypoints2d"], atol=1e-4)


def test_silhouette_setup_scales_the_blur_and_decimates(net):
    m0, sigma0 = net.runtime.silhouette_size, net.runtime.silhouette_sigma
    half = estimate.core.silhouette_setup(net, size=m0 // 2, faces=None)
    assert half.size == m0 // 2 and half.faces is None
    assert half.sigma == pytest.approx(sigma0 / 4)  # the same blur in crop units
    proxy = estimate.core.silhouette_setup(net, size=m0, faces=400).faces
    full = np.asarray(net.consts.hand_model.faces)
    assert 0 < len(proxy) <= 400 < len(full)
    assert set(np.unique(proxy)) <= set(np.unique(full))  # the hand's own vertices
    assert estimate.core.silhouette_setup(net, faces=0).faces is None
    with pytest.raises(ValueError, match="silhouette_size"):
        estimate.core.silhouette_setup(net, size=2)


def test_network_evidence_resizes_the_mask_bilinearly():
    mask = np.zeros((1, 4, 4), np.float32)
    mask[0, :, 2:] = 1.0  # right half
    out = {"keypoints2d": jnp.zeros((1, 21, 2)), "confidence": jnp.full((1, 21), 1.5),
           "mask": jnp.asarray(mask)}  # fmt: skip
    ev = estimate.network_evidence(out, mask_size=8)
    got = np.asarray(ev.mask[0])
    # Exact 2x: the left two columns and right two columns of 8 stay 0 and 1; the two
    # columns beside the edge interpolate to 1/4 and 3/4 (pixel centres at + 0.5).
    np.testing.assert_allclose(got[:, :3], 0.0, atol=1e-6)
    np.testing.assert_allclose(got[:, 3], 0.25, atol=1e-6)
    np.testing.assert_allclose(got[:, 4], 0.75, atol=1e-6)
    np.testing.assert_allclose(got[:, 5:], 1.0, atol=1e-6)
    np.testing.assert_allclose(ev.confidence, 1.0)  # clipped to [0, 1]


def test_batched_equals_one_by_one_and_compiles_once(net, images):
    fn = estimate.make_estimate_fn(net, refine_steps=5)
    batched = fn(images)
    for i in range(2):
        one = estimate.make_estimate_fn(net, refine_steps=5)(images[i : i + 1])
        np.testing.assert_allclose(one.h[0], batched.h[i], atol=2e-4)
        np.testing.assert_allclose(one.energy_after[0], batched.energy_after[i], rtol=1e-3)
    fn(images + 0)  # same shapes: no new compilation
    fn(images[::-1].copy())
    assert fn.compiled._cache_size() == 1


def test_wrong_image_shape_is_a_clear_error(net, images):
    fn = estimate.make_estimate_fn(net, refine_steps=0)
    with pytest.raises(ValueError, match=r"images: expected \[B, 32, 32, 3\]"):
        fn(images[:, :16])
    with pytest.raises(ValueError, match="refine_steps"):
        estimate.make_estimate_fn(net, refine_steps=-1)
    with pytest.raises(ValueError, match="unknown keys"):
        estimate.make_estimate_fn(net, weights={"keypoint": 1.0})


SHARDED = textwrap.dedent(
    """
    import jax, numpy as np
    from hand_jax import estimate
    from tests.estimate.test_core import tiny_network
    from tests.train_helpers import toy_samples
    assert jax.device_count() == 8
    net = tiny_network()
    images = np.stack([s["image"] for s in toy_samples(8, seed=3)])
    a = estimate.make_estimate_fn(net, refine_steps=4, mesh=net.mesh)(images)
    cpu0 = jax.devices()[0]
    one = net._replace(variables=jax.device_put(net.variables, cpu0),
                       consts=jax.device_put(net.consts, cpu0), mesh=None)
    b = estimate.make_estimate_fn(one, refine_steps=4)(jax.device_put(images, cpu0))
    assert len(a.h.sharding.device_set) == 8, a.h.sharding
    np.testing.assert_allclose(a.h, b.h, atol=2e-4)
    np.testing.assert_allclose(a.energy_after, b.energy_after, rtol=1e-3)
    print("ok")
    """
)


@pytest.mark.slow  # ~1 min in a subprocess; sharded refinement and training stay in the default run
def test_eight_devices_equal_one():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
               JAX_PLATFORMS="cpu")  # fmt: skip
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", SHARDED], env=env, cwd=root,
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-3000:]


def _perspective(net):
    import dataclasses

    return net._replace(runtime=dataclasses.replace(net.runtime, camera="perspective"))


def _crop_Ks(n, size=32):
    """Off-centre crops of a wide lens (principal points away from the crop centre)."""
    return np.stack(
        [[[30.0, 0, size / 2 + 9 * i], [0, 30.0, size / 2 - 5 * i], [0, 0, 1]] for i in range(n)]
    ).astype(np.float32)


def test_perspective_estimate_needs_K_and_zero_steps_is_the_network(net, images):
    pnet = _perspective(net)
    fn = estimate.make_estimate_fn(pnet, refine_steps=0)
    with pytest.raises(ValueError, match="perspective"):
        fn(images)
    Ks = _crop_Ks(len(images))
    e = fn(images, K=Ks)
    p = forward.predict(pnet.variables, jnp.asarray(images), pnet.consts, module=pnet.module,
                        runtime=pnet.runtime, K=Ks)  # fmt: skip
    # h goes to the camera frame for refinement and back: unchanged at zero steps.
    np.testing.assert_allclose(e.h, p["h"], atol=2e-5)
    np.testing.assert_allclose(e.keypoints_2d, p["kp2d"], atol=2e-3)
    weak = forward.predict(net.variables, jnp.asarray(images), net.consts, module=net.module,
                           runtime=net.runtime)  # fmt: skip
    assert float(jnp.abs(p["kp2d"] - weak["kp2d"]).max()) > 0.1  # K is used


def test_perspective_refinement_fits_perspective_evidence(net, images):
    """Evidence rendered from a known hand through K: refinement moves towards its keypoints."""
    pnet = _perspective(net)
    Ks = _crop_Ks(len(images))
    rt = pnet.runtime
    h0 = np.asarray(forward.predict(pnet.variables, jnp.asarray(images), pnet.consts,
                                    module=pnet.module, runtime=rt, K=Ks)["h"])  # fmt: skip
    target = h0.copy()
    target[:, 4:49] += 0.3  # another articulation
    target[:, -2:] += 0.1  # and place in the crop
    true = jax.vmap(lambda h, k: forward.camera_params(h, k, runtime=rt, image_size=32))(
        jnp.asarray(target), Ks
    )
    fn = estimate.make_estimate_fn(pnet, refine_steps=40, weights={"proximity": 0.0})
    ev = jax.vmap(lambda p, k: refine.render_evidence(pnet.consts.hand_model, p, image_size=32,
                                                      K=k))(true, Ks)  # fmt: skip
    mask = jax.image.resize(ev.mask, (len(images), fn.silhouette.size, fn.silhouette.size),
                            method="linear")  # fmt: skip
    e = fn(images, refine.Evidence(ev.keypoints_2d, ev.confidence, mask), K=Ks)
    before = np.linalg.norm(np.asarray(e.keypoints_2d_network) - ev.keypoints_2d, axis=-1).mean()
    after = np.linalg.norm(np.asarray(e.keypoints_2d) - ev.keypoints_2d, axis=-1).mean()
    assert after < 0.5 * before, (before, after)
