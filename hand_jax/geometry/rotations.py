"""Rotation parameterisations: axis-angle, rotation matrices, quaternions and 6D.

Layout and units, once for the whole module:

- axis-angle ``[..., 3]``: rotation vector ``w = angle * axis``, radians.
- rotation matrix ``[..., 3, 3]``: acts on column vectors, ``x' = R @ x``.
- quaternion ``[..., 4]``: ``(w, x, y, z)``, scalar first; need not be normalised on input.
- 6D ``[..., 6]``: the first two columns of the matrix, ``(R[:, 0], R[:, 1])`` concatenated
  (Zhou et al., CVPR 2019); Gram-Schmidt maps any non-degenerate 6-vector to a rotation.

Every function takes any number of leading batch axes, preserves the input dtype, and has finite
gradients at its singular points (the zero rotation for axis-angle, zero-norm inputs elsewhere):
divisions by a possibly-zero quantity are guarded with a double ``where`` and replaced by a Taylor
series near zero.
"""

import jax.numpy as jnp

# Below this squared angle (rad^2) the series branch is used. The truncation error of the series
# kept here is below 1e-13 there, and the closed form has no cancellation above it.
_SMALL_ANGLE_SQ = 1e-3


def _safe_norm_sq(x, axis=-1):
    return jnp.sum(x * x, axis=axis)


def skew(v):
    """Return the cross-product matrix of a vector.

    Args:
      v: [..., 3] vector.

    Returns:
      [..., 3, 3] matrix ``K`` with ``K @ u == cross(v, u)``.
    """
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    zero = jnp.zeros_like(x)
    rows = (
        jnp.stack([zero, -z, y], axis=-1),
        jnp.stack([z, zero, -x], axis=-1),
        jnp.stack([-y, x, zero], axis=-1),
    )
    return jnp.stack(rows, axis=-2)


def _rodrigues_coefficients(theta_sq):
    """Return ``sin(t)/t`` and ``(1 - cos(t))/t^2`` for ``t^2 = theta_sq``, finite at 0."""
    small = theta_sq < _SMALL_ANGLE_SQ
    safe_sq = jnp.where(small, jnp.ones_like(theta_sq), theta_sq)
    theta = jnp.sqrt(safe_sq)
    half = 0.5 * theta
    sinc = jnp.sin(theta) / theta
    # 2 sin^2(t/2) / t^2 avoids the cancellation of 1 - cos(t) for small t.
    cosc = 0.5 * jnp.square(jnp.sin(half) / half)
    sq2, sq3 = jnp.square(theta_sq), theta_sq**3
    sinc_series = 1.0 - theta_sq / 6.0 + sq2 / 120.0 - sq3 / 5040.0
    cosc_series = 0.5 - theta_sq / 24.0 + sq2 / 720.0 - sq3 / 40320.0
    return jnp.where(small, sinc_series, sinc), jnp.where(small, cosc_series, cosc)


def axis_angle_to_matrix(axis_angle):
    """Convert axis-angle vectors to rotation matrices (Rodrigues' formula).

    Args:
      axis_angle: [..., 3] rotation vectors, radians.

    Returns:
      [..., 3, 3] rotation matrices; gradients are finite (and exact) at the zero vector.
    """
    theta_sq = _safe_norm_sq(axis_angle)
    a, b = _rodrigues_coefficients(theta_sq)
    k = skew(axis_angle)
    eye = jnp.eye(3, dtype=axis_angle.dtype)
    # K @ K = w w^T - |w|^2 I, written out to avoid tiny batched matmuls.
    k_sq = axis_angle[..., :, None] * axis_angle[..., None, :] - theta_sq[..., None, None] * eye
    return eye + a[..., None, None] * k + b[..., None, None] * k_sq


def quaternion_to_matrix(quaternion):
    """Convert quaternions ``(w, x, y, z)`` to rotation matrices.

    Args:
      quaternion: [..., 4] quaternions, scalar first; normalised here (any non-zero scale).

    Returns:
      [..., 3, 3] rotation matrices. A zero quaternion maps to the identity with finite gradients.
    """
    norm_sq = _safe_norm_sq(quaternion)
    tiny = norm_sq < jnp.finfo(quaternion.dtype).tiny * 1e4
    # Scale 2/|q|^2 folds the normalisation into the standard formula.
    s = 2.0 / jnp.where(tiny, jnp.ones_like(norm_sq), norm_sq)
    s = jnp.where(tiny, jnp.zeros_like(s), s)
    w, x, y, z = (quaternion[..., i] for i in range(4))
    rows = (
        jnp.stack([1 - s * (y * y + z * z), s * (x * y - z * w), s * (x * z + y * w)], -1),
        jnp.stack([s * (x * y + z * w), 1 - s * (x * x + z * z), s * (y * z - x * w)], -1),
        jnp.stack([s * (x * z - y * w), s * (y * z + x * w), 1 - s * (x * x + y * y)], -1),
    )
    return jnp.stack(rows, axis=-2)


