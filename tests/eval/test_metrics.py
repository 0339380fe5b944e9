"""Tests of hand_jax.eval.metrics against hand computations, loop references and invariances."""

import warnings

import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.transform import Rotation

from hand_jax.eval import metrics


def _hand3d_reference(errors, valid, thresholds):
    """The EvalUtil loop of hand3d, written out with Python lists (independent reference)."""
    per_kp = [[] for _ in range(errors.shape[1])]
    for n in range(errors.shape[0]):
        for k in range(errors.shape[1]):
            if valid[n, k]:
                per_kp[k].append(errors[n, k])
    norm = np.trapezoid(np.ones_like(thresholds), thresholds)
    means, medians, aucs, curves = [], [], [], []
    for data in per_kp:
        if not data:
            continue
        data = np.array(data)
        means.append(np.mean(data))
        medians.append(np.median(data))
        curve = np.array([np.mean(data <= t) for t in thresholds])
        curves.append(curve)
        aucs.append(np.trapezoid(curve, thresholds) / norm)
    return np.mean(means), np.mean(medians), np.mean(aucs), np.mean(curves, 0)


def _random_similarity(rng):
    rot = Rotation.random(random_state=rng).as_matrix()
    return rot, rng.uniform(0.3, 3.0), rng.normal(size=3)


def test_hand_computed_small_case():
    gt = np.zeros((2, 2, 3))
    pred = gt.copy()
    pred[0, 0, 0] = 0.01  # errors: sample 0: 0.01, 0.03; sample 1: 0.0, 0.05
    pred[0, 1, 1] = 0.03
    pred[1, 1, 2] = -0.05
    r = metrics.keypoint_metrics(pred, gt, thresholds=[0.0, 0.02, 0.04])
    np.testing.assert_allclose(r.epe_mean_per_keypoint, [0.005, 0.04])
    np.testing.assert_allclose(r.epe_median_per_keypoint, [0.005, 0.04])
    assert r.epe_mean == pytest.approx(0.0225)
    assert r.epe_mean_pooled == pytest.approx(0.0225)
    assert r.epe_median_pooled == pytest.approx(0.02)
    # keypoint 0: errors {0.01, 0.0} -> PCK 0.5, 1, 1; keypoint 1: {0.03, 0.05} -> 0, 0, 0.5
    np.testing.assert_allclose(r.pck_per_keypoint, [[0.5, 1.0, 1.0], [0.0, 0.0, 0.5]])
    # trapezoid / 0.04: kp0 (0.75*0.02 + 1*0.02)/0.04 = 0.875; kp1 (0 + 0.25*0.02)/0.04 = 0.125
    np.testing.assert_allclose(r.auc_per_keypoint, [0.875, 0.125])
    assert r.auc == pytest.approx(0.5)
    np.testing.assert_allclose(r.pck, [0.25, 0.5, 0.75])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_hand3d_loop_with_masks(seed):
    rng = np.random.default_rng(seed)
    gt = rng.normal(size=(30, 21, 3)) * 0.05
    pred = gt + rng.normal(size=gt.shape) * 0.015
    valid = rng.random((30, 21)) > 0.3
    valid[:, 4] = False  # a keypoint without any valid sample
    r = metrics.keypoint_metrics(pred, gt, valid, lo=0.0, hi=0.05, steps=20)
    errors = np.linalg.norm(pred - gt, axis=-1)
    mean, median, auc, curve = _hand3d_reference(errors, valid, np.linspace(0, 0.05, 20))
    assert r.epe_mean == pytest.approx(mean)
    assert r.epe_median == pytest.approx(median)
    assert r.auc == pytest.approx(auc)
    np.testing.assert_allclose(r.pck, curve)
    assert r.excluded_keypoints == (4,)
    assert np.isnan(r.auc_per_keypoint[4]) and np.isnan(r.epe_mean_per_keypoint[4])
    np.testing.assert_array_equal(r.valid_count, valid.sum(0))
    assert r.epe_mean_pooled == pytest.approx(errors[valid].mean())


