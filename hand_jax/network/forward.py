"""The network's inference forward pass, and fProj: MANO, projection and silhouette of an h.

Frames: a weak-perspective prediction sees the hand along the crop's line of sight, so h, the
vertices and the 3D keypoints are in the view frame (the virtual camera looking through the
crop centre, ``hand_jax.data.crop.view_rotation``), root-relative, metres; 2D keypoints are
crop pixels (u, v), pixel centres at integer + 0.5. ``run_predictions``
(``hand_jax.network.batches``) rotates 3D outputs back into the crop camera's frame.

``predict`` takes the network's variables as ``{"params": ..., "batch_stats": ...}``; jit it
with the module and settings bound (``functools.partial``).

Cameras (``RuntimeSettings.camera``): h's camera part is ``(log s, t_u, t_v)`` either way
(``hand_jax.models.dhpe``): the wrist sits at ndc ``t`` and ``s`` is the crop's scale, ndc per
metre. ``"weak"`` projects the view-frame hand orthographically with that scale.
``"perspective"`` needs the crop's intrinsics K: the wrist lies on the ray through its pixel
``(t + 1) S / 2`` at depth ``Z = 2 f / (s S)`` along the view axis (f the mean focal length),
the view-frame hand is rotated into the camera frame and projected with K
(``perspective_camera``). The same h means the same picture under both for a small hand at the
crop centre; only perspective sees foreshortening and the crop's place in the image.
"""

import functools

import jax
import jax.numpy as jnp

from hand_jax import camera, render
from hand_jax import params as hand_params
from hand_jax.geometry import rotations
from hand_jax.models import dhpe
from hand_jax.network.settings import Constants, RuntimeSettings


def perspective_camera(cam_h, K, *, image_size: int):
    """h's camera ``(log s, t_u, t_v)`` under the crop's intrinsics (see the module docstring).

    Args:
      cam_h: [3] h's camera part.
      K: [3, 3] the crop's intrinsics.
      image_size: the crop side S, pixels.

    Returns:
      (view [3, 3] crop camera frame -> view frame, ``camera.view_rotation``; wrist [3] the
      wrist's position in the camera frame, metres).
    """
    view = camera.view_rotation(K, image_size=image_size)
    pixel = (cam_h[1:] + 1.0) * (0.5 * image_size)
    ray = jnp.linalg.solve(K, jnp.concatenate([pixel, jnp.ones_like(pixel[:1])]))
    depth = (K[0, 0] + K[1, 1]) / (jnp.exp(cam_h[0]) * image_size)
    return view, ray * (depth / jnp.dot(view[2], ray))


def perspective_camera_h(wrist, K, *, image_size: int):
    """Inverse of ``perspective_camera``: the wrist's camera-frame position [3] -> cam_h [3]."""
    view = camera.view_rotation(K, image_size=image_size)
    pixel = camera.project_perspective(wrist[None], K)[0]
    log_s = jnp.log((K[0, 0] + K[1, 1]) / (jnp.dot(view[2], wrist) * image_size))
    return jnp.concatenate([log_s[None], pixel * (2.0 / image_size) - 1.0])


def _quaternion_product(a, b):
    """Hamilton product ``a b`` of quaternions (w, x, y, z): the rotation of ``a`` after ``b``."""
    w = a[0] * b[0] - jnp.dot(a[1:], b[1:])
    return jnp.concatenate([w[None], a[0] * b[1:] + b[0] * a[1:] + jnp.cross(a[1:], b[1:])])


def rotate_global(global_rot, matrix):
    """Left-multiply a [4] quaternion or [6] 6D global rotation by a rotation ``matrix`` [3, 3].

    The representation and its scale are kept (6D: both columns rotated; quaternion: the
    product with ``matrix``'s unit quaternion), so rotating back gives the input again.
    """
    if global_rot.shape[-1] == 6:
        return jnp.concatenate([matrix @ global_rot[:3], matrix @ global_rot[3:]])
    return _quaternion_product(rotations.matrix_to_quaternion(matrix), global_rot)


def camera_params(h, K, *, runtime: RuntimeSettings, image_size: int):
    """A perspective h (view frame) as camera-frame ``HandParams`` for ``K``.

    The global rotation is taken into the crop camera's frame and ``cam`` is the wrist's
    translation, metres: the parameters of ``hand_jax.params.hand_forward_perspective`` and of
    perspective refinement (``hand_jax.refine`` with ``Evidence.K``). Inverse: ``camera_h``.
    """
    p = dhpe.to_hand_params(h, rot_repr=runtime.rot_repr, num_betas=runtime.num_betas)
    view, wrist = perspective_camera(h[-3:], K, image_size=image_size)
    return p._replace(global_rot=rotate_global(p.global_rot, view.T), cam=wrist)


def camera_h(p: hand_params.HandParams, K, *, image_size: int):
    """Inverse of ``camera_params``: camera-frame ``HandParams`` -> a perspective h [D]."""
    view = camera.view_rotation(K, image_size=image_size)
    cam_h = perspective_camera_h(p.cam, K, image_size=image_size)
    return jnp.concatenate([rotate_global(p.global_rot, view), p.pose, p.betas, cam_h])


