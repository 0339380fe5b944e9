"""Vertex colours of a fitted hand, taken from the image it was fitted to.

Self-data augmentation re-renders a fitted hand from new views; its appearance comes from the
source image. ``texture_from_image`` projects the mesh into the image, finds the vertices the
camera sees with the hard renderer's z-buffer (``visible_vertices``), samples their colours
bilinearly (``bilinear_sample``) and gives every hidden vertex a colour from its visible
neighbours over the mesh graph (``fill_colours``), so that a new view shows no holes.

Screen vertices are ``[V, 3]``: (u, v) pixels with pixel i's centre at i + 0.5 and a depth
column that grows away from the camera: ``camera.project_perspective(verts, K,
with_depth=True)`` for a perspective camera, or (u, v, z + const) for the weak-perspective
crop camera (``perspective=False``).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from hand_jax.render.hard import render_hard

# Metres (or depth units) a vertex may lie behind the visible surface at its pixel and still
# count as seen: the z-buffer holds the nearest face's depth at the pixel centre, which differs
# from the vertex's own depth by up to a face's slope times half a pixel.
DEFAULT_TOLERANCE = 4e-3


def bilinear_sample(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Sample ``image`` [H, W, C] at ``uv`` [N, 2] pixels (centre of pixel i at i + 0.5).

    Bilinear between the four nearest pixel centres; points outside take the nearest edge
    pixel's value (clamped). Returns float64 [N, C].
    """
    image = np.asarray(image, np.float64)
    h, w = image.shape[:2]
    x = np.clip(np.asarray(uv[:, 0], np.float64) - 0.5, 0.0, w - 1.0)
    y = np.clip(np.asarray(uv[:, 1], np.float64) - 0.5, 0.0, h - 1.0)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
    bottom = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


@functools.partial(jax.jit, static_argnames=("image_size", "perspective"))
def _zbuffer(screen, faces, *, image_size, perspective):
    """The hard renderer's depth and coverage [S, S] (compiled once per size and camera kind)."""
    out = render_hard(
        screen, faces, image_size=image_size, perspective_correct=perspective,
        near=0.0 if perspective else None,
    )  # fmt: skip
    return out.depth, out.mask


def visible_vertices(
    screen, faces, *, image_size: int, perspective: bool = True, tolerance=DEFAULT_TOLERANCE
) -> np.ndarray:
    """Which vertices the camera sees: inside the image, on the hand and in front of its surface.

    Args:
      screen: [V, 3] screen vertices (module docstring).
      faces: [F, 3] int vertex indices.
      image_size: the image side S (pixels).
      perspective: perspective-correct depth (False for the weak-perspective crop camera).
      tolerance: how far behind the z-buffer's surface a vertex may lie (depth units).

    Returns:
      bool [V].
    """
    screen = np.asarray(screen, np.float64)
    depth, cover = _zbuffer(
        jnp.asarray(screen, jnp.float32), jnp.asarray(faces), image_size=image_size,
        perspective=perspective,
    )  # fmt: skip
    depth, cover = np.asarray(depth, np.float64), np.asarray(cover) > 0.5
    col, row = np.floor(screen[:, 0]).astype(int), np.floor(screen[:, 1]).astype(int)
    inside = (col >= 0) & (col < image_size) & (row >= 0) & (row < image_size)
    c, r = np.clip(col, 0, image_size - 1), np.clip(row, 0, image_size - 1)
    return inside & cover[r, c] & (screen[:, 2] <= depth[r, c] + tolerance)


def vertex_neighbours(faces: np.ndarray, num_verts: int) -> list[np.ndarray]:
    """The mesh graph: for each vertex, the sorted vertices it shares an edge with."""
    faces = np.asarray(faces)
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges = np.unique(np.concatenate([edges, edges[:, ::-1]]), axis=0)
    split = np.searchsorted(edges[:, 0], np.arange(num_verts + 1))
    return [edges[split[v] : split[v + 1], 1] for v in range(num_verts)]


def fill_colours(colours: np.ndarray, known: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Give every unknown vertex a colour from known ones, ring by ring over the mesh graph.

    Each round, every unknown vertex with at least one coloured neighbour takes the mean of its
    coloured neighbours' colours (those known before the round). Vertices no coloured vertex
    reaches (another component, or no known vertex at all) take the mean of the known colours,
    or grey (0.5) when nothing is known.

    Args:
      colours: [V, C] colours; only rows where ``known`` are read.
      known: bool [V].
      faces: [F, 3] int vertex indices.

    Returns:
      float64 [V, C]; known rows unchanged.
    """
    out = np.array(colours, np.float64)
    done = np.array(known, bool)
    neighbours = vertex_neighbours(faces, len(out))
    while True:
        front = [v for v in np.flatnonzero(~done) if done[neighbours[v]].any()]
        if not front:
            break
        values = [out[neighbours[v][done[neighbours[v]]]].mean(axis=0) for v in front]
        out[front] = values
        done[front] = True
    fallback = out[np.asarray(known, bool)].mean(axis=0) if np.any(known) else 0.5
    out[~done] = fallback
    return out


def texture_from_image(
    image, screen, faces, *, perspective: bool = True, tolerance=DEFAULT_TOLERANCE
) -> tuple[np.ndarray, np.ndarray]:
    """Colour every vertex of a mesh from the image it was fitted to.

    Args:
      image: [S, S, 3] uint8 (or float in [0, 1]) source image.
      screen: [V, 3] the fitted mesh's screen vertices in that image (module docstring).
      faces: [F, 3] int vertex indices.
      perspective: the camera's kind (``visible_vertices``).
      tolerance: z-buffer tolerance (``visible_vertices``).

    Returns:
      (colours float64 [V, 3] in [0, 1], visible bool [V]).
    """
    image = np.asarray(image)
    scale = 255.0 if image.dtype == np.uint8 else 1.0
    visible = visible_vertices(
        screen, faces, image_size=image.shape[0], perspective=perspective, tolerance=tolerance
    )
    sampled = bilinear_sample(image, np.asarray(screen)[:, :2]) / scale
    return fill_colours(sampled, visible, faces), visible