def test_masked_keypoints_do_not_count():
    rng = np.random.default_rng(3)
    gt = rng.normal(size=(10, 5, 3))
    pred = gt + rng.normal(size=gt.shape) * 0.01
    valid = np.ones((10, 5), bool)
    valid[2:5, 1] = False
    wild = pred.copy()
    wild[2:5, 1] += 1e3  # masked entries may hold anything, even NaN
    wild[2, 1] = np.nan
    a = metrics.keypoint_metrics(pred, gt, valid)
    b = metrics.keypoint_metrics(wild, gt, valid)
    for field in ("epe_mean", "epe_median", "auc", "epe_mean_pooled"):
        assert getattr(a, field) == getattr(b, field)
    # Dropping the masked samples of keypoint 1 by hand gives the same per-keypoint numbers.
    keep = np.r_[0:2, 5:10]
    c = metrics.keypoint_metrics(pred[keep][:, 1:2], gt[keep][:, 1:2])
    assert b.auc_per_keypoint[1] == pytest.approx(c.auc)
    assert b.epe_mean_per_keypoint[1] == pytest.approx(c.epe_mean)


@pytest.mark.parametrize("seed", [0, 1])
def test_pck_monotone_in_threshold(seed):
    rng = np.random.default_rng(seed)
    gt = rng.normal(size=(50, 21, 3)) * 0.05
    pred = gt + rng.standard_t(3, size=gt.shape) * 0.01
    r = metrics.keypoint_metrics(pred, gt, lo=0.0, hi=0.08, steps=40)
    assert np.all(np.diff(r.pck_per_keypoint, axis=-1) >= 0)
    assert np.all(np.diff(r.pck) >= 0)
    assert np.all((r.pck >= 0) & (r.pck <= 1))


@pytest.mark.parametrize("grid", list(metrics.AUC_20_50_GRIDS) + ["zero_to_fifty", "2d"])
def test_auc_of_perfect_prediction_is_one(grid):
    gt = np.random.default_rng(0).normal(size=(4, 21, 3))
    if grid == "2d":
        r = metrics.keypoint_metrics(gt[..., :2], gt[..., :2], lo=0, hi=30, steps=20)
    elif grid == "zero_to_fifty":
        r = metrics.keypoint_metrics(gt, gt)  # includes threshold 0: needs PCK with <=
    else:
        r = metrics.keypoint_metrics(gt, gt, thresholds=metrics.AUC_20_50_GRIDS[grid])
    assert r.auc == 1.0
    assert r.epe_mean == 0.0


def test_auc_grids_follow_their_definitions():
    rng = np.random.default_rng(5)
    errors = np.abs(rng.normal(size=(200, 21))) * 0.02
    got = metrics.auc_grids(errors)
    t = np.linspace(0.0, 0.05, 20)[8:]
    curve = np.mean([[np.mean(errors[:, k] <= x) for x in t] for k in range(21)], axis=0)
    assert got["hand3d_subset"] == pytest.approx(np.trapezoid(curve, t) / (0.05 - t[0]))
    assert t[0] == pytest.approx(0.0210526, abs=1e-6)
    for name in ("linspace_20_50_20", "zhang_5mm"):
        t = metrics.AUC_20_50_GRIDS[name]
        assert t[0] == pytest.approx(0.02) and t[-1] == pytest.approx(0.05)
    assert len(set(round(v, 6) for v in got.values())) == 3  # the grid moves the number


def test_pck_auc_of_linear_curve():
    t = np.linspace(0.0, 1.0, 11)
    assert metrics.pck_auc(t, t) == pytest.approx(0.5)
    np.testing.assert_allclose(metrics.pck_auc(t, np.stack([t, np.ones(11)])), [0.5, 1.0])


