"""A hand articulation prior with anatomical per-joint ranges, for synthetic data.

Each of MANO's 15 articulated joints rotates about three axes built from the model's own rest
pose (so the prior fits MANO and the default hand alike, whatever their frames):

- flexion: ``normalize(d x n)`` with ``d`` the bone direction (joint -> child) and ``n`` the
  palm normal (out of the palm); positive angles curl the finger towards the palm;
- abduction: ``n``, signed so that positive angles move the finger towards the thumb;
- twist: ``d``.

The joint's axis-angle is ``flex * a_flex + abd * a_abd + twist * a_twist`` (small abduction and
twist, so the mix is close to the composition). Ranges, degrees:

- finger MCP: flexion -15 .. 85; abduction index -8 .. 18, middle -10 .. 10, ring -14 .. 8,
  pinky -22 .. 8; twist -5 .. 5.
- finger PIP: flexion 0 .. 100; no abduction; twist -3 .. 3.
- finger DIP: flexion -5 .. 75, drawn as 2/3 of the PIP flexion plus noise; twist -3 .. 3.
- thumb CMC: flexion -15 .. 45, abduction -25 .. 30, twist -15 .. 15.
- thumb MCP: flexion -5 .. 55, abduction -8 .. 8, twist -5 .. 5.
- thumb IP: flexion -10 .. 80.

Sampling: a curl level per finger in [0, 1] (with probability ``independent_prob`` drawn
independently per finger, otherwise a shared grasp level plus noise, which gives open hands,
fists and everything between), flexion interpolated in the ranges with noise; DIP coupled to
PIP (DIP ~ 2/3 PIP, as tendons couple them); abduction shrinks as the finger curls
(``(1 - 0.7 curl)``), which keeps curled fingers from crossing into each other. No explicit
collision test is made: the ranges avoid the self-intersecting extremes.

Global rotations (axis-angle [3], model frame -> camera frame; model frame: fingers along -x,
palm facing -y, thumb on +z for a right hand; camera frame OpenCV: +x right, +y down, +z
forward):

- ``uniform_rotation``: uniform over SO(3), every view of the hand.
- ``natural_rotation``: views that photographs show. A canonical view is drawn from
  ``NATURAL_VIEWS`` (weights: palm to the camera 0.30, back of the hand 0.25, thumb side 0.15,
  little-finger side 0.10, egocentric 0.20; all with the fingers up in the image, the egocentric
  one tilted by 45 .. 70 degrees so that the fingers point away from the camera and the back of
  the hand faces it), then tilted out of the image plane about a uniformly random axis in the
  image plane by ``max_tilt * sqrt(u)`` (default 40 degrees, about uniform over the cap of view
  directions), then rolled in the image plane: with probability ``any_roll_prob`` (0.1) uniformly,
  otherwise by a wrapped normal around "fingers up" with std ``roll_std`` (45 degrees). So the
  forearm mostly points down or sideways in the image (fingers up-ish in about 85% of views).
"""

import numpy as np
from scipy.spatial.transform import Rotation

# MANO native joint ids of each finger's three joints (MCP/CMC, PIP/MCP, DIP/IP).
FINGER_JOINTS = {
    "index": (1, 2, 3),
    "middle": (4, 5, 6),
    "pinky": (7, 8, 9),
    "ring": (10, 11, 12),
    "thumb": (13, 14, 15),
}
# Fingertip order of HandModel.tip_ids.
TIP_ORDER = ("thumb", "index", "middle", "ring", "pinky")
FLEXION_DEG = {
    "finger": ((-15.0, 85.0), (0.0, 100.0), (-5.0, 75.0)),
    "thumb": ((-15.0, 45.0), (-5.0, 55.0), (-10.0, 80.0)),
}
ABDUCTION_DEG = {
    "index": (-8.0, 18.0),
    "middle": (-10.0, 10.0),
    "ring": (-14.0, 8.0),
    "pinky": (-22.0, 8.0),
    "thumb": (-25.0, 30.0),
}
THUMB_MCP_ABDUCTION_DEG = (-8.0, 8.0)
TWIST_DEG = {"finger": (5.0, 3.0, 3.0), "thumb": (15.0, 5.0, 0.0)}  # max |twist| per level
DIP_PIP_RATIO = 2.0 / 3.0


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def joint_axes(
    rest_joints: np.ndarray, tip_points: np.ndarray, *, side: str = "right"
) -> np.ndarray:
    """Build each articulated joint's (flexion, abduction, twist) axes from the rest pose.

    Args:
      rest_joints: [16, 3] rest-pose joints, MANO native order.
      tip_points: [5, 3] rest-pose fingertips, order thumb, index, middle, ring, pinky.
      side: ``right`` or ``left`` (the palm normal's orientation depends on it).

    Returns:
      [15, 3, 3] unit axes for joints 1..15: ``axes[j - 1, 0]`` flexion, ``1`` abduction,
      ``2`` twist.
    """
    j = np.asarray(rest_joints, np.float64)
    tips = dict(zip(TIP_ORDER, np.asarray(tip_points, np.float64), strict=True))
    n = _unit(np.cross(j[1] - j[0], j[7] - j[0]))  # out of the palm for a right hand
    if side == "left":
        n = -n
    towards_thumb = j[13] - j[4]
    axes = np.zeros((15, 3, 3))
    for finger, ids in FINGER_JOINTS.items():
        chain = [j[i] for i in ids] + [tips[finger]]
        for level, joint in enumerate(ids):
            d = _unit(chain[level + 1] - chain[level])
            flex = _unit(np.cross(d, n))
            abd = _unit(n - np.dot(n, d) * d)
            if np.dot(np.cross(abd, d), towards_thumb) < 0:
                abd = -abd
            axes[joint - 1] = (flex, abd, d)
    return axes


