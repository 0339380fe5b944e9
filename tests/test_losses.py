"""Losses: agreement with plain-numpy loops, invariances, finite gradients (float64 checks)."""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from hand_jax.train import losses


def test_gaussian_heatmaps_match_a_loop():
    kp = np.array([[5.0, 9.0], [14.5, 2.25], [-3.0, 40.0]], np.float32)
    h, w, stride, sigma = 6, 5, 4, 1.3
    out = np.asarray(losses.gaussian_heatmaps(kp, size=(h, w), stride=stride, sigma=sigma))
    ref = np.zeros((h, w, 3))
    for k in range(3):
        for i in range(h):
            for j in range(w):
                # heatmap pixel (i, j) has its centre at input pixel ((j + .5) s, (i + .5) s)
                du = (j + 0.5) * stride - kp[k, 0]
                dv = (i + 0.5) * stride - kp[k, 1]
                ref[i, j, k] = np.exp(-(du**2 + dv**2) / (2 * (sigma * stride) ** 2))
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-7)


def test_heatmap_loss_masks_invalid_keypoints():
    rng = np.random.default_rng(0)
    pred, target = rng.random((2, 4, 4, 3)).astype(np.float32)
    valid = np.array([1.0, 0.0, 1.0], np.float32)
    ref = np.mean([np.mean((pred[..., k] - target[..., k]) ** 2) for k in (0, 2)])
    np.testing.assert_allclose(losses.heatmap_loss(pred, target, valid), ref, rtol=1e-6)
    assert float(losses.heatmap_loss(pred, target, np.zeros(3))) == 0.0


def test_mask_loss_is_bce_and_stable():
    logits = np.array([[-3.0, 0.0], [0.5, 4.0]], np.float32)
    mask = np.array([[0.0, 1.0], [0.3, 1.0]], np.float32)
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    ref = np.mean(-(mask * np.log(p) + (1 - mask) * np.log(1 - p)))
    np.testing.assert_allclose(losses.mask_loss(logits, mask), ref, rtol=1e-6)
    big = jnp.array([[1e4, -1e4]])
    value, grad = jax.value_and_grad(losses.mask_loss)(big, jnp.array([[0.0, 1.0]]))
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(value, 1e4, rtol=1e-6)


def test_keypoint3d_loss_is_root_relative_mean_distance():
    rng = np.random.default_rng(1)
    gt = rng.normal(size=(21, 3)).astype(np.float32) * 0.05
    pred = gt + rng.normal(size=(21, 3)).astype(np.float32) * 0.01
    valid = np.ones(21, np.float32)
    valid[7] = 0
    rel_p, rel_g = pred - pred[0], gt - gt[0]
    dist = [np.linalg.norm(rel_p[k] - rel_g[k]) for k in range(21) if valid[k]]
    loss = losses.keypoint3d_loss(pred, gt, valid)
    np.testing.assert_allclose(loss, np.mean(dist), rtol=1e-5)
    shifted = losses.keypoint3d_loss(pred + np.array([0.3, -1.0, 2.0], np.float32), gt, valid)
    np.testing.assert_allclose(shifted, loss, rtol=1e-5)
    valid[0] = 0  # no root: the example does not count
    assert float(losses.keypoint3d_loss(pred, gt, valid)) == 0.0


def test_keypoint2d_loss_is_resolution_independent():
    rng = np.random.default_rng(2)
    gt = rng.random((21, 2)).astype(np.float32) * 64
    pred = gt + rng.normal(size=(21, 2)).astype(np.float32)
    valid = np.ones(21, np.float32)
    small = losses.keypoint2d_loss(pred, gt, valid, image_size=(64, 64))
    large = losses.keypoint2d_loss(2 * pred, 2 * gt, valid, image_size=(128, 128))
    np.testing.assert_allclose(small, large, rtol=1e-5)
    ref = np.mean(np.linalg.norm((pred - gt) / 32.0, axis=-1))
    np.testing.assert_allclose(small, ref, rtol=1e-5)


