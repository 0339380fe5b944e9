"""The network's inference forward pass, and fProj: MANO, projection and silhouette of an h.

Frames: a weak-perspective prediction sees the hand along the crop's line of sight, so h, the
vertices and the 3D keypoints are in the view frame (the virtual camera looking through the
crop centre, ``hand_jax.data.crop.view_rotation``), root-relative, metres; 2D keypoints are
crop pixels (u, v), pixel centres at integer + 0.5. ``run_predictions``
(``hand_jax.network.batches``) rotates 3D outputs back into the crop camera's frame.

``predict`` takes the network's variables as ``{"params": ..., "batch_stats": ...}``; jit it
with the module and settings bound (``functools.partial``).
"""

import functools

import jax
import jax.numpy as jnp

from hand_jax import camera, render
from hand_jax import params as hand_params
from hand_jax.models import dhpe
from hand_jax.network.settings import Constants, RuntimeSettings


def project(consts: Constants, h, *, runtime: RuntimeSettings, image_size: int):
    """fProj for one example: MANO forward and weak-perspective projection of a flat h.

    Args:
      consts: the step constants (hand model).
      h: [D] flat hand parameters.
      runtime: the h layout (rotation representation, number of betas).
      image_size: input crop side, pixels.

    Returns:
      verts [V, 3] metres, kp3d [K, 3] metres, kp2d [K, 2] crop pixels.
    """
    p = dhpe.to_hand_params(h, rot_repr=runtime.rot_repr, num_betas=runtime.num_betas)
    return hand_params.hand_forward(consts.hand_model, p, image_size=image_size)


def silhouette(consts: Constants, verts, cam, *, runtime: RuntimeSettings):
    """Render the soft silhouette [M, M] of posed vertices [V, 3].

    ``cam`` [3] is the weak-perspective ``HandParams.cam`` (s, tx, ty), not h's camera part.
    """
    size = runtime.silhouette_size
    verts_px = camera.project_weak_perspective(verts, cam, image_size=size)
    return render.soft_silhouette(
        verts_px, consts.hand_model.faces, image_size=(size, size), sigma=runtime.silhouette_sigma
    )


def hard_argmax(heatmaps, stride: int):
    """The centre of each heatmap's highest pixel: [h, w, K] -> [K, 2] (u, v) input pixels."""
    h, w, k = heatmaps.shape
    flat = jnp.argmax(heatmaps.reshape(h * w, k), axis=0)
    return (jnp.stack([flat % w, flat // w], axis=-1) + 0.5) * stride


def predict(variables, images, consts: Constants, *, module, runtime: RuntimeSettings):
    """Run the network and fProj in inference mode.

    Args:
      variables: ``{"params": ..., "batch_stats": ...}`` of the module.
      images: [B, H, W, 3] crops, uint8 or float in [0, 1].
      consts: step constants.
      module: the ``dhpe.DHPE`` module.
      runtime: the h layout and silhouette settings.

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
    verts, kp3d, kp2d = jax.vmap(lambda x: project(consts, x, runtime=runtime, image_size=size))(h)
    cam = dhpe.to_hand_params(h, rot_repr=runtime.rot_repr, num_betas=runtime.num_betas).cam
    alpha = jax.vmap(functools.partial(silhouette, consts, runtime=runtime))(verts, cam)
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
