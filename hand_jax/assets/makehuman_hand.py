"""Cut the right hand out of the MakeHuman base mesh and rig it in MANO's structure.

Input: the parsed assets of ``hand_jax.assets.mpfb.read_assets`` (MakeHuman coordinates: y up,
body facing +z, decimetres). Output arrays are float64 in the canonical hand frame, metres:

- origin at the wrist joint (centroid of the ``joint-r-hand`` cube) at rest;
- -x from the wrist towards the middle finger's MCP joint (fingers point along -x, as in MANO);
- +y out of the back of the hand (the palm faces -y), +z towards the thumb (x, y, z right-handed).

The 16 joints are in MANO's native order (wrist; index, middle, pinky, ring, thumb 1-3), each the
centroid of a MakeHuman joint cube: thumb1-3 = ``joint-r-finger-1-1..3`` (CMC, MCP, IP), index1-3
= ``joint-r-finger-2-1..3`` and so on (MakeHuman fingers 1-5 = thumb, index, middle, ring, pinky).
"""

import numpy as np
from scipy import optimize

from hand_jax import keypoints

MH_FINGER = {"thumb": 1, "index": 2, "middle": 3, "ring": 4, "pinky": 5}
# The cube whose centroid is each MANO joint, in MANO native order.
JOINT_CUBES = ("joint-r-hand",) + tuple(
    f"joint-r-finger-{MH_FINGER[name[:-1]]}-{name[-1]}" for name in keypoints.MANO_JOINT_NAMES[1:]
)
# Fingertip cubes (ends of the distal bones), order thumb, index, middle, ring, pinky.
TIP_CUBES = tuple(f"joint-r-finger-{MH_FINGER[f]}-4" for f in keypoints.TIP_FINGERS)
HAND_BONES = (
    ("wrist.R",)
    + tuple(f"metacarpal{i}.R" for i in range(1, 5))
    + tuple(f"finger{f}-{j}.R" for f in range(1, 6) for j in range(1, 4))
)
BODY_GROUP = "body"
DM_TO_M = 0.1


def select_hand(assets: dict, *, rings_removed: int) -> tuple[np.ndarray, np.ndarray]:
    """Select the hand's vertices and quads from the base mesh.

    The hand is every body vertex with a positive skinning weight on a hand bone, and the body
    quads with all four corners among them: one connected surface, open at one edge loop on the
    forearm. ``rings_removed`` quad rings are then peeled off that opening to shorten the forearm
    stub; each peel leaves a clean edge loop again.

    Returns:
      vert_ids: [V] int64 sorted base-mesh ids of the hand's vertices.
      quads: [Q, 4] int64 quads indexing ``vert_ids``, the file's winding.
    """
    n = assets["verts"].shape[0]
    hand_weight = np.zeros(n)
    for bone in HAND_BONES:
        ids, w = assets["weights"][bone]
        np.add.at(hand_weight, ids, w)
    keep = np.zeros(n, bool)
    keep[assets["groups"][BODY_GROUP]] = True
    keep &= hand_weight > 0
    quads = assets["quads"][keep[assets["quads"]].all(axis=1)]
    for _ in range(rings_removed):
        quads = quads[~np.isin(quads, boundary_edges(quads)).any(axis=1)]
    vert_ids = np.unique(quads)
    return vert_ids, np.searchsorted(vert_ids, quads)


def boundary_edges(faces: np.ndarray) -> np.ndarray:
    """Return the [E, 2] sorted vertex pairs used by exactly one polygon of ``faces`` [F, k]."""
    edges = np.stack([faces, np.roll(faces, -1, axis=1)], axis=-1).reshape(-1, 2)
    uniq, counts = np.unique(np.sort(edges, axis=1), axis=0, return_counts=True)
    return uniq[counts == 1]


