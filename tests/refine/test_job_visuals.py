"""The refinement job's per-example pictures and its batch padding, with the renderer and the
writers stubbed out (``hand_jax.refine.job``): which row, which iterate and which file each
picture is made from, the animation's frame choice, and the library's defaults against the
command's."""

import types

import jax.numpy as jnp
import numpy as np

from hand_jax import mesh_io
from hand_jax.params import HandParams
from hand_jax.refine import job as refine_job
from hand_jax.refine import viz as refine_viz
from hand_jax.refine.energy import Evidence
from launch.configs import refine as refine_config

B, T, M = 2, 40, 4


def _params(shape, tag):
    """HandParams whose cam holds ``tag`` (an array over ``shape``) in every component."""
    leaf = lambda k: np.zeros((*shape, k))  # noqa: E731
    return HandParams(leaf(4), leaf(45), leaf(10), np.repeat(np.asarray(tag)[..., None], 3, -1))


def _view(model, params, K):
    """Stands in for the jitted renderer: each output encodes the params' tag."""
    tag = float(params.cam[0])
    return np.full((3, 3), tag), np.full((M, M), tag), np.full((21, 2), tag)


def _stub_writers(monkeypatch):
    calls = {"obj": [], "overlay": [], "animation": []}
    monkeypatch.setattr(
        mesh_io, "write_obj", lambda path, v, f, **k: calls["obj"].append((path, v, f))
    )
    monkeypatch.setattr(
        refine_viz, "save_overlay", lambda path, *a, **k: calls["overlay"].append((path, a, k))
    )
    monkeypatch.setattr(
        refine_viz, "save_animation", lambda path, *a, **k: calls["animation"].append((path, a))
    )
    return calls


def _example():
    rng = np.random.default_rng(0)
    evidence = Evidence(rng.random((B, 21, 2)), np.ones((B, 21)), rng.random((B, M, M)))
    init = _params((B,), [10.0, 11.0])
    images = rng.integers(0, 256, (B, M, M, 3)).astype(np.uint8)
    steps = np.arange(T)
    trajectory = _params((B, T), [1000.0 + steps, 2000.0 + steps])
    losses = np.stack([100.0 + steps, 200.0 + steps])
    outputs = types.SimpleNamespace(best_params=_params((B,), [20.0, 21.0]), losses=losses)
    return (evidence, init, images), outputs, trajectory


def test_each_picture_is_made_from_its_own_row(tmp_path, monkeypatch):
    calls = _stub_writers(monkeypatch)
    data, outputs, trajectory = _example()
    model = types.SimpleNamespace(faces=np.array([[0, 1, 2]]))
    refine_job._write_visuals(str(tmp_path), model, _view, 1, "00001_q", data, outputs, None)
    ((path, verts, faces),) = calls["obj"]
    assert path == str(tmp_path / "meshes" / "00001_q.obj") and np.all(verts == 21.0)
    assert faces is model.faces
    ((path, args, kwargs),) = calls["overlay"]
    image, mask, kp, (a0, k0), (a1, k1) = args
    assert path == str(tmp_path / "overlays" / "00001_q.png") and kwargs == {"title": "00001_q"}
    evidence, _, images = data
    np.testing.assert_array_equal(image, images[1])
    np.testing.assert_array_equal(mask, evidence.mask[1])
    np.testing.assert_array_equal(kp, evidence.keypoints_2d[1])
    assert np.all(a0 == 11.0) and np.all(k0 == 11.0) and np.all(a1 == 21.0) and np.all(k1 == 21.0)
    assert calls["animation"] == []  # no trajectory, no animation


def test_animation_frames_are_every_other_step_and_the_last(tmp_path, monkeypatch):
    calls = _stub_writers(monkeypatch)
    data, outputs, trajectory = _example()
    model = types.SimpleNamespace(faces=np.zeros((1, 3), int))
    refine_job._write_visuals(str(tmp_path), model, _view, 1, "x", data, outputs, trajectory)
    ((path, (image, mask, kp, frames)),) = calls["animation"]
    assert path == str(tmp_path / "animations" / "x.gif")
    np.testing.assert_array_equal(image, data[2][1])
    shown = [*range(0, T, T // 20), T - 1]  # about 20 iterates and the last: 0, 2, ..., 38, 39
    assert [step for step, *_ in frames] == [t + 1 for t in shown]  # steps count from 1
    assert [energy for _, energy, *_ in frames] == [200.0 + t for t in shown]
    for t, (_, _, alpha, kp2d) in zip(shown, frames, strict=True):
        assert np.all(alpha == 2000.0 + t) and np.all(kp2d == 2000.0 + t)


def test_padding_repeats_the_last_row_up_to_the_batch():
    tree = {"a": jnp.arange(6.0).reshape(3, 2), "b": jnp.arange(3)}
    padded = refine_job._pad(tree, 5)
    np.testing.assert_array_equal(padded["a"], [[0, 1], [2, 3], [4, 5], [4, 5], [4, 5]])
    np.testing.assert_array_equal(padded["b"], [0, 1, 2, 2, 2])
    full = refine_job._pad(tree, 3)
    assert full["a"] is tree["a"] and full["b"] is tree["b"]


def test_library_defaults_are_the_commands():
    config = refine_config.get_config()
    run = refine_job.run.__kwdefaults__
    assert run["num_animations"] == config.num_animations
    assert run["precondition"] == config.precondition
    assert run["copy_input"] is False and run["overwrite"] is False
