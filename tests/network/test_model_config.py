"""A model directory's config.json is checked before anything is built; a model whose outputs
are not finite is refused at load."""

import json
import os
import shutil
import time

import numpy as np
import pytest

from hand_jax import network
from hand_jax.network import model_config, store


def _model_copy(tmp_path, edit=None):
    folder = tmp_path / "model"
    shutil.copytree(store.SHIPPED_MODEL, folder)
    if edit is not None:
        config = json.loads((folder / "config.json").read_text())
        edit(config)
        (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_the_shipped_config_passes():
    config = model_config.load(os.path.join(store.SHIPPED_MODEL, "config.json"))
    assert config.model.camera == "perspective"


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda c: c["model"].update(num_iterations=10**6), r"model\.num_iterations=1000000"),
        (lambda c: c["model"].update(width="24"), r"model\.width='24'"),
        (lambda c: c["model"].update(hidden=-5), r"model\.hidden=-5"),
        (lambda c: c["model"].update(depth=19), r"model\.depth=19"),
        (lambda c: c["model"].update(camera="fisheye"), r"model\.camera='fisheye'"),
        (lambda c: c["data"].update(image_size=100), r"data\.image_size=100"),
        (lambda c: c["data"].update(crop_margin=float("nan")), r"data\.crop_margin"),
        (lambda c: c["train"].pop("global_batch_size"), r"train\.global_batch_size"),
        (lambda c: c.pop("loss"), r"loss\.silhouette_size"),
    ],
)  # fmt: skip
def test_a_bad_config_is_refused_naming_the_file_and_key(tmp_path, edit, match):
    folder = _model_copy(tmp_path, edit)
    start = time.perf_counter()
    with pytest.raises(ValueError, match=match) as info:
        network.restore(str(folder))
    assert str(folder / "config.json") in str(info.value)
    assert time.perf_counter() - start < 30  # refused before building anything


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", ""])
def test_an_unreadable_config_names_the_file(tmp_path, text):
    folder = _model_copy(tmp_path)
    (folder / "config.json").write_text(text)
    with pytest.raises(ValueError, match="config.json"):
        network.restore(str(folder))


def test_finite_weights_with_non_finite_outputs_are_refused(tmp_path):
    folder = _model_copy(tmp_path)
    with np.load(folder / store.PARAMS_FILE) as f:
        arrays = {k: f[k] for k in f.files}
    # Negative batch-norm variances: every stored value finite, every output NaN.
    arrays = {k: (np.full_like(v, -1.0) if k.endswith("/var") else v) for k, v in arrays.items()}
    assert any(k.endswith("/var") for k in arrays)
    np.savez(folder / store.PARAMS_FILE, **arrays)
    with pytest.raises(ValueError, match="probe"):
        network.restore(str(folder))
