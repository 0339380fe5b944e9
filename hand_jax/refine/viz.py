"""Pictures of refinement: before/after overlays (PNG), iteration animations (GIF), error curves.

Overlays draw on the crop (or on the foreground evidence when there is no image): the soft
silhouette's 0.5 contour and the 2D keypoints of the initial estimate (orange) and the refined
estimate (green), with the 2D evidence as red crosses. Pixel coordinates follow
``hand_jax.camera`` (pixel centres at integer + 0.5), so matplotlib's ``extent`` is (0, S, S, 0).
"""

import matplotlib

matplotlib.use("Agg")
import imageio.v3 as iio  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hand_jax.figures import figure_to_array  # noqa: E402 (called by name: tests patch it)

# Canonical-order bones (parent, child) for drawing skeletons.
BONES = tuple(
    (0 if j % 4 == 1 else j - 1, j) for j in range(1, 21)
)  # wrist->MCP, then along each finger
INIT_COLOUR, FINAL_COLOUR, EVIDENCE_COLOUR = "#ff8c1a", "#2ecc40", "#e6194b"


def _background(ax, image, mask):
    height, width = mask.shape
    if image is not None:
        ax.imshow(image, extent=(0, width, height, 0))
    else:
        ax.imshow(mask, cmap="gray", vmin=0, vmax=1, extent=(0, width, height, 0))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.axis("off")


def _hand(ax, alpha, kp2d, colour):
    height, width = alpha.shape
    if alpha.max() > 0.5 > alpha.min():  # only a silhouette that crosses 0.5 has a contour
        ax.contour(
            np.arange(width) + 0.5, np.arange(height) + 0.5, alpha,
            levels=[0.5], colors=[colour], linewidths=1.2,
        )  # fmt: skip
    for a, b in BONES:
        ax.plot(kp2d[[a, b], 0], kp2d[[a, b], 1], color=colour, linewidth=1.0)
    ax.scatter(kp2d[:, 0], kp2d[:, 1], s=6, color=colour, zorder=3)


def overlay_figure(image, mask, evidence_kp, before, after, *, title=""):
    """Return a matplotlib figure: evidence | initial estimate | refined estimate.

    Args:
      image: [H, W, 3] uint8 crop, or None to show the foreground evidence.
      mask: [H, W] foreground evidence (a square S x S crop in this project).
      evidence_kp: [21, 2] 2D evidence, pixels.
      before: (alpha [H, W], kp2d [21, 2]) of the initial estimate.
      after: (alpha [H, W], kp2d [21, 2]) of the refined estimate.
      title: figure title.
    """
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.2), dpi=100)
    for ax, name in zip(axes, ("evidence", "initial", "refined"), strict=True):
        _background(ax, image, mask)
        ax.set_title(name, fontsize=9)
    axes[0].scatter(evidence_kp[:, 0], evidence_kp[:, 1], s=14, marker="x", color=EVIDENCE_COLOUR)
    _hand(axes[1], *before, INIT_COLOUR)
    _hand(axes[2], *after, FINAL_COLOUR)
    axes[2].scatter(evidence_kp[:, 0], evidence_kp[:, 1], s=14, marker="x", color=EVIDENCE_COLOUR)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def save_overlay(path, *args, **kwargs) -> None:
    """Write ``overlay_figure(*args, **kwargs)`` as a PNG."""
    iio.imwrite(path, figure_to_array(overlay_figure(*args, **kwargs)))


def save_animation(path, image, mask, evidence_kp, frames, *, duration_ms: int = 80) -> None:
    """Write an animated GIF of refinement iterates.

    Args:
      path: output ``.gif`` path.
      image: [H, W, 3] uint8 or None; mask: [H, W]; evidence_kp: [21, 2].
      frames: a sequence of (step, energy, alpha [H, W], kp2d [21, 2]).
      duration_ms: time per frame.
    """
    images = []
    for step, energy, alpha, kp2d in frames:
        fig, ax = plt.subplots(figsize=(3.2, 3.4), dpi=80)
        _background(ax, image, mask)
        ax.scatter(evidence_kp[:, 0], evidence_kp[:, 1], s=14, marker="x", color=EVIDENCE_COLOUR)
        _hand(ax, alpha, kp2d, FINAL_COLOUR)
        ax.set_title(f"step {step}  E={energy:.4g}", fontsize=9)
        fig.tight_layout()
        images.append(figure_to_array(fig))
    iio.imwrite(path, np.stack(images), duration=duration_ms, loop=0)


def save_error_curve(path, steps, curves: dict, *, ylabel: str, title: str = "") -> None:
    """Plot one or more error-vs-iteration curves to a PNG.

    Args:
      path: output PNG path.
      steps: [T] iteration numbers.
      curves: name -> [T] values.
      ylabel: y-axis label with units.
      title: plot title.
    """
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=110)
    for name, values in curves.items():
        ax.plot(steps, values, label=name)
    ax.set_xlabel("refinement iteration")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
