"""Exported model files: exact round trips, a clear error for every bad file, atomic writes.

The small hand-made tree has the layout of a real one (``params`` and ``batch_stats``, nested
dicts); its flat key names are written out literally here, so a change to the file format fails
a test instead of silently orphaning exported models. The end-to-end tests export a tiny trained
run and compare its predictions with the run's own.
"""

import os
import re

import jax
import numpy as np
import pytest

from hand_jax import checkpoint, network
from hand_jax.network import store as model_store
from hand_jax.train import loop as train_loop
from tests.train_helpers import tiny_config, toy_samples

SHAPES = {
    "params/a/kernel": (3, 4),
    "params/a/bias": (4,),
    "params/b": (5,),
    "batch_stats/a/mean": (4,),
    "batch_stats/a/var": (4,),
}


def _trees(seed=0):
    rng = np.random.default_rng(seed)
    leaf = {k: rng.normal(size=s).astype(np.float32) for k, s in SHAPES.items()}
    return {
        "params": {
            "a": {"kernel": leaf["params/a/kernel"], "bias": leaf["params/a/bias"]},
            "b": leaf["params/b"],
        },
        "batch_stats": {
            "a": {"mean": leaf["batch_stats/a/mean"], "var": leaf["batch_stats/a/var"]}
        },
    }


def _abstract():
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, np.float32), _trees())


def _flat(trees):
    """The file's content, keyed by hand (independent of ``model_store.flatten``)."""
    p, b = trees["params"], trees["batch_stats"]
    return {
        "params/a/kernel": p["a"]["kernel"],
        "params/a/bias": p["a"]["bias"],
        "params/b": p["b"],
        "batch_stats/a/mean": b["a"]["mean"],
        "batch_stats/a/var": b["a"]["var"],
    }


def test_float32_round_trip_is_exact(tmp_path):
    path = str(tmp_path / "params.npz")
    trees = _trees()
    model_store.save_params(path, trees, dtype=np.float32)
    with np.load(path) as f:
        assert sorted(f.files) == sorted(SHAPES)
        assert all(f[k].dtype == np.float32 for k in f.files)
    out = model_store.load_params(path, _abstract())
    assert jax.tree.structure(out) == jax.tree.structure(trees)
    for got, want in zip(jax.tree.leaves(out), jax.tree.leaves(trees), strict=True):
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want)


def test_float16_round_trip_is_float16_rounding(tmp_path):
    path = str(tmp_path / "params.npz")
    trees = _trees(seed=1)
    model_store.save_params(path, trees)  # float16 is the default storage
    with np.load(path) as f:
        assert all(f[k].dtype == np.float16 for k in f.files)
    out = model_store.load_params(path, _abstract())
    assert jax.tree.structure(out) == jax.tree.structure(trees)
    for got, want in zip(jax.tree.leaves(out), jax.tree.leaves(trees), strict=True):
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want.astype(np.float16).astype(np.float32))
        assert not np.array_equal(got, want)  # really stored at half precision


def _bad_flat(kind):
    flat = _flat(_trees())
    if kind == "missing":
        del flat["params/a/bias"]
    elif kind == "unexpected":
        flat["params/c"] = np.zeros(2, np.float32)
    elif kind == "shape":
        flat["params/a/bias"] = np.zeros(5, np.float32)
    elif kind == "transposed":
        flat["params/a/kernel"] = flat["params/a/kernel"].T.copy()
    elif kind == "int":
        flat["params/a/bias"] = np.arange(4, dtype=np.int32)
    elif kind == "float64":
        flat["params/a/bias"] = flat["params/a/bias"].astype(np.float64)
    elif kind == "nan":
        flat["params/a/bias"] = np.array([0.0, np.nan, 1.0, 2.0], np.float32)
    elif kind == "inf":
        flat["batch_stats/a/var"] = np.array([1.0, np.inf, 1.0, 1.0], np.float16)
    return flat


