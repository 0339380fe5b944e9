"""The synthetic refinement problems follow their documented distributions (``synthetic_problems``):
sample moments of thousands of draws against the docstring, with the renderer stubbed out (the
evidence renderer has its own tests), and every noise source independent of the others."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hand_jax import mano
from hand_jax.params import default_params, default_perspective_params
from hand_jax.refine import io as refine_io
from hand_jax.refine.energy import Evidence

NUM, SIZE = 4000, 32
K = np.array([[60.0, 0.0, 16.0], [0.0, 60.0, 16.0], [0.0, 0.0, 1.0]], np.float32)


@pytest.fixture(scope="module")
def model():
    return mano.load_model()


def _draw(model, monkeypatch, **kwargs):
    calls = []

    def fake_render(model, params, *, image_size, sigma=None, K=None):
        calls.append((image_size, sigma, K))
        return Evidence(jnp.zeros((21, 2)), jnp.ones(21), jnp.zeros((image_size, image_size)))

    monkeypatch.setattr(refine_io, "render_evidence", fake_render)
    out = refine_io.synthetic_problems(
        jax.random.key(11), model, num=NUM, image_size=SIZE, **kwargs
    )
    return calls, *(jax.tree.map(np.asarray, x) for x in out)


def _std(x, want, name):
    x = np.asarray(x, np.float64)
    assert abs(x.mean()) < 4 * want / np.sqrt(x.size) + 1e-9, f"{name}: mean {x.mean()}"
    np.testing.assert_allclose(x.std(), want, rtol=0.04, err_msg=name)
    return (x / want).reshape(-1)


def _angles(q, base):
    """Rotation angle of q * conj(base) for [N, 4] unit quaternions."""
    cos_half = np.abs(q @ np.asarray(base))  # |w| of q * conj(base)
    return 2 * np.arccos(np.clip(cos_half, 0.0, 1.0))


def _independent(noises):
    m = min(z.size for z in noises.values())
    names = list(noises)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            corr = np.corrcoef(noises[a][:m], noises[b][:m])[0, 1]
            assert abs(corr) < 0.05, f"{a} and {b} are correlated ({corr:.3f}): a shared key?"


def _uncorrelated_columns(x):
    """The components of the camera noise are drawn independently."""
    corr = np.corrcoef(x.T)
    np.testing.assert_allclose(corr - np.diag(np.diag(corr)), 0.0, atol=0.1)  # 6 sigma


CASES = {
    "defaults": ({}, dict(pose_std=0.3, betas_std=0.5, cam_rel=0.05, rot_range=0.6, sigma=0.5)),
    "given": (
        dict(pose_std=0.2, betas_std=0.1, cam_rel=0.1, rot_range=0.3, sigma=0.7),
        dict(pose_std=0.2, betas_std=0.1, cam_rel=0.1, rot_range=0.3, sigma=0.7),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_weak_perspective_problems_follow_the_docstring(model, monkeypatch, case):
    kwargs, want = CASES[case]
    calls, gt, init, evidence = _draw(model, monkeypatch, **kwargs)
    base = default_params(model)
    assert calls == [(SIZE, want["sigma"], None)] and evidence.K is None
    noises = {
        "gt pose": _std(gt.pose - np.asarray(base.pose), want["pose_std"] / 2, "gt pose"),
        "gt betas": _std(gt.betas, 0.5, "gt betas"),
        "init pose": _std(init.pose - gt.pose, want["pose_std"], "init pose"),
        "init betas": _std(init.betas - gt.betas, want["betas_std"], "init betas"),
    }
    np.testing.assert_array_equal(gt.cam, np.broadcast_to(base.cam, gt.cam.shape))
    s = gt.cam[:, :1].astype(np.float64)
    scale = _std(init.cam[:, :1] / s - 1, want["cam_rel"], "init cam scale")
    shift = _std((init.cam[:, 1:] - gt.cam[:, 1:]) * s, want["cam_rel"], "init cam shift")
    cam_noise = np.concatenate([scale[:, None], shift.reshape(NUM, 2)], 1)
    _uncorrelated_columns(cam_noise)
    noises["init cam"] = cam_noise.reshape(-1)
    angles = _angles(gt.global_rot, base.global_rot)
    assert angles.max() <= want["rot_range"] + 1e-3
    np.testing.assert_allclose(angles.mean(), want["rot_range"] / 2, rtol=0.04)  # |U(-r, r)|
    np.testing.assert_array_equal(init.global_rot, gt.global_rot)
    _independent(noises)


def test_perspective_problems_perturb_the_translation_by_the_depth(model, monkeypatch):
    calls, gt, init, evidence = _draw(model, monkeypatch, K=K)
    base = default_perspective_params(model, jnp.asarray(K), image_size=SIZE)
    assert len(calls) == 1 and calls[0][:2] == (SIZE, 0.5)
    np.testing.assert_array_equal(calls[0][2], K)
    np.testing.assert_allclose(gt.cam, np.broadcast_to(base.cam, gt.cam.shape), rtol=1e-6)
    np.testing.assert_array_equal(evidence.K, np.broadcast_to(K, (NUM, 3, 3)))
    depth = gt.cam[:, 2:3].astype(np.float64)
    _uncorrelated_columns(_std((init.cam - gt.cam) / depth, 0.05, "init cam").reshape(NUM, 3))
