"""Tests of the shared figure helpers (hand_jax/figures.py)."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.patches import Rectangle

from hand_jax import figures

COLOURS = np.array(  # distinct, saturated: one per image
    [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1], [1, 0, 1], [0.5, 0.5, 0.5]],
    np.float64,
)


def test_figure_to_array_gives_the_pixels_of_a_known_rectangle_and_closes_the_figure():
    fig = plt.figure(figsize=(2.0, 1.0), dpi=50)  # 100 x 50 pixels
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    # Red over the left quarter, full height; the rest is the white figure background.
    ax.add_patch(Rectangle((0, 0), 0.25, 1.0, facecolor="red", linewidth=0, antialiased=False))
    number = fig.number
    pixels = figures.figure_to_array(fig)
    assert pixels.shape == (50, 100, 3) and pixels.dtype == np.uint8
    red = np.all(pixels == (255, 0, 0), axis=-1)
    white = np.all(pixels == 255, axis=-1)
    assert red.mean() == pytest.approx(0.25, abs=0.02)
    assert (red | white).all()
    assert red[:, :24].all() and white[:, 26:].all()
    assert number not in plt.get_fignums()


@pytest.mark.parametrize("count, columns", [(5, 3), (7, 2), (2, 4)])
def test_contact_sheet_puts_image_i_in_row_i_div_columns_and_column_i_mod_columns(count, columns):
    cell, dpi = (1.0, 1.0), 40  # 40 x 40 pixels per grid cell
    images = [np.broadcast_to(c, (6, 6, 3)) for c in COLOURS[:count]]
    sheet = figures.contact_sheet(images, [""] * count, columns=columns, cell=cell, dpi=dpi)
    rows = -(-count // columns)
    assert sheet.dtype == np.uint8
    assert sheet.shape == (rows * 40, columns * 40, 3)
    for r in range(rows):
        for c in range(columns):
            i = r * columns + c
            centre = sheet[r * 40 + 20, c * 40 + 20].astype(int)
            expected = COLOURS[i] * 255 if i < count else np.full(3, 255)  # empty cell: white
            np.testing.assert_allclose(centre, expected, atol=2, err_msg=f"cell ({r}, {c})")


def test_contact_sheet_clips_images_to_0_1():
    image = np.full((4, 4, 3), [1.7, -0.4, 0.5])
    sheet = figures.contact_sheet([image], ["x"], columns=1, cell=(1.0, 1.0), dpi=40)
    np.testing.assert_allclose(sheet[22, 20].astype(int), [255, 0, 128], atol=2)


def test_contact_sheet_captions_cut_and_sized_and_every_axis_off(monkeypatch):
    seen = []
    rasterise = figures.figure_to_array

    def record(fig):
        seen.append([(ax.get_title(), ax.title.get_fontsize(), ax.axison) for ax in fig.axes])
        return rasterise(fig)

    monkeypatch.setattr(figures, "figure_to_array", record)
    images = [np.zeros((4, 4, 3))] * 3
    names = ["a long caption here", "short", "third one"]
    figures.contact_sheet(images, names, columns=2, title_size=7, max_caption=6)
    ((first, second, third, empty),) = seen
    assert first == ("a long", 7, False)
    assert second == ("short", 7, False)
    assert third == ("third ", 7, False)
    assert empty[0] == "" and empty[2] is False
    figures.contact_sheet(images[:1], names[:1], columns=1)
    assert seen[1][0][0] == "a long caption here"  # not cut by default
