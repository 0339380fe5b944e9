"""Plain-numpy reference of MANO and a builder of synthetic MANO-format models, for tests.

The reference is written independently of ``hand_jax``: explicit Rodrigues with a branch at zero,
a sequential walk down the kinematic chain with 4x4 homogeneous transforms (as in MANO's own
``lbs.py``), and a per-vertex skinning loop. Keypoints are ordered by joint *names*, not by the
conversion tables of ``hand_jax.keypoints``. Units: metres, radians.

The synthetic model has MANO's real parent tree and field shapes with random bases: joints laid
out like a right hand (fingers along -x), vertices scattered around the bones they are skinned
to, a joint regressor averaging each joint's vertices, and a first shape component that scales
the hand (as MANO's does), so the left-model heuristics can be exercised.
"""

import numpy as np
import scipy.sparse

MANO_PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)
MANO_NAMES = (
    "wrist",
    "index1", "index2", "index3",
    "middle1", "middle2", "middle3",
    "pinky1", "pinky2", "pinky3",
    "ring1", "ring2", "ring3",
    "thumb1", "thumb2", "thumb3",
)  # fmt: skip
TIP_NAMES = ("thumb_tip", "index_tip", "middle_tip", "ring_tip", "pinky_tip")
CANONICAL_NAMES = ("wrist",) + tuple(
    f"{finger}{part}"
    for finger in ("thumb", "index", "middle", "ring", "pinky")
    for part in ("1", "2", "3", "_tip")
)


def rodrigues(w):
    """[3] axis-angle -> [3, 3] rotation matrix, explicit formula."""
    w = np.asarray(w, dtype=np.float64)
    theta = np.sqrt(np.sum(w * w))
    if theta < 1e-12:
        return np.eye(3)
    k = w / theta
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(theta) * kx + (1.0 - np.cos(theta)) * kx @ kx


def mano_reference(arrays, pose, betas, transl=None):
    """Pose one hand with plain numpy loops.

    Args:
      arrays: dict with v_template, shapedirs, posedirs, J_regressor, weights, parents, tip_ids.
      pose: [48] axis-angle, radians. betas: [n] shape coefficients. transl: optional [3].

    Returns:
      (verts [V, 3], joints [16, 3], keypoints [21, 3] canonical order by names), float64.
    """
    a = {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items() if k != "parents"}
    parents = arrays["parents"]
    betas = np.asarray(betas, dtype=np.float64)
    v_shaped = a["v_template"] + a["shapedirs"][:, :, : len(betas)].dot(betas)
    rest = a["J_regressor"].dot(v_shaped)
    rots = [rodrigues(np.asarray(pose)[3 * j : 3 * j + 3]) for j in range(16)]
    lrotmin = np.concatenate([(rots[j] - np.eye(3)).ravel() for j in range(1, 16)])
    v_posed = v_shaped + a["posedirs"].dot(lrotmin)

    world = [None] * 16
    for j in range(16):
        local = np.eye(4)
        local[:3, :3] = rots[j]
        p = parents[j]
        local[:3, 3] = rest[j] if p < 0 else rest[j] - rest[p]
        world[j] = local if p < 0 else world[p] @ local
    skin = []
    for j in range(16):
        a_j = world[j].copy()
        a_j[:3, 3] -= world[j][:3, :3] @ rest[j]
        skin.append(a_j)

    verts = np.zeros_like(v_posed)
    for v in range(v_posed.shape[0]):
        t = sum(a["weights"][v, j] * skin[j] for j in range(16))
        verts[v] = (t @ np.append(v_posed[v], 1.0))[:3]
    joints = np.stack([world[j][:3, 3] for j in range(16)])
    if transl is not None:
        verts = verts + np.asarray(transl)
        joints = joints + np.asarray(transl)
    tips = verts[np.asarray(arrays["tip_ids"], dtype=int)]
    by_name = dict(zip(MANO_NAMES + TIP_NAMES, np.concatenate([joints, tips]), strict=True))
    keypoints = np.stack([by_name[n] for n in CANONICAL_NAMES])
    return verts, joints, keypoints


def _hand_joints():
    """[16, 3] rest joints of a right hand in MANO's native order, fingers along -x, metres."""
    joints = np.zeros((16, 3))
    # (first joint index, base position, unit direction) per finger.
    fingers = (
        (1, (-0.085, 0.0, 0.025), (-1.0, 0.0, 0.1)),  # index
        (4, (-0.090, 0.0, 0.002), (-1.0, 0.0, 0.0)),  # middle
        (7, (-0.075, 0.0, -0.040), (-1.0, 0.0, -0.15)),  # pinky
        (10, (-0.085, 0.0, -0.020), (-1.0, 0.0, -0.07)),  # ring
        (13, (-0.025, -0.010, 0.030), (-0.6, -0.2, 0.75)),  # thumb
    )
    for first, base, direction in fingers:
        d = np.asarray(direction) / np.linalg.norm(direction)
        for k in range(3):
            joints[first + k] = np.asarray(base) + 0.03 * k * d
    return joints


