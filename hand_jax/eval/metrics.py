"""Benchmark metrics for 3D (and 2D) hand keypoints: EPE, PCK/AUC, alignments, F-scores.

Pure numpy (plus ``scipy.spatial`` for nearest neighbours). Inputs are batches:
``pred``, ``gt``: [N, K, D] (N samples, K keypoints, D = 3 for 3D or 2 for 2D); ``valid``:
[N, K] bool (broadcastable; ``None`` = all valid). Every result is in the units of the inputs
(metres inside the library; callers report ``*_mm``).

Protocol (Zimmermann & Brox 2017, code ``lmb-freiburg/hand3d`` ``utils/general.py:EvalUtil``):

- the error of a keypoint is its Euclidean distance; only valid (sample, keypoint) pairs count;
- PCK of keypoint k at threshold t is the fraction of its valid samples with error ``<= t``
  (``<=``: a perfect prediction has PCK 1 at t = 0, so its AUC is exactly 1);
- AUC of keypoint k is ``trapezoid(pck_k, t) / trapezoid(1, t)`` (area normalised by the range),
  and the reported AUC is the mean over keypoints. A keypoint without any valid sample is
  excluded from every mean and listed in ``excluded_keypoints``. (The trapezoid is linear, so
  this equals the AUC of the keypoint-mean curve, which hand3d plots.)
- EPE mean/median (hand3d): per keypoint mean/median over its valid samples, then the mean over
  keypoints. ``epe_mean_pooled``/``epe_median_pooled`` pool all valid pairs instead (they differ
  only when keypoints have different valid counts, e.g. Dexter+Object).
- defaults: 3D 0-50 mm with 20 thresholds; 2D 0-30 px with 20 thresholds.

How the "AUC 20-50 mm" of the STB/RHD/Dexter+Object tables is formed (it is not one grid):

- ``linspace_20_50_20`` = ``np.linspace(20, 50, 20)`` mm: the grid of later public code
  (e.g. ``get_measures(20, 50, 20)`` in SeanChenxy/HandMesh). This project's tables use it.
- ``hand3d_subset`` = ``np.linspace(0, 50, 20)[8:]`` = 21.05 ... 50 mm (12 points), normalised
  by 50 - 21.05: what Z&B's own ``eval_full.py`` prints as "Area under curve between 20mm -
  50mm" (their STB 0.948 re-integrates to 0.9475 on this grid).
- ``zhang_5mm`` = 20, 25, ..., 50 mm (7 points): the grid of the STB baseline curves of Zhang et
  al. 2016 (PSO 0.709, ICPPSO 0.748, CHPR 0.839), as stored in hand3d's ``get_stb_ref_curves``.

The grid moves the third decimal, and hand3d's (which starts at 21.05 mm, where PCK is higher)
the second on hard benchmarks: the same published 1 mm curves integrate to 0.5721 / 0.5835 /
0.5714 (Z&B, Dexter+Object) and 0.9939 / 0.9948 / 0.9934 (Boukhayma et al., STB) on
linspace_20_50_20 / hand3d_subset / zhang_5mm; Mueller et al.'s STB curve gives 0.955-0.958
against the 0.965 quoted. Compare third decimals only on one grid; ``auc_grids`` gives all three.

Alignments (``align_*``) map the prediction onto the ground truth before errors are taken:
root-relative with the ground-truth root; ground-truth scale (hand3d: root-relative prediction
normalised by its reference bone and rescaled by the ground truth's); centroid translation;
Procrustes with scale per sample (FreiHAND).
"""

from typing import NamedTuple

import numpy as np
from scipy.spatial import cKDTree

# Canonical middle finger MCP -> PIP: hand3d's reference bone ``xyz[12] - xyz[11]`` in its
# RHD-style order (named ``index_root_bone_length`` there, but it is the middle finger).
REF_BONE = (9, 10)