@pytest.mark.parametrize("seed", range(4))
def test_procrustes_error_invariant_under_similarity(seed):
    rng = np.random.default_rng(seed)
    gt = rng.normal(size=(6, 21, 3)) * 0.05
    pred = gt + rng.normal(size=gt.shape) * 0.01
    rot, s, t = _random_similarity(rng)
    moved = s * pred @ rot.T + t
    e0 = np.linalg.norm(metrics.align_procrustes(pred, gt) - gt, axis=-1)
    e1 = np.linalg.norm(metrics.align_procrustes(moved, gt) - gt, axis=-1)
    np.testing.assert_allclose(e1, e0, atol=1e-10)
    # An exact similarity image of the ground truth is mapped back onto it.
    np.testing.assert_allclose(metrics.align_procrustes(s * gt @ rot.T + t, gt), gt, atol=1e-10)


def _freihand_align_w_scale(mtx1, mtx2):
    """FreiHAND eval.py's align_w_scale (ground truth mtx1, prediction mtx2), written out."""
    t1, t2 = mtx1.mean(0), mtx2.mean(0)
    a, b = mtx1 - t1, mtx2 - t2
    s1, s2 = np.linalg.norm(a) + 1e-8, np.linalg.norm(b) + 1e-8
    rot, s = orthogonal_procrustes(a / s1, b / s2)
    return (b / s2) @ rot.T * s * s1 + t1


@pytest.mark.parametrize("seed", range(3))
def test_procrustes_matches_freihand_reference(seed):
    rng = np.random.default_rng(seed)
    gt = rng.normal(size=(5, 21, 3)) * 0.05
    pred = 1.7 * gt + rng.normal(size=gt.shape) * 0.02 + 0.3
    pred[0, :, 0] *= -1  # a mirror-image prediction: FreiHAND's scipy fit admits reflections
    ref = np.stack([_freihand_align_w_scale(g, p) for g, p in zip(gt, pred, strict=True)])
    got = metrics.align_procrustes(pred, gt, allow_reflection=True)
    np.testing.assert_allclose(got, ref, atol=1e-6)
    proper = metrics.align_procrustes(pred, gt)
    np.testing.assert_allclose(proper[1:], ref[1:], atol=1e-6)
    assert np.linalg.norm(proper[0] - gt[0]) > np.linalg.norm(ref[0] - gt[0]) + 1e-3


def test_masked_procrustes_fits_valid_points_only():
    rng = np.random.default_rng(7)
    gt = rng.normal(size=(3, 21, 3))
    pred = gt + rng.normal(size=gt.shape) * 0.05
    valid = rng.random((3, 21)) > 0.4
    got = metrics.align_procrustes(pred, gt, valid)
    for n in range(3):
        sub = metrics.align_procrustes(pred[n : n + 1, valid[n]], gt[n : n + 1, valid[n]])
        np.testing.assert_allclose(got[n, valid[n]], sub[0], atol=1e-10)


def test_align_root_and_root_scale():
    rng = np.random.default_rng(8)
    gt = rng.normal(size=(4, 21, 3)) * 0.05
    pred = 2.5 * gt + rng.normal(size=3)
    np.testing.assert_allclose(metrics.align_root_scale(pred, gt), gt, atol=1e-12)
    noisy = pred + rng.normal(size=pred.shape) * 0.01
    got = metrics.align_root_scale(noisy, gt, root=0, ref_bone=(9, 10))
    for n in range(4):
        rel = noisy[n] - noisy[n, 0]
        s = np.linalg.norm(gt[n, 10] - gt[n, 9]) / np.linalg.norm(noisy[n, 10] - noisy[n, 9])
        np.testing.assert_allclose(got[n], rel * s + gt[n, 0], atol=1e-12)
    rooted = metrics.align_root(noisy, gt, root=3)
    np.testing.assert_allclose(rooted[:, 3], gt[:, 3])
    np.testing.assert_allclose(rooted - rooted[:, :1], noisy - noisy[:, :1])


