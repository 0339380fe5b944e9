"""Validation metrics (``network.validation.compute_metrics``) against plain-numpy loops."""

import jax.numpy as jnp
import numpy as np
import pytest

from hand_jax.network import forward
from hand_jax.network import validation as te

N, K, SIDE = 48, 21, 32
REF_A, REF_B = 9, 10  # middle MCP -> PIP


def _predictions(seed, *, noise=0.01):
    """A ``run_predictions``-like dict: camera-frame GT, root-relative noisy predictions."""
    rng = np.random.default_rng(seed)
    root = rng.normal([0.0, 0.0, 0.5], [0.05, 0.05, 0.05], (N, 1, 3))
    rel = rng.normal(0.0, 0.04, (N, K, 3))
    rel[:, 0] = 0.0
    gt3 = root + rel
    gt2 = rng.uniform(0, SIDE, (N, K, 2))
    gt_mask = (rng.random((N, SIDE, SIDE)) < 0.4).astype(np.uint8)
    return {
        "kp3d": rel + rng.normal(0.0, noise, (N, K, 3)),
        "kp2d": gt2 + rng.normal(0.0, 2.0, (N, K, 2)),
        "keypoints2d": gt2 + rng.normal(0.0, 3.0, (N, K, 2)),
        "mask": rng.random((N, 8, 8)),
        "silhouette": rng.random((N, 16, 16)),
        "gt_image": np.zeros((N, SIDE, SIDE, 3), np.uint8),
        "gt_keypoints_3d": gt3,
        "gt_keypoints_2d": gt2,
        "gt_keypoint_valid": rng.random((N, K)) < 0.9,
        "gt_mask": gt_mask,
        "gt_mask_valid": rng.random(N) < 0.8,
    }


def _loop_epe(pred, gt, valid):
    """hand3d EPE: per keypoint over its valid samples, then the mean over keypoints."""
    per_keypoint = []
    for k in range(pred.shape[1]):
        errs = [np.linalg.norm(pred[n, k] - gt[n, k]) for n in range(len(pred)) if valid[n, k]]
        if errs:
            per_keypoint.append(np.mean(errs))
    return np.mean(per_keypoint) if per_keypoint else np.nan


def _loop_auc(pred, gt, valid, thresholds):
    """hand3d AUC: per keypoint PCK (error <= t), trapezoid normalised by the range, mean."""
    aucs = []
    for k in range(pred.shape[1]):
        errs = np.array(
            [np.linalg.norm(pred[n, k] - gt[n, k]) for n in range(len(pred)) if valid[n, k]]
        )
        if errs.size:
            pck = np.array([np.mean(errs <= t) for t in thresholds])
            area = sum((pck[i] + pck[i + 1]) / 2 * (thresholds[i + 1] - thresholds[i])
                       for i in range(len(thresholds) - 1))  # fmt: skip
            aucs.append(area / (thresholds[-1] - thresholds[0]))
    return np.mean(aucs)


def _rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


@pytest.mark.parametrize("seed", [0, 1])
def test_root_relative_epe_and_auc_match_a_loop(seed):
    p = _predictions(seed, noise=0.02)
    p["gt_keypoint_valid"][:3, 0] = False  # no root label: left out of the root alignment
    out = te.compute_metrics(p)
    gt, valid = p["gt_keypoints_3d"], p["gt_keypoint_valid"]
    aligned = p["kp3d"] - p["kp3d"][:, :1] + gt[:, :1]
    usable = valid & valid[:, :1]
    assert out["kp3d_epe_mm"] == pytest.approx(1000 * _loop_epe(aligned, gt, usable), rel=1e-9)
    grid = np.linspace(0.02, 0.05, 20)
    assert out["kp3d_auc_20_50"] == pytest.approx(_loop_auc(aligned, gt, usable, grid), rel=1e-9)


def test_similarity_transform_has_zero_procrustes_error():
    p = _predictions(2)
    rng = np.random.default_rng(5)
    gt = p["gt_keypoints_3d"]
    for n in range(N):
        p["kp3d"][n] = 1.4 * (gt[n] - gt[n, 0]) @ _rotation(rng).T + rng.normal(0, 0.1, 3)
    out = te.compute_metrics(p)
    assert out["pa_epe_mm"] < 1e-6
    assert out["pa_auc_0_50"] > 0.97  # round-off misses only the 0 mm threshold: 1 - 0.5 / 19
    assert out["kp3d_epe_mm"] > 10.0


def test_uniform_scale_has_zero_zimmermann_brox_error():
    p = _predictions(3)
    gt = p["gt_keypoints_3d"]
    p["kp3d"] = 0.7 * (gt - gt[:, :1])
    out = te.compute_metrics(p)
    assert out["zb_epe_mm"] < 1e-6
    assert out["zb_auc_20_50"] == pytest.approx(1.0)
    assert out["kp3d_epe_mm"] > 1.0


def test_zimmermann_brox_matches_a_loop():
    p = _predictions(4, noise=0.02)
    p["gt_keypoint_valid"][:4, REF_B] = False  # no reference bone: left out of Z&B
    out = te.compute_metrics(p)
    gt, valid = p["gt_keypoints_3d"], p["gt_keypoint_valid"]
    aligned = np.empty_like(gt)
    for n in range(N):
        pred = p["kp3d"][n]
        scale = np.linalg.norm(gt[n, REF_B] - gt[n, REF_A]) / np.linalg.norm(
            pred[REF_B] - pred[REF_A]
        )
        aligned[n] = (pred - pred[0]) * scale + gt[n, 0]
    usable = valid & (valid[:, 0] & valid[:, REF_A] & valid[:, REF_B])[:, None]
    assert out["zb_epe_mm"] == pytest.approx(1000 * _loop_epe(aligned, gt, usable), rel=1e-9)


def test_procrustes_is_invariant_to_a_similarity_of_the_prediction():
    p = _predictions(6, noise=0.01)
    before = te.compute_metrics(p)
    rng = np.random.default_rng(7)
    for n in range(N):
        p["kp3d"][n] = 0.5 * p["kp3d"][n] @ _rotation(rng).T + rng.normal(0, 0.1, 3)
    after = te.compute_metrics(p)
    assert after["pa_epe_mm"] == pytest.approx(before["pa_epe_mm"], rel=1e-6)
    assert after["pa_auc_0_50"] == pytest.approx(before["pa_auc_0_50"], abs=1e-9)
    assert before["pa_epe_mm"] < before["kp3d_epe_mm"]


def test_unlabelled_entries_may_hold_anything():
    p = _predictions(8)
    reference = te.compute_metrics(p)
    p["gt_keypoints_3d"] = np.where(p["gt_keypoint_valid"][..., None], p["gt_keypoints_3d"], np.nan)
    p["gt_keypoints_2d"] = np.where(p["gt_keypoint_valid"][..., None], p["gt_keypoints_2d"], 1e9)
    assert te.compute_metrics(p) == pytest.approx(reference, rel=1e-12)


def test_2d_errors_match_a_loop_and_split_by_visibility():
    p = _predictions(9)
    base = te.compute_metrics(p)
    assert "e2d_epe_visible_px" not in base and "e2d_hard_epe_px" not in base
    rng = np.random.default_rng(10)
    p["gt_keypoint_visible"] = rng.random((N, K)) < 0.7
    p["keypoints2d_hard"] = p["gt_keypoints_2d"] + rng.normal(0.0, 1.0, (N, K, 2))
    out = te.compute_metrics(p)
    gt, valid, vis = p["gt_keypoints_2d"], p["gt_keypoint_valid"], p["gt_keypoint_visible"]
    e2d = _loop_epe(p["keypoints2d"], gt, valid)
    assert out["e2d_epe_px"] == pytest.approx(e2d, rel=1e-9)
    assert out["e2d_epe_frac"] == pytest.approx(e2d / SIDE, rel=1e-9)
    assert out["kp2d_epe_px"] == pytest.approx(_loop_epe(p["kp2d"], gt, valid), rel=1e-9)
    assert out["e2d_epe_visible_px"] == pytest.approx(
        _loop_epe(p["keypoints2d"], gt, valid & vis), rel=1e-9
    )
    assert out["e2d_epe_occluded_px"] == pytest.approx(
        _loop_epe(p["keypoints2d"], gt, valid & ~vis), rel=1e-9
    )
    assert out["e2d_hard_epe_px"] == pytest.approx(
        _loop_epe(p["keypoints2d_hard"], gt, valid), rel=1e-9
    )
    p["gt_keypoint_visible"] = np.ones((N, K), bool)
    assert np.isnan(te.compute_metrics(p)["e2d_epe_occluded_px"])


