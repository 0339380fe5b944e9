"""Per-face screen-space quantities and the pixel-triangle functions every renderer shares.

Screen space: pixels, x = column (right), y = row (down); pixel ``(i, j)``'s centre is at
``(i + 0.5, j + 0.5)``. A face's screen triangle is ``xy [3, 2]``; depth ``z`` (if any) is in the
caller's units, larger is farther.

Faces are summarised once by ``face_params`` into a [F, NUM_PARAMS] table (vertices, edge vectors,
inverse squared edge lengths, inverse doubled signed area) so that a renderer evaluates a
(pixel, face) pair with a few multiply-adds. The pair functions take the table's columns as a
tuple of arrays that broadcast against the pixel coordinates: ``[N, 1]`` columns with ``[N, P]``
pixels in the binned renderer, ``[1, F]`` columns with ``[P, 1]`` pixels in the dense one, so
both evaluate exactly the same arithmetic. Degenerate edges and zero-area faces are masked (their
inverse lengths/areas are 0), never divided by, so every output and gradient is finite.
"""

import jax
import jax.numpy as jnp

NUM_PARAMS = 16  # 6 vertex coords, 6 edge coords, 3 inverse squared lengths, 1 inverse area


def _safe_inverse(x, eps):
    """1 / x where |x| > eps, else 0, with finite gradients at x = 0."""
    ok = jnp.abs(x) > eps
    return jnp.where(ok, 1.0 / jnp.where(ok, x, 1.0), 0.0)


def face_params(xy):
    """Summarise screen triangles for pair evaluation.

    Args:
      xy: [F, 3, 2] screen vertices of each face, pixels.

    Returns:
      [F, NUM_PARAMS]: v0x v0y v1x v1y v2x v2y, e0x e0y e1x e1y e2x e2y (e_k = v_{k+1} - v_k),
      1/|e_k|^2 (0 for a zero-length edge), 1/(2 * signed area) (0 for a zero-area face).
    """
    edges = jnp.roll(xy, -1, axis=1) - xy  # [F, 3, 2]
    # Edges shorter than 1e-6 px count as degenerate: keeps 1/len^2 and its derivative in range.
    eps = 1e-12
    inv_len2 = _safe_inverse(jnp.sum(edges**2, axis=-1), eps)  # [F, 3]
    area2 = edges[:, 0, 0] * edges[:, 2, 1] - edges[:, 0, 1] * edges[:, 2, 0]
    inv_area2 = _safe_inverse(-area2, eps)  # e2 = v0 - v2, so cross(e0, v2 - v0) = -cross(e0, e2)
    flat = [xy.reshape(-1, 6), edges.reshape(-1, 6), inv_len2, inv_area2[:, None]]
    return jnp.concatenate(flat, axis=-1)


def columns(params, axis: int):
    """Split a [F, NUM_PARAMS] table into NUM_PARAMS arrays with a unit axis at ``axis``."""
    return tuple(jnp.expand_dims(params[:, k], axis) for k in range(NUM_PARAMS))


def edge_terms(px, py, cols):
    """Squared distance to the triangle boundary and the three edge functions.

    Args:
      px, py: pixel coordinates, any shape broadcastable with the columns.
      cols: NUM_PARAMS arrays from ``columns``.

    Returns:
      d2: squared distance from (px, py) to the triangle's boundary, pixels^2.
      edge: tuple of 3 edge functions cross(e_k, p - v_k); all > 0 or all < 0 inside.
    """
    d2 = None
    edge = []
    for k in range(3):
        dx = px - cols[2 * k]
        dy = py - cols[2 * k + 1]
        ex, ey = cols[6 + 2 * k], cols[7 + 2 * k]
        t = jnp.clip((dx * ex + dy * ey) * cols[12 + k], 0.0, 1.0)
        qx = dx - t * ex
        qy = dy - t * ey
        dk = qx * qx + qy * qy
        d2 = dk if d2 is None else jnp.minimum(d2, dk)
        edge.append(ex * dy - ey * dx)
    return d2, tuple(edge)


def inside_from_edges(edge):
    """True where all three edge functions share a strict sign (either winding)."""
    c0, c1, c2 = edge
    pos = (c0 > 0) & (c1 > 0) & (c2 > 0)
    neg = (c0 < 0) & (c1 < 0) & (c2 < 0)
    return pos | neg


def soft_logit(d2, inside, sigma):
    """SoftRas logit ``sign * d2 / sigma`` (sign +1 inside, -1 outside)."""
    return jnp.where(inside, d2, -d2) / sigma


def log_one_minus_coverage(d2, inside, sigma):
    """log(1 - D) with D = sigmoid(sign * d2 / sigma), computed stably as -softplus."""
    return -jax.nn.softplus(soft_logit(d2, inside, sigma))


def barycentrics(edge, cols, *, clip: bool):
    """Screen-space barycentric weights of a pixel in a face.

    Args:
      edge: the 3 edge functions from ``edge_terms``.
      cols: NUM_PARAMS arrays from ``columns``.
      clip: clamp to >= 0 and renormalise (SoftRas, for pixels outside the face); zero-area
        faces then get (1/3, 1/3, 1/3).

    Returns:
      tuple (b0, b1, b2) weights of vertices 0, 1, 2.
    """
    inv_area2 = cols[15]
    b = (edge[1] * inv_area2, edge[2] * inv_area2, edge[0] * inv_area2)
    if not clip:
        return b
    b = tuple(jnp.maximum(bk, 0.0) for bk in b)
    total = b[0] + b[1] + b[2]
    ok = total > 0
    inv = 1.0 / jnp.where(ok, total, 1.0)
    third = jnp.asarray(1.0 / 3.0, total.dtype)
    return tuple(jnp.where(ok, bk * inv, third) for bk in b)


def perspective_correct(b, inv_z):
    """Perspective-correct barycentrics and depth from screen-space ones.

    Args:
      b: tuple of 3 screen-space barycentric weights (summing to 1).
      inv_z: tuple of 3 inverse vertex depths 1 / z_k (broadcastable with b).

    Returns:
      (b_corrected tuple of 3, depth) with depth = 1 / sum_k b_k / z_k.
    """
    w = tuple(bk * iz for bk, iz in zip(b, inv_z, strict=True))
    total = w[0] + w[1] + w[2]
    ok = total > 0
    depth = 1.0 / jnp.where(ok, total, 1.0)
    return tuple(jnp.where(ok, wk * depth, bk) for wk, bk in zip(w, b, strict=True)), depth
