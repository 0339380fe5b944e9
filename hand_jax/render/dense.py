"""Dense jax.numpy soft silhouette: every pixel against every face, [H * W, F] at once.

The same arithmetic as ``soft.soft_silhouette`` (shared ``primitives``) without binning. It is the
speed and memory baseline of ``benchmarks/render_bench.py`` and a second reference in tests; its
memory grows as H * W * F (about 25 MB per float32 intermediate for a 64 x 64 image of a MANO
mesh, and reverse-mode autodiff keeps several), so use it only for small images.
"""

import jax.numpy as jnp

from hand_jax.camera import image_hw
from hand_jax.render import primitives
from hand_jax.render.soft import face_screen


def pixel_centres(image_size, dtype):
    """Pixel centres of an image, row-major: two [H * W] arrays (x, y), pixels."""
    h, w = image_hw(image_size)
    y, x = jnp.meshgrid(jnp.arange(h, dtype=dtype), jnp.arange(w, dtype=dtype), indexing="ij")
    return x.ravel() + 0.5, y.ravel() + 0.5


def dense_soft_silhouette(verts_px, faces, *, image_size, sigma=1.0, near: float | None = 0.0):
    """Render the SoftRas soft silhouette densely (no binning, no truncation).

    Args:
      verts_px: [V, 2] or [V, 3] screen vertices, pixels (z culls faces behind ``near``).
      faces: [F, 3] int vertex indices.
      image_size: ``(H, W)`` or int, pixels (static).
      sigma: blur, pixels^2.
      near: faces with a vertex depth <= near are culled; None disables (static).

    Returns:
      [H, W] alpha in [0, 1].
    """
    h, w = image_hw(image_size)
    xy, _, valid = face_screen(verts_px, faces, near=near)
    cols = primitives.columns(primitives.face_params(xy), axis=0)  # [1, F] each
    px, py = pixel_centres((h, w), xy.dtype)
    d2, edge = primitives.edge_terms(px[:, None], py[:, None], cols)  # [P, F]
    inside = primitives.inside_from_edges(edge)
    log_t = primitives.log_one_minus_coverage(d2, inside, jnp.asarray(sigma, xy.dtype))
    log_t = jnp.sum(jnp.where(valid[None, :], log_t, 0.0), axis=1)
    return -jnp.expm1(log_t).reshape(h, w)
