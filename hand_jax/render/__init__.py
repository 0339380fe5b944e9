"""Differentiable soft rasterizer and hard z-buffer renderer, in jax.numpy.

Screen space everywhere: vertices in pixels, x right (column), y down (row), pixel ``(i, j)``'s
centre at ``(i + 0.5, j + 0.5)``; an optional third column is depth (larger is farther; faces
with a vertex at depth <= ``near`` are culled). Project camera-frame points with
``hand_jax.camera`` first; the renderers are projection-agnostic.

Every function renders one image; batch with ``jax.vmap``. Sizes, tile sizes and capacities
are static Python ints.

- ``soft_silhouette``: SoftRas silhouette, sigma in pixels^2, binned into tiles with a static
  pair capacity and an overflow count (``return_info=True``).
- ``dense_soft_silhouette``: the same without binning ([H * W, F] memory), a baseline.
"""

from hand_jax.render.binning import Bins, bin_faces, default_capacity, tile_grid
from hand_jax.render.dense import dense_soft_silhouette
from hand_jax.render.soft import RasterInfo, soft_silhouette

__all__ = [
    "Bins",
    "RasterInfo",
    "bin_faces",
    "default_capacity",
    "dense_soft_silhouette",
    "soft_silhouette",
    "tile_grid",
]
