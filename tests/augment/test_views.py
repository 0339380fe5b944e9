"""New views: the identity view reproduces the source, new labels are exact, seeds decide."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.ndimage import binary_dilation, binary_erosion

from hand_jax import camera, mano
from hand_jax.augment import texture, views
from hand_jax.data import synthetic_gen

GEN = synthetic_gen.GeneratorConfig(image_size=64, chunk=2, occluder_prob=0.0)
CFG = views.ViewConfig(image_size=64, degrade=False)


@pytest.fixture(scope="module")
def model():
    return mano.load_model()


@pytest.fixture(scope="module")
def sources(model):
    return synthetic_gen.Generator(model, GEN, seed=11).samples("train", range(2))


def _texture(model, s):
    posed = mano.forward(model, jnp.asarray(s["mano_pose"]), jnp.asarray(s["mano_betas"]))
    verts = np.asarray(posed.verts, np.float64) + s["mano_trans"]
    screen = camera.project_perspective(jnp.asarray(verts), jnp.asarray(s["K"]), with_depth=True)
    return texture.texture_from_image(s["image"], np.asarray(screen, np.float64), model.faces)


def test_identity_view_reproduces_the_source(model, sources):
    for s in sources:
        colours, _ = _texture(model, s)
        view = {"pose": s["mano_pose"], "betas": s["mano_betas"], "K": s["K"],
                "transl": s["mano_trans"], "light": np.array([0.0, 0, -1]), "ambient": 1.0,
                "background": s["image"] / 255.0}  # fmt: skip
        out = views.render_posed(model, colours, [view], np.random.default_rng(0), CFG,
                                 id_prefix="x")[0]  # fmt: skip
        # Labels: the same camera and hand give the same labels.
        np.testing.assert_allclose(out["keypoints_3d"], s["keypoints_3d"], atol=1e-6)
        np.testing.assert_allclose(out["keypoints_2d"], s["keypoints_2d"], atol=1e-4)
        np.testing.assert_array_equal(out["mask_full"], s["mask_full"])
        # The image: per-vertex colours interpolated over faces against the source's shading,
        # noise, blur and JPEG: close inside the (eroded) visible mask.
        inner = binary_erosion(s["mask"] > 0, iterations=1)
        err = np.abs(out["image"].astype(float) - s["image"].astype(float))[inner] / 255
        assert err.mean() < 0.05, err.mean()


def test_new_views_have_exact_labels_and_rotate_about_the_root(model, sources):
    s = sources[0]
    colours, _ = _texture(model, s)
    global_mat = _rotmat(s["mano_pose"][:3])
    fitted = {"global_mat": global_mat, "articulation": s["mano_pose"][3:],
              "betas": s["mano_betas"]}  # fmt: skip
    cfg = dataclasses.replace(CFG, betas_prob=0.0)
    rng = np.random.default_rng(3)
    drawn = views.draw_views(model, fitted, rng, cfg, count=3)
    new = views.render_posed(model, colours, drawn, rng, cfg, id_prefix="v")
    src = s["keypoints_3d"].astype(np.float64)
    for view, out in zip(drawn, new, strict=True):
        kp3d, K = out["keypoints_3d"].astype(np.float64), out["K"].astype(np.float64)
        proj = kp3d @ K.T
        np.testing.assert_allclose(proj[:, :2] / proj[:, 2:], out["keypoints_2d"], atol=1e-3)
        # Visible keypoints lie on the hand (joints sit inside the skin; a fingertip keypoint on
        # the outline may fall a pixel outside the thresholded mask).
        vis = out["keypoint_visible"]
        cols, rows = np.floor(out["keypoints_2d"][vis]).astype(int).T
        assert binary_dilation(out["mask"] > 0, iterations=1)[rows, cols].all()
        assert vis.sum() >= 5
        # Root-relative: the source's hand turned by the view's rotation R = G' G^-1.
        R = _rotmat(view["pose"][:3]) @ global_mat.T
        np.testing.assert_allclose(kp3d - kp3d[0], (src - src[0]) @ R.T, atol=2e-5)
        assert np.isclose(np.linalg.det(R), 1.0) and out["mask_full"].any()


def _rotmat(axis_angle):
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(np.asarray(axis_angle, np.float64)).as_matrix()


def test_views_depend_only_on_the_seed(model, sources):
    s = sources[1]
    fitted = {"global_mat": _rotmat(s["mano_pose"][:3]), "articulation": s["mano_pose"][3:],
              "betas": s["mano_betas"], "colours": np.full((model.num_verts, 3), 0.6)}  # fmt: skip
    cfg = views.ViewConfig(image_size=32, supersample=1)

    def run(seed):
        rng = np.random.default_rng(seed)
        drawn = views.draw_views(model, fitted, rng, cfg, count=2)
        return views.render_posed(model, fitted["colours"], drawn, rng, cfg, id_prefix="d")

    a, b, c = run(5), run(5), run(6)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x["image"], y["image"])
        np.testing.assert_array_equal(x["keypoints_3d"], y["keypoints_3d"])
    assert not np.array_equal(a[0]["image"], c[0]["image"])


def test_fill_hole_keeps_the_outside_and_is_smooth_inside():
    image = np.zeros((16, 16, 3))
    image[:, :8] = 1.0  # left half white
    hole = np.zeros((16, 16), bool)
    hole[4:12, 6:10] = True
    out = views.fill_hole(image, hole, iterations=500)
    np.testing.assert_array_equal(out[~hole], image[~hole])
    row = out[8, 6:10, 0]
    assert np.all(np.diff(row) < 0) and 0 < row.min() and row.max() < 1  # white -> black