def _curls(rng: np.random.Generator, independent_prob: float) -> dict[str, float]:
    if rng.uniform() < independent_prob:
        return {f: rng.uniform() for f in FINGER_JOINTS}
    grasp = rng.uniform()
    return {f: float(np.clip(grasp + rng.normal(0.0, 0.2), 0.0, 1.0)) for f in FINGER_JOINTS}


def _lerp_noisy(rng, lo_hi, t, noise=0.08):
    lo, hi = lo_hi
    return float(np.clip(lo + t * (hi - lo) + rng.normal(0.0, noise * (hi - lo)), lo, hi))


def sample_angles(rng: np.random.Generator, *, independent_prob: float = 0.3) -> np.ndarray:
    """Draw (flexion, abduction, twist) angles for the 15 articulated joints.

    Args:
      rng: numpy random generator.
      independent_prob: probability that finger curls are drawn independently.

    Returns:
      [15, 3] radians, rows in MANO native order of joints 1..15; every value inside the
      ranges of the module docstring.
    """
    curls = _curls(rng, independent_prob)
    spread = rng.uniform(-1.0, 1.0)
    angles = np.zeros((15, 3))
    for finger, ids in FINGER_JOINTS.items():
        kind = "thumb" if finger == "thumb" else "finger"
        c = curls[finger]
        flex = [_lerp_noisy(rng, FLEXION_DEG[kind][level], c) for level in range(3)]
        if kind == "finger":
            lo, hi = FLEXION_DEG["finger"][2]
            flex[2] = float(np.clip(DIP_PIP_RATIO * flex[1] + rng.normal(0.0, 8.0), lo, hi))
        lo, hi = ABDUCTION_DEG[finger]
        u = np.clip(spread + rng.normal(0.0, 0.35), -1.0, 1.0) if kind == "finger" else None
        u = rng.uniform(-1.0, 1.0) if u is None else u
        abd0 = (lo + hi) / 2 + u * (hi - lo) / 2
        abd = [abd0 * (1.0 - 0.7 * c) if kind == "finger" else abd0, 0.0, 0.0]
        if kind == "thumb":
            abd[1] = rng.uniform(*THUMB_MCP_ABDUCTION_DEG)
        twist = [rng.uniform(-t, t) for t in TWIST_DEG[kind]]
        for level, joint in enumerate(ids):
            angles[joint - 1] = (flex[level], abd[level], twist[level])
    return np.deg2rad(angles)


