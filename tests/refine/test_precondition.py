"""The refinement's preconditioned space (``hand_jax.params.precondition``).

Adam moves every coordinate by about its learning rate per step, so the space it works in must
give every parameter group a comparable effect in pixels. Measured with the Jacobian of the
mean hand's 2D keypoints (forward-mode, exact), against closed forms of the camera maps.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hand_jax import mano, refine
from hand_jax.params import (
    HandParams,
    default_params,
    default_perspective_params,
    hand_forward,
    precondition,
    screen_hand,
    zeros_like,
)
from hand_jax.refine import io as refine_io

S = 64


@pytest.fixture(scope="module")
def model():
    return mano.load_model()


def _pixels_per_unit(model, init, decode, *, raw=False):
    """RMS keypoint motion (pixels) per unit of each coordinate, per group."""
    jac = jax.jacfwd(lambda x: hand_forward(model, decode(x), image_size=S)[2])
    x0 = zeros_like(init) if raw is False else init
    out = {}
    for name, j in zip(HandParams._fields, jac(x0), strict=True):
        j = np.asarray(j).reshape(42, -1)
        out[name] = np.sqrt((j**2).sum(0) / 21)
    return out


def test_every_group_moves_the_keypoints_comparably(model):
    init = default_params(model)
    pre = _pixels_per_unit(model, init, lambda z: precondition(init, z, image_size=S))
    raw = _pixels_per_unit(model, init, lambda p: p, raw=True)
    # The strongest coordinate of each group (betas: the first, the only one with a sizeable
    # effect on the embedded hand).
    strongest = {
        "global_rot": pre["global_rot"].max(),
        "pose": pre["pose"].max(),
        "betas": pre["betas"][0],
        "scale": pre["cam"][0],
        "shift": pre["cam"][1:].max(),
    }
    values = np.array(list(strongest.values()))
    assert np.all((values > 1.0) & (values < 8.0)), strongest
    assert values.max() / values.min() < 4.0, strongest
    # The raw parameters are what the preconditioning fixes: a unit of weak-perspective
    # translation moves the hand across the crop, a unit of scale a couple of pixels.
    assert raw["cam"][1:].min() / raw["cam"][0] > 50.0, raw["cam"]


def test_weak_perspective_camera_closed_form(model):
    init = default_params(model)
    z = zeros_like(init)._replace(cam=jnp.array([2.0, -1.0, 3.0]))
    p = precondition(init, z, image_size=S)
    s0, t0 = float(init.cam[0]), np.asarray(init.cam[1:])
    s = s0 * np.exp(0.1 * 2.0)
    np.testing.assert_allclose(p.cam[0], s, rtol=1e-6)
    # The wrist's position in ndc, s * t, moves by SHIFT_UNIT per unit.
    np.testing.assert_allclose(
        s * np.asarray(p.cam[1:]), s0 * t0 + 0.1 * np.array([-1, 3.0]), atol=1e-6
    )
    same = precondition(init, zeros_like(init), image_size=S)
    for a, b in zip(same, init, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_perspective_camera_moves_the_wrist_in_pixels(model):
    K = jnp.array([[120.0, 0, 30.0], [0, 100.0, 34.0], [0, 0, 1]])
    init = default_perspective_params(model, K, image_size=S)
    wrist = lambda p: screen_hand(model, p, image_size=S, K=K)[2][0]  # noqa: E731
    z = zeros_like(init)._replace(cam=jnp.array([1.0, -2.0, 0.0]))
    moved = wrist(precondition(init, z, image_size=S, K=K)) - wrist(init)
    np.testing.assert_allclose(moved, 0.1 * S / 2 * np.array([1.0, -2.0]), atol=1e-3)
    z = zeros_like(init)._replace(cam=jnp.array([0.0, 0.0, 1.5]))
    deeper = precondition(init, z, image_size=S, K=K)
    np.testing.assert_allclose(deeper.cam[2], init.cam[2] * np.exp(0.15), rtol=1e-6)
    # Depth alone does not move the wrist's image position.
    np.testing.assert_allclose(wrist(deeper), wrist(init), atol=1e-3)


def _motion_per_group(model, fn, init, evidence):
    """RMS keypoint motion (pixels) of one refinement step, each group's update applied alone."""
    _, trajectory = fn(init, evidence)
    stepped = jax.tree.map(lambda x: x[:, 0], trajectory)
    kp = jax.vmap(lambda p: hand_forward(model, p, image_size=S)[2])
    base = kp(init)
    out = {}
    for name in HandParams._fields:
        moved = kp(init._replace(**{name: getattr(stepped, name)}))
        out[name] = float(np.sqrt(np.mean(np.sum((moved - base) ** 2, axis=-1))))
    return out


def test_one_step_moves_every_group_a_comparable_number_of_pixels(model):
    _, init, evidence = refine_io.synthetic_problems(jax.random.key(4), model, num=4, image_size=S)
    make = functools.partial(
        refine.make_refine_fn, model, num_steps=1, image_size=S, return_trajectory=True
    )
    pre = _motion_per_group(model, make(), init, evidence)
    assert all(0.2 < v < 4.0 for v in pre.values()), pre
    # Betas are left out of the ratio: beyond the first, the embedded hand's shape components
    # barely move the keypoints at all.
    moving = [pre[k] for k in ("global_rot", "pose", "cam")]
    assert max(moving) / min(moving) < 6.0, pre
    # Raw parameters at Adam's usual 1e-2: the camera jumps pixels while the rest barely move.
    raw = _motion_per_group(model, make(precondition=False), init, evidence)
    assert raw["cam"] > 2.0 and raw["cam"] / raw["betas"] > 20.0, raw