def test_gradients_finite_at_zero_error():
    kp = jnp.ones((21, 3))
    grad = jax.grad(losses.keypoint3d_loss)(kp, kp, jnp.ones(21))
    assert np.all(np.isfinite(grad))
    grad2 = jax.grad(losses.keypoint2d_loss)(kp[:, :2], kp[:, :2], jnp.ones(21), image_size=(8, 8))
    assert np.all(np.isfinite(grad2))
    assert np.all(np.isfinite(jax.grad(losses.rotation_regulariser)(jnp.zeros(4))))


@pytest.mark.parametrize("size", [4, 6])
def test_rotation_regulariser_zero_on_manifold(size):
    rng = np.random.default_rng(size)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    rot = q[:, 0] if size == 4 else q[:, :2].T.reshape(-1)
    if size == 4:
        rot = np.concatenate([[0.6], 0.8 * rot])  # unit quaternion
    assert float(losses.rotation_regulariser(jnp.asarray(rot, jnp.float32))) < 1e-10
    assert float(losses.rotation_regulariser(jnp.asarray(1.5 * rot, jnp.float32))) > 0.1


def test_losses_check_grads_float64():
    rng = np.random.default_rng(3)
    with jax.enable_x64(True):
        pred = jnp.asarray(rng.normal(size=(21, 3)))
        gt = jnp.asarray(rng.normal(size=(21, 3)))
        valid = jnp.ones(21)
        check_grads(lambda p: losses.keypoint3d_loss(p, gt, valid), (pred,), 1, modes=["rev"])
        logits = jnp.asarray(rng.normal(size=(4, 4)))
        mask = jnp.asarray(rng.random((4, 4)))
        check_grads(lambda x: losses.mask_loss(x, mask), (logits,), 1, modes=["rev"])
        rot = jnp.asarray(rng.normal(size=6))
        check_grads(losses.rotation_regulariser, (rot,), 1, modes=["rev"])
        check_grads(losses.rotation_regulariser, (rot[:4],), 1, modes=["rev"])


def test_silhouette_and_priors_match_numpy():
    rng = np.random.default_rng(4)
    a, m = rng.random((2, 5, 7)).astype(np.float32)
    np.testing.assert_allclose(losses.silhouette_loss(a, m), np.mean((a - m) ** 2), rtol=1e-6)
    pose, mean = rng.normal(size=(2, 45)).astype(np.float32)
    np.testing.assert_allclose(losses.pose_prior(pose, mean), np.mean((pose - mean) ** 2), 1e-6)
    betas = rng.normal(size=10).astype(np.float32)
    np.testing.assert_allclose(losses.shape_prior(betas), np.mean(betas**2), rtol=1e-6)


def test_area_downsample_matches_a_loop():
    x = np.random.default_rng(5).random((8, 12, 2)).astype(np.float32)
    out = np.asarray(losses.area_downsample(x, 4))
    ref = np.zeros((2, 3, 2))
    for i in range(2):
        for j in range(3):
            ref[i, j] = x[4 * i : 4 * i + 4, 4 * j : 4 * j + 4].mean(axis=(0, 1))
    np.testing.assert_allclose(out, ref, rtol=1e-6)
    with pytest.raises(
        ValueError, match=r"^area_downsample: size \(8, 12\) is not a multiple of 5$"
    ):
        losses.area_downsample(x, 5)
    with pytest.raises(ValueError, match="multiple of 8"):  # one side divides, the other not
        losses.area_downsample(x, 8)


def test_silhouette_gate_accepts_exactly_the_listed_modes():
    kw = dict(threshold=0.02, start_step=10)
    off = jnp.zeros((), bool)
    assert losses.GATE_MODES == ("always", "never", "threshold", "step", "threshold_or_step")
    for mode in losses.GATE_MODES:
        losses.silhouette_gate(off, 1.0, 0, mode=mode, **kw)
    listed = re.escape(str(losses.GATE_MODES))
    with pytest.raises(ValueError, match=f"^mode='sometimes': expected one of {listed}$"):
        losses.silhouette_gate(off, 1.0, 0, mode="sometimes", **kw)