@pytest.mark.parametrize(
    "kind, key, why",
    [
        ("missing", "params/a/bias", "missing"),
        ("unexpected", "params/c", "unexpected"),
        ("shape", "params/a/bias", "shape"),
        ("transposed", "params/a/kernel", "shape"),
        ("int", "params/a/bias", "dtype"),
        ("float64", "params/a/bias", "dtype"),
        ("nan", "params/a/bias", "non-finite"),
        ("inf", "batch_stats/a/var", "non-finite"),
    ],
)
def test_bad_arrays_are_value_errors_naming_file_and_key(tmp_path, kind, key, why):
    path = str(tmp_path / "params.npz")
    np.savez(path, **_bad_flat(kind))
    with pytest.raises(ValueError, match=f"{re.escape(path)}.*{re.escape(key)}.*") as e:
        model_store.load_params(path, _abstract())
    assert why in str(e.value)


def _valid_bytes(tmp_path):
    path = str(tmp_path / "valid.npz")
    model_store.save_params(path, _trees(), dtype=np.float32)
    with open(path, "rb") as f:
        return f.read()


def test_object_array_is_refused_without_unpickling(tmp_path):
    path = str(tmp_path / "params.npz")
    flat = _flat(_trees())
    flat["params/b"] = np.array([1, "x"], dtype=object)  # np.savez pickles object arrays
    np.savez(path, **flat)
    with pytest.raises(ValueError, match=re.escape(path)):
        model_store.load_params(path, _abstract())


