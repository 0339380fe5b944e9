"""The augmented dataset's contact sheet: per source crop, the crop, its fit and its new views."""

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hand_jax.data.contact_sheet import draw_sample
from hand_jax.render.hard import render_hard


def fit_overlay(source: dict, fitted: dict, faces) -> dict:
    """A drawable sample: the source crop with the fitted, textured mesh blended over it.

    Args:
      source: the source crop (sample dict) the fit was textured from.
      fitted: ``screen`` [V, 3] (the mesh in that crop) and ``colours`` [V, 3].
      faces: [F, 3] mesh faces.
    """
    size = source["image"].shape[0]
    out = render_hard(
        jnp.asarray(fitted["screen"], jnp.float32), jnp.asarray(faces),
        jnp.asarray(fitted["colours"], jnp.float32), image_size=size, perspective_correct=False,
        near=None,
    )  # fmt: skip
    cover = np.asarray(out.mask)[..., None]
    image = source["image"] / 255.0 * (1 - 0.7 * cover) + 0.7 * cover * np.asarray(out.rgb)
    return {
        "id": "fit", "image": np.clip(np.rint(image * 255), 0, 255).astype(np.uint8),
        "mask": (cover[..., 0] > 0.5).astype(np.uint8), "mask_valid": True,
        "keypoints_2d": np.zeros((21, 2), np.float32), "keypoint_valid": np.zeros(21, bool),
    }  # fmt: skip


def save_sheet(rows: Sequence[tuple[dict, dict, list]], faces, path: str, *, tile=1.4) -> None:
    """Write one row per (source crop, fitted hand, new-view samples) to a PNG."""
    if not rows:
        raise ValueError("save_sheet: no rows to draw")
    cols = 2 + max(len(r[2]) for r in rows)
    fig = Figure(figsize=(cols * tile, len(rows) * tile), dpi=100)
    FigureCanvasAgg(fig)
    for r, (source, fitted, new) in enumerate(rows):
        tiles = [("source", source), ("fit", fit_overlay(source, fitted, faces))]
        tiles += [(f"view {v}", s) for v, s in enumerate(new)]
        for c, (title, sample) in enumerate(tiles):
            ax = fig.add_subplot(len(rows), cols, r * cols + c + 1)
            draw_sample(ax, sample)
            ax.set_title(title, fontsize=6, pad=1)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.96, wspace=0.04, hspace=0.2)
    fig.savefig(path)