def test_align_centroid_uses_valid_points():
    gt = np.zeros((1, 3, 3))
    pred = np.array([[[1.0, 0, 0], [3.0, 0, 0], [100.0, 0, 0]]])
    got = metrics.align_centroid(pred, gt, valid=[[True, True, False]])
    np.testing.assert_allclose(got[0, :2, 0], [-1.0, 1.0])


def test_f_score_closed_forms():
    pts = np.random.default_rng(0).normal(size=(50, 3))
    assert metrics.f_score(pts, pts, 1e-9).f == 1.0
    # Points far apart: each point's nearest neighbour is its own shifted copy, 4 mm away.
    spread = pts * 10
    assert metrics.f_score(spread + [0.004, 0, 0], spread, 0.005).f == 1.0
    assert metrics.f_score(spread + [0.004, 0, 0], spread, 0.003).f == 0.0
    # Two GT points, four predictions of which two hit: P = 1/2, R = 1, F = 2/3.
    gt = np.array([[0.0, 0, 0], [1.0, 0, 0]])
    pred = np.array([[0.0, 0, 0.001], [1.0, 0, 0], [5.0, 0, 0], [9.0, 0, 0]])
    s = metrics.f_score(pred, gt, 0.005)
    assert (s.precision, s.recall) == (0.5, 1.0)
    assert s.f == pytest.approx(2 / 3)
    np.testing.assert_allclose(
        metrics.f_scores(pred[None], gt[None], (0.005, 10.0)), [[2 / 3, 1.0]]
    )


def test_f_score_distance_exactly_at_the_threshold_does_not_count():
    # FreiHAND's calculate_fscore counts a point only when closer than the threshold (strict <).
    # Distances 0.5 and 0.25 are exact in binary floating point.
    gt = np.array([[0.0, 0, 0], [10.0, 0, 0]])
    pred = np.array([[0.5, 0, 0], [10.25, 0, 0]])
    s = metrics.f_score(pred, gt, 0.5)
    assert (s.precision, s.recall, s.f) == (0.5, 0.5, 0.5)
    assert metrics.f_score(pred, gt, 0.25).f == 0.0
    assert metrics.f_score(pred, gt, np.nextafter(0.5, 1.0)).f == 1.0
    np.testing.assert_array_equal(metrics.f_scores(pred[None], gt[None], (0.25, 0.5, 0.75)),
                                  [[0.0, 0.5, 1.0]])  # fmt: skip


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(pred=np.zeros((2, 21, 3)), gt=np.zeros((2, 20, 3))), "pred: expected the shape"),
        (dict(pred=np.zeros((21, 3)), gt=np.zeros((21, 3))), r"gt: expected shape \[N, K, D\]"),
        (dict(pred=np.zeros((2, 21, 3)), gt=np.zeros((2, 21, 3)), valid=np.ones(5)), "valid"),
        (dict(pred=np.full((1, 21, 3), np.nan), gt=np.zeros((1, 21, 3))), "non-finite"),
        (dict(pred=np.zeros((1, 21, 3)), gt=np.zeros((1, 21, 3)), steps=1), "steps"),
        (dict(pred=np.zeros((1, 21, 3)), gt=np.zeros((1, 21, 3)), lo=0.05, hi=0.0), "lo < hi"),
        (dict(pred=np.zeros((1, 2, 3)), gt=np.zeros((1, 2, 3)), valid=False), "no keypoint"),
    ],
)
def test_bad_input_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        metrics.keypoint_metrics(**kwargs)


def test_bad_errors_input():
    t = metrics.make_thresholds()
    with pytest.raises(ValueError, match="errors: expected shape"):
        metrics.keypoint_metrics_from_errors(np.zeros(3), thresholds=t)
    with pytest.raises(ValueError, match="finite non-negative"):
        metrics.keypoint_metrics_from_errors(np.array([[np.nan, 1.0]]), thresholds=t)
    ok = metrics.keypoint_metrics_from_errors(
        np.array([[np.nan, 0.0]]), [[False, True]], thresholds=t
    )
    assert ok.excluded_keypoints == (0,) and ok.auc == 1.0


