"""Pictures of an estimate: overlay panels (PNG), refinement animations (GIF), contact sheets.

The mesh is drawn with the hard renderer (``hand_jax.render.render_mesh``, shaded skin over the
crop). A perspective network's mesh is drawn with the crop's intrinsics; a weak-perspective one
as seen by a pinhole camera far away (``FAR`` metres) whose focal length reproduces the
weak-perspective scale, so the silhouette matches the estimate to well under a pixel.
"""

import functools

import imageio.v3 as iio
import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hand_jax import figures  # noqa: E402
from hand_jax.network import forward  # noqa: E402
from hand_jax.refine.viz import BONES  # noqa: E402
from hand_jax.render import render_mesh  # noqa: E402

FAR = 20.0  # metres: the pinhole distance that stands in for weak perspective
SKIN = (0.86, 0.68, 0.58)
DISPLAY = 256  # pixels of each panel's crop


@functools.partial(jax.jit, static_argnames=("size", "crop_size"))
def _render(verts, faces, cam_h, K, *, size: int, crop_size: int):
    """Shade root-relative view-frame vertices [V, 3] seen by h's camera part ``cam_h``.

    ``K`` None: weak perspective; else the crop's [3, 3] intrinsics at ``crop_size`` pixels
    (perspective, ``hand_jax.network.forward.perspective_camera``).
    """
    if K is None:
        s, t = jnp.exp(cam_h[0]), cam_h[1:]
        f = s * FAR * size / 2.0
        centre = (t + 1.0) * size / 2.0
        K = jnp.array([[f, 0.0, centre[0]], [0.0, f, centre[1]], [0.0, 0.0, 1.0]])
        points = verts + jnp.array([0.0, 0.0, FAR])
    else:
        view, wrist = forward.perspective_camera(cam_h, K, image_size=crop_size)
        points = verts @ view + wrist
        K = jnp.diag(jnp.asarray([size / crop_size, size / crop_size, 1.0])) @ K
    colours = jnp.broadcast_to(jnp.asarray(SKIN, jnp.float32), verts.shape)
    out = render_mesh(
        points, faces, colours, K=K, image_size=size,
        light_dir=(-0.3, -0.5, -1.0), ambient=0.4, diffuse=0.6, background=0.0,
    )  # fmt: skip
    return out.rgb, out.mask


def mesh_on_crop(crop, verts, faces, cam_h, K=None, *, size: int = DISPLAY, opacity=0.75):
    """The crop [S, S, 3] uint8 upsampled to ``size`` with the shaded mesh blended over it.

    ``cam_h`` [3] is h's camera part; ``K`` [3, 3] the crop's intrinsics for a perspective
    network (None: weak perspective).
    """
    K = None if K is None else jnp.asarray(K, jnp.float32)
    rgb, mask = _render(jnp.asarray(verts), jnp.asarray(faces), jnp.asarray(cam_h), K,
                        size=size, crop_size=int(crop.shape[0]))  # fmt: skip
    rgb, mask = np.asarray(rgb), np.asarray(mask, np.float32)[..., None] * opacity
    reps = size // crop.shape[0]
    background = np.repeat(np.repeat(crop, reps, 0), reps, 1).astype(np.float32) / 255.0
    return np.clip(background * (1 - mask) + rgb * mask, 0, 1)


def _skeleton(ax, kp, colour, confidence=None):
    for a, b in BONES:
        ax.plot(kp[[a, b], 0], kp[[a, b], 1], color=colour, linewidth=1.0)
    colours = colour if confidence is None else plt.cm.viridis(np.clip(confidence, 0, 1))
    ax.scatter(kp[:, 0], kp[:, 1], s=10, c=colours, zorder=3)


def overlay(
    photo, square, crop, evidence, before, after, *, title: str = "",
    evidence_name: str = "network evidence",
) -> np.ndarray:  # fmt: skip
    """Four panels as [H, W, 3] uint8: photo with the crop square | 2D evidence (keypoints
    coloured by confidence, viridis; foreground probability tinted) | mesh before refinement |
    mesh after.

    Args:
      photo: [H, W, 3] uint8; square: (u0, v0, side) pixels; crop: [S, S, 3] uint8 (as seen).
      evidence: (keypoints [21, 2] crop px, confidence [21], mask [M, M]).
      before, after: [D, D, 3] float images from ``mesh_on_crop``.
      evidence_name: the second panel's title (whose evidence it shows).
    """
    size = crop.shape[0]
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.3), dpi=90)
    axes[0].imshow(photo)
    u0, v0, side = square
    axes[0].add_patch(plt.Rectangle((u0, v0), side, side, fill=False, color="#ffdc00", lw=1.5))
    kp, conf, mask = evidence
    axes[1].imshow(crop, extent=(0, size, size, 0))
    tint = np.zeros(mask.shape + (4,), np.float32)
    tint[..., 0], tint[..., 3] = 1.0, 0.45 * np.nan_to_num(np.asarray(mask))  # NaN: no mask
    axes[1].imshow(tint, extent=(0, size, size, 0))
    _skeleton(axes[1], np.asarray(kp), "#ffffff", confidence=np.asarray(conf))
    axes[2].imshow(before)
    axes[3].imshow(after)
    names = ("input and crop", evidence_name, "network mesh", "refined mesh")
    for ax, name in zip(axes, names, strict=True):
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return figures.figure_to_array(fig)


def save_png(path: str, image: np.ndarray) -> None:
    """Write an RGB image (uint8, or float in [0, 1]) as PNG."""
    if image.dtype != np.uint8:
        image = np.clip(np.asarray(image) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    iio.imwrite(path, image)


def save_gif(path: str, frames, *, duration_ms: int = 90) -> None:
    """Write [D, D, 3] float frames as a looping GIF (the last frame held longer)."""
    frames = [np.clip(f * 255.0 + 0.5, 0, 255).astype(np.uint8) for f in frames]
    frames += [frames[-1]] * 5
    iio.imwrite(path, np.stack(frames), duration=duration_ms, loop=0)


def contact_sheet(images, names, *, columns: int = 4) -> np.ndarray:
    """Arrange [D, D, 3] float images with captions (cut to 28 characters) into one uint8
    picture (``hand_jax.figures.contact_sheet``: 2.6 x 2.8 inch cells at 90 dpi)."""
    return figures.contact_sheet(
        images, names, columns=columns, cell=(2.6, 2.8), dpi=90, title_size=8, max_caption=28
    )
