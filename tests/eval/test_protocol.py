"""Benchmark-protocol mappings: STB's palm root, left hands un-mirrored, crops back to source
pixels, Dexter+Object fingertips. Each test names the one-line bug it catches."""

import collections
import json
import types

import numpy as np
import pytest

import hand_jax.data
from hand_jax import keypoints as kp
from hand_jax.data import crop, schema, stb
from hand_jax.estimate import scoring
from hand_jax.eval import evaluate, protocol
from tests.data import test_stb as stb_fixtures  # a plain import: an import error fails

W, H = 64, 48  # source image size of the synthetic samples
K = np.array([[60.0, 0.5, 30.0], [0.0, 62.0, 22.0], [0.0, 0.0, 1.0]])


def _hand(rng, n=None):
    """Hand-sized random keypoints [(n,) 21, 3] (metres) half a metre in front of the camera."""
    shape = (21, 3) if n is None else (n, 21, 3)
    return rng.normal(size=shape) * 0.03 + np.array([0.02, -0.01, 0.5])


def _sample(rng, i, *, side="left", xyz=None):
    """A source sample as a loader returns it: a left hand mirrored to a right one."""
    xyz = _hand(rng) if xyz is None else xyz
    uv = xyz[:, :2] / xyz[:, 2:] @ K[:2, :2].T + K[:2, 2]
    image = rng.integers(0, 256, (H, W, 3))
    s = schema.make_sample(id=f"t/{i}", side=side, image=image, keypoints_2d=uv,
                           keypoints_3d=xyz, K=K)  # fmt: skip
    return schema.to_right_hand(s)


def _fake_load_split(monkeypatch, samples, calls=None):
    def load_split(name, data_dir, split, **options):
        if calls is not None:
            calls.append(options)
        return samples(**options) if callable(samples) else samples

    monkeypatch.setattr(hand_jax.data, "load_split", load_split)


def _perfect(crops):
    """A network that predicts every protocol crop's labels (mirrored crop frame)."""
    kp3 = np.stack([c["keypoints_3d"] for c in crops]).astype(np.float64)
    kp2 = np.stack([c["keypoints_2d"] for c in crops]).astype(np.float64)
    return {"kp3d": kp3, "kp2d": kp2, "verts": kp3[:, :5]}


# --- STB: the palm centre as root ------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_palm_from_wrist_is_the_exact_inverse_of_stb_wrist_from_palm(seed):
    """Catches a wrong ring-MCP index, a wrong factor, or touching keypoints other than 0."""
    rng = np.random.default_rng(seed)
    for shape in ((4, 21, 3), (21, 2)):
        palm = rng.normal(size=shape)
        np.testing.assert_allclose(protocol.palm_from_wrist(stb.wrist_from_palm(palm)), palm,
                                   rtol=0, atol=1e-14)  # fmt: skip
        np.testing.assert_allclose(stb.wrist_from_palm(protocol.palm_from_wrist(palm)), palm,
                                   rtol=0, atol=1e-14)  # fmt: skip
    # Closed form: wrist at the origin, ring MCP (canonical "ring1") at (2, 4, 6).
    hand = np.zeros((21, 3))
    hand[kp.CANONICAL_NAMES.index("ring1")] = [2.0, 4.0, 6.0]
    hand[5] = [7.0, 7.0, 7.0]
    expected = hand.copy()
    expected[0] = [1.0, 2.0, 3.0]
    np.testing.assert_array_equal(protocol.palm_from_wrist(hand), expected)


def _stb_samples(palm_hands):
    """Fake STB loader: palm-rooted labels; ``palm_to_wrist`` as the real loader (default on)."""

    def samples(palm_to_wrist=True):
        rng = np.random.default_rng(0)
        out = []
        for i, palm in enumerate(palm_hands):
            xyz = stb.wrist_from_palm(palm) if palm_to_wrist else palm
            out.append(_sample(rng, i, side="right", xyz=xyz))
        return out

    return samples