# The 20-50 mm AUC grids in metres (see the module docstring).
AUC_20_50_GRIDS = {
    "linspace_20_50_20": np.linspace(0.02, 0.05, 20),
    "hand3d_subset": np.linspace(0.0, 0.05, 20)[8:],
    "zhang_5mm": np.linspace(0.02, 0.05, 7),
}
FSCORE_THRESHOLDS = (0.005, 0.015)  # FreiHAND: F@5 mm and F@15 mm, metres


class KeypointMetrics(NamedTuple):
    """Keypoint errors, PCK and AUC (units of the inputs; K keypoints, T thresholds).

    ``epe_*_per_keypoint``, ``auc_per_keypoint`` and rows of ``pck_per_keypoint`` are NaN for
    excluded keypoints (no valid sample); ``valid_count`` [K] counts valid samples per keypoint.
    """

    epe_mean: float
    epe_median: float
    epe_mean_pooled: float
    epe_median_pooled: float
    epe_mean_per_keypoint: np.ndarray  # [K]
    epe_median_per_keypoint: np.ndarray  # [K]
    thresholds: np.ndarray  # [T]
    pck: np.ndarray  # [T], mean over included keypoints
    pck_per_keypoint: np.ndarray  # [K, T]
    auc: float
    auc_per_keypoint: np.ndarray  # [K]
    valid_count: np.ndarray  # [K] int
    excluded_keypoints: tuple[int, ...]


class FScore(NamedTuple):
    """F-score of two point sets at one threshold (each in [0, 1])."""

    f: float
    precision: float  # fraction of predicted points within the threshold of a GT point
    recall: float  # fraction of GT points within the threshold of a predicted point


def _check_pair(pred, gt, valid=None, *, name="pred"):
    pred = np.asarray(pred, np.float64)
    gt = np.asarray(gt, np.float64)
    if gt.ndim != 3:
        raise ValueError(f"gt: expected shape [N, K, D], got {gt.shape}")
    if pred.shape != gt.shape:
        raise ValueError(f"{name}: expected the shape of gt {gt.shape}, got {pred.shape}")
    if valid is None:
        valid = np.ones(gt.shape[:2], bool)
    else:
        valid = np.asarray(valid)
        try:
            valid = np.broadcast_to(valid.astype(bool), gt.shape[:2])
        except ValueError:
            raise ValueError(
                f"valid: expected a shape broadcastable to [N, K] = {gt.shape[:2]}, "
                f"got {valid.shape}"
            ) from None
    for arr, arr_name in ((pred, name), (gt, "gt")):
        if not np.all(np.isfinite(arr[valid])):
            raise ValueError(f"{arr_name}: non-finite values at valid keypoints")
    return pred, gt, valid


def keypoint_errors(pred, gt):
    """Return Euclidean keypoint errors.

    Args:
      pred: [N, K, D] predicted keypoints.
      gt: [N, K, D] ground-truth keypoints, same units.

    Returns:
      [N, K] distances, units of the inputs.
    """
    pred, gt, _ = _check_pair(pred, gt)
    return np.sqrt(np.sum((pred - gt) ** 2, axis=-1))


def make_thresholds(lo=0.0, hi=0.05, steps=20):
    """Return ``np.linspace(lo, hi, steps)`` after checking that it defines an AUC."""
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
        raise ValueError(f"thresholds: expected finite lo < hi, got lo={lo}, hi={hi}")
    if int(steps) != steps or steps < 2:
        raise ValueError(f"steps: expected an int >= 2, got {steps}")
    return np.linspace(lo, hi, int(steps))


def pck_auc(thresholds, pck):
    """Return the area under PCK curves, normalised by the threshold range.

    Args:
      thresholds: [T] increasing thresholds, T >= 2.
      pck: [..., T] PCK values in [0, 1].

    Returns:
      [...] ``trapezoid(pck, thresholds) / trapezoid(1, thresholds)``.
    """
    t = np.asarray(thresholds, np.float64)
    if t.ndim != 1 or t.shape[0] < 2 or np.any(np.diff(t) <= 0):
        raise ValueError(f"thresholds: expected [T >= 2] strictly increasing, got {t}")
    # hand3d's normaliser, trapezoid(1, t): a perfect curve integrates to exactly 1.
    return np.trapezoid(np.asarray(pck, np.float64), t, axis=-1) / np.trapezoid(np.ones_like(t), t)