def make_synthetic_arrays(seed=0, num_verts=100, num_betas=10, num_comps=45):
    """Build a random MANO-format model with the real parent tree.

    Args:
      seed: numpy seed. num_verts: V (>= 80). num_betas: S. num_comps: C PCA components.

    Returns:
      Dict of float64 numpy arrays in the project's field names (v_template [V, 3], shapedirs
      [V, 3, S], posedirs [V, 3, 135], J_regressor [16, V], weights [V, 16], faces [F, 3] int32,
      hands_components [C, 45], hands_mean [45]) plus parents and tip_ids (tuples).
    """
    rng = np.random.default_rng(seed)
    joints = _hand_joints()
    owner = np.arange(num_verts) % 16  # every joint owns some vertices
    children = {j: [c for c in range(16) if MANO_PARENTS[c] == j] for j in range(16)}
    v_template = np.empty((num_verts, 3))
    for v, j in enumerate(owner):
        tip = joints[children[j][0]] if children[j] else joints[j] + (joints[j] - joints[j - 1])
        v_template[v] = joints[j] + rng.uniform(0.1, 0.9) * (tip - joints[j])
        v_template[v] += rng.normal(scale=0.008, size=3)
    weights = 0.05 * rng.random((num_verts, 16))
    weights[np.arange(num_verts), owner] += 1.0
    parent = np.array([max(MANO_PARENTS[j], 0) for j in owner])
    weights[np.arange(num_verts), parent] += rng.uniform(0.0, 0.5, num_verts)
    weights /= weights.sum(axis=1, keepdims=True)
    j_regressor = np.zeros((16, num_verts))
    for j in range(16):
        members = np.flatnonzero(owner == j)
        j_regressor[j, members] = rng.random(members.size) + 0.1
    j_regressor /= j_regressor.sum(axis=1, keepdims=True)
    centred = v_template - v_template.mean(axis=0)
    shapedirs = 0.004 * rng.normal(size=(num_verts, 3, num_betas))
    shapedirs[:, :, 0] += 0.08 * centred
    faces = np.stack([rng.choice(num_verts, 3, replace=False) for _ in range(2 * num_verts - 4)])
    tip_ids = tuple(int(np.flatnonzero(owner == j)[-1]) for j in (15, 3, 6, 12, 9))
    return {
        "v_template": v_template,
        "shapedirs": shapedirs,
        "posedirs": 0.002 * rng.normal(size=(num_verts, 3, 135)),
        "J_regressor": j_regressor,
        "weights": weights,
        "faces": faces.astype(np.int32),
        "hands_components": 0.3 * rng.normal(size=(num_comps, 45)),
        "hands_mean": 0.2 * rng.normal(size=45),
        "parents": MANO_PARENTS,
        "tip_ids": tip_ids,
    }


def model_kwargs(arrays):
    """Split ``make_synthetic_arrays`` output into ``mano.make_model`` keyword arguments."""
    kwargs = {k: v for k, v in arrays.items() if k not in ("parents", "tip_ids")}
    return dict(kwargs, parents=arrays["parents"], tip_ids=arrays["tip_ids"])


def mano_pkl_dict(arrays):
    """Return the arrays under the official MANO pickle's keys, plain numpy + sparse regressor.

    ``J_regressor`` becomes a scipy ``csc_matrix``, faces ``f`` uint32, and ``kintree_table``
    stores the root's parent as the wrapped unsigned value 4294967295, as in the official files.
    """
    kintree = np.stack([np.array(arrays["parents"], dtype=np.int64) % (2**32), np.arange(16)])
    return {
        "v_template": np.asarray(arrays["v_template"]),
        "shapedirs": np.asarray(arrays["shapedirs"]),
        "posedirs": np.asarray(arrays["posedirs"]),
        "J_regressor": scipy.sparse.csc_matrix(np.asarray(arrays["J_regressor"])),
        "weights": np.asarray(arrays["weights"]),
        "f": np.asarray(arrays["faces"]).astype(np.uint32),
        "kintree_table": kintree.astype(np.int64),
        "hands_components": np.asarray(arrays["hands_components"]),
        "hands_mean": np.asarray(arrays["hands_mean"]),
        "hands_coeffs": np.zeros((3, arrays["hands_components"].shape[0])),
        "J": np.asarray(arrays["J_regressor"]).dot(arrays["v_template"]),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }
