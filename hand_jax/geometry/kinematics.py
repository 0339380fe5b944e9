"""Blend shapes, forward kinematics over a static tree, and linear blend skinning.

Written for one articulated body (a hand); batch with ``jax.vmap``. Units are whatever the
inputs carry (metres in this project); rotations are ``[J, 3, 3]`` matrices acting on column
vectors, local to each joint's parent (the root's is global). The kinematic tree is static data:
``parents`` is a Python tuple with ``parents[root] == -1``. Forward kinematics runs one vectorised
step per depth level of the tree (4 levels for a hand) rather than one step per joint.

Layout: skinning takes and returns coordinate-major vertices, ``[3, V]`` (rows x, y, z). With V
innermost, every per-vertex product of a batch of hands is one large matrix multiplication
followed by contiguous multiply-adds, with no transposes of ``[B, V, 3]`` arrays between them
(XLA's CPU backend spends most of its time on those otherwise). ``blend_shapes`` takes either
layout; ``hand_jax.mano`` blends in the model's own ``[V, 3]`` layout, whose ``[V, 3, N]`` basis
flattens to ``[3 V, N]`` without a copy, and hands ``[3, V]`` views to skinning (XLA fuses the
transposes into the loops that read them). Joint arrays stay ``[J, 3]``. Rigid transforms are
kept as a rotation ``[..., 3, 3]`` and a translation ``[..., 3]`` instead of 4x4 matrices.
Products of 3x3 matrices and 3-vectors are written as broadcast multiply-adds rather than
``matmul``/``einsum``: under ``vmap`` those become dot products with batch dimensions, which XLA's
CPU backend runs as one tiny matrix product per batch element. (Writing them as 9 or 3 scalar
expressions instead, or the tree walk with static slices instead of gathers, made the MANO
gradient slower: XLA then emits more, smaller loops.)
"""

import functools

import jax.numpy as jnp
import numpy as np