def _loop_iou(pred, target, valid):
    f = target.shape[1] // pred.shape[1]
    ious = []
    for n in range(len(pred)):
        if valid[n]:
            small = np.zeros(pred.shape[1:])
            for i in range(pred.shape[1]):
                for j in range(pred.shape[2]):
                    small[i, j] = target[n, i * f : (i + 1) * f, j * f : (j + 1) * f].mean()
            ious.append(np.minimum(pred[n], small).sum() / np.maximum(pred[n], small).sum())
    return np.mean(ious)


def test_mask_ious_match_a_loop_and_use_the_amodal_mask_when_present():
    p = _predictions(11)
    valid = p["gt_mask_valid"]
    out = te.compute_metrics(p)
    assert out["mask_iou"] == pytest.approx(_loop_iou(p["mask"], p["gt_mask"], valid), rel=1e-5)
    sil = _loop_iou(p["silhouette"], p["gt_mask"], valid)
    assert out["silhouette_iou"] == pytest.approx(sil, rel=1e-5)
    occluded = np.random.default_rng(12).random(p["gt_mask"].shape) < 0.3
    p["gt_mask_full"] = np.maximum(p["gt_mask"], occluded).astype(np.uint8)
    full = te.compute_metrics(p)
    target = p["gt_mask_full"].astype(np.float32)
    assert full["mask_iou"] == pytest.approx(_loop_iou(p["mask"], target, valid), rel=1e-5)
    assert full["silhouette_iou"] == pytest.approx(
        _loop_iou(p["silhouette"], target, valid), rel=1e-5
    )
    assert full["silhouette_iou"] != pytest.approx(sil, rel=1e-3)


def test_hard_argmax_is_the_centre_of_the_highest_pixel():
    rng = np.random.default_rng(3)
    heatmaps = rng.normal(size=(6, 5, 4)).astype(np.float32)  # h != w catches a swapped axis
    out = np.asarray(forward.hard_argmax(jnp.asarray(heatmaps), stride=4))
    for k in range(4):
        row, col = np.unravel_index(np.argmax(heatmaps[..., k]), (6, 5))
        np.testing.assert_allclose(out[k], [(col + 0.5) * 4, (row + 0.5) * 4])


def test_mesh_labels_pose_the_true_mesh_in_the_crop_camera_frame():
    """Against a float64 numpy MANO (``tests.mano_reference``) and a plain rotation per sample."""
    from hand_jax import mano
    from tests.mano_reference import make_synthetic_arrays, mano_reference, model_kwargs

    arrays = make_synthetic_arrays(seed=3, num_verts=60, num_betas=6)
    model = mano.make_model(**model_kwargs(arrays))
    rng = np.random.default_rng(0)
    samples, want = [], []
    for i in range(3):
        pose, betas = rng.normal(0, 0.3, 48), rng.normal(0, 1, 4 + i)  # fewer betas: padded
        c, s = np.cos(0.4 * i), np.sin(0.4 * i)
        R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
        verts, _, keypoints = mano_reference(arrays, pose, np.pad(betas, (0, 6 - len(betas))))
        want.append((verts - keypoints[0]) @ R.T)
        samples.append({"mano_pose": pose.astype(np.float32), "mano_betas": betas,
                        "camera_rotation": R.astype(np.float32)})  # fmt: skip
    samples.append({"mano_pose": np.zeros(48, np.float32)})  # no betas: unlabelled
    out = te.mesh_labels(samples, model, batch=2)
    np.testing.assert_array_equal(out["gt_verts_valid"], [True, True, True, False])
    np.testing.assert_allclose(out["gt_verts"][:3], np.stack(want), atol=2e-5)
    assert not np.any(out["gt_verts"][3])


def test_mesh_metrics_against_a_plain_loop():
    rng = np.random.default_rng(5)
    p = _predictions(5)
    gt = rng.normal(0, 0.05, (N, 30, 3))
    valid = rng.random(N) < 0.7
    # The prediction: a rotated, scaled, shifted copy of the truth plus noise.
    a = 0.3
    R = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    pred = 1.1 * gt @ R.T + 0.01 + rng.normal(0, 0.002, gt.shape)
    p.update(verts=pred, gt_verts=gt, gt_verts_valid=valid)
    m = te.compute_metrics(p)
    errs = [np.mean(np.linalg.norm(pred[i] - gt[i], axis=-1)) for i in range(N) if valid[i]]
    assert m["pve_mm"] == pytest.approx(1000 * np.mean(errs), rel=1e-9)
    # Procrustes undoes the similarity: what is left is the noise (~ 2 mm * sqrt(3) * 0.92).
    assert 2.0 < m["pa_pve_mm"] < 3.6 and m["pve_mm"] > 20.0
