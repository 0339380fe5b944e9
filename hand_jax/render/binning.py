"""Face-to-tile binning with a static capacity of (tile, face) pairs and an overflow count.

The image (H, W pixels) is cut into square tiles of ``tile_size`` pixels, ``Ty x Tx`` of them,
numbered row-major: tile ``(ty, tx)`` covers pixel rows ``[ty * t, ty * t + t)`` and columns
``[tx * t, tx * t + t)``; ``H`` and ``W`` need not be multiples of ``t`` (the last tiles hang over
the image edge and their extra pixels are cropped away).

A face is paired with every tile holding a pixel centre inside the face's screen bounding box grown
by ``margin`` pixels (the distance beyond which its soft coverage is negligible). The pairs of all
faces are listed in one flat array of static length ``capacity`` - the binned renderers evaluate
``capacity x tile_size^2`` pixel-face terms, so work follows the mesh's screen footprint instead
of ``H * W * F``. Pairs beyond the capacity are dropped and counted in ``overflow``: a non-zero
overflow means the image is missing contributions, and the caller must raise the capacity.

Binning is integer bookkeeping on stopped gradients; gradients reach the vertices through the
renderers' gathers of the binned faces' parameters.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class Bins(NamedTuple):
    """A flat list of (tile, face) pairs.

    Attributes:
      face: [N] int32 face index of each pair slot (0 in unused slots).
      tile: [N] int32 row-major tile index; ``num_tiles`` (out of range) in unused slots, so
        that scatters with ``mode="drop"`` ignore them.
      num_pairs: [] int32 pairs the image needs (may exceed N).
      overflow: [] int32 pairs dropped for lack of capacity, ``max(num_pairs - N, 0)``.
    """

    face: jax.Array
    tile: jax.Array
    num_pairs: jax.Array
    overflow: jax.Array


def tile_grid(image_size: tuple[int, int], tile_size: int) -> tuple[int, int]:
    """Number of tile rows and columns ``(Ty, Tx)`` covering an ``(H, W)`` image."""
    h, w = image_size
    if not isinstance(tile_size, int) or tile_size <= 0:
        raise ValueError(f"tile_size must be a positive int (pixels); got {tile_size!r}")
    return -(-h // tile_size), -(-w // tile_size)


def default_capacity(
    num_faces: int, image_size: tuple[int, int], tile_size: int, margin: float
) -> int:
    """Pair capacity that holds a hand-sized mesh fitted into the image, with room to spare.

    A face whose grown bounding box has side ``w`` pixels meets about ``(1 + w / t)^2`` tiles;
    ``w = 2 * margin + s`` with a face size ``s = 1.6 * max(H, W) / sqrt(F)`` fitted to hand
    meshes filling a crop (synthetic and default hands, random rotations, 32-224 px). The
    capacity is twice ``F (1 + w / t)^2``: the measured maxima stay under half of it. Unused
    capacity costs two int32 per slot and O(N) integer bookkeeping here, but no pixel-face
    terms (the renderers' loops stop after the used pairs).
    """
    face = 1.6 * max(image_size) / math.sqrt(max(num_faces, 1))
    per_face = (1.0 + (2.0 * margin + face) / tile_size) ** 2
    return int(math.ceil(2.0 * num_faces * per_face))


def face_tile_ranges(xy, valid, margin, *, image_size, tile_size):
    """Inclusive tile ranges touched by each face's grown bounding box.

    Args:
      xy: [F, 3, 2] screen vertices, pixels.
      valid: [F] bool; invalid faces (culled, non-finite) get empty ranges.
      margin: [] growth of the bounding box, pixels.
      image_size: ``(H, W)`` pixels (static).
      tile_size: tile side, pixels (static).

    Returns:
      ``(tx0, ty0, nx, ny)`` int32 [F]: first tile column/row and the number of tile
      columns/rows (0 for a face that touches no pixel centre).
    """
    h, w = image_size
    xy = jax.lax.stop_gradient(xy)
    margin = jax.lax.stop_gradient(margin)
    lo = jnp.min(xy, axis=1) - margin  # [F, 2]
    hi = jnp.max(xy, axis=1) + margin
    size = jnp.asarray([w, h], xy.dtype)
    # Pixel centres i + 0.5 inside [lo, hi]: i in [ceil(lo - 0.5), floor(hi - 0.5)]. Clamp the
    # floats before converting so that huge or infinite coordinates stay representable.
    first = jnp.ceil(jnp.clip(lo - 0.5, -1.0, size)).astype(jnp.int32)
    last = jnp.floor(jnp.clip(hi - 0.5, -1.0, size)).astype(jnp.int32)
    first = jnp.maximum(first, 0)
    last = jnp.minimum(last, jnp.asarray([w - 1, h - 1], jnp.int32))
    ok = valid & jnp.all(last >= first, axis=-1) & jnp.all(jnp.isfinite(lo + hi), axis=-1)
    t0 = first // tile_size
    n = jnp.where(ok[:, None], last // tile_size - t0 + 1, 0)
    return t0[:, 0], t0[:, 1], n[:, 0], n[:, 1]


def bin_faces(xy, valid, margin, *, image_size, tile_size: int, capacity: int) -> Bins:
    """List the (tile, face) pairs of an image in a static-size array.

    Args:
      xy: [F, 3, 2] screen vertices, pixels.
      valid: [F] bool faces to bin.
      margin: [] pixels; a face is paired with tiles within ``margin`` of its bounding box.
      image_size: ``(H, W)`` pixels (static).
      tile_size: tile side, pixels (static).
      capacity: number of pair slots N (static).

    Returns:
      ``Bins`` with N = capacity slots, ordered by face.
    """
    if not isinstance(capacity, int) or capacity <= 0:
        raise ValueError(f"capacity must be a positive int (tile-face pairs); got {capacity!r}")
    num_tiles_y, num_tiles_x = tile_grid(image_size, tile_size)
    tx0, ty0, nx, ny = face_tile_ranges(
        xy, valid, margin, image_size=image_size, tile_size=tile_size
    )
    counts = nx * ny  # [F]
    ends = jnp.cumsum(counts)
    total = ends[-1]
    starts = ends - counts
    slot = jnp.arange(capacity, dtype=jnp.int32)
    # Each face marks its first slot; a running max fills its other slots (zero-count faces share
    # a start with a later face, and the max keeps the later one).
    face_ids = jnp.arange(xy.shape[0], dtype=jnp.int32)
    marks = jnp.zeros((capacity,), jnp.int32).at[starts].max(face_ids, mode="drop")
    face = jax.lax.cummax(marks)
    local = slot - starts[face]
    nx_f = jnp.maximum(nx[face], 1)
    tile = (ty0[face] + local // nx_f) * num_tiles_x + tx0[face] + local % nx_f
    used = slot < total
    num_tiles = num_tiles_y * num_tiles_x
    return Bins(
        face=jnp.where(used, face, 0),
        tile=jnp.where(used, tile, num_tiles),
        num_pairs=total.astype(jnp.int32),
        overflow=jnp.maximum(total - capacity, 0).astype(jnp.int32),
    )


def pixel_offsets(tile_size: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre offsets inside a tile, row-major: ``([P], [P])`` x and y, P = t^2."""
    j, i = np.divmod(np.arange(tile_size * tile_size), tile_size)
    return (i + 0.5).astype(dtype), (j + 0.5).astype(dtype)


def tile_origins(tile, *, image_size, tile_size: int, dtype):
    """Top-left pixel corner ``(x0, y0)`` of row-major tiles ``tile`` [N] -> two [N] arrays."""
    _, num_tiles_x = tile_grid(image_size, tile_size)
    ty, tx = jnp.divmod(tile, num_tiles_x)
    return (tx * tile_size).astype(dtype), (ty * tile_size).astype(dtype)


def tiles_to_image(values, *, image_size, tile_size: int):
    """Reassemble per-tile pixel values into an image.

    Args:
      values: [Ty * Tx, P, ...] row-major tiles of P = t^2 row-major pixels.
      image_size: ``(H, W)`` pixels (static).
      tile_size: t (static).

    Returns:
      [H, W, ...] image (tile overhang cropped).
    """
    h, w = image_size
    num_tiles_y, num_tiles_x = tile_grid(image_size, tile_size)
    t = tile_size
    rest = values.shape[2:]
    img = values.reshape(num_tiles_y, num_tiles_x, t, t, *rest)
    img = jnp.swapaxes(img, 1, 2).reshape(num_tiles_y * t, num_tiles_x * t, *rest)
    return img[:h, :w]