def test_keypoint_errors_match_a_loop():
    rng = np.random.default_rng(9)
    for d in (2, 3):
        pred, gt = rng.normal(size=(2, 4, 5, d))
        want = [[np.sqrt(sum((pred[n, k, i] - gt[n, k, i]) ** 2 for i in range(d)))
                 for k in range(5)] for n in range(4)]  # fmt: skip
        np.testing.assert_allclose(metrics.keypoint_errors(pred, gt), want, rtol=1e-12)
    with pytest.raises(ValueError, match="pred: expected the shape of gt"):
        metrics.keypoint_errors(np.zeros((4, 5, 3)), np.zeros((4, 6, 3)))
    with pytest.raises(ValueError, match=r"^gt: non-finite"):
        metrics.keypoint_errors(np.zeros((1, 2, 3)), np.full((1, 2, 3), np.inf))


def test_default_ref_bone_is_the_middle_finger_mcp_to_pip():
    # Canonical order: wrist 0; thumb 1-4; index 5-8; middle 9-12 (MCP, PIP, DIP, tip).
    assert metrics.REF_BONE == (9, 10)
    rng = np.random.default_rng(10)
    gt = rng.normal(size=(3, 21, 3)) * 0.05
    pred = rng.normal(size=(3, 21, 3)) * 0.05
    got = metrics.align_root_scale(pred, gt)
    np.testing.assert_allclose(
        np.linalg.norm(got[:, 10] - got[:, 9], axis=-1),
        np.linalg.norm(gt[:, 10] - gt[:, 9], axis=-1),
        rtol=1e-12,
    )


def test_default_grids_and_thresholds_are_the_documented_ones():
    mm = 1e-3
    grids = metrics.AUC_20_50_GRIDS
    assert set(grids) == {"linspace_20_50_20", "hand3d_subset", "zhang_5mm"}
    np.testing.assert_allclose(
        grids["linspace_20_50_20"], [(20 + 30 * i / 19) * mm for i in range(20)]
    )
    np.testing.assert_allclose(grids["zhang_5mm"], [t * mm for t in range(20, 51, 5)])
    assert len(grids["hand3d_subset"]) == 12
    np.testing.assert_allclose(grids["hand3d_subset"][[0, -1]], [50 * 8 / 19 * mm, 50 * mm])
    assert metrics.FSCORE_THRESHOLDS == (0.005, 0.015)  # F@5 mm, F@15 mm
    np.testing.assert_allclose(metrics.make_thresholds(), [0.05 * i / 19 for i in range(20)])
    # The defaults are what auc_grids and f_scores use.
    errors = np.full((1, 21), 0.035)
    aucs = metrics.auc_grids(errors)
    # PCK is a step at 35 mm: the AUC is the part of the grid at or above it, by the trapezoid.
    for name, t in grids.items():
        pck = (t >= 0.035).astype(float)
        assert aucs[name] == pytest.approx(np.trapezoid(pck, t) / (t[-1] - t[0]))
    pts = np.random.default_rng(0).normal(size=(1, 30, 3))
    np.testing.assert_allclose(metrics.f_scores(pts + [0.01, 0, 0], pts), [[0.0, 1.0]])


def test_threshold_grids_validate_their_limits():
    np.testing.assert_allclose(metrics.make_thresholds(0.0, 1.0, 2), [0.0, 1.0])  # 2 points ok
    with pytest.raises(ValueError, match="lo < hi"):
        metrics.make_thresholds(0.01, 0.01)
    with pytest.raises(ValueError, match="steps"):
        metrics.make_thresholds(steps=1)
    assert metrics.pck_auc([0.0, 1.0], [0.0, 1.0]) == pytest.approx(0.5)  # 2 thresholds ok
    with pytest.raises(ValueError):
        metrics.pck_auc([0.0, 0.5, 0.5], [0.0, 0.5, 1.0])  # repeated threshold
    with pytest.raises(ValueError):
        metrics.pck_auc([0.0], [1.0])
    with pytest.raises(ValueError):
        metrics.pck_auc([[0.0, 1.0], [2.0, 3.0]], [[0.0, 1.0], [0.0, 1.0]])  # not one grid


