"""Differentiable soft rasterizer and hard z-buffer renderer, in jax.numpy.

Screen space everywhere: vertices in pixels, x right (column), y down (row), pixel ``(i, j)``'s
centre at ``(i + 0.5, j + 0.5)``; an optional third column is depth (larger is farther; faces
with a vertex at depth <= ``near`` are culled). Project camera-frame points with
``hand_jax.camera`` first; the renderers are projection-agnostic.

Every function renders one image; batch with ``jax.vmap``. Image sizes, tile sizes, chunk sizes
and capacities are static Python ints.

- ``soft_silhouette``: SoftRas silhouette (sigma in pixels^2), faces binned into tiles.
- ``soft_rasterize``: SoftRas silhouette + soft depth + soft per-vertex attributes (RGB).
- ``render_hard`` / ``render_mesh``: z-buffer, perspective-correct barycentrics, Lambertian.
- ``dense_soft_silhouette``: the silhouette without binning ([H * W, F] memory), a baseline.

Binning keeps a static capacity of (tile, face) pairs; pairs beyond it are dropped and counted:
``soft_silhouette(..., return_info=True)`` returns ``(alpha, RasterInfo(num_pairs, overflow))``,
and a non-zero ``overflow`` means a wrong image (raise ``capacity``). The default capacity
(``default_capacity``) holds a hand-sized mesh filling a 32-224 px crop at sigma <= 2 px^2 with
room to spare. The capacity costs memory only: loops run over the pairs actually used.
"""

from hand_jax.render.aggregate import SoftRaster, soft_rasterize
from hand_jax.render.binning import Bins, bin_faces, default_capacity, tile_grid
from hand_jax.render.dense import dense_soft_silhouette
from hand_jax.render.hard import HardRender, render_hard, render_mesh, vertex_normals
from hand_jax.render.soft import RasterInfo, blur_margin, soft_silhouette

__all__ = [
    "Bins",
    "HardRender",
    "RasterInfo",
    "SoftRaster",
    "bin_faces",
    "blur_margin",
    "default_capacity",
    "dense_soft_silhouette",
    "render_hard",
    "render_mesh",
    "soft_rasterize",
    "soft_silhouette",
    "tile_grid",
    "vertex_normals",
]
