"""Tests of the demo job (hand_jax/demo.py)."""

import numpy as np
import pytest

from hand_jax import demo, mano, mesh_io


def test_demo_writes_sheet_and_meshes_and_keeps_user_files(tmp_path):
    model = mano.load_model()
    summary = demo.run(out_dir=str(tmp_path / "d"), model=model, image_size=48)
    objs = sorted((tmp_path / "d").glob("*.obj"))
    assert len(objs) == summary["num_poses"] == len(demo.pose_gallery(model))
    verts, faces = mesh_io.read_obj(tmp_path / "d" / "flat.obj")
    np.testing.assert_array_equal(faces, np.asarray(model.faces))
    # The flat hand is the template, rotated and moved in front of the camera: same edge lengths.
    e_obj = np.linalg.norm(verts[faces[:, 0]] - verts[faces[:, 1]], axis=-1)
    t = np.asarray(model.v_template)
    e_ref = np.linalg.norm(t[faces[:, 0]] - t[faces[:, 1]], axis=-1)
    np.testing.assert_allclose(e_obj, e_ref, atol=2e-6)
    assert np.all(verts[:, 2] > 0.2)
    with pytest.raises(FileExistsError, match="not empty"):
        demo.run(out_dir=str(tmp_path / "d"), model=model, image_size=48)
