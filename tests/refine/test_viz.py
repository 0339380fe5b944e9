"""Refinement pictures: what is drawn where, checked on the pixels and artists matplotlib makes
(the skeleton against the canonical finger chains, image orientation, GIF frames and timing)."""

import imageio.v3 as iio
import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import numpy as np
import pytest

from hand_jax import keypoints as kp
from hand_jax.refine import viz

S = 16


def test_bones_follow_the_canonical_finger_chains():
    want = set()
    for finger, mcp in kp.CANONICAL_MCP.items():
        tip = kp.CANONICAL_TIPS[kp.TIP_FINGERS.index(finger)]
        chain = [0, *range(mcp, tip + 1)]
        want |= set(zip(chain[:-1], chain[1:], strict=True))
    assert len(viz.BONES) == 20 and set(viz.BONES) == want


def _full_axes(px=S):
    fig = plt.figure(figsize=(1, 1), dpi=px)
    return fig, fig.add_axes((0, 0, 1, 1))


@pytest.mark.parametrize("with_image", [False, True])
def test_background_is_upright_and_fills_the_crop(with_image):
    mask = np.zeros((S, S))
    mask[: S // 4, : S // 2] = 1.0  # top rows, left half
    image = (np.repeat(mask[..., None], 3, -1) * 255).astype(np.uint8) if with_image else None
    fig, ax = _full_axes()
    viz._background(ax, image, mask)
    assert ax.get_xlim() == (0, S) and ax.get_ylim() == (S, 0) and not ax.axison
    pixels = viz.figure_to_array(fig).astype(float).mean(-1) / 255
    assert pixels.shape == (S, S)
    np.testing.assert_allclose(pixels[1 : S // 4 - 1, 1 : S // 2 - 1], 1.0, atol=0.05)
    np.testing.assert_allclose(pixels[S // 4 + 1 :, :], 0.0, atol=0.05)
    np.testing.assert_allclose(pixels[:, S // 2 + 1 :], 0.0, atol=0.05)
    assert plt.get_fignums() == []  # figure_to_array closes the figure


def _disk():
    yy, xx = np.mgrid[:S, :S] + 0.5
    return ((xx - 8) ** 2 + (yy - 8) ** 2 < 25).astype(float)


@pytest.mark.parametrize(
    "alpha, contours", [(_disk(), 1), (np.zeros((S, S)), 0), (np.ones((S, S)), 0)]
)
def test_hand_draws_20_bones_21_points_and_the_half_contour_when_it_crosses(alpha, contours):
    kp2d = np.arange(42.0).reshape(21, 2) % S
    fig, ax = _full_axes()
    viz._hand(ax, alpha, kp2d, "#123456")
    assert len(ax.lines) == 20
    for line, (a, b) in zip(ax.lines, viz.BONES, strict=True):
        np.testing.assert_array_equal(line.get_xydata(), kp2d[[a, b]])
        assert mcolors.to_hex(line.get_color()) == "#123456"
    points = [c for c in ax.collections if not hasattr(c, "levels")]  # all but the contour
    assert len(points) == 1
    np.testing.assert_array_equal(points[0].get_offsets(), kp2d)
    rings = [c for c in ax.collections if hasattr(c, "levels")]
    assert len(rings) == contours
    if contours:
        assert list(rings[0].levels) == [0.5]
        verts = np.concatenate([p.vertices for p in rings[0].get_paths()])
        np.testing.assert_allclose(np.linalg.norm(verts - 8.0, axis=1), 5.0, atol=0.6)
    plt.close(fig)


def test_overlay_png_has_three_panels_of_the_evidence(tmp_path):
    mask = _disk()
    kp2d = np.full((21, 2), 8.0)
    path = tmp_path / "o.png"
    viz.save_overlay(path, None, mask, kp2d, (mask, kp2d), (mask, kp2d), title="t")
    png = iio.imread(path)
    assert png.shape == (320, 900, 3) and png.dtype == np.uint8
    fig = viz.overlay_figure(None, mask, kp2d, (mask, kp2d), (mask, kp2d), title="x7")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["evidence", "initial", "refined"] and fig._suptitle.get_text() == "x7"
    colours = [
        {mcolors.to_hex(c) for coll in ax.collections if hasattr(coll, "get_facecolor")
         for c in coll.get_facecolor()}
        for ax in fig.axes
    ]  # fmt: skip
    assert viz.EVIDENCE_COLOUR in colours[0] and viz.EVIDENCE_COLOUR in colours[2]
    assert viz.INIT_COLOUR in colours[1] and viz.FINAL_COLOUR in colours[2]
    assert viz.EVIDENCE_COLOUR not in colours[1]
    plt.close(fig)


def test_animation_has_one_frame_per_iterate_looping(tmp_path):
    mask = _disk()
    kp2d = np.full((21, 2), 8.0)
    frames = [(t, 1.0 / t, mask * (t / 3), kp2d) for t in (1, 2, 3)]
    path = tmp_path / "a.gif"
    viz.save_animation(path, None, mask, kp2d, frames, duration_ms=120)
    gif = iio.imread(path, index=None)
    assert gif.shape[:3] == (3, 272, 256)
    meta = iio.immeta(path)
    assert meta["duration"] == 120 and meta["loop"] == 0


def test_error_curve_png(tmp_path):
    path = tmp_path / "c.png"
    viz.save_error_curve(path, np.arange(5), {"a": np.arange(5.0), "b": np.ones(5)}, ylabel="mm")
    assert iio.imread(path).shape[:2] == (385, 550)
    assert plt.get_fignums() == []


def test_a_wide_crop_keeps_its_aspect_and_its_contour():
    h, w = 8, 16
    yy, xx = np.mgrid[:h, :w] + 0.5
    alpha = ((xx - 12) ** 2 + (yy - 4) ** 2 < 9).astype(float)  # radius 3 around (12, 4)
    fig = plt.figure(figsize=(2, 1), dpi=8)
    ax = fig.add_axes((0, 0, 1, 1))
    viz._background(ax, None, alpha)
    assert ax.get_xlim() == (0, w) and ax.get_ylim() == (h, 0)
    viz._hand(ax, alpha, np.zeros((21, 2)), "#123456")
    (ring,) = [c for c in ax.collections if hasattr(c, "levels")]
    verts = np.concatenate([p.vertices for p in ring.get_paths()])
    np.testing.assert_allclose(np.linalg.norm(verts - [12.0, 4.0], axis=1), 3.0, atol=0.6)
    plt.close(fig)


@pytest.mark.parametrize("alpha", [0.5 * _disk(), 0.5 + 0.5 * _disk()])
def test_a_silhouette_that_only_touches_one_half_has_no_contour(alpha):
    fig, ax = _full_axes()
    viz._hand(ax, alpha, np.zeros((21, 2)), "#123456")
    assert [c for c in ax.collections if hasattr(c, "levels")] == []
    plt.close(fig)


def _evidence_offsets(ax):
    """Offsets of the evidence crosses (the scatter in EVIDENCE_COLOUR) on an axes."""
    (coll,) = [
        c for c in ax.collections
        if not hasattr(c, "levels") and mcolors.to_hex(c.get_facecolor()[0]) == viz.EVIDENCE_COLOUR
    ]  # fmt: skip
    return np.asarray(coll.get_offsets())


EVIDENCE = np.stack([np.arange(21.0) * 0.5, 15.0 - np.arange(21.0) * 0.25], -1)  # x != y


def test_overlay_puts_the_evidence_crosses_at_x_y_and_has_no_default_title():
    mask = _disk()
    kp2d = np.full((21, 2), 8.0)
    fig = viz.overlay_figure(None, mask, EVIDENCE, (mask, kp2d), (mask, kp2d))
    assert fig._suptitle is None or fig._suptitle.get_text() == ""
    for k in (0, 2):
        np.testing.assert_array_equal(_evidence_offsets(fig.axes[k]), EVIDENCE)
    plt.close(fig)


def test_animation_frames_show_step_energy_and_evidence(tmp_path, monkeypatch):
    seen = []
    rasterise = viz.figure_to_array

    def record(fig):
        (ax,) = fig.axes
        seen.append((ax.get_title(), _evidence_offsets(ax)))
        return rasterise(fig)

    monkeypatch.setattr(viz, "figure_to_array", record)
    mask = _disk()
    frames = [(t, 1.0 / t, mask, np.full((21, 2), 8.0)) for t in (1, 3)]
    viz.save_animation(tmp_path / "a.gif", None, mask, EVIDENCE, frames)
    assert [title for title, _ in seen] == ["step 1  E=1", "step 3  E=0.3333"]
    for _, offsets in seen:
        np.testing.assert_array_equal(offsets, EVIDENCE)


def test_error_curve_draws_each_curve_with_its_labels(tmp_path, monkeypatch):
    closed = []
    monkeypatch.setattr(viz.plt, "close", closed.append)
    steps, curves = np.arange(4), {"a": np.arange(4.0), "b": np.full(4, 2.0)}
    viz.save_error_curve(tmp_path / "c.png", steps, curves, ylabel="mm")
    (fig,) = closed
    (ax,) = fig.axes
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("refinement iteration", "mm", "")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]
    for line, values in zip(ax.lines, curves.values(), strict=True):
        np.testing.assert_array_equal(line.get_xydata(), np.stack([steps, values], -1))
    monkeypatch.undo()
    plt.close(fig)
