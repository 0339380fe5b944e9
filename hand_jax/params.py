"""Hand parameters h (the paper's fE3D output) and their projection into a crop.

``HandParams`` is what the network regresses and what test-time refinement optimises:

- ``global_rot``: [4] quaternion ``(w, x, y, z)`` (any non-zero scale) or [6] 6D rotation (the
  first two columns of the matrix). The representation is chosen by the trailing size.
- ``pose``: [45] articulation, axis-angle per finger joint (15 x 3, MANO native joint order),
  radians, relative to the flat hand (the relaxed hand is ``model.hands_mean``). A trailing size
  below 45 means PCA coefficients over ``model.hands_components`` added to ``hands_mean``.
- ``betas``: [S] shape coefficients.
- ``cam``: [3] weak-perspective camera ``(s, tx, ty)`` in normalised crop coordinates
  (``hand_jax.camera``): ``x_ndc = s * (X + tx)``, ``y_ndc = s * (Y + ty)``. In the perspective
  variant (when the crop's intrinsics K are known), ``cam`` is instead the wrist's translation in
  the camera frame, metres (``hand_forward_perspective``).

Frames: the posed hand is rotated by ``global_rot`` about the wrist and expressed relative to the
wrist keypoint (canonical keypoint 0), in metres, in a camera-aligned frame (OpenCV axes: +x
right, +y down in the image, +z away from the camera). Weak perspective ignores depth, so ``kp3d``
is root-relative and ``kp2d`` is in crop pixels (pixel centres at integer + 0.5).
"""

from typing import NamedTuple

import chex
import jax.numpy as jnp

from hand_jax import camera, mano
from hand_jax.geometry import rotations

NUM_ARTICULATION = 45


class HandParams(NamedTuple):
    """Hand parameters for one example (leading [B] when batched); see the module docstring."""

    global_rot: chex.Array
    pose: chex.Array
    betas: chex.Array
    cam: chex.Array


def global_rotation_matrix(global_rot):
    """Return the [3, 3] rotation matrix of a [4] quaternion or [6] 6D global rotation."""
    size = global_rot.shape[-1]
    if size == 4:
        return rotations.quaternion_to_matrix(global_rot)
    if size == 6:
        return rotations.rotation_6d_to_matrix(global_rot)
    raise ValueError(
        f"global_rot: expected a [4] quaternion or a [6] 6D rotation, got shape {global_rot.shape}"
    )


def articulation(model: mano.HandModel, pose):
    """Return the [45] axis-angle articulation for a [45] pose or [C] PCA coefficients."""
    size = pose.shape[-1]
    if size == NUM_ARTICULATION:
        return pose
    if 0 < size < NUM_ARTICULATION:
        return mano.pca_to_pose(model, pose, flat_hand_mean=False)
    raise ValueError(f"pose: expected [45] axis-angle or [C<45] PCA coefficients, got {pose.shape}")


def hand_forward_3d(model: mano.HandModel, params: HandParams):
    """Pose the hand and return root-relative vertices and keypoints in the camera-aligned frame.

    Args:
      model: the hand model.
      params: ``HandParams`` of one example.

    Returns:
      verts: [V, 3] metres, relative to the wrist keypoint.
      kp3d: [21, 3] metres, canonical order, relative to the wrist keypoint.
    """
    chex.assert_rank([params.global_rot, params.pose, params.betas, params.cam], 1)
    chex.assert_shape(params.cam, (3,))
    global_mat = global_rotation_matrix(params.global_rot)
    art = articulation(model, params.pose)
    joint_mats = rotations.axis_angle_to_matrix(art.reshape(15, 3))
    rotmats = jnp.concatenate([global_mat[None], joint_mats], axis=0)
    out = mano.forward_rotmats(model, rotmats, params.betas)
    root = out.keypoints[0]
    return out.verts - root, out.keypoints - root


def hand_forward(model: mano.HandModel, params: HandParams, *, image_size):
    """Pose the hand and project it into the crop with the weak-perspective camera.

    Args:
      model: the hand model.
      params: ``HandParams`` of one example.
      image_size: crop size, an int or ``(H, W)`` (static).

    Returns:
      verts: [V, 3] metres, root-relative, camera-aligned frame.
      kp3d: [21, 3] metres, root-relative, canonical order.
      kp2d: [21, 2] crop pixels (u, v).
    """
    verts, kp3d = hand_forward_3d(model, params)
    kp2d = camera.project_weak_perspective(kp3d, params.cam, image_size=image_size)
    return verts, kp3d, kp2d


