"""A PNG contact sheet of samples: image, 2D skeleton, and mask outlines (matplotlib, Agg)."""

from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

FINGER_COLOURS = ("#e6194b", "#f58231", "#3cb44b", "#4363d8", "#911eb4")  # thumb..pinky


def skeleton_edges() -> list[tuple[int, int, int]]:
    """(parent, child, finger) edges of the canonical 21-keypoint skeleton."""
    edges = []
    for finger in range(5):
        chain = [0] + [1 + 4 * finger + k for k in range(4)]
        edges += [(a, b, finger) for a, b in zip(chain[:-1], chain[1:], strict=True)]
    return edges


def draw_sample(ax, sample: dict) -> None:
    """Draw one sample on a matplotlib axes: image, mask outlines, keypoints and skeleton."""
    image = sample["image"]
    ax.imshow(image, interpolation="nearest", extent=(0, image.shape[1], image.shape[0], 0))
    height, width = image.shape[:2]
    yy, xx = np.mgrid[:height, :width] + 0.5
    if "mask_full" in sample and sample["mask_full"].any():
        ax.contour(xx, yy, sample["mask_full"], levels=[0.5], colors="yellow",
                   linewidths=0.6, linestyles="dashed")  # fmt: skip
    if sample.get("mask_valid", True) and sample["mask"].any():
        ax.contour(xx, yy, sample["mask"], levels=[0.5], colors="white", linewidths=0.8)
    uv, valid = sample["keypoints_2d"], sample["keypoint_valid"]
    visible = sample.get("keypoint_visible", valid)
    for a, b, finger in skeleton_edges():
        if valid[a] and valid[b]:
            ax.plot(uv[[a, b], 0], uv[[a, b], 1], color=FINGER_COLOURS[finger], linewidth=1.0)
    for i in np.flatnonzero(valid):
        colour = "white" if i == 0 else FINGER_COLOURS[(i - 1) // 4]
        face = colour if visible[i] else "none"
        ax.scatter(uv[i, 0], uv[i, 1], s=9, facecolors=face, edgecolors=colour, linewidths=0.7)
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_axis_off()


def save_contact_sheet(
    samples: Sequence[dict], path: str, *, columns: int = 8, tile_inches: float = 1.6
) -> None:
    """Write a grid of samples to a PNG.

    Solid white: the visible-hand mask's outline; dashed yellow: the full hand (occluders
    ignored); filled dots: visible keypoints, hollow: occluded ones; bones coloured per finger.

    Args:
      samples: sample dicts (schema), any number.
      path: output PNG path.
      columns: tiles per row.
      tile_inches: size of one tile.
    """
    n = len(samples)
    if n == 0:
        raise ValueError("save_contact_sheet: no samples to draw")
    cols = min(columns, n)
    rows = -(-n // cols)
    fig = Figure(figsize=(cols * tile_inches, rows * tile_inches), dpi=100)
    FigureCanvasAgg(fig)
    for i, sample in enumerate(samples):
        ax = fig.add_subplot(rows, cols, i + 1)
        draw_sample(ax, sample)
        ax.set_title(sample.get("id", str(i)).split("/")[-1], fontsize=6, pad=1)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.95, wspace=0.04, hspace=0.15)
    fig.savefig(path)