def keypoint_metrics_from_errors(errors, valid=None, *, thresholds):
    """Compute EPE, PCK and AUC from precomputed errors (see the module docstring).

    Args:
      errors: [N, K] non-negative errors.
      valid: [N, K] bool (broadcastable) or None for all valid.
      thresholds: [T] increasing thresholds, units of ``errors``.

    Returns:
      A ``KeypointMetrics``. Raises ValueError when no keypoint has a valid sample.
    """
    errors = np.asarray(errors, np.float64)
    if errors.ndim != 2:
        raise ValueError(f"errors: expected shape [N, K], got {errors.shape}")
    valid = np.ones(errors.shape, bool) if valid is None else np.asarray(valid, bool)
    valid = np.broadcast_to(valid, errors.shape)
    if not np.all(np.isfinite(errors[valid])) or np.any(errors[valid] < 0):
        raise ValueError("errors: expected finite non-negative values at valid entries")
    thresholds = np.asarray(thresholds, np.float64)
    count = valid.sum(0)
    included = count > 0
    if not np.any(included):
        raise ValueError("valid: no keypoint has a valid sample; nothing to evaluate")
    masked = np.where(valid, errors, np.nan)
    with np.errstate(invalid="ignore"):
        hits = (masked[..., None] <= thresholds).sum(0)  # [K, T]
        pck_k = np.where(included[:, None], hits / np.maximum(count, 1)[:, None], np.nan)
    mean_k = np.full(errors.shape[1], np.nan)
    median_k = np.full(errors.shape[1], np.nan)
    mean_k[included] = np.nanmean(masked[:, included], axis=0)
    median_k[included] = np.nanmedian(masked[:, included], axis=0)
    auc_k = np.where(included, pck_auc(thresholds, np.nan_to_num(pck_k)), np.nan)
    pooled = errors[valid]
    return KeypointMetrics(
        epe_mean=float(np.mean(mean_k[included])),
        epe_median=float(np.mean(median_k[included])),
        epe_mean_pooled=float(np.mean(pooled)),
        epe_median_pooled=float(np.median(pooled)),
        epe_mean_per_keypoint=mean_k,
        epe_median_per_keypoint=median_k,
        thresholds=thresholds,
        pck=np.mean(pck_k[included], axis=0),
        pck_per_keypoint=pck_k,
        auc=float(np.mean(auc_k[included])),
        auc_per_keypoint=auc_k,
        valid_count=count.astype(np.int64),
        excluded_keypoints=tuple(int(k) for k in np.flatnonzero(~included)),
    )


def keypoint_metrics(pred, gt, valid=None, lo=0.0, hi=0.05, steps=20, *, thresholds=None):
    """Compute EPE, PCK per keypoint and threshold, and AUC (hand3d protocol).

    Args:
      pred: [N, K, D] predicted keypoints (already aligned, see ``align_*``).
      gt: [N, K, D] ground-truth keypoints, same units.
      valid: [N, K] bool (broadcastable) or None for all valid.
      lo, hi, steps: thresholds ``np.linspace(lo, hi, steps)``, units of the inputs
        (3D default 0-0.05 m; use 0-30, 20 steps for 2D pixels).
      thresholds: [T] explicit increasing thresholds instead of ``lo, hi, steps``.

    Returns:
      A ``KeypointMetrics`` in the units of the inputs.
    """
    pred, gt, valid = _check_pair(pred, gt, valid)
    t = make_thresholds(lo, hi, steps) if thresholds is None else np.asarray(thresholds, float)
    errors = np.sqrt(np.sum((pred - gt) ** 2, axis=-1))
    return keypoint_metrics_from_errors(errors, valid, thresholds=t)


