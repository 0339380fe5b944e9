"""The refinement energy's parts against plain numpy: evidence sanitising, the silhouette
discrepancies (L2, BCE) with pixel weights, the proximity distance (no MANO: fast)."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hand_jax import mano
from hand_jax.params import HandParams, default_params, screen_hand
from hand_jax.refine import energy
from hand_jax.refine.energy import Evidence
from tests import mano_reference as ref


def test_sanitize_masks_non_finite_evidence_and_clips():
    kp = np.arange(42, dtype=np.float32).reshape(21, 2)
    kp[3, 0], kp[5, 1] = np.nan, np.inf
    conf = np.linspace(-0.5, 1.5, 21).astype(np.float32)
    conf[7] = np.nan
    mask = np.array([[0.5, np.nan], [1.5, -0.25]], np.float32)
    got_kp, got_conf, got_mask, weight = energy._sanitize(Evidence(kp, conf, mask))
    ok = np.ones(21, bool)
    ok[[3, 5, 7]] = False
    np.testing.assert_array_equal(got_conf, np.where(ok, np.clip(conf, 0, 1), 0))
    np.testing.assert_array_equal(got_kp, np.where(ok[:, None], kp, 0))
    np.testing.assert_array_equal(got_mask, [[0.5, 0.0], [1.0, 0.0]])
    np.testing.assert_array_equal(weight, [[1, 0], [1, 1]])


def _weighted_mean(per_pixel, weight):
    return np.sum(weight * per_pixel) / max(np.sum(weight), 1.0)


@pytest.mark.parametrize("kind", ["l2", "bce"])
def test_silhouette_discrepancy_matches_numpy(kind):
    rng = np.random.default_rng(0)
    alpha = rng.uniform(0, 1, (6, 6))
    alpha[0, :2] = [0.0, 1.0]  # BCE clips these to (1e-6, 1 - 1e-6)
    mask = rng.uniform(0, 1, (6, 6))
    weight = (rng.uniform(size=(6, 6)) > 0.3).astype(np.float64)
    if kind == "l2":
        per_pixel = (alpha - mask) ** 2
    else:
        a = np.clip(alpha, 1e-6, 1 - 1e-6)
        per_pixel = -(mask * np.log(a) + (1 - mask) * np.log(1 - a))
    # fewer than one weighted pixel: divided by 1, not by the (tiny) weight
    small = np.zeros((6, 6))
    small[2, 3] = 0.25
    with jax.enable_x64(True):
        got = energy._silhouette_discrepancy(jnp.asarray(alpha), mask, weight, kind)
        got_small = energy._silhouette_discrepancy(jnp.asarray(alpha), mask, small, kind)
    np.testing.assert_allclose(got, _weighted_mean(per_pixel, weight), rtol=1e-12)
    np.testing.assert_allclose(got_small, 0.25 * per_pixel[2, 3], rtol=1e-12)


def test_unknown_silhouette_loss_is_named():
    with pytest.raises(
        ValueError, match=re.escape("silhouette_loss: expected 'l2' or 'bce', got 'l1'")
    ):
        energy._silhouette_discrepancy(jnp.zeros((2, 2)), jnp.zeros((2, 2)), jnp.ones((2, 2)), "l1")


def test_proximity_is_the_squared_distance_over_every_field():
    rng = np.random.default_rng(1)
    a = HandParams(*(rng.normal(size=n) for n in (4, 45, 10, 3)))
    b = HandParams(*(rng.normal(size=n) for n in (4, 45, 10, 3)))
    want = sum(np.sum((x - y) ** 2) for x, y in zip(a, b, strict=True))
    np.testing.assert_allclose(energy._sq_dist(a, b), want, rtol=1e-5)


def test_evidence_defaults_to_the_weak_perspective_camera():
    assert Evidence(1, 2, 3).K is None


@pytest.mark.slow  # eager MANO on first use: 7 s (in the mutation runs, which include slow)
@pytest.mark.parametrize("mask_size", [16, 32])
def test_a_coarser_mask_renders_the_silhouette_at_its_own_scale(mask_size):
    """Pixel coordinates scale by M / S when the mask (M) is coarser than the crop (S = 32);
    depth and keypoints stay as they are."""
    model = mano.make_model(**ref.model_kwargs(ref.make_synthetic_arrays(seed=0, num_verts=60)))
    params = default_params(model)
    seen = {}

    def record(verts_px, faces, *, image_size, sigma):
        seen["verts_px"], seen["size"] = verts_px, image_size
        return jnp.zeros(image_size)

    _, alpha, kp2d = energy.silhouette_and_keypoints(
        model, params, image_size=32, sigma=1.0, silhouette_fn=record, mask_size=mask_size
    )
    _, verts_px, want_kp = screen_hand(model, params, image_size=32)
    assert seen["size"] == (mask_size, mask_size) and alpha.shape == (mask_size, mask_size)
    np.testing.assert_allclose(seen["verts_px"], verts_px * (mask_size / 32), rtol=1e-6)
    np.testing.assert_allclose(kp2d, want_kp, rtol=1e-6)


def test_render_evidence_default_blur_is_half_a_square_pixel(monkeypatch):
    model = mano.make_model(**ref.model_kwargs(ref.make_synthetic_arrays(seed=0, num_verts=60)))
    seen = {}

    def record(verts_px, faces, *, image_size, sigma):
        seen["sigma"] = sigma
        return jnp.full(image_size, 0.5)

    monkeypatch.setattr(energy.render, "soft_silhouette", record)
    evidence = energy.render_evidence(model, default_params(model), image_size=16)
    assert seen["sigma"] == 0.5 and evidence.K is None
    np.testing.assert_array_equal(evidence.mask, np.full((16, 16), 0.5))
    np.testing.assert_array_equal(evidence.confidence, np.ones(21))


def test_energy_terms_defaults_are_l2_at_one_square_pixel():
    model = mano.make_model(**ref.model_kwargs(ref.make_synthetic_arrays(seed=0, num_verts=60)))
    params = default_params(model)
    seen = {}

    def flat(verts_px, faces, *, image_size, sigma):
        seen["sigma"] = sigma
        return jnp.full(image_size, 0.25)

    mask = np.zeros((8, 8), np.float32)
    evidence = Evidence(np.zeros((21, 2), np.float32), np.zeros(21, np.float32), mask)
    terms = energy.energy_terms(model, params, evidence, params, image_size=8, silhouette_fn=flat)
    assert seen["sigma"] == 1.0
    np.testing.assert_allclose(terms["silhouette"], 0.25**2, rtol=1e-6)  # L2, not BCE


def test_default_weights_are_the_documented_ones():
    # The defaults chosen on the validation split (BUILD.md, the refinement weight tables).
    assert energy.DEFAULT_WEIGHTS == {
        "keypoints": 1.0, "silhouette": 1.0, "shape": 1e-3, "pose": 1e-3, "proximity": 1e-3,
        "keypoints_3d": 0.0,
    }  # fmt: skip


def test_evidence_is_usable_needs_one_confident_keypoint_or_one_known_pixel():
    kp, nan_mask = np.zeros((21, 2), np.float32), np.full((4, 4), np.nan, np.float32)
    conf = np.zeros(21, np.float32)
    one_kp = conf.copy()
    one_kp[4] = 0.5
    one_pixel = nan_mask.copy()
    one_pixel[1, 2] = 0.0
    usable = lambda c, m: bool(energy.evidence_is_usable(Evidence(kp, c, m)))  # noqa: E731
    assert not usable(conf, nan_mask)
    assert usable(one_kp, nan_mask)
    assert usable(conf, one_pixel)
    assert not usable(np.full(21, np.nan, np.float32), nan_mask)