def triangulate(quads: np.ndarray, verts: np.ndarray) -> np.ndarray:
    """Split each quad along its shorter diagonal, keeping the winding.

    Args:
      quads: [Q, 4] int vertex ids (a, b, c, d).
      verts: [V, 3] positions.

    Returns:
      [2Q, 3] int32 triangles: (a, b, c), (a, c, d) or (a, b, d), (b, c, d).
    """
    a, b, c, d = quads.T
    ac = np.linalg.norm(verts[a] - verts[c], axis=1)
    bd = np.linalg.norm(verts[b] - verts[d], axis=1)
    use_ac = (ac <= bd)[:, None]
    first = np.where(use_ac, np.stack([a, b, c], 1), np.stack([a, b, d], 1))
    second = np.where(use_ac, np.stack([a, c, d], 1), np.stack([b, c, d], 1))
    return np.stack([first, second], axis=1).reshape(-1, 3).astype(np.int32)


def cube_centroids(assets: dict, names, offsets: np.ndarray | None = None) -> np.ndarray:
    """Return [n, 3] centroids of the named joint cubes (base verts + optional [N, 3] offsets)."""
    verts = assets["verts"] if offsets is None else assets["verts"] + offsets
    return np.stack([verts[assets["groups"][name]].mean(axis=0) for name in names])


def canonical_frame(joints_mh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (rotation [3, 3], origin [3]) mapping MakeHuman points p to R @ (p - origin) * 0.1.

    Args:
      joints_mh: [16, 3] MANO-order joints in MakeHuman coordinates (decimetres).
    """
    wrist, index1, middle1, pinky1 = joints_mh[[0, 1, 4, 7]]
    forward = unit(middle1 - wrist)
    radial = unit(index1 - pinky1)
    x = -forward
    dorsal = np.cross(forward, radial)  # right hand: fingers x thumb side = back of the hand
    y = unit(dorsal - dorsal.dot(x) * x)
    z = np.cross(x, y)
    return np.stack([x, y, z]), wrist


def unit(v: np.ndarray) -> np.ndarray:
    """Return v / |v|."""
    return v / np.linalg.norm(v)


def to_canonical(points: np.ndarray, rotation: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """Map [..., 3] MakeHuman points (decimetres) to the canonical frame (metres)."""
    return (points - origin) @ rotation.T * DM_TO_M


def skinning_weights(assets: dict, vert_ids: np.ndarray) -> np.ndarray:
    """Return [V, 16] skinning weights in MANO joint order, rows summing to 1.

    A MakeHuman bone drives the MANO joint whose cube is the bone's head (``finger2-1.R`` starts
    at the index MCP cube, so it is MANO's index1). Every other bone touching the hand (``wrist.R``,
    the metacarpals, the forearm bones on the stub) is merged into the wrist, the root.
    """
    joint_of_cube = {cube: j for j, cube in enumerate(JOINT_CUBES)}
    weights = np.zeros((vert_ids.shape[0], len(JOINT_CUBES)))
    for bone, (ids, w) in assets["weights"].items():
        joint = joint_of_cube.get(assets["rig"][bone]["head_cube"], 0)
        pos = np.searchsorted(vert_ids, ids)
        hit = (pos < vert_ids.shape[0]) & (vert_ids[np.minimum(pos, vert_ids.shape[0] - 1)] == ids)
        np.add.at(weights, (pos[hit], joint), w[hit])
    sums = weights.sum(axis=1, keepdims=True)
    if (sums <= 0).any():
        raise ValueError("skinning weights: some hand vertices carry no weight at all")
    return weights / sums


def check_rig_tree(rig: dict) -> None:
    """Check that the MakeHuman finger bones chain as MANO's kinematic tree expects."""
    for f in range(1, 6):
        for j in (2, 3):
            parent = rig[f"finger{f}-{j}.R"]["parent"]
            if parent != f"finger{f}-{j - 1}.R":
                raise ValueError(f"rig: finger{f}-{j}.R has parent {parent}, expected a chain")
        if rig[f"finger{f}-1.R"]["head_cube"] != f"joint-r-finger-{f}-1":
            raise ValueError(f"rig: finger{f}-1.R does not start at joint-r-finger-{f}-1")