def test_stb_scores_the_palm_root_where_wrist_vs_palm_would_not(tmp_path, monkeypatch):
    """Catches predictions left at the wrist, or ground truth read with the wrist estimate."""
    palm = _hand(np.random.default_rng(2), 6)
    calls = []
    _fake_load_split(monkeypatch, _stb_samples(palm), calls)
    wrist = stb.wrist_from_palm(palm)  # the MANO-style hand a network predicts
    ids = np.array([f"t/{i}" for i in range(6)])
    kw = dict(dataset="stb", data_dir="/stb")
    np.savez(tmp_path / "ours.npz", ids=ids, keypoints_3d=1.3 * wrist + [0.1, 0.0, 0.2])
    result = evaluate.evaluate(predictions=tmp_path / "ours.npz", out_dir=tmp_path / "a", **kw)
    assert calls == [{"palm_to_wrist": False}]
    assert result["primary"]["alignment"] == "root_scale"
    assert result["primary"]["epe_mean_mm"] == pytest.approx(0.0, abs=1e-3)  # float32 labels
    assert result["alignments"]["root"]["epe_mean_mm"] > 5.0  # the scale is off: not a no-op
    block = result["protocol"]
    assert block["root_keypoint"] == {"index": 0, "name": "palm centre (STB label)"}
    assert block["ref_bone_names"] == ["middle1", "middle2"]
    assert block["root_convention_in"] == {"predictions": "wrist", "ground_truth": "palm"}
    # The old behaviour: the predicted wrist scored against the palm centre.
    np.savez(tmp_path / "old.npz", ids=ids, keypoints_3d=wrist, root_convention="palm")
    old = evaluate.evaluate(predictions=tmp_path / "old.npz", out_dir=tmp_path / "b", **kw)
    assert old["primary"]["epe_mean_mm"] > 5.0


def test_root_convention_errors_name_the_file_and_key(tmp_path):
    ids, hand = np.array(["a", "b"]), _hand(np.random.default_rng(3), 2)
    np.savez(tmp_path / "gt.npz", ids=ids, keypoints_3d=hand)
    kw = dict(ground_truth=tmp_path / "gt.npz", out_dir=tmp_path / "o")
    np.savez(tmp_path / "p.npz", ids=ids, keypoints_3d=hand, root_convention="palm")
    with pytest.raises(ValueError, match=r"p.npz: root_convention='palm': 'rhd' is scored at"):
        evaluate.evaluate(dataset="rhd", predictions=tmp_path / "p.npz", **kw)
    np.savez(tmp_path / "p.npz", ids=ids, keypoints_3d=hand, root_convention="elbow")
    with pytest.raises(ValueError, match=r"p.npz: root_convention: expected a scalar string"):
        evaluate.evaluate(dataset="stb", predictions=tmp_path / "p.npz", **kw)


# --- Left hands: back to the original frame ---------------------------------------------------