def project_verts(verts, cam, *, image_size):
    """Project [V, 3] root-relative vertices to [V, 2] crop pixels for the soft silhouette.

    Depth is dropped: weak perspective has no near plane, and the silhouette needs no depth.
    """
    return camera.project_weak_perspective(verts, cam, image_size=image_size)


# The model frame has fingers along -x, the palm facing -y and the thumb on +z (MANO's right-hand
# convention). This rotation (120 degrees about (1, 1, 1)) shows the palm to the camera with the
# fingers up: -x -> -y (image up), -y -> -z (towards the camera), +z -> +x (thumb to the right).
FRONTAL_QUATERNION = (0.5, 0.5, 0.5, 0.5)


def frontal_rotation(kind: str = "quaternion", dtype=jnp.float32):
    """Return the palm-to-camera, fingers-up global rotation as [4] quaternion or [6] 6D."""
    q = jnp.array(FRONTAL_QUATERNION, dtype)
    if kind == "quaternion":
        return q
    if kind == "6d":
        return rotations.matrix_to_rotation_6d(rotations.quaternion_to_matrix(q))
    raise ValueError(f"kind: expected 'quaternion' or '6d', got {kind!r}")


def default_params(
    model: mano.HandModel, *, rotation: str = "quaternion", fill: float = 0.8
) -> HandParams:
    """Return a neutral hand (relaxed articulation, mean shape) framed in the crop.

    The hand shows its palm to the camera with the fingers up (``frontal_rotation``). The
    weak-perspective camera centres the hand's vertex bounding box in the crop and scales it so
    that its larger side spans ``fill`` of the crop.

    Args:
      model: the hand model.
      rotation: ``"quaternion"`` or ``"6d"``, the representation of ``global_rot``.
      fill: fraction of the crop (0, 1] the hand spans.

    Returns:
      ``HandParams`` of one example.
    """
    dtype = model.v_template.dtype
    num_betas = model.shapedirs.shape[-1]
    params = HandParams(
        global_rot=frontal_rotation(rotation, dtype),
        pose=jnp.asarray(model.hands_mean, dtype),
        betas=jnp.zeros((num_betas,), dtype),
        cam=jnp.array([1.0, 0.0, 0.0], dtype),
    )
    verts, _ = hand_forward_3d(model, params)
    lo, hi = jnp.min(verts[:, :2], axis=0), jnp.max(verts[:, :2], axis=0)
    scale = 2.0 * fill / jnp.max(hi - lo)
    centre = 0.5 * (lo + hi)
    cam = jnp.concatenate([scale[None], -centre]).astype(dtype)
    return params._replace(cam=cam)


def hand_forward_perspective(model: mano.HandModel, params: HandParams, K):
    """Pose the hand and project it with a pinhole camera; ``params.cam`` is a translation.

    In this variant ``cam`` [3] is the wrist's position in the camera frame (OpenCV axes),
    metres, and ``K`` [3, 3] the crop's intrinsics (pixel centres at integer + 0.5).

    Returns:
      verts: [V, 3] camera-frame metres; kp3d: [21, 3] camera-frame metres; kp2d: [21, 2] pixels.
    """
    chex.assert_shape(K, (3, 3))
    verts, kp3d = hand_forward_3d(model, params)
    verts, kp3d = verts + params.cam, kp3d + params.cam
    return verts, kp3d, camera.project_perspective(kp3d, K)


def screen_hand(model: mano.HandModel, params: HandParams, *, image_size, K=None):
    """Screen-space vertices and 2D keypoints under either camera model.

    Args:
      model: the hand model.
      params: ``HandParams`` of one example.
      image_size: crop side, pixels (static).
      K: None for the weak-perspective ``cam`` (s, tx, ty); a [3, 3] intrinsics matrix for the
        perspective variant (``cam`` = wrist translation, metres).

    Returns:
      verts: [V, 3] metres: root-relative (weak perspective) or camera frame (perspective);
      verts_px: [V, 2] (weak perspective) or [V, 3] (u, v, depth) pixels for the rasterizer;
      kp2d: [21, 2] pixels.
    """
    if K is None:
        verts, _, kp2d = hand_forward(model, params, image_size=image_size)
        return verts, project_verts(verts, params.cam, image_size=image_size), kp2d
    verts, _, kp2d = hand_forward_perspective(model, params, K)
    return verts, camera.project_perspective(verts, K, with_depth=True), kp2d