def test_bad_valid_shape_message_names_n_and_k():
    with pytest.raises(ValueError, match=r"\[N, K\] = \(2, 21\)"):
        metrics.keypoint_metrics(np.zeros((2, 21, 3)), np.zeros((2, 21, 3)), valid=np.ones(5))


def _umeyama_reference(p, g):
    """Best similarity s R p + t ~ g with det(R) = +1 (Umeyama 1991), one sample, plain numpy."""
    mp, mg = p.mean(0), g.mean(0)
    x, y = p - mp, g - mg
    u, sig, vt = np.linalg.svd(y.T @ x)
    s_fix = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ s_fix @ vt
    scale = np.trace(np.diag(sig) @ s_fix) / np.sum(x**2)
    return scale * x @ rot.T + mg


def test_procrustes_of_a_mirror_image_is_the_best_proper_rotation():
    rng = np.random.default_rng(12)
    gt = rng.normal(size=(3, 21, 3)) * 0.05 + 0.3
    pred = gt * [-1.0, 1.0, 1.0] + rng.normal(size=gt.shape) * 0.002  # mirrored in x
    got = metrics.align_procrustes(pred, gt)
    for n in range(3):
        np.testing.assert_allclose(got[n], _umeyama_reference(pred[n], gt[n]), atol=1e-12)
        # A proper rotation cannot undo a mirror: the fit stays poor; a reflection can.
        assert np.abs(got[n] - gt[n]).max() > 0.01
    mirrored = metrics.align_procrustes(pred, gt, allow_reflection=True)
    np.testing.assert_allclose(mirrored, gt, atol=0.01)


def test_alignments_of_degenerate_predictions():
    rng = np.random.default_rng(13)
    gt = rng.normal(size=(2, 21, 3)) * 0.05 + 1.0
    point = np.broadcast_to([1.0, -2.0, 0.5], gt.shape)  # every keypoint in one (exact) place
    no_bone = rng.normal(size=gt.shape)
    no_bone[:, 10] = no_bone[:, 9]  # a zero-length reference bone, other keypoints spread
    root = np.broadcast_to(gt[:, :1], gt.shape)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division by zero on the way
        # Zero-length reference bone: scale 0, the prediction collapses onto the GT root.
        np.testing.assert_allclose(metrics.align_root_scale(no_bone, gt), root)
        np.testing.assert_allclose(metrics.align_root_scale(point, gt), root)
        # Zero spread: Procrustes scale 0, every point at the GT centroid.
        centroid = np.broadcast_to(gt.mean(1, keepdims=True), gt.shape)
        np.testing.assert_allclose(metrics.align_procrustes(point, gt), centroid)


def test_alignment_defaults_root_zero():
    rng = np.random.default_rng(14)
    gt = rng.normal(size=(2, 21, 3))
    pred = rng.normal(size=(2, 21, 3))
    np.testing.assert_allclose(metrics.align_root(pred, gt)[:, 0], gt[:, 0])
    np.testing.assert_allclose(metrics.align_root_scale(pred, gt)[:, 0], gt[:, 0])
    r = metrics.keypoint_metrics(pred, gt)
    np.testing.assert_allclose(r.thresholds, np.linspace(0.0, 0.05, 20))


def test_align_centroid_moves_onto_the_gt_centroid():
    rng = np.random.default_rng(15)
    gt = rng.normal(size=(2, 5, 3)) + 3.0
    pred = rng.normal(size=(2, 5, 3))
    valid = np.array([[True, False, False, False, False], [True, True, False, True, False]])
    got = metrics.align_centroid(pred, gt, valid=valid)
    for n in range(2):
        v = valid[n]
        np.testing.assert_allclose(got[n, v].mean(0), gt[n, v].mean(0), atol=1e-12)
        np.testing.assert_allclose(got[n] - pred[n], got[n, :1] - pred[n, :1] + 0 * pred[n])