def test_unmirror_inverts_the_loaders_mirror():
    """Catches u -> -u, u -> W - 1 - u, X left mirrored, or K not mirrored back."""
    rng = np.random.default_rng(4)
    original = schema.make_sample(id="a", side="left", image=rng.integers(0, 256, (H, 37, 3)),
                                  keypoints_2d=rng.uniform(0, 37, (21, 2)),
                                  keypoints_3d=_hand(rng), K=K)  # fmt: skip
    back = protocol.unmirror(schema.mirror_sample(original))
    np.testing.assert_array_equal(back["keypoints_3d"], original["keypoints_3d"])
    np.testing.assert_allclose(back["keypoints_2d"], original["keypoints_2d"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(back["K"], original["K"], rtol=0, atol=1e-5)
    np.testing.assert_array_equal(back["image"], original["image"])
    assert back["side"] == "left"
    # Hand-computed, exact in float32: W = 10, u' = 7.75 -> u = 2.25; X' = -0.125 -> X = 0.125.
    np.testing.assert_array_equal(
        protocol.unmirror_pixels(np.array([[7.75, 3.5]], np.float32), width=10), [[2.25, 3.5]]
    )
    np.testing.assert_array_equal(
        protocol.unmirror_points(np.array([[-0.125, -0.25, 0.5]])), [[0.125, -0.25, 0.5]]
    )
    right = schema.to_right_hand(dict(original, side="right", original_side="right"))
    assert protocol.unmirror(right)["keypoints_2d"] is right["keypoints_2d"]  # not mirrored


def test_crop_pixels_map_back_to_source_pixels_by_the_inverse_affine():
    """Catches applying the crop matrix instead of its inverse, or dropping its translation."""
    # Box (u0, v0, side) = (10.5, 20, 50) onto 100 px: u' = 2 (u - 10.5), v' = 2 (v - 20).
    matrix = crop.box_matrix((10.5, 20.0, 50.0), out_size=100)
    source = protocol.crop_to_source_pixels(np.array([[13.25, 7.5]]), matrix)
    np.testing.assert_allclose(source, [[13.25 / 2 + 10.5, 7.5 / 2 + 20.0]], rtol=0, atol=1e-12)
    # A rotated crop: crop_sample's own forward map, undone.
    sample = _sample(np.random.default_rng(5), 0)
    cropped = crop.crop_sample(sample, out_size=32, rotation=0.4, scale=1.3, shift=(0.1, -0.05))
    back = protocol.crop_to_source_pixels(cropped["keypoints_2d"], cropped["crop_matrix"])
    np.testing.assert_allclose(back, sample["keypoints_2d"], rtol=0, atol=1e-3)


def _left_hand_run(tmp_path, monkeypatch, *, drop_prediction_mirror=False, gt_npz=False):
    """Loader -> rotated protocol crops -> perfect predictions -> write_predictions -> evaluate."""
    rng = np.random.default_rng(6)
    loaded = [_sample(rng, i, side=("left", "right", "left")[i]) for i in range(3)]
    crops = []
    for i, s in enumerate(loaded):  # rotated, so that the camera rotation must be undone too
        c = crop.crop_sample(s, out_size=32, rotation=0.3 * i)
        crops.append({**c, protocol.SOURCE_WIDTH: W})
    frames = protocol.source_frames(crops)
    if drop_prediction_mirror:
        frames = frames._replace(mirrored=np.zeros(3, bool))
    scoring.write_predictions(str(tmp_path / "p.npz"), frames, _perfect(crops))
    kw = dict(dataset="rhd", predictions=tmp_path / "p.npz", out_dir=tmp_path / "o")
    if gt_npz:  # the loader's (mirrored) labels used as ground truth as they are
        np.savez(tmp_path / "gt.npz", ids=frames.ids,
                 keypoints_3d=np.stack([s["keypoints_3d"] for s in loaded]),
                 keypoints_2d=np.stack([s["keypoints_2d"] for s in loaded]))  # fmt: skip
        return evaluate.evaluate(ground_truth=tmp_path / "gt.npz", **kw)
    _fake_load_split(monkeypatch, loaded)
    return evaluate.evaluate(data_dir="/rhd", **kw)


def test_left_hand_predicted_perfectly_in_the_mirrored_frame_scores_zero(tmp_path, monkeypatch):
    """Catches any of: crop rotation, crop affine or mirror not undone on both sides alike."""
    result = _left_hand_run(tmp_path, monkeypatch)
    for name in ("none", "root", "root_scale", "procrustes"):
        assert result["alignments"][name]["epe_mean_mm"] == pytest.approx(0.0, abs=1e-3)
    assert result["keypoints_2d"]["epe_mean_px"] == pytest.approx(0.0, abs=1e-3)
    with np.load(tmp_path / "p.npz") as f:  # the original frame: un-mirrored by hand here
        assert str(f["root_convention"]) == "wrist"
        rng = np.random.default_rng(6)
        first = _sample(rng, 0)
        expected = first["keypoints_3d"] * np.array([-1.0, 1.0, 1.0], np.float32)
        np.testing.assert_allclose(f["keypoints_3d"][0], expected, rtol=0, atol=1e-6)
        u = W - first["keypoints_2d"][:, 0]
        np.testing.assert_allclose(f["keypoints_2d"][0, :, 0], u, rtol=0, atol=1e-3)


@pytest.mark.parametrize("side", ["prediction", "ground_truth"])
def test_a_mirror_dropped_on_one_side_is_an_error(tmp_path, monkeypatch, side):
    """The mirror left on one side only: root-relative and 2D errors are not zero."""
    result = _left_hand_run(tmp_path, monkeypatch, drop_prediction_mirror=side == "prediction",
                            gt_npz=side == "ground_truth")  # fmt: skip
    assert result["alignments"]["root_scale"]["epe_mean_mm"] > 5.0
    assert result["keypoints_2d"]["epe_mean_px"] > 1.0


def test_stb_through_the_real_loader_and_protocol_crops(tmp_path):
    """STB fixture end to end: crops, un-mirroring, wrist -> palm, palm ground truth."""
    fixtures = stb_fixtures
    labels = fixtures.write_stb(str(tmp_path / "data"), ["B1Counting", "B1Random"])
    root = str(tmp_path / "data")
    crops = protocol.load_crops("stb", root, "test", crop_size=32, crop_margin=0.25)
    frames = protocol.source_frames(crops)
    scoring.write_predictions(str(tmp_path / "p.npz"), frames, _perfect(crops))
    with np.load(tmp_path / "p.npz") as f:  # independent: test_stb's reference conversion
        xyz, uv = fixtures._expected(labels["B1Random"][1], wrist=True)
        np.testing.assert_allclose(f["keypoints_3d"][3], xyz, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(f["keypoints_2d"][3], uv, rtol=1e-5, atol=1e-3)
    result = evaluate.evaluate(dataset="stb", predictions=tmp_path / "p.npz",
                               data_dir=tmp_path / "data", out_dir=tmp_path / "o")  # fmt: skip
    for name in ("none", "root", "root_scale", "procrustes"):
        assert result["alignments"][name]["epe_mean_mm"] == pytest.approx(0.0, abs=1e-3)
    assert result["protocol"]["root_keypoint"]["name"] == "palm centre (STB label)"


def test_checkpoint_predictions_are_mapped_to_the_original_frame(tmp_path, monkeypatch):
    """Scoring a checkpoint un-mirrors like write_predictions (a stub network, no jit)."""
    fixtures = stb_fixtures
    fixtures.write_stb(str(tmp_path / "data"), ["B1Counting", "B1Random"])
    network = types.SimpleNamespace(image_size=32, crop_margin=0.25)
    monkeypatch.setattr(scoring.core, "load_network", lambda checkpoint, **kw: network)
    monkeypatch.setattr(scoring.core, "make_estimate_fn", lambda net, **kw: None)

    def perfect(fn, samples, *, batch_size):  # both variants: the crops' own labels
        p = _perfect(samples)
        m = collections.defaultdict(float)  # every validation metric 0
        return {"predictions": {"network": p, "refined": p}, "network": m, "refined": m}

    monkeypatch.setattr(scoring, "score", perfect)
    summary = scoring.evaluate_split(
        "/run", dataset="stb", data_dir=str(tmp_path / "data"), split="test",
        out_dir=str(tmp_path / "o"), refine_steps=0,
    )  # fmt: skip
    assert summary["protocol"]["network"]["epe_mean_mm"] == pytest.approx(0.0, abs=1e-3)
    result = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert result["alignments"]["none"]["epe_mean_mm"] == pytest.approx(0.0, abs=1e-3)


# --- Dexter+Object: fingertips only ------------------------------------------------------------


def test_dexter_object_scores_only_the_fingertips(tmp_path):
    """Catches non-tip labels scored (or moving the centroid) when the file labels them."""
    rng = np.random.default_rng(7)
    ids, hand = np.array([f"d/{i}" for i in range(5)]), _hand(rng, 5)
    pred = hand + rng.normal(size=hand.shape) * 0.05  # non-tips far off ...
    tips = list(kp.CANONICAL_TIPS)
    pred[:, tips] = hand[:, tips] + [0.03, 0.0, 0.0]  # ... the tips exact up to a shift
    np.savez(tmp_path / "gt.npz", ids=ids, keypoints_3d=hand)  # every keypoint labelled
    np.savez(tmp_path / "p.npz", ids=ids, keypoints_3d=pred)
    kw = dict(predictions=tmp_path / "p.npz", ground_truth=tmp_path / "gt.npz")
    result = evaluate.evaluate(dataset="dexter_object", out_dir=tmp_path / "o", **kw)
    assert result["primary"]["alignment"] == "centroid"
    assert result["primary"]["epe_mean_mm"] == pytest.approx(0.0, abs=1e-6)
    counts = result["alignments"]["centroid"]["per_keypoint"]["valid_count"]
    assert [k for k in range(21) if counts[k]] == tips
    assert result["protocol"]["scored_keypoints"] == [kp.CANONICAL_NAMES[k] for k in tips]
    assert any("80 ground-truth labels not scored" in n for n in result["notes"])
    stored = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert stored["protocol"]["alignment"] == "centroid"
    for table in ("comparison.md", "ablation.md"):
        text = (tmp_path / "o" / table).read_text()
        assert "Dexter+Object: the 5 fingertips only, aligned by the centroid" in text


def test_a_palm_rooted_set_without_its_convention_is_warned_about(caplog):
    from hand_jax.eval import keypoint_io

    wrist = _hand(np.random.default_rng(3), 4)
    wrist[:, 0] = [0.0, 0.0, 0.5]  # the wrist 90 mm from the middle MCP, as on a real hand
    wrist[:, kp.CANONICAL_MCP["middle"]] = [0.0, -0.09, 0.5]
    wrist[:, kp.CANONICAL_MCP["ring"]] = [0.02, -0.085, 0.5]
    palm = protocol.palm_from_wrist(wrist)  # keypoint 0 now 49 mm from the middle MCP
    valid = np.ones(wrist.shape[:2], bool)
    ids = np.arange(4).astype(str)
    for keypoints, warned in ((wrist, False), (palm, True)):
        caplog.clear()
        ks = keypoint_io.KeypointSet(ids, keypoints, valid)  # root_convention: "wrist" (default)
        keypoint_io.to_protocol(ks, "stb", "gt.npz")
        assert ("gt.npz: keypoint 0 lies a median" in caplog.text) == warned
        caplog.clear()
        keypoint_io.to_protocol(ks, "rhd", "gt.npz")  # scored at the wrist: nothing to say
        assert caplog.text == ""