def matrix_to_quaternion(matrix):
    """Convert rotation matrices to unit quaternions ``(w, x, y, z)`` with ``w >= 0``.

    Uses the numerically stable branch (largest of w, x, y, z) of Shepperd's method.

    Args:
      matrix: [..., 3, 3] rotation matrices.

    Returns:
      [..., 4] unit quaternions, scalar first, on the ``w >= 0`` hemisphere.
    """
    m = matrix
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    trace = m00 + m11 + m22
    # Four candidate quaternions scaled by 4 * (their largest component); pick the best conditioned.
    candidates = jnp.stack(
        [
            jnp.stack([1 + trace, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
                       m[..., 1, 0] - m[..., 0, 1]], -1),
            jnp.stack([m[..., 2, 1] - m[..., 1, 2], 1 + m00 - m11 - m22,
                       m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0]], -1),
            jnp.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0],
                       1 - m00 + m11 - m22, m[..., 1, 2] + m[..., 2, 1]], -1),
            jnp.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0],
                       m[..., 1, 2] + m[..., 2, 1], 1 - m00 - m11 + m22], -1),
        ],
        axis=-2,
    )  # fmt: skip
    diag = jnp.stack([1 + trace, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    best = jnp.argmax(diag, axis=-1)
    q = jnp.take_along_axis(candidates, best[..., None, None], axis=-2)[..., 0, :]
    q = q / jnp.sqrt(_safe_norm_sq(q))[..., None]
    return jnp.where(q[..., :1] < 0, -q, q)


def quaternion_to_axis_angle(quaternion):
    """Convert unit quaternions ``(w, x, y, z)`` to axis-angle vectors.

    Args:
      quaternion: [..., 4] unit quaternions, scalar first.

    Returns:
      [..., 3] rotation vectors with angle in [0, pi], radians; finite gradients at the identity.
    """
    q = jnp.where(quaternion[..., :1] < 0, -quaternion, quaternion)
    w, v = q[..., 0], q[..., 1:]
    n_sq = _safe_norm_sq(v)
    small = n_sq < _SMALL_ANGLE_SQ
    n = jnp.sqrt(jnp.where(small, jnp.ones_like(n_sq), n_sq))
    # angle / sin(angle / 2) = 2 atan2(n, w) / n; near n = 0 use (2 / w) atan(r) / r, r = n / w.
    ratio = 2.0 * jnp.arctan2(n, w) / n
    safe_w = jnp.where(small, w, jnp.ones_like(w))
    r_sq = n_sq / jnp.square(safe_w)
    series = (2.0 / safe_w) * (1.0 - r_sq / 3.0 + jnp.square(r_sq) / 5.0 - r_sq**3 / 7.0)
    scale = jnp.where(small, series, ratio)
    return v * scale[..., None]


def matrix_to_axis_angle(matrix):
    """Convert rotation matrices to axis-angle vectors.

    Args:
      matrix: [..., 3, 3] rotation matrices.

    Returns:
      [..., 3] rotation vectors with angle in [0, pi], radians.
    """
    return quaternion_to_axis_angle(matrix_to_quaternion(matrix))


def _normalize(v, eps):
    n_sq = _safe_norm_sq(v)
    return v / jnp.sqrt(jnp.maximum(n_sq, eps))[..., None]


def rotation_6d_to_matrix(rot6d):
    """Convert 6D rotations (first two matrix columns) to matrices by Gram-Schmidt.

    Args:
      rot6d: [..., 6] the concatenation ``(a1, a2)`` of two 3-vectors, the candidate first and
        second columns; any scale, not necessarily orthogonal.

    Returns:
      [..., 3, 3] rotation matrices with columns ``b1 = a1 / |a1|``, ``b2`` the normalised part
      of ``a2`` orthogonal to ``b1``, ``b3 = b1 x b2``.
    """
    eps = jnp.finfo(rot6d.dtype).eps ** 2
    a1, a2 = rot6d[..., :3], rot6d[..., 3:]
    b1 = _normalize(a1, eps)
    b2 = _normalize(a2 - jnp.sum(b1 * a2, axis=-1, keepdims=True) * b1, eps)
    b3 = jnp.cross(b1, b2)
    return jnp.stack([b1, b2, b3], axis=-1)


def matrix_to_rotation_6d(matrix):
    """Return the 6D representation ``(R[:, 0], R[:, 1])`` of rotation matrices.

    Args:
      matrix: [..., 3, 3] rotation matrices.

    Returns:
      [..., 6] first column then second column.
    """
    return jnp.concatenate([matrix[..., :, 0], matrix[..., :, 1]], axis=-1)