def angles_to_pose(angles: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """Combine [15, 3] (flexion, abduction, twist) angles and [15, 3, 3] axes to [45] axis-angle."""
    return np.einsum("jk,jkc->jc", angles, axes).reshape(45)


def sample_pose(
    rng: np.random.Generator, axes: np.ndarray, *, independent_prob: float = 0.3
) -> np.ndarray:
    """Draw a [45] articulation (axis-angle, radians, joints 1..15, relative to the flat hand)."""
    return angles_to_pose(sample_angles(rng, independent_prob=independent_prob), axes)


def uniform_rotation(rng: np.random.Generator) -> np.ndarray:
    """Draw a rotation uniformly over SO(3) (Shoemake's method); returns [3] axis-angle."""
    u1, u2, u3 = rng.uniform(size=3)
    q = np.array(
        [
            np.sqrt(1 - u1) * np.sin(2 * np.pi * u2),
            np.sqrt(1 - u1) * np.cos(2 * np.pi * u2),
            np.sqrt(u1) * np.sin(2 * np.pi * u3),
            np.sqrt(u1) * np.cos(2 * np.pi * u3),
        ]
    )  # (x, y, z, w)
    if q[3] < 0:
        q = -q
    angle = 2 * np.arctan2(np.linalg.norm(q[:3]), q[3])
    norm = np.linalg.norm(q[:3])
    return q[:3] / norm * angle if norm > 1e-12 else np.zeros(3)


# Rotation of the "palm to the camera, fingers up, thumb to the right" view (matrix of
# hand_jax.params.FRONTAL_QUATERNION): model -x -> camera -y, -y -> -z, +z -> +x.
FRONTAL = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
# Canonical views: name -> (weight, rotation about the camera's vertical axis (degrees) applied
# after FRONTAL, (lo, hi) tilt about the camera x axis (degrees, negative: fingers away)).
NATURAL_VIEWS = {
    "palm": (0.30, 0.0, (0.0, 0.0)),
    "back": (0.25, 180.0, (0.0, 0.0)),
    "thumb_side": (0.15, 90.0, (0.0, 0.0)),
    "little_side": (0.10, -90.0, (0.0, 0.0)),
    "egocentric": (0.20, 180.0, (-70.0, -45.0)),
}


def canonical_view(name: str, tilt_deg: float = 0.0) -> np.ndarray:
    """Return the [3, 3] model -> camera rotation of a canonical view (``NATURAL_VIEWS``)."""
    _, yaw, _ = NATURAL_VIEWS[name]
    about_y = Rotation.from_euler("y", yaw, degrees=True)
    about_x = Rotation.from_euler("x", tilt_deg, degrees=True)
    return (about_x * about_y).as_matrix() @ FRONTAL


def narrow_rotation(
    rng: np.random.Generator, *, max_tilt_deg: float = 30.0, roll_std_deg: float = 20.0
) -> np.ndarray:
    """Draw a global rotation from a narrow cone of views; [3] axis-angle.

    The palm faces the camera with the fingers up, tilted out of the image plane by up to
    ``max_tilt_deg`` (``tilt * sqrt(u)``) and rolled in it by N(0, ``roll_std_deg``): a
    laboratory's few frontal viewpoints, as in STB. Draw order: the out-of-plane axis angle and
    size, the roll.
    """
    phi = rng.uniform(0.0, 2 * np.pi)
    tilt = np.deg2rad(max_tilt_deg) * np.sqrt(rng.uniform())
    out_of_plane = Rotation.from_rotvec(tilt * np.array([np.cos(phi), np.sin(phi), 0.0]))
    in_plane = Rotation.from_rotvec([0.0, 0.0, rng.normal(0.0, np.deg2rad(roll_std_deg))])
    return (in_plane * out_of_plane * Rotation.from_matrix(canonical_view("palm"))).as_rotvec()


def natural_rotation(
    rng: np.random.Generator,
    *,
    max_tilt_deg: float = 40.0,
    roll_std_deg: float = 45.0,
    any_roll_prob: float = 0.1,
) -> np.ndarray:
    """Draw a global rotation from photograph-like views (module docstring); [3] axis-angle.

    Draw order: view, its tilt range, the out-of-plane axis angle and size, the roll choice, the
    roll.
    """
    names = list(NATURAL_VIEWS)
    weights = np.array([NATURAL_VIEWS[n][0] for n in names])
    name = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    lo, hi = NATURAL_VIEWS[name][2]
    view = canonical_view(name, rng.uniform(lo, hi))
    phi = rng.uniform(0.0, 2 * np.pi)
    tilt = np.deg2rad(max_tilt_deg) * np.sqrt(rng.uniform())
    out_of_plane = Rotation.from_rotvec(tilt * np.array([np.cos(phi), np.sin(phi), 0.0]))
    if rng.uniform() < any_roll_prob:
        roll = rng.uniform(-np.pi, np.pi)
    else:
        roll = rng.normal(0.0, np.deg2rad(roll_std_deg))
    in_plane = Rotation.from_rotvec([0.0, 0.0, roll])
    return (in_plane * out_of_plane * Rotation.from_matrix(view)).as_rotvec()
