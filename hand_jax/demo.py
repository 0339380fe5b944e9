"""Demo: pose the hand model in a few poses and shapes, render a contact sheet, write OBJs.

Every pose is expressed in the model's own articulation space: flat (zeros), relaxed
(``hands_mean``), a fist (the relaxed flexion scaled up), pointing (index straight, the rest
fisted), and shape variations along the first betas. The hand is shown palm-to-camera with the
fingers up (``params.frontal_rotation``) and from the back and the side, with a perspective
camera 0.38 m away and Lambertian shading from the hard renderer.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np

from hand_jax import figures, mano, mesh_io, outputs
from hand_jax.geometry import rotations
from hand_jax.params import FRONTAL_QUATERNION
from hand_jax.render.hard import render_mesh

SKIN = (0.87, 0.67, 0.54)
DISTANCE = 0.38  # metres from the camera to the hand's centre


def pose_gallery(model: mano.HandModel):
    """Return a list of ``(name, articulation [45], betas [S], view_angle_rad)`` to render."""
    mean = np.asarray(model.hands_mean, np.float32)
    zeros = np.zeros_like(mean)
    n_betas = model.shapedirs.shape[-1]
    b0 = np.zeros(n_betas, np.float32)
    fist = 4.0 * mean
    pointing = fist.copy()
    pointing[0:9] = 0.0  # index joints 1-3 (MANO order: index first)
    gallery = [
        ("flat", zeros, b0, 0.0),
        ("relaxed", mean, b0, 0.0),
        ("fist", fist, b0, 0.0),
        ("pointing", pointing, b0, 0.0),
        ("relaxed, back", mean, b0, np.pi),
        ("relaxed, side", mean, b0, np.pi / 2),
    ]
    for i in range(min(2, n_betas)):
        for sign in (-2.0, 2.0):
            betas = b0.copy()
            betas[i] = sign
            gallery.append((f"beta{i} = {sign:+.0f}", mean, betas, 0.0))
    return gallery


def _view_rotation(angle):
    """The frontal rotation, then a turn of ``angle`` about the image's vertical axis."""
    frontal = rotations.quaternion_to_matrix(jnp.asarray(FRONTAL_QUATERNION, jnp.float32))
    turn = rotations.axis_angle_to_matrix(jnp.array([0.0, angle, 0.0], jnp.float32))
    return turn @ frontal


def pose_hand(model, articulation, betas, angle):
    """Return camera-frame vertices [V, 3] (metres) of one gallery entry, centred ahead."""
    global_aa = rotations.matrix_to_axis_angle(_view_rotation(angle))
    pose = jnp.concatenate([global_aa, jnp.asarray(articulation)])
    verts = mano.forward(model, pose, jnp.asarray(betas)).verts
    centre = 0.5 * (verts.min(0) + verts.max(0))
    return verts - centre + jnp.array([0.0, 0.0, DISTANCE])


def render_view(model, verts, *, image_size):
    """Shade camera-frame vertices with a fixed camera; returns [S, S, 3] float RGB in [0, 1]."""
    f = 1.15 * image_size  # about a 47 degree field of view
    K = jnp.array([[f, 0, image_size / 2], [0, f, image_size / 2], [0, 0, 1]], jnp.float32)
    colors = jnp.broadcast_to(jnp.asarray(SKIN, jnp.float32), verts.shape)
    out = render_mesh(
        verts, model.faces, colors, K=K, image_size=image_size,
        light_dir=(-0.3, -0.5, -1.0), ambient=0.35, diffuse=0.65, background=1.0, supersample=2,
    )  # fmt: skip
    return out.rgb


def contact_sheet(images, names, *, columns: int = 5):
    """Arrange [S, S, 3] float images with captions into one uint8 picture
    (``hand_jax.figures.contact_sheet``: 2.2 x 2.4 inch cells at 100 dpi)."""
    return figures.contact_sheet(
        images, names, columns=columns, cell=(2.2, 2.4), dpi=100, title_size=9
    )


def run(*, out_dir: str, model: mano.HandModel, image_size: int = 192, overwrite=False):
    """Render the gallery to ``out_dir/hand_poses.png`` and write one OBJ per pose.

    ``out_dir`` must be empty or absent unless ``overwrite``; everything is rendered first and
    written into a temporary sibling that replaces ``out_dir`` only when complete
    (``hand_jax.outputs.staged_dir``), so a failed run keeps the previous results.
    """
    import imageio.v3 as iio

    outputs.check_out_dir(out_dir, overwrite=overwrite)
    pose_fn = jax.jit(lambda a, b, t: pose_hand(model, a, b, t))
    view_fn = jax.jit(lambda v: render_view(model, v, image_size=image_size))
    images, names, meshes = [], [], []
    for name, articulation, betas, angle in pose_gallery(model):
        verts = pose_fn(articulation, betas, angle)
        images.append(view_fn(verts))
        names.append(name)
        slug = name.replace(" ", "").replace(",", "_").replace("=", "").replace("+", "p")
        meshes.append((f"{slug.replace('-', 'm')}.obj", verts))
    sheet = contact_sheet(images, names)
    with outputs.staged_dir(out_dir, overwrite=overwrite) as staging:
        for file_name, verts in meshes:
            mesh_io.write_obj(os.path.join(staging, file_name), verts, model.faces)
        iio.imwrite(os.path.join(staging, "hand_poses.png"), sheet)
    return {"contact_sheet": os.path.join(out_dir, "hand_poses.png"), "num_poses": len(names)}