@pytest.mark.parametrize("content", ["truncated", "not_zip", "empty"])
def test_unreadable_files_are_value_errors_naming_the_file(tmp_path, content):
    valid = _valid_bytes(tmp_path)
    data = {
        "truncated": valid[: len(valid) // 2],
        "not_zip": b"this is not an npz file\n" * 10,
        "empty": b"",
    }[content]
    path = str(tmp_path / "params.npz")
    with open(path, "wb") as f:
        f.write(data)
    with pytest.raises(ValueError, match=re.escape(path)):
        model_store.load_params(path, _abstract())


def test_corrupted_compressed_member_is_a_value_error(tmp_path):
    # A complete zip (central directory intact) whose deflated data is damaged: the error comes
    # from zlib while reading the member, not from zipfile.
    path = str(tmp_path / "params.npz")
    model_store.save_params(path, {"params": {"w": np.linspace(0, 1, 4096)}, "batch_stats": {}})
    with open(path, "rb") as f:
        data = bytearray(f.read())
    for i in range(200, 600):
        data[i] ^= 0xFF
    with open(path, "wb") as f:
        f.write(data)
    abstract = {"params": {"w": jax.ShapeDtypeStruct((4096,), np.float32)}, "batch_stats": {}}
    with pytest.raises(ValueError, match=re.escape(path)):
        model_store.load_params(path, abstract)


def test_save_leaves_no_temporary_file(tmp_path):
    path = str(tmp_path / "params.npz")
    model_store.save_params(path, _trees())
    model_store.save_params(path, _trees(seed=2))  # replacing an existing file
    assert os.listdir(tmp_path) == ["params.npz"]
    out = model_store.load_params(path, _abstract())
    want = _trees(seed=2)["params"]["b"].astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(out["params"]["b"], want)


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = str(tmp_path / "params.npz")
    model_store.save_params(path, _trees(), dtype=np.float32)
    with open(path, "rb") as f:
        before = f.read()

    def half_written(file, **arrays):
        with open(file, "wb") as f:
            f.write(before[: len(before) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", half_written)
    with pytest.raises(OSError, match="disk full"):
        model_store.save_params(path, _trees(seed=3), dtype=np.float32)
    assert os.listdir(tmp_path) == ["params.npz"]
    with open(path, "rb") as f:
        assert f.read() == before
    # ... and a failed first save leaves nothing behind.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    with pytest.raises(OSError, match="disk full"):
        model_store.save_params(str(fresh / "params.npz"), _trees())
    assert os.listdir(fresh) == []


def test_is_model_dir(tmp_path):
    assert not model_store.is_model_dir(str(tmp_path))
    assert not model_store.is_model_dir(str(tmp_path / "absent"))
    (tmp_path / "params.npz").write_bytes(b"")
    assert not model_store.is_model_dir(str(tmp_path))  # params without a config
    (tmp_path / "params.npz").unlink()
    (tmp_path / "config.json").write_text("{}")
    assert not model_store.is_model_dir(str(tmp_path))  # a training run: config, no params
    (tmp_path / "params.npz").mkdir()
    assert not model_store.is_model_dir(str(tmp_path))  # a directory is not the file
    (tmp_path / "params.npz").rmdir()
    (tmp_path / "params.npz").write_bytes(b"")
    assert model_store.is_model_dir(str(tmp_path))


# End to end: a tiny trained run, exported.


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("run"))
    config = tiny_config(**{"train.num_steps": 2, "checkpoint.every": 2})
    train, val = toy_samples(16, seed=0), toy_samples(6, seed=1)
    train_loop.train_and_evaluate(config, workdir=workdir, train_samples=train, val_samples=val)
    _, _, programs = train_loop.build(config)
    abstract = {k: getattr(programs.abstract, k) for k in ("params", "batch_stats")}
    restored = checkpoint.restore_params(os.path.join(workdir, "checkpoints"), abstract)
    trained = jax.device_get({k: restored[k] for k in abstract})
    keypoints = network.predict_samples(workdir, val)["keypoints_3d"]
    return workdir, val, keypoints, abstract, trained


def test_float32_export_is_the_run(run, tmp_path):
    workdir, val, want, abstract, trained = run
    model_dir = str(tmp_path / "model")
    network.export(workdir, model_dir, dtype=np.float32)
    assert model_store.is_model_dir(model_dir)
    assert sorted(os.listdir(model_dir)) == ["config.json", "params.npz"]
    params = model_store.load_params(os.path.join(model_dir, "params.npz"), abstract)
    for got, ref in zip(jax.tree.leaves(params), jax.tree.leaves(trained), strict=True):
        np.testing.assert_array_equal(got, ref)
    got = network.predict_samples(model_dir, val)["keypoints_3d"]
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_float16_export_is_the_run_within_half_precision(run, tmp_path):
    workdir, val, want, abstract, trained = run
    model_dir = str(tmp_path / "model16")
    network.export(workdir, model_dir)
    params = model_store.load_params(os.path.join(model_dir, "params.npz"), abstract)
    for got, ref in zip(jax.tree.leaves(params), jax.tree.leaves(trained), strict=True):
        np.testing.assert_array_equal(got, np.asarray(ref).astype(np.float16).astype(np.float32))
    got = network.predict_samples(model_dir, val)["keypoints_3d"]
    # Rounding every weight to float16 moves it by at most 2^-11 (5e-4) relative; the network's
    # output moves by the same order relative to the ~0.15 m keypoints: 0.1 mm bounds it with room
    # to spare (measured: 3e-4 mm). Predicting with the untrained initial weights instead is
    # 1.1 mm off on this run, ten times the tolerance.
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert np.max(np.abs(got - want)) > 0  # the weights really were rounded


def test_params_of_another_config_are_refused(run, tmp_path):
    workdir, _, _, abstract, _ = run
    # An untrained model of a different width stands in for another run's export.
    other = tiny_config(**{"model.hidden": 24})
    _, _, programs = train_loop.build(other)
    trees = {k: getattr(programs.abstract, k) for k in ("params", "batch_stats")}
    trees = jax.tree.map(lambda a: np.ones(a.shape, np.float32), trees)
    model_dir = tmp_path / "mixed"
    model_dir.mkdir()
    params_path = str(model_dir / "params.npz")
    model_store.save_params(params_path, trees)
    with open(os.path.join(workdir, "config.json")) as f:
        (model_dir / "config.json").write_text(f.read())
    with pytest.raises(ValueError, match=f"{re.escape(params_path)}.*params/"):
        model_store.load_params(params_path, abstract)
    with pytest.raises(ValueError, match=f"{re.escape(params_path)}.*params/"):
        network.restore(str(model_dir))


def test_float16_overflow_is_refused_when_saving(tmp_path):
    path = str(tmp_path / "params.npz")
    with pytest.raises(ValueError, match="'params/w'.*float16"):
        model_store.save_params(path, {"params": {"w": np.array([1.0, 7e4])}, "batch_stats": {}})
    model_store.save_params(path, {"params": {"w": np.array([1.0, 7e4])}, "batch_stats": {}},
                            dtype=np.float32)  # fmt: skip
    assert os.stat(path).st_mode & 0o044 == 0o044  # readable by group and others
