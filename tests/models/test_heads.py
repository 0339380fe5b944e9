"""fE2D heads: soft-argmax against a numpy loop, its pixel convention, confidence."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hand_jax.models import heads
from hand_jax.train import losses


def _soft_argmax_loop(hm, stride, threshold):
    h, w, k = hm.shape
    kps, conf = np.zeros((k, 2)), np.zeros(k)
    for c in range(k):
        m = hm[..., c].astype(np.float64)
        weights = np.maximum((m - m.min()) / (m.max() - m.min()) - threshold, 0.0)
        for i in range(h):
            for j in range(w):
                kps[c] += weights[i, j] * np.array([(j + 0.5) * stride, (i + 0.5) * stride])
        kps[c] /= weights.sum()
        conf[c] = min(max(m.max(), 0.0), 1.0)
    return kps, conf


def test_soft_argmax_matches_a_loop():
    hm = np.random.default_rng(0).normal(size=(5, 7, 3)).astype(np.float32)
    kps, conf = heads.soft_argmax(jnp.asarray(hm), stride=4, threshold=0.4)
    ref_k, ref_c = _soft_argmax_loop(hm, 4, 0.4)
    np.testing.assert_allclose(kps, ref_k, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(conf, ref_c, rtol=1e-6)


@pytest.mark.parametrize("size", [16, 64])
def test_soft_argmax_inverts_the_target_heatmaps(size):
    # Sub-pixel offsets, any map size: the background does not pull keypoints to the centre.
    rng = np.random.default_rng(size)
    kp = rng.uniform(12, 4 * size - 12, size=(6, 2)).astype(np.float32)
    hm = losses.gaussian_heatmaps(jnp.asarray(kp), size=(size, size), stride=4, sigma=1.5)
    kps, conf = heads.soft_argmax(0.7 * hm + 0.05, stride=4, threshold=0.5)
    np.testing.assert_allclose(kps, kp, atol=0.25)  # input pixels (1/16 of a heatmap pixel)
    np.testing.assert_allclose(conf, 0.75, atol=0.05)


def test_soft_argmax_gradients_finite_for_flat_and_peaky_maps():
    for hm in (jnp.zeros((4, 4, 2)), jnp.full((4, 4, 2), 1e3).at[0, 0].set(2e3)):
        g = jax.grad(lambda x: jnp.sum(heads.soft_argmax(x, stride=4, threshold=0.5)[0]))(hm)
        assert np.all(np.isfinite(g))
    kps, _ = heads.soft_argmax(jnp.zeros((4, 6, 1)), stride=4, threshold=0.5)
    np.testing.assert_allclose(kps, [[12.0, 8.0]], atol=1e-4)  # constant map: its centre
