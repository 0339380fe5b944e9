"""The training losses of a perspective network use each crop's intrinsics and the view frame.

Labels are made from a known h with an independent float64 numpy pinhole and the numpy view
rotation (``hand_jax.data.crop``); the losses of that h must then vanish under the perspective
camera and not under weak perspective (a wide lens, off-centre crops).
"""

import jax.numpy as jnp
import numpy as np

from hand_jax import params
from hand_jax.data import crop
from hand_jax.models import dhpe
from hand_jax.network.settings import RuntimeSettings, make_constants
from hand_jax.train.step import LossSettings, compute_losses
from tests.train_helpers import tiny_config

S, B = 32, 3


def _batch_of(consts, hs, Ks):
    """Labels of hand parameters hs [B, D] seen through crops with intrinsics Ks [B, 3, 3]."""
    kp2d, kp3d, views = [], [], []
    for h, K in zip(hs, Ks, strict=True):
        p = dhpe.to_hand_params(jnp.asarray(h), rot_repr="quat", num_betas=len(h) - 52)
        _, kp_view = params.hand_forward_3d(consts.hand_model, p)
        R = crop.view_rotation(K, image_size=S)
        ray = np.linalg.solve(K, np.append((h[-2:] + 1) * S / 2, 1.0))
        wrist = ray * (K[0, 0] + K[1, 1]) / (np.exp(h[-3]) * S) / (R[2] @ ray)
        cam_points = np.asarray(kp_view, np.float64) @ R + wrist
        uvw = cam_points @ K.T
        kp2d.append(uvw[:, :2] / uvw[:, 2:])
        kp3d.append(cam_points)
        views.append(R)
    zeros = np.zeros((B, S, S), np.float32)
    return {
        "image": np.zeros((B, S, S, 3), np.float32), "mask": zeros, "mask_full": zeros,
        "mask_amodal": np.ones(B, np.float32), "mask_valid": np.zeros(B, np.float32),
        "keypoints_2d": np.asarray(kp2d, np.float32), "keypoints_3d": np.asarray(kp3d, np.float32),
        "keypoint_valid": np.ones((B, 21), np.float32), "K": np.asarray(Ks, np.float32),
        "view_rotation": np.asarray(views, np.float32),
    }  # fmt: skip


def test_perspective_losses_vanish_at_the_true_h_and_weak_ones_do_not():
    config = tiny_config()
    consts = make_constants(config)
    num_betas = int(consts.h_init.shape[0]) - 52
    rng = np.random.default_rng(0)
    hs = np.repeat(np.asarray(consts.h_init, np.float64)[None], B, axis=0)
    hs[:, 4:49] += 0.2 * rng.standard_normal((B, 45))
    hs[:, -3] = np.log(1.2)  # the hand spans ~0.2 m * 1.2 ndc/m of the crop
    hs[:, -2:] = rng.uniform(-0.3, 0.3, (B, 2))
    centres = [(16, 16), (40, -5), (-9, 30)]
    Ks = np.stack([[[25.0, 0, c], [0, 26.0, d], [0, 0, 1]] for c, d in centres])
    batch = _batch_of(consts, hs, Ks)
    outputs = {"h": jnp.asarray(hs, jnp.float32)[None],
               "refined2d": jnp.asarray(batch["keypoints_2d"])[None] / S * 2 - 1}  # fmt: skip
    settings = LossSettings.from_config(config)
    terms = {}
    for name in ("perspective", "weak"):
        runtime = RuntimeSettings("quat", num_betas, 16, 1.0, camera=name)
        _, terms[name] = compute_losses(
            consts, outputs, batch, jnp.asarray(False), settings=settings, runtime=runtime,
            stage="e3d",
        )  # fmt: skip
    assert float(terms["perspective"]["kp2d"]) < 1e-4
    assert float(terms["perspective"]["kp3d"]) < 1e-5
    assert float(terms["weak"]["kp2d"]) > 1e-2