def default_perspective_params(
    model: mano.HandModel, K, *, image_size: int, rotation: str = "quaternion", fill: float = 0.8
) -> HandParams:
    """The neutral frontal hand placed in front of a pinhole camera so it fills the crop.

    The depth makes the hand's larger side span ``fill`` of the crop (at the focal length
    ``K[0, 0]``); the hand's bounding-box centre projects to the crop's centre.
    """
    weak = default_params(model, rotation=rotation, fill=fill)
    verts, _ = hand_forward_3d(model, weak)
    lo, hi = jnp.min(verts[:, :2], axis=0), jnp.max(verts[:, :2], axis=0)
    depth = K[0, 0] * jnp.max(hi - lo) / (fill * image_size)
    centre = jnp.array([image_size / 2.0, image_size / 2.0])
    xy = (centre - K[:2, 2]) * depth / jnp.diagonal(K)[:2] - 0.5 * (lo + hi)
    return weak._replace(cam=jnp.concatenate([xy, depth[None]]).astype(weak.cam.dtype))


# Step units of the parameter groups (RMS keypoint motion per unit on a 64 px crop, mean hand,
# measured from the Jacobian): a quaternion unit moves ~27 px, a radian of articulation ~2 px, a
# beta ~1 px, a unit of log-scale ~15 px, a unit of ndc shift 32 px. Scaled by these, one unit of
# every group moves the keypoints ~1.5-3 px (the regressor's space, ``hand_jax.models.dhpe``, and
# the refinement's preconditioned space, ``precondition``).
ROT_UNIT, POSE_UNIT, BETA_UNIT, LOG_SCALE_UNIT, SHIFT_UNIT = 0.1, 1.0, 1.0, 0.1, 0.1


def zeros_like(params: HandParams) -> HandParams:
    """Return the origin of the preconditioned space (``precondition``) for ``params``."""
    return HandParams(*(jnp.zeros_like(x) for x in params))


def precondition(init: HandParams, z: HandParams, *, image_size, K=None) -> HandParams:
    """Map a step z (in normalised units) from ``init`` to parameters: init + units * z.

    Every group moves the keypoints by a comparable number of pixels per unit (``ROT_UNIT`` ...):
    the rotation, articulation and shape add ``unit * z``; the camera moves in crop units. Weak
    perspective: ``s = s0 exp(LOG_SCALE_UNIT z_s)`` and the wrist's ndc position
    ``s t = s0 t0 + SHIFT_UNIT z_t``. Perspective (``K`` given, ``cam`` the wrist's translation):
    depth ``Z = Z0 exp(LOG_SCALE_UNIT z_z)`` and the wrist's normalised image position
    ``(X, Y) / Z = (X0, Y0) / Z0 + SHIFT_UNIT (S / 2) / (fx, fy) z_xy`` (the same pixels per
    unit as the weak-perspective shift). ``z = 0`` gives ``init`` exactly.

    Args:
      init: ``HandParams`` of one example.
      z: a ``HandParams``-shaped step.
      image_size: crop side S, pixels.
      K: None (weak perspective) or [3, 3] intrinsics.
    """
    rot = init.global_rot + ROT_UNIT * z.global_rot
    pose = init.pose + POSE_UNIT * z.pose
    betas = init.betas + BETA_UNIT * z.betas
    if K is None:
        s0 = init.cam[0]
        s = s0 * jnp.exp(LOG_SCALE_UNIT * z.cam[0])
        shift = s0 * init.cam[1:] + SHIFT_UNIT * z.cam[1:]
        cam = jnp.concatenate([s[None], shift / s])
    else:
        depth0 = init.cam[2]
        depth = depth0 * jnp.exp(LOG_SCALE_UNIT * z.cam[2])
        per_unit = SHIFT_UNIT * 0.5 * image_size / jnp.diagonal(K)[:2]
        xy = (init.cam[:2] / depth0 + per_unit * z.cam[:2]) * depth
        cam = jnp.concatenate([xy, depth[None]])
    return HandParams(rot, pose, betas, cam)