def test_f_score_input_errors_name_the_argument():
    ok = np.zeros((3, 3))
    with pytest.raises(ValueError, match="^pred_points: expected a finite non-empty"):
        metrics.f_score(np.zeros((0, 3)), ok, 0.01)
    with pytest.raises(ValueError, match="^pred_points: expected a finite non-empty"):
        metrics.f_score(np.zeros(3), ok, 0.01)
    with pytest.raises(ValueError, match="^gt_points: expected a finite non-empty"):
        metrics.f_score(ok, np.full((2, 3), np.nan), 0.01)
    one = metrics.f_score(np.zeros((1, 3)), np.zeros((1, 3)), 0.01)  # a single point is fine
    assert one.f == 1.0


def test_errors_input_messages_start_with_the_argument():
    t = metrics.make_thresholds()
    with pytest.raises(ValueError, match="^errors: expected finite non-negative"):
        metrics.keypoint_metrics_from_errors(np.array([[-1.0]]), thresholds=t)
    with pytest.raises(ValueError, match="^valid: no keypoint has a valid sample"):
        metrics.keypoint_metrics_from_errors(np.array([[1.0]]), [[False]], thresholds=t)


Z = np.zeros((2, 3, 3))
EXACT_ERRORS = [
    (lambda: metrics.keypoint_errors(Z, np.zeros((2, 3))),
     "gt: expected shape [N, K, D], got (2, 3)"),
    (lambda: metrics.keypoint_errors(np.zeros((2, 4, 3)), Z),
     "pred: expected the shape of gt (2, 3, 3), got (2, 4, 3)"),
    (lambda: metrics.keypoint_metrics(Z, Z, np.ones((3, 3), bool)),
     "valid: expected a shape broadcastable to [N, K] = (2, 3), got (3, 3)"),
    (lambda: metrics.align_procrustes(np.full_like(Z, np.nan), Z),
     "pred: non-finite values at valid keypoints"),
    (lambda: metrics.make_thresholds(0.1, 0.1),
     "thresholds: expected finite lo < hi, got lo=0.1, hi=0.1"),
    (lambda: metrics.make_thresholds(0.0, 1.0, 1), "steps: expected an int >= 2, got 1"),
    (lambda: metrics.make_thresholds(0.0, 1.0, 2.5), "steps: expected an int >= 2, got 2.5"),
    (lambda: metrics.pck_auc([0.0, 0.0], [1.0, 1.0]),
     "thresholds: expected [T >= 2] strictly increasing, got [0. 0.]"),
    (lambda: metrics.keypoint_metrics_from_errors(np.zeros(3), thresholds=[0, 1]),
     "errors: expected shape [N, K], got (3,)"),
    (lambda: metrics.keypoint_metrics_from_errors(-np.ones((2, 2)), thresholds=[0, 1]),
     "errors: expected finite non-negative values at valid entries"),
    (lambda: metrics.keypoint_metrics_from_errors(np.ones((2, 2)), np.zeros((2, 2)),
                                                  thresholds=[0, 1]),
     "valid: no keypoint has a valid sample; nothing to evaluate"),
    (lambda: metrics.f_score(np.zeros((0, 3)), np.zeros((4, 3)), 0.1),
     "pred_points: expected a finite non-empty [P, D] array, got (0, 3)"),
    (lambda: metrics.f_score(np.zeros((4, 3)), np.full((4, 3), np.inf), 0.1),
     "gt_points: expected a finite non-empty [P, D] array, got (4, 3)"),
    (lambda: metrics.f_scores(np.zeros((2, 4, 3)), np.zeros((3, 4, 3))),
     "pred, gt: expected the same number of samples, got 2, 3"),
]  # fmt: skip


@pytest.mark.parametrize("call, message", EXACT_ERRORS)
def test_each_refusal_has_its_exact_message(call, message):
    with pytest.raises(ValueError) as err:
        call()
    assert str(err.value) == message