def fit_regressor(
    verts: np.ndarray,
    joints: np.ndarray,
    shapedirs: np.ndarray,
    joint_dirs: np.ndarray,
    *,
    num_neighbours: int,
    smoothing: float,
) -> np.ndarray:
    """Fit a sparse convex joint regressor that follows the joints through the shape space.

    For each joint, weights w >= 0 on its ``num_neighbours`` nearest vertices, summing to 1, are
    the non-negative least squares solution of
    ``|V w - j|^2 + sum_s |D_s w - d_s|^2 + smoothing * |w - 1/n|^2`` (positions in millimetres),
    so the regressed joint matches the cube centroid at rest and moves like the cube under every
    shape direction s; the small smoothing term spreads weight over the ring around the joint.

    Args:
      verts: [V, 3] rest vertices, metres.
      joints: [J, 3] target joints, metres.
      shapedirs: [V, 3, S] vertex displacement per unit beta, metres.
      joint_dirs: [J, 3, S] joint displacement per unit beta, metres.
      num_neighbours: candidate vertices per joint.
      smoothing: weight of the pull towards uniform weights, per mm^2.

    Returns:
      [J, V] float64 regressor, rows non-negative and summing to 1.
    """
    num_shapes = shapedirs.shape[-1]
    reg = np.zeros((joints.shape[0], verts.shape[0]))
    sum_row_scale = 1e3  # enforces sum(w) = 1 far tighter than the position rows
    for j, joint in enumerate(joints):
        near = np.argsort(np.linalg.norm(verts - joint, axis=1), kind="stable")[:num_neighbours]
        n = near.shape[0]
        blocks = [verts[near].T] + [shapedirs[near, :, s].T for s in range(num_shapes)]
        targets = [joint] + [joint_dirs[j, :, s] for s in range(num_shapes)]
        a = np.concatenate(
            [1e3 * np.concatenate(blocks), sum_row_scale * np.ones((1, n)),
             np.sqrt(smoothing) * np.eye(n)]
        )  # fmt: skip
        b = np.concatenate(
            [1e3 * np.concatenate(targets), [sum_row_scale], np.sqrt(smoothing) * np.full(n, 1 / n)]
        )
        w, _ = optimize.nnls(a, b, maxiter=50 * n)
        reg[j, near] = w / w.sum()
    return reg


def tip_vertices(verts: np.ndarray, tips: np.ndarray) -> np.ndarray:
    """Return [5] int32 ids of the vertices nearest to the [5, 3] fingertip cube centroids."""
    d = np.linalg.norm(verts[None, :, :] - tips[:, None, :], axis=-1)
    return d.argmin(axis=1).astype(np.int32)


def dense_offsets(assets: dict, name: str) -> np.ndarray:
    """Return a target's offsets as a dense [N, 3] array over the base mesh (decimetres)."""
    ids, offsets = assets["targets"][name]
    dense = np.zeros_like(assets["verts"])
    dense[ids] = offsets
    return dense


def shape_directions(
    assets: dict, vert_ids: np.ndarray, rotation: np.ndarray, pairs, *, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """Turn target pairs into shape directions of the hand and of its joints.

    Direction s is ``scale * (positive - negative) / 2`` of pair s: beta_s = +-1/scale reproduces
    the MakeHuman slider's ends to first order. Each direction is made wrist-relative (the wrist
    joint's displacement is subtracted), so the wrist stays at the origin for every shape.

    Args:
      assets: parsed assets.
      vert_ids: [V] base-mesh ids of the hand's vertices.
      rotation: [3, 3] canonical frame rotation.
      pairs: sequence of (negative, positive) target names.
      scale: slider units per beta (1/3: beta = 3 reaches the slider's end).

    Returns:
      shapedirs: [V, 3, S] vertex displacement per unit beta, metres.
      joint_dirs: [16, 3, S] joint (cube centroid) displacement per unit beta, metres.
    """
    rest = cube_centroids(assets, JOINT_CUBES)
    verts_out, joints_out = [], []
    for negative, positive in pairs:
        offsets = scale * 0.5 * (dense_offsets(assets, positive) - dense_offsets(assets, negative))
        joint_delta = (cube_centroids(assets, JOINT_CUBES, offsets) - rest) @ rotation.T * DM_TO_M
        vert_delta = offsets[vert_ids] @ rotation.T * DM_TO_M
        verts_out.append(vert_delta - joint_delta[0])
        joints_out.append(joint_delta - joint_delta[0])
    return np.stack(verts_out, axis=-1), np.stack(joints_out, axis=-1)