@functools.lru_cache(maxsize=64)
def kinematic_levels(parents: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """Group joints by depth in the kinematic tree.

    Args:
      parents: static tuple, ``parents[j]`` is the parent of joint ``j`` or -1 for a root.

    Returns:
      Tuple of levels; level ``d`` lists (ascending) the joints at depth ``d``; roots at depth 0.

    Raises:
      ValueError: a parent index is out of range or the parents contain a cycle.
    """
    parents = tuple(int(p) for p in parents)
    num = len(parents)
    depth = [-1] * num
    for j in range(num):
        chain, k = [], j
        while k != -1 and depth[k] < 0:
            if k in chain:
                raise ValueError(f"parents={parents}: cycle through joint {k}")
            if not -1 <= parents[k] < num:
                raise ValueError(f"parents[{k}]={parents[k]}: expected -1 or a joint in [0, {num})")
            chain.append(k)
            k = parents[k]
        base = -1 if k == -1 else depth[k]
        for offset, c in enumerate(reversed(chain)):
            depth[c] = base + 1 + offset
    levels = [[] for _ in range(max(depth) + 1)]
    for j, d in enumerate(depth):
        levels[d].append(j)
    return tuple(tuple(level) for level in levels)


def matvec3(m, v):
    """Return ``m @ v`` for [..., 3, 3] matrices and [..., 3] vectors, as multiply-adds."""
    return m[..., 0] * v[..., 0:1] + m[..., 1] * v[..., 1:2] + m[..., 2] * v[..., 2:3]


def matmul3(a, b):
    """Return ``a @ b`` for [..., 3, 3] matrices, as multiply-adds."""
    return sum(a[..., :, k : k + 1] * b[..., k : k + 1, :] for k in range(3))


def blend_shapes(template, dirs, coeffs):
    """Add a linear combination of blend shapes to a template.

    Args:
      template: rest vertices in either layout, [3, V] or [V, 3] (``hand_jax.mano`` uses the
        model's own [V, 3], whose basis flattens without a copy).
      dirs: [*template.shape, N] blend shape directions (per unit coefficient).
      coeffs: [N] coefficients (MANO: betas, then the 135 pose features).

    Returns:
      ``template + dirs @ coeffs``, shaped like ``template``. Under vmap over ``coeffs`` the
      product is one [B, N] x [N, 3 V] matrix multiplication.
    """
    flat = dirs.reshape(-1, dirs.shape[-1])  # [3 V, N]
    return template + (flat @ coeffs).reshape(template.shape)


def pose_features(rotmats):
    """Return MANO's ``lrotmin`` pose features: ``R_j - I`` of every non-root joint, flattened.

    Args:
      rotmats: [J, 3, 3] local rotations, root first.

    Returns:
      [(J - 1) * 9] the row-major entries of ``R_j - I`` for joints 1..J-1 (135 for MANO).
    """
    eye = jnp.eye(3, dtype=rotmats.dtype)
    return (rotmats[1:] - eye).reshape(-1)


def regress_joints(j_regressor, verts):
    """Regress joint locations from vertices.

    Args:
      j_regressor: [J, V] regressor (rows are vertex weights).
      verts: [3, V] vertices, coordinate-major.

    Returns:
      [J, 3] joints.
    """
    return (verts @ j_regressor.T).T


def forward_kinematics(rotmats, joints, *, parents):
    """Compose local rotations along the tree into global rigid transforms.

    Args:
      rotmats: [J, 3, 3] local rotations, relative to each joint's parent frame.
      joints: [J, 3] rest joint locations.
      parents: static tuple of J parent indices, -1 for roots.

    Returns:
      ``(global_rots, posed_joints)``: [J, 3, 3] rotations of each joint's frame in the world and
      [J, 3] posed joint locations.
    """
    parents = tuple(int(p) for p in parents)
    levels = kinematic_levels(parents)
    rots, trans = [], []
    prev_pos = {}
    for depth, level in enumerate(levels):
        idx = np.asarray(level)
        local_r = rotmats[idx]
        if depth == 0:
            # A root may have a parent of -1 only; its offset is its own rest location.
            r, t = local_r, joints[idx]
        else:
            par = np.asarray([parents[j] for j in level])
            pos = np.asarray([prev_pos[p] for p in par])
            parent_r, parent_t = rots[-1][pos], trans[-1][pos]
            offsets = joints[idx] - joints[par]  # [n, 3] bone vectors in the rest pose
            r = matmul3(parent_r, local_r)
            t = matvec3(parent_r, offsets) + parent_t
        rots.append(r)
        trans.append(t)
        prev_pos = {j: i for i, j in enumerate(level)}
    order = np.concatenate([np.asarray(level) for level in levels])
    inverse = np.argsort(order)
    return jnp.concatenate(rots)[inverse], jnp.concatenate(trans)[inverse]


def skinning_transforms(global_rots, posed_joints, rest_joints):
    """Return the transforms that carry rest-pose points to posed points, per joint.

    Args:
      global_rots: [J, 3, 3] global joint rotations.
      posed_joints: [J, 3] posed joint locations.
      rest_joints: [J, 3] rest joint locations.

    Returns:
      ``(rots, trans)``: [J, 3, 3] and [J, 3] with ``x_posed = rots[j] @ x_rest + trans[j]``.
    """
    trans = posed_joints - matvec3(global_rots, rest_joints)
    return global_rots, trans


def linear_blend_skinning(verts, weights, rots, trans):
    """Deform vertices by a weighted blend of per-joint rigid transforms.

    Args:
      verts: [3, V] rest-pose vertices (after blend shapes), coordinate-major.
      weights: [V, J] skinning weights, rows summing to 1.
      rots: [J, 3, 3] per-joint rotations (from ``skinning_transforms``).
      trans: [J, 3] per-joint translations.

    Returns:
      [3, V] posed vertices, coordinate-major.
    """
    # Blend over joints, per input coordinate k: column k of every joint's rotation (k < 3) or
    # its translation (k = 3), [3, J] each, times the weights [J, V]. Under vmap each is one
    # [B * 3, J] x [J, V] matrix multiplication. Four products rather than one over all 12 rows:
    # the gradient of each then needs its own [3, V] outer product (cotangent times x_k), four
    # separate loop fusions feeding four matrix products, where a single [12, V] product makes XLA
    # assemble the [12, V] outer product from padded pieces in one slow fusion (measured: the
    # gradient of the MANO layer at batch 1024 is about 20% faster this way on CPU).
    w_t = weights.T  # [J, V]
    blended = [rots[..., k].T @ w_t for k in range(3)] + [trans.T @ w_t]  # 4 x [3, V]
    # One output row at a time from [V] rows: broadcasting x, y, z over the 3 output rows would
    # make their gradient a reduction over that axis, which XLA's CPU backend runs on copies of
    # strided slices.
    x, y, z = verts[0], verts[1], verts[2]
    rows = [
        blended[0][c] * x + blended[1][c] * y + blended[2][c] * z + blended[3][c] for c in range(3)
    ]
    return jnp.stack(rows)
