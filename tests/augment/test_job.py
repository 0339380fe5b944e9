"""The augmentation job: a dataset the training reader takes, resumable, refusals, seeds."""

import dataclasses
import json
import os

import numpy as np
import pytest

from hand_jax import augment, data, outputs
from hand_jax.augment import job
from hand_jax.data import synthetic, synthetic_gen
from tests.estimate.test_core import tiny_network

GEN = synthetic_gen.GeneratorConfig(image_size=48, chunk=5, supersample=1)


@pytest.fixture(scope="module")
def net():
    return tiny_network()


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("src") / "synth")
    synthetic_gen.generate_dataset(out, splits={"train": 5, "test": 2}, seed=2, config=GEN,
                                   shard_size=5, sheet_count=0, progress=False)  # fmt: skip
    return out


def _request(source, **kw):
    # An untrained network fits badly: the quality bounds are opened so every fit is kept.
    fit = augment.FitConfig(refine_steps=3, max_keypoint_px=1e9, min_silhouette_iou=0.0)
    view = augment.ViewConfig(image_size=32, supersample=1, degrade=False)
    kw = {"split": "train", **kw}
    return augment.Request(checkpoint=None, dataset="synthetic", data_dir=source,
                           views_per_sample=2, shard_size=2, view=view, fit=fit, **kw)  # fmt: skip


def _arrays(out_dir):
    m = synthetic.read_manifest(out_dir)
    files = [s["file"] for s in m["splits"]["train"]["shards"]]
    return m, [dict(np.load(os.path.join(out_dir, f))) for f in files]


def test_dataset_is_read_by_the_training_reader_and_resume_gives_the_same(tmp_path, net, source):
    kw = dict(batch_size=4, sheet_count=2, progress=False, network=net)
    whole = str(tmp_path / "whole")
    manifest = job.augment_dataset(_request(source), out_dir=whole, **kw)
    a = manifest["augment"]
    assert a["rows"] == 5 and a["fitted"] == 5 and a["labels"] == 5
    samples = data.load_split("synthetic", whole, "train", crop_size=32)
    assert len(samples) == 10 and manifest["splits"]["train"]["count"] == 10
    written = sorted(set(os.listdir(whole)) - {outputs.OWNED})
    assert written == ["contact_sheet.png", "manifest.json"] + [
        synthetic.shard_name("train", k, 3) for k in range(3)
    ]
    # Stop after the first shard, then rerun: the same dataset.
    calls, original = [], job._run_shard

    def stop_after_one(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return original(*args, **kwargs)

    resumed = str(tmp_path / "resumed")
    job._run_shard = stop_after_one
    try:
        with pytest.raises(KeyboardInterrupt):
            job.augment_dataset(_request(source), out_dir=resumed, **kw)
    finally:
        job._run_shard = original
    partial = resumed + job.PARTIAL_SUFFIX
    assert not os.path.exists(resumed) and os.path.isdir(partial)
    # Other weights: not the same run, so it is not resumed (and not silently mixed in).
    import jax

    other = net._replace(variables=jax.tree.map(lambda x: x * 1.01, net.variables))
    with pytest.raises(FileExistsError, match="weights"):
        job.augment_dataset(_request(source), out_dir=resumed, **{**kw, "network": other})
    # The finished shard's file truncated: redone on resume, not taken into the dataset.
    (shard,) = [f for f in os.listdir(partial) if f.endswith(".npz")]
    with open(os.path.join(partial, shard), "r+b") as f:
        f.truncate(100)
    job.augment_dataset(_request(source), out_dir=resumed, **kw)
    (m1, s1), (m2, s2) = _arrays(whole), _arrays(resumed)
    assert m1["splits"] == m2["splits"]
    for x, y in zip(s1, s2, strict=True):
        for key in synthetic.SHARD_FIELDS:
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)


def test_refusals(tmp_path, net, source):
    with pytest.raises(ValueError, match="test split must never be trained on"):
        job.augment_dataset(_request(source, split="test"), out_dir=str(tmp_path / "t"),
                            network=net, progress=False)  # fmt: skip
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="--overwrite"):
        job.augment_dataset(_request(source), out_dir=str(full), network=net, progress=False)
    assert (full / "keep.txt").read_text() == "mine"
    with pytest.raises(ValueError, match="views_per_sample"):
        bad = dataclasses.replace(_request(source), views_per_sample=0)
        job.check_request(bad, force_test=False)


def test_skipped_fits_are_counted(tmp_path, net, source):
    r = _request(source)
    strict = dataclasses.replace(r, fit=dataclasses.replace(r.fit, max_keypoint_px=1e-6))
    m = job.augment_dataset(strict, out_dir=str(tmp_path / "s"), network=net, progress=False,
                            sheet_count=0, batch_size=4)  # fmt: skip
    assert m["augment"]["skipped_keypoints"] == 5 and m["augment"]["fitted"] == 0
    assert m["splits"]["train"] == {"count": 0, "shards": []}
    assert json.load(open(tmp_path / "s" / "manifest.json"))["augment"]["rows"] == 5
