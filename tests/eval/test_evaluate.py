"""End-to-end tests of hand_jax.eval.evaluate and the launch.evaluate launcher."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from hand_jax import outputs
from hand_jax.eval import evaluate, protocol
from tests.data import test_dexter_object as dexter_fixtures  # a plain import: errors fail

REPO = Path(__file__).resolve().parents[2]


def _hands(n=12, seed=0):
    """Hand-sized random keypoints (metres, ~10 cm across) with ids."""
    rng = np.random.default_rng(seed)
    kp = rng.normal(size=(n, 21, 3)) * 0.03 + np.array([0.0, 0.0, 0.6])
    return np.array([f"test/{i:05d}" for i in range(n)]), kp


def _write(path, **arrays):
    np.savez(path, **arrays)
    return path


def _run(tmp_path, pred, gt_ids, gt, name="out", **kwargs):
    pred_path = _write(tmp_path / f"{name}_pred.npz", **pred)
    gt_path = _write(tmp_path / f"{name}_gt.npz", ids=gt_ids, keypoints_3d=gt, **kwargs)
    kw = dict(dataset="stb", predictions=pred_path, ground_truth=gt_path, out_dir=tmp_path / name)
    return evaluate.evaluate(**kw), tmp_path / name


def test_exact_scaled_prediction_scores_perfectly_and_ids_are_matched(tmp_path):
    ids, gt = _hands()
    perm = np.random.default_rng(1).permutation(len(ids))
    pred = 1.3 * gt + np.array([0.01, -0.02, 0.05])  # right shape, wrong scale and position
    result, out = _run(tmp_path, dict(ids=ids[perm], keypoints_3d=pred[perm]), ids, gt)
    p = result["primary"]
    assert p["alignment"] == "root_scale"
    assert p["auc_20_50"] == 1.0
    # 0-50 mm includes t = 0, where float round-off (error 1e-17 > 0) may fail a keypoint.
    assert p["auc_0_50"] >= 1.0 - 0.5 / 19
    assert p["epe_mean_mm"] == pytest.approx(0.0, abs=1e-6)
    assert result["alignments"]["procrustes"]["f_score_keypoints"] == {"5mm": 1.0, "15mm": 1.0}
    assert result["alignments"]["none"]["epe_mean_mm"] > 10.0
    assert sorted(p.name for p in out.iterdir() if p.name != outputs.OWNED) == [
        "ablation.csv", "ablation.md", "comparison.csv", "comparison.md", "metrics.json",
        "pck_stb.png", "per_sample.npz",
    ]  # fmt: skip
    with np.load(out / "per_sample.npz") as f:
        np.testing.assert_array_equal(f["ids"], ids)
        # Back in ground-truth order, in STB's protocol keypoints (palm centre as keypoint 0).
        np.testing.assert_allclose(f["keypoints_3d"], protocol.palm_from_wrist(pred))
        assert f["root_convention"] == "palm"
        assert f["errors_root_scale"].shape == (len(ids), 21)
    assert json.loads((out / "metrics.json").read_text()) == json.loads(json.dumps(result))


def test_hand_computed_offsets(tmp_path):
    ids, gt = _hands(4)
    pred = gt + np.array([0.01, 0.0, 0.0])  # every keypoint 10 mm off along x
    pred[1, 5] += np.array([0.0, 0.03, 0.0])  # one keypoint sqrt(10^2 + 30^2) mm off
    result, _ = _run(tmp_path, dict(ids=ids, keypoints_3d=pred), ids, gt)
    none = result["alignments"]["none"]
    per_kp = none["per_keypoint"]["epe_mean_mm"]
    assert per_kp[0] == pytest.approx(10.0)
    assert per_kp[5] == pytest.approx((3 * 10.0 + np.hypot(10.0, 30.0)) / 4)
    assert none["epe_median_mm"] == pytest.approx(10.0)  # keypoint 5's median is 10 mm too
    assert none["epe_mean_pooled_mm"] == pytest.approx(10.0 + (np.hypot(10, 30) - 10) / 84)
    t = np.linspace(0.0, 50.0, 20)
    step = (t >= 10.0 + 1e-9).astype(float)  # PCK of a keypoint always 10 mm off
    kp5 = 0.75 * step + 0.25 * (t >= np.hypot(10.0, 30.0))
    expected = (20 * np.trapezoid(step, t) + np.trapezoid(kp5, t)) / 21 / 50
    assert none["auc_0_50"] == pytest.approx(expected)
    root = result["alignments"]["root"]
    assert root["epe_mean_mm"] == pytest.approx(np.hypot(0, 30) / 4 / 21)


def test_centroid_alignment_needs_three_labelled_points(tmp_path):
    ids, gt = _hands(3)
    valid = np.zeros((3, 21), bool)
    valid[:, [4, 8, 12, 16, 20]] = True
    valid[1, [4, 8, 12, 16]] = False  # one tip: its centroid-aligned error would be 0
    valid[2, [4, 8, 12]] = False  # two tips: the error would be halved
    pred = gt + np.random.default_rng(0).normal(scale=0.03, size=gt.shape)
    pred_path = _write(tmp_path / "p.npz", ids=ids, keypoints_3d=pred)
    gt_path = _write(tmp_path / "g.npz", ids=ids, keypoints_3d=gt, keypoint_valid=valid)
    result = evaluate.evaluate(
        dataset="dexter_object", predictions=pred_path, ground_truth=gt_path, out_dir=tmp_path / "o"
    )
    block = result["alignments"]["centroid"]
    assert block["samples_excluded"] == 2 and block["samples_used"] == 1
    tips = pred[0, [4, 8, 12, 16, 20]] - gt[0, [4, 8, 12, 16, 20]]
    expected = np.linalg.norm(tips - tips.mean(0), axis=-1).mean() * 1000.0
    assert result["primary"]["epe_mean_mm"] == pytest.approx(expected, rel=1e-6)


def test_fingertips_only_ground_truth_uses_centroid_and_ignores_unlabelled(tmp_path):
    ids, gt = _hands(6)
    valid = np.zeros((6, 21), bool)
    valid[:, [4, 8, 12, 16, 20]] = True
    valid[0, 4] = False
    gt_stored = np.where(valid[..., None], gt, 32001.0)  # Dexter+Object's sentinel
    pred = gt + np.array([0.05, 0.0, 0.0])
    pred[~valid] = np.nan
    pred_path = _write(tmp_path / "p.npz", ids=ids, keypoints_3d=pred)
    gt_path = _write(tmp_path / "g.npz", ids=ids, keypoints_3d=gt_stored, keypoint_valid=valid)
    result = evaluate.evaluate(
        dataset="dexter_object", predictions=pred_path, ground_truth=gt_path, out_dir=tmp_path / "o"
    )
    assert result["primary"]["alignment"] == "centroid"
    assert result["primary"]["epe_mean_mm"] == pytest.approx(0.0, abs=1e-6)
    assert set(result["skipped_alignments"]) == {"root", "root_scale"}
    counts = result["alignments"]["centroid"]["per_keypoint"]["valid_count"]
    assert counts[4] == 5 and counts[8] == 6 and counts[0] == 0
    assert result["alignments"]["centroid"]["samples_excluded"] == 0
    assert result["alignments"]["centroid"]["excluded_keypoints"] == [
        k for k in range(21) if k not in (4, 8, 12, 16, 20)
    ]


def test_procrustes_and_mesh_metrics_for_a_similarity_transform(tmp_path):
    ids, gt = _hands(5)
    rot = Rotation.from_euler("xyz", [0.3, -0.2, 1.0]).as_matrix()
    verts = np.random.default_rng(2).normal(size=(5, 40, 3)) * 0.03
    pred = dict(ids=ids, keypoints_3d=0.8 * gt @ rot.T + 0.1, verts=0.8 * verts @ rot.T + 0.1)
    result, _ = _run(tmp_path, pred, ids, gt, verts=verts)
    assert result["alignments"]["procrustes"]["epe_mean_mm"] == pytest.approx(0.0, abs=1e-6)
    assert result["mesh"]["procrustes_epe_mean_mm"] == pytest.approx(0.0, abs=1e-6)
    assert result["mesh"]["f_score"] == {"5mm": 1.0, "15mm": 1.0}
    assert result["mesh"]["f_score_unaligned"]["15mm"] < 0.5


def test_per_sample_npz_is_reusable_as_predictions(tmp_path):
    ids, gt = _hands()
    pred = gt + np.random.default_rng(3).normal(size=gt.shape) * 0.01
    first, out = _run(tmp_path, dict(ids=ids, keypoints_3d=pred), ids, gt)
    second = evaluate.evaluate(
        dataset="stb", predictions=out / "per_sample.npz", ground_truth=tmp_path / "out_gt.npz",
        out_dir=tmp_path / "again", variant="rerun", compare_with=[out / "metrics.json"],
    )  # fmt: skip
    assert second["alignments"] == first["alignments"]
    ablation = (tmp_path / "again" / "ablation.md").read_text()
    assert "hand_jax (rerun)" in ablation and "| hand_jax |" in ablation


def test_ground_truth_from_load_split(tmp_path, monkeypatch):
    ids, gt = _hands(3)
    samples = [
        dict(id=str(i), keypoints_3d=k.astype(np.float32), keypoint_valid=np.ones(21, bool),
             keypoints_2d=np.zeros((21, 2), np.float32), side="right", original_side="right")
        for i, k in zip(ids, gt, strict=True)
    ]  # fmt: skip
    calls = []

    def fake_load_split(name, data_dir, split, **options):
        calls.append((name, data_dir, split, options))
        return samples

    import hand_jax.data

    monkeypatch.setattr(hand_jax.data, "load_split", fake_load_split)
    pred_path = _write(tmp_path / "p.npz", ids=ids, keypoints_3d=gt)
    result = evaluate.evaluate(
        dataset="rhd", predictions=pred_path, data_dir="/data/rhd", out_dir=tmp_path / "o"
    )
    assert calls == [("rhd", "/data/rhd", "test", {})]
    assert result["primary"]["auc_20_50"] == 1.0


@pytest.mark.parametrize(
    "pred_kwargs, match",
    [
        (dict(keypoints_3d=np.zeros((3, 21, 3))), "missing key 'ids'"),
        (
            dict(ids=np.array(["a", "b", "c"]), keypoints_3d=np.zeros((3, 21))),
            r"expected ids \[N\]",
        ),
        (dict(ids=np.array(["a", "b"]), keypoints_3d=np.zeros((2, 21, 3))), "1 ground-truth ids"),
        (
            dict(ids=np.array(["a", "b", "c", "d"]), keypoints_3d=np.zeros((4, 21, 3))),
            "1 predicted",
        ),
        (dict(ids=np.array(["a", "a", "c"]), keypoints_3d=np.zeros((3, 21, 3))), "duplicate ids"),
        (dict(ids=np.array(["a", "b", "c"]), keypoints_3d=np.zeros((3, 20, 3))), "keypoints_3d"),
    ],
)
def test_bad_inputs_give_clear_errors(tmp_path, pred_kwargs, match):
    gt = dict(ids=np.array(["a", "b", "c"]), keypoints_3d=np.ones((3, 21, 3)))
    kw = dict(dataset="stb", out_dir=tmp_path / "o", overwrite=True)
    kw.update(ground_truth=_write(tmp_path / "g.npz", **gt))
    with pytest.raises(ValueError, match=match):
        evaluate.evaluate(predictions=_write(tmp_path / "p.npz", **pred_kwargs), **kw)


def test_argument_and_out_dir_errors(tmp_path):
    ids, gt = _hands(2)
    p = _write(tmp_path / "p.npz", ids=ids, keypoints_3d=gt)
    kw = dict(dataset="stb", ground_truth=p, out_dir=tmp_path / "o")
    with pytest.raises(ValueError, match="pass the predictions npz"):
        evaluate.evaluate(**kw)
    with pytest.raises(FileNotFoundError, match="predictions file .*missing.npz"):
        evaluate.evaluate(predictions=tmp_path / "missing.npz", **kw)
    evaluate.evaluate(predictions=p, overwrite=True, **kw)
    with pytest.raises(FileExistsError, match="not empty; pass --overwrite"):
        evaluate.evaluate(predictions=p, **kw)
    evaluate.evaluate(predictions=p, overwrite=True, **kw)


def test_units_warning(tmp_path, caplog):
    ids, gt = _hands(3)
    with caplog.at_level("WARNING"):
        _run(tmp_path, dict(ids=ids, keypoints_3d=gt * 1000), ids, gt)
    assert "units" in caplog.text


def test_launcher_end_to_end(tmp_path):
    ids, gt = _hands(4)
    p = _write(tmp_path / "p.npz", ids=ids, keypoints_3d=gt)
    cmd = [sys.executable, "-m", "launch.evaluate", f"--predictions={p}", f"--ground_truth={p}",
           "--dataset=stb", f"--out_dir={tmp_path / 'o'}"]  # fmt: skip
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "AUC 20-50 mm 1.000" in done.stdout
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert again.returncode != 0 and "pass --overwrite" in again.stderr


def test_dexter_object_through_the_real_loader(tmp_path):
    """Ground truth via hand_jax.data.load_split on a native-format fixture tree."""
    fixtures = dexter_fixtures
    from hand_jax.data import dexter_object, load_split

    for i, seq in enumerate(dexter_object.SEQUENCES):
        fixtures.write_sequence(str(tmp_path / "do"), seq, n=2, seed=i, missing=((1, 2),))
    samples = load_split("dexter_object", str(tmp_path / "do"), "test")
    ids = np.array([s["id"] for s in samples])
    # Predictions in the original camera frame: the loader's left hands un-mirrored.
    kp3 = np.stack([protocol.unmirror(s)["keypoints_3d"] for s in samples]).astype(np.float64)
    pred = np.where(np.stack([s["keypoint_valid"] for s in samples])[..., None], kp3, np.nan)
    pred_path = _write(tmp_path / "p.npz", ids=ids, keypoints_3d=pred + [0.02, 0.0, -0.01])
    result = evaluate.evaluate(
        dataset="dexter_object", predictions=pred_path, data_dir=tmp_path / "do",
        out_dir=tmp_path / "o",
    )  # fmt: skip
    assert result["num_samples"] == 12
    assert result["primary"]["alignment"] == "centroid"
    assert result["primary"]["epe_mean_mm"] == pytest.approx(0.0, abs=1e-3)  # float32 labels
    assert result["alignments"]["none"]["epe_mean_mm"] == pytest.approx(np.hypot(20, 10), rel=1e-4)
    counts = result["alignments"]["centroid"]["per_keypoint"]["valid_count"]
    assert [counts[k] for k in (4, 8, 12, 16, 20)] == [12, 12, 6, 12, 12]
    comparison = (tmp_path / "o" / "comparison.md").read_text()
    assert "| hand_jax (this implementation) | not run | not run | 1.000 |" in comparison
