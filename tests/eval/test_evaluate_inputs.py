"""Scoring bad inputs: errors name the file (and ids); a failed run keeps the previous results."""

import os

import numpy as np
import pytest

from hand_jax.eval import evaluate, plots


def _hands(n=6, seed=0):
    rng = np.random.default_rng(seed)
    kp = rng.normal(size=(n, 21, 3)) * 0.03 + np.array([0.0, 0.0, 0.6])
    return np.array([f"test/{i:05d}" for i in range(n)]), kp


def _inputs(tmp_path, pred=None):
    ids, gt = _hands()
    np.savez(tmp_path / "gt.npz", ids=ids, keypoints_3d=gt)
    np.savez(tmp_path / "pred.npz", ids=ids, keypoints_3d=gt if pred is None else pred)
    return dict(dataset="stb", predictions=tmp_path / "pred.npz", ground_truth=tmp_path / "gt.npz")


def test_non_finite_predictions_name_the_file_and_the_ids(tmp_path):
    ids, gt = _hands()
    pred = gt.copy()
    pred[2, 5, 0] = np.nan
    pred[4, 0, 2] = np.inf
    kw = _inputs(tmp_path, pred)
    with pytest.raises(ValueError, match=r"pred.npz: keypoints_3d of 2 of 6 predictions are not "
                       r"finite .* ids \['test/00002', 'test/00004'\]"):  # fmt: skip
        evaluate.evaluate(out_dir=tmp_path / "o", **kw)
    assert not (tmp_path / "o").exists()


def test_non_finite_predictions_at_unlabelled_keypoints_are_ignored(tmp_path):
    ids, gt = _hands()
    valid = np.ones((6, 21), bool)
    valid[:, 3] = False
    pred = gt.copy()
    pred[:, 3] = np.nan
    np.savez(tmp_path / "gt.npz", ids=ids, keypoints_3d=gt, keypoint_valid=valid)
    np.savez(tmp_path / "pred.npz", ids=ids, keypoints_3d=pred)
    kw = dict(predictions=tmp_path / "pred.npz", ground_truth=tmp_path / "gt.npz")
    result = evaluate.evaluate(dataset="stb", out_dir=tmp_path / "o", **kw)
    assert result["primary"]["epe_mean_mm"] == pytest.approx(0.0, abs=1e-9)


def _snapshot(folder):
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


def test_failed_overwrite_keeps_the_previous_results(tmp_path, monkeypatch):
    kw = _inputs(tmp_path)
    out = tmp_path / "o"
    evaluate.evaluate(out_dir=out, **kw)
    before = _snapshot(out)
    assert "metrics.json" in before
    # Bad input found after the output check: nothing is touched.
    ids, gt = _hands()
    np.savez(tmp_path / "bad.npz", ids=ids, keypoints_3d=np.full_like(gt, np.nan))
    with pytest.raises(ValueError, match="not finite"):
        evaluate.evaluate(out_dir=out, overwrite=True, **dict(kw, predictions=tmp_path / "bad.npz"))
    assert _snapshot(out) == before

    # An exception while the outputs are being written: the half-written folder is dropped.
    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(plots, "plot_results", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        evaluate.evaluate(out_dir=out, overwrite=True, **kw)
    assert _snapshot(out) == before
    assert sorted(os.listdir(tmp_path)) == ["bad.npz", "gt.npz", "o", "pred.npz"]


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", r"pred.npz: not a readable npz of predictions \(EOFError"),
        (b"not a zip at all", r"pred.npz: not a readable npz of predictions"),
        ("truncated", r"pred.npz: not a readable npz of predictions \(BadZipFile"),
        ({"ids": np.array([{"x": 1}] * 6, object)}, r"key 'ids' is not a readable array"),
        ({"keypoints_3d": np.full((6, 21, 3), "x")}, r"keypoints_3d: expected numbers"),
        ({"ids": np.zeros(6, complex)}, r"ids: expected str or int ids"),
        ({"ids": np.array([b"\xff"] * 6)}, r"ids: bytes ids must be ASCII"),
        ({"keypoint_valid": np.array(["yes"] * 126).reshape(6, 21)}, r"keypoint_valid: expected"),
        ({"ids": np.array([], str), "keypoints_3d": np.zeros((0, 21, 3))}, r"no samples"),
        ({"verts": np.array([["v"]])}, r"verts: expected numbers"),
    ],
)
def test_unreadable_predictions_name_the_file(tmp_path, content, match):
    kw = _inputs(tmp_path)
    path = tmp_path / "pred.npz"
    if isinstance(content, dict):
        ids, gt = _hands()
        np.savez(path, **{"ids": ids, "keypoints_3d": gt, **content})
    elif content == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=match) as info:
        evaluate.evaluate(out_dir=tmp_path / "o", **kw)
    assert "pred.npz" in str(info.value)
    assert not (tmp_path / "o").exists()