def auc_grids(errors, valid=None, grids=None):
    """Return the AUC of the same errors on several threshold grids.

    Args:
      errors: [N, K] errors, metres for the default grids.
      valid: [N, K] bool (broadcastable) or None.
      grids: name -> [T] thresholds; default ``AUC_20_50_GRIDS``.

    Returns:
      dict name -> AUC (mean over included keypoints).
    """
    grids = AUC_20_50_GRIDS if grids is None else grids
    return {
        name: keypoint_metrics_from_errors(errors, valid, thresholds=t).auc
        for name, t in grids.items()
    }


def align_root(pred, gt, root=0):
    """Translate each prediction so that its root keypoint sits on the ground truth's.

    Args:
      pred: [N, K, D] predicted keypoints.
      gt: [N, K, D] ground-truth keypoints.
      root: index of the root keypoint (0: the wrist in the canonical order; STB's palm centre
        if the loader keeps it at 0, as hand3d's STB evaluation does).

    Returns:
      [N, K, D] ``pred - pred[:, root] + gt[:, root]``.
    """
    pred, gt, _ = _check_pair(pred, gt)
    return pred - pred[:, root : root + 1] + gt[:, root : root + 1]


def align_root_scale(pred, gt, root=0, ref_bone=REF_BONE):
    """Root-align and rescale each prediction to the ground truth's reference bone length.

    Zimmermann & Brox: the prediction, root-relative and normalised by its own reference bone,
    is rescaled by the ground truth's bone length and placed at the ground-truth root.

    Args:
      pred: [N, K, D] predicted keypoints.
      gt: [N, K, D] ground-truth keypoints.
      root: index of the root keypoint.
      ref_bone: (a, b) keypoint indices of the reference bone; default canonical middle MCP->PIP.

    Returns:
      [N, K, D] ``(pred - pred[root]) * |gt[b] - gt[a]| / |pred[b] - pred[a]| + gt[root]``
      (a zero-length predicted bone gives scale 0: the prediction collapses onto the root).
    """
    pred, gt, _ = _check_pair(pred, gt)
    a, b = ref_bone
    gt_len = np.linalg.norm(gt[:, b] - gt[:, a], axis=-1)
    pred_len = np.linalg.norm(pred[:, b] - pred[:, a], axis=-1)
    scale = np.where(pred_len > 0, gt_len / np.where(pred_len > 0, pred_len, 1.0), 0.0)
    rel = pred - pred[:, root : root + 1]
    return rel * scale[:, None, None] + gt[:, root : root + 1]


def _weighted_centres(pred, gt, valid):
    w = valid.astype(np.float64)[..., None]  # [N, K, 1]
    count = np.maximum(w.sum(1, keepdims=True), 1.0)
    return (pred * w).sum(1, keepdims=True) / count, (gt * w).sum(1, keepdims=True) / count, w


def align_centroid(pred, gt, valid=None):
    """Translate each prediction so that the centroids of its valid keypoints coincide.

    Args:
      pred: [N, K, D] predicted keypoints.
      gt: [N, K, D] ground-truth keypoints.
      valid: [N, K] bool (broadcastable) or None; only valid keypoints define the centroids.

    Returns:
      [N, K, D] translated predictions.
    """
    pred, gt, valid = _check_pair(pred, gt, valid)
    mu_p, mu_g, _ = _weighted_centres(pred, gt, valid)
    return pred - mu_p + mu_g