def _check_camera(runtime: RuntimeSettings, K):
    if runtime.camera == "perspective" and K is None:
        raise ValueError("a perspective network needs the crops' intrinsics K; got K=None")


def project(consts: Constants, h, *, runtime: RuntimeSettings, image_size: int, K=None):
    """fProj for one example: MANO forward and projection of a flat h into the crop.

    Args:
      consts: the step constants (hand model).
      h: [D] flat hand parameters.
      runtime: the h layout and the camera model.
      image_size: input crop side, pixels.
      K: [3, 3] the crop's intrinsics (perspective; ignored by weak perspective).

    Returns:
      verts [V, 3] and kp3d [K, 3] metres (root-relative, view frame), kp2d [K, 2] crop pixels.
    """
    _check_camera(runtime, K)
    p = dhpe.to_hand_params(h, rot_repr=runtime.rot_repr, num_betas=runtime.num_betas)
    if runtime.camera == "weak":
        return hand_params.hand_forward(consts.hand_model, p, image_size=image_size)
    verts, kp3d = hand_params.hand_forward_3d(consts.hand_model, p)
    view, wrist = perspective_camera(h[-3:], K, image_size=image_size)
    return verts, kp3d, camera.project_perspective(kp3d @ view + wrist, K)


def silhouette(
    consts: Constants, verts, cam_h, *, runtime: RuntimeSettings, image_size: int, K=None
):  # fmt: skip
    """Render the soft silhouette [M, M] of posed vertices [V, 3] (root-relative, view frame).

    ``cam_h`` [3] is h's camera part ``(log s, t_u, t_v)``; ``image_size`` the crop side S and
    ``K`` the crop's intrinsics (perspective only): the silhouette covers the crop at M pixels.
    """
    _check_camera(runtime, K)
    size = runtime.silhouette_size
    if runtime.camera == "weak":
        cam = dhpe.weak_perspective_cam(cam_h)
        verts_px = camera.project_weak_perspective(verts, cam, image_size=size)
    else:
        view, wrist = perspective_camera(cam_h, K, image_size=image_size)
        K_m = jnp.diag(jnp.asarray([size / image_size, size / image_size, 1.0])) @ K
        verts_px = camera.project_perspective(verts @ view + wrist, K_m, with_depth=True)
    return render.soft_silhouette(
        verts_px, consts.hand_model.faces, image_size=(size, size), sigma=runtime.silhouette_sigma
    )


def hard_argmax(heatmaps, stride: int):
    """The centre of each heatmap's highest pixel: [h, w, K] -> [K, 2] (u, v) input pixels."""
    h, w, k = heatmaps.shape
    flat = jnp.argmax(heatmaps.reshape(h * w, k), axis=0)
    return (jnp.stack([flat % w, flat // w], axis=-1) + 0.5) * stride


def predict(variables, images, consts: Constants, *, module, runtime: RuntimeSettings, K=None):
    """Run the network and fProj in inference mode.

    Args:
      variables: ``{"params": ..., "batch_stats": ...}`` of the module.
      images: [B, H, W, 3] crops, uint8 or float in [0, 1].
      consts: step constants.
      module: the ``dhpe.DHPE`` module.
      runtime: the h layout, camera model and silhouette settings.
      K: [B, 3, 3] the crops' intrinsics (a perspective network needs them; weak perspective
        ignores them).

    Returns:
      dict: ``keypoints2d`` [B, K, 2] (fE2D, pixels), ``keypoints2d_hard`` [B, K, 2] (the
      heatmaps' hard argmax, pixels), ``confidence`` [B, K], ``mask`` [B, h, w]
      probability, ``h`` [B, D] (last iteration), ``verts`` [B, V, 3] and ``kp3d`` [B, K, 3]
      metres, ``kp2d`` [B, K, 2] reprojected pixels, ``silhouette`` [B, M, M].
    """
    size = images.shape[1]
    outputs = module.apply(
        {"params": variables["params"], "batch_stats": variables["batch_stats"]},
        images.astype(jnp.float32) / (255.0 if images.dtype == jnp.uint8 else 1.0),
        consts.h_init,
        train=False,
    )
    h = outputs["h"][-1]
    _check_camera(runtime, K)
    K = None if runtime.camera == "weak" else jnp.asarray(K, h.dtype)
    verts, kp3d, kp2d = jax.vmap(
        lambda x, k: project(consts, x, runtime=runtime, image_size=size, K=k)
    )(h, K)
    alpha = jax.vmap(functools.partial(silhouette, consts, runtime=runtime, image_size=size))(
        verts, h[:, -3:], K=K
    )
    return {
        "keypoints2d": outputs["keypoints2d"],
        "keypoints2d_hard": jax.vmap(
            functools.partial(hard_argmax, stride=size // outputs["heatmaps"].shape[1])
        )(outputs["heatmaps"]),
        "confidence": outputs["confidence"],
        "mask": jax.nn.sigmoid(outputs["mask_logits"]),
        "h": h,
        "verts": verts,
        "kp3d": kp3d,
        "kp2d": kp2d,
        "silhouette": alpha,
    }
