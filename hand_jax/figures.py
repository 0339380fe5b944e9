"""Figure helpers shared by the pictures of the demo, the estimates and refinement.

Matplotlib with the Agg backend (no display). Layout: images are HWC; the images drawn are RGB
float in [0, 1] ([H, W, 3], clipped to that range), and what comes out is RGB uint8
[H, W, 3]. ``figure_to_array`` rasterises a figure (and closes it); ``contact_sheet`` arranges
captioned images in a grid, row by row.
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def figure_to_array(fig) -> np.ndarray:
    """Rasterise a figure to a [H, W, 3] uint8 array and close it.

    Args:
      fig: a matplotlib figure with an Agg canvas (e.g. from ``plt.subplots``).

    Returns:
      The figure's RGB pixels, [H, W, 3] uint8 (H, W: the figure size times its dpi).
    """
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    plt.close(fig)
    return rgba[..., :3].copy()


def contact_sheet(
    images,
    names,
    *,
    columns: int,
    cell: tuple[float, float] = (2.6, 2.8),
    dpi: int = 90,
    title_size: float = 8,
    max_caption: int | None = None,
) -> np.ndarray:
    """Arrange captioned images in a grid (image i in row i // columns, column i % columns).

    Args:
      images: a sequence of [H, W, 3] float RGB images in [0, 1] (clipped to that range).
      names: their captions, drawn above them; paired with ``images`` in order, so what one
        has beyond the other is left out.
      columns: grid columns; the rows are as many as the images need (at least one).
      cell: (width, height) of one grid cell, inches.
      dpi: dots per inch of the picture.
      title_size: caption font size, points.
      max_caption: captions are cut to this many characters (None: not cut).

    Returns:
      The sheet as [H, W, 3] uint8, H = rows * cell[1] * dpi, W = columns * cell[0] * dpi.
    """
    rows = max(1, -(-len(images) // columns))
    figsize = (cell[0] * columns, cell[1] * rows)
    fig, axes = plt.subplots(rows, columns, figsize=figsize, dpi=dpi)
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, image, name in zip(np.ravel(axes), images, names, strict=False):
        ax.imshow(np.clip(np.asarray(image), 0, 1))
        ax.set_title(name[:max_caption], fontsize=title_size)
    fig.tight_layout()
    return figure_to_array(fig)