def test_silhouette_gate_modes_latch():
    gate = losses.silhouette_gate
    kw = dict(threshold=0.02, start_step=10)
    off, on = jnp.zeros((), bool), jnp.ones((), bool)
    assert not gate(off, 0.03, 0, mode="threshold", **kw)
    assert gate(off, 0.01, 0, mode="threshold", **kw)
    assert gate(on, 0.5, 0, mode="threshold", **kw)  # latched
    assert not gate(off, 0.0, 9, mode="step", **kw)
    assert gate(off, 1.0, 10, mode="step", **kw)
    assert gate(off, 1.0, 0, mode="always", **kw) and not gate(on, 0.0, 99, mode="never", **kw)
    assert not gate(off, -1.0, 0, mode="threshold", **kw)  # not measured yet: stays off
    assert not gate(off, 0.03, 9, mode="threshold_or_step", **kw)
    assert gate(off, 0.01, 0, mode="threshold_or_step", **kw)
    assert gate(off, 0.03, 10, mode="threshold_or_step", **kw)  # deadline
    with pytest.raises(ValueError, match="mode='sometimes'"):
        gate(off, 0.0, 0, mode="sometimes", **kw)


def test_silhouette_gate_opens_on_a_scripted_loss_history():
    # A 3D loss falling linearly from 50 mm to 10 mm over 200 steps, noisy; the reference is a
    # plain Python loop over the same EMA and threshold.
    rng = np.random.default_rng(0)
    history = np.linspace(0.05, 0.01, 200) + rng.normal(0, 0.004, 200)
    decay, threshold = 0.9, 0.025
    ref_ema, opened_ref = None, None
    for i, x in enumerate(history):
        ref_ema = x if ref_ema is None else decay * ref_ema + (1 - decay) * x
        if opened_ref is None and ref_ema < threshold:
            opened_ref = i
    update = jax.jit(functools.partial(losses.running_skeleton_loss, decay=decay))
    ema, on, opened = jnp.float32(-1.0), jnp.zeros((), bool), None
    for i, x in enumerate(history):
        ema = update(ema, jnp.float32(x))
        on = losses.silhouette_gate(
            on, ema, i, mode="threshold", threshold=threshold, start_step=10**9
        )
        if bool(on) and opened is None:
            opened = i
    assert opened_ref is not None and 50 < opened_ref < 190
    assert opened == opened_ref
    assert bool(on)  # latched to the end


def test_visible_silhouette_loss_ignores_pixels_an_occluder_may_hide():
    rng = np.random.default_rng(1)
    alpha = rng.uniform(size=(6, 7)).astype(np.float32)
    visible = (rng.uniform(size=(6, 7)) > 0.5).astype(np.float32)
    ref = np.mean([visible[i, j] * (1 - alpha[i, j]) ** 2 for i in range(6) for j in range(7)])
    np.testing.assert_allclose(losses.visible_silhouette_loss(alpha, visible), ref, rtol=1e-5)
    # Rendering more outside the visible mask costs nothing; missing a visible pixel costs.
    grown = np.where(visible > 0, alpha, 1.0)
    assert float(losses.visible_silhouette_loss(grown, visible)) == pytest.approx(float(ref))
    assert float(losses.silhouette_loss(grown, visible)) > float(ref)  # the two-sided one does


def _rotation_regulariser_reference(rot):
    """Plain-numpy: (|a| - 1)^2 + (|b| - 1)^2 + (a . b)^2 for the 6D columns a, b."""
    a, b = np.asarray(rot[:3], np.float64), np.asarray(rot[3:], np.float64)
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return (np.sqrt(np.sum(a * a)) - 1) ** 2 + (np.sqrt(np.sum(b * b)) - 1) ** 2 + dot**2


@pytest.mark.parametrize("seed", range(3))
def test_rotation_regulariser_6d_matches_numpy(seed):
    rot = np.random.default_rng(seed).normal(size=6).astype(np.float32)
    want = _rotation_regulariser_reference(rot)
    np.testing.assert_allclose(losses.rotation_regulariser(jnp.asarray(rot)), want, rtol=1e-5)


def test_rotation_regulariser_6d_penalises_non_orthogonal_unit_columns():
    # Two unit columns at an angle t: only the orthogonality term is non-zero, cos(t)^2.
    for t in (0.3, 1.0, 2.0):
        rot = jnp.array([1.0, 0.0, 0.0, np.cos(t), np.sin(t), 0.0], jnp.float32)
        np.testing.assert_allclose(losses.rotation_regulariser(rot), np.cos(t) ** 2, rtol=1e-5)


