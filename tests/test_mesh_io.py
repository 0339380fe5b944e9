"""Tests of OBJ writing and reading (hand_jax/mesh_io.py)."""

import numpy as np
import pytest

from hand_jax import mesh_io


def test_obj_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    verts = rng.normal(size=(7, 3))
    faces = rng.integers(0, 7, size=(5, 3))
    path = tmp_path / "m.obj"
    mesh_io.write_obj(path, verts, faces)
    v, f = mesh_io.read_obj(path)
    np.testing.assert_allclose(v, verts, atol=1e-6)
    np.testing.assert_array_equal(f, faces)
    # 1-based indices on disk, as the OBJ format requires.
    first_face = next(line for line in path.read_text().splitlines() if line.startswith("f "))
    assert first_face == "f " + " ".join(str(i + 1) for i in faces[0])


def test_obj_refuses_to_overwrite_and_bad_indices(tmp_path):
    path = tmp_path / "m.obj"
    path.write_text("keep me")
    with pytest.raises(FileExistsError, match="m.obj"):
        mesh_io.write_obj(path, np.zeros((3, 3)), [[0, 1, 2]])
    assert path.read_text() == "keep me"
    with pytest.raises(ValueError, match="faces"):
        mesh_io.write_obj(tmp_path / "n.obj", np.zeros((3, 3)), [[0, 1, 3]])
    with pytest.raises(ValueError, match="verts"):
        mesh_io.write_obj(tmp_path / "n.obj", np.zeros((3, 2)), [[0, 1, 2]])