def align_procrustes(pred, gt, valid=None, *, allow_reflection=False):
    """Align each prediction to its ground truth by the best similarity (Umeyama 1991).

    Per sample, finds s, R, t minimising ``sum_k valid_k |s R pred_k + t - gt_k|^2`` and applies
    them to all keypoints. FreiHAND's ``align_w_scale`` uses ``scipy.linalg.orthogonal_procrustes``
    which admits reflections: ``allow_reflection=True`` reproduces it; the default restricts R to
    proper rotations (the two agree unless the best fit is a mirror image).

    Args:
      pred: [N, K, 3] predicted points.
      gt: [N, K, 3] ground-truth points.
      valid: [N, K] bool (broadcastable) or None; only valid points define the transform.
      allow_reflection: allow det(R) = -1.

    Returns:
      [N, K, 3] aligned predictions, units of ``gt``.
    """
    pred, gt, valid = _check_pair(pred, gt, valid)
    mu_p, mu_g, w = _weighted_centres(pred, gt, valid)
    x = (pred - mu_p) * w
    y = (gt - mu_g) * w
    u, sig, vt = np.linalg.svd(np.einsum("nki,nkj->nij", y, x))  # svd of Y^T X, [N, 3, 3]
    d = np.ones_like(sig)
    if not allow_reflection:
        d[:, -1] = np.sign(np.linalg.det(u @ vt))  # u, vt are orthogonal: the det is +-1
    rot = u @ (d[:, :, None] * vt)
    var_p = np.sum(x**2, axis=(1, 2))
    scale = np.sum(sig * d, axis=-1) / np.where(var_p > 0, var_p, 1.0)
    aligned = np.einsum("nij,nkj->nki", rot, pred - mu_p)
    return scale[:, None, None] * aligned + mu_g


def f_score(pred_points, gt_points, threshold):
    """Compute the F-score of two point sets (FreiHAND protocol).

    precision = fraction of predicted points whose nearest GT point is closer than
    ``threshold``; recall = fraction of GT points whose nearest predicted point is closer than
    ``threshold`` (strict ``<``, as FreiHAND's ``calculate_fscore``; its variable names swap the
    two words, which does not change F); ``F = 2 P R / (P + R)``, 0 when P + R = 0.

    Args:
      pred_points: [P, 3] predicted points (vertices or keypoints).
      gt_points: [G, 3] ground-truth points.
      threshold: distance threshold, units of the points.

    Returns:
      An ``FScore``.
    """
    return f_score_thresholds(pred_points, gt_points, (threshold,))[0]


def f_score_thresholds(pred_points, gt_points, thresholds=FSCORE_THRESHOLDS):
    """Return ``f_score`` at each threshold, computing nearest neighbours once.

    Args:
      pred_points: [P, 3] predicted points.
      gt_points: [G, 3] ground-truth points.
      thresholds: distance thresholds, units of the points.

    Returns:
      A list of ``FScore``, one per threshold.
    """
    p = np.asarray(pred_points, np.float64)
    g = np.asarray(gt_points, np.float64)
    for arr, name in ((p, "pred_points"), (g, "gt_points")):
        if arr.ndim != 2 or arr.shape[0] == 0 or not np.all(np.isfinite(arr)):
            raise ValueError(f"{name}: expected a finite non-empty [P, D] array, got {arr.shape}")
    d_pred = cKDTree(g).query(p)[0]  # each predicted point to its nearest GT point
    d_gt = cKDTree(p).query(g)[0]
    out = []
    for t in thresholds:
        precision = float(np.mean(d_pred < t))
        recall = float(np.mean(d_gt < t))
        total = precision + recall
        out.append(FScore(2 * precision * recall / total if total > 0 else 0.0, precision, recall))
    return out


def f_scores(pred, gt, thresholds=FSCORE_THRESHOLDS):
    """Return per-sample F-scores of batches of point sets.

    Args:
      pred: [N, P, 3] predicted points.
      gt: [N, G, 3] ground-truth points.
      thresholds: [T] distance thresholds.

    Returns:
      [N, T] F-scores.
    """
    if len(pred) != len(gt):
        raise ValueError(
            f"pred, gt: expected the same number of samples, got {len(pred)}, {len(gt)}"
        )
    return np.array(
        [[s.f for s in f_score_thresholds(p, g, thresholds)] for p, g in zip(pred, gt, strict=True)]
    ).reshape(len(gt), len(thresholds))