def test_keypoint2d_loss_non_square_crop_scales_u_by_width_and_v_by_height():
    rng = np.random.default_rng(6)
    h, w = 48, 160
    gt = rng.random((21, 2)).astype(np.float32) * [w, h]
    pred = gt + rng.normal(size=(21, 2)).astype(np.float32) * 3
    valid = (rng.random(21) > 0.2).astype(np.float32)
    per = [np.hypot((pred[k, 0] - gt[k, 0]) * 2 / w, (pred[k, 1] - gt[k, 1]) * 2 / h)
           for k in range(21) if valid[k]]  # fmt: skip
    got = losses.keypoint2d_loss(pred, gt, valid, image_size=(h, w))
    np.testing.assert_allclose(got, np.mean(per), rtol=1e-5)
    # A pure horizontal error of the full width is 2 ndc units, whatever the height.
    shifted = gt + np.array([w, 0.0], np.float32)
    np.testing.assert_allclose(
        losses.keypoint2d_loss(shifted, gt, np.ones(21), image_size=(h, w)), 2.0, rtol=1e-5
    )


def test_single_valid_keypoint_loss_is_its_own_error():
    # The weighted mean divides by the number of valid keypoints (never less than 1).
    rng = np.random.default_rng(7)
    gt = rng.normal(size=(21, 3)).astype(np.float32) * 0.05
    pred = gt + rng.normal(size=(21, 3)).astype(np.float32) * 0.01
    valid = np.zeros(21, np.float32)
    valid[[0, 6]] = 1.0  # the root and one keypoint
    want = np.linalg.norm((pred[6] - pred[0]) - (gt[6] - gt[0]))
    # The root's own error is 0 (root-relative; 1e-6 from the smoothed norm): mean over the two.
    got3d = losses.keypoint3d_loss(pred, gt, valid)
    np.testing.assert_allclose(got3d, want / 2, rtol=1e-5, atol=1e-6)
    one = np.zeros(21, np.float32)
    one[4] = 1.0
    want2d = np.linalg.norm((pred[4, :2] - gt[4, :2]) * 2 / np.array([20.0, 10.0]))
    got = losses.keypoint2d_loss(pred[:, :2], gt[:, :2], one, image_size=(10, 20))
    np.testing.assert_allclose(got, want2d, rtol=1e-4)
    half = one * 0.5  # fractional weights: still a weighted mean over at least one unit
    np.testing.assert_allclose(
        losses.keypoint2d_loss(pred[:, :2], gt[:, :2], half, image_size=(10, 20)),
        0.5 * want2d,
        rtol=1e-4,
    )


def test_rotation_regulariser_quaternion_matches_numpy_and_rejects_other_sizes():
    for q in ([1.5, 0.0, 0.0, 0.0], [0.3, -0.2, 0.1, 0.4], [2.0, 1.0, -2.0, 4.0]):
        want = (np.linalg.norm(q) - 1.0) ** 2
        np.testing.assert_allclose(losses.rotation_regulariser(jnp.asarray(q)), want, rtol=1e-5)
    with pytest.raises(ValueError, match=r"^rot: expected last axis 4 or 6, got shape \(5,\)$"):
        losses.rotation_regulariser(jnp.zeros(5))


def test_silhouette_gate_threshold_is_strict_and_zero_counts_as_measured():
    gate = losses.silhouette_gate
    off = jnp.zeros((), bool)
    kw = dict(mode="threshold", threshold=0.25, start_step=10**9)
    assert not gate(off, 0.25, 0, **kw)  # exactly at the threshold: still off
    assert gate(off, 0.0, 0, **kw)  # a measured loss of 0 is below any positive threshold
    assert not gate(off, 0.0, 9, mode="step", threshold=0.25, start_step=10)
    assert not gate(off, 0.3, 9, mode="threshold_or_step", threshold=0.25, start_step=10)


def test_running_skeleton_loss_first_value_and_ema():
    assert float(losses.running_skeleton_loss(-1.0, 0.5, decay=0.9)) == pytest.approx(0.5)
    assert float(losses.running_skeleton_loss(0.0, 0.5, decay=0.9)) == pytest.approx(0.05)
    assert float(losses.running_skeleton_loss(0.2, 0.5, decay=0.75)) == pytest.approx(0.275)
