"""Shared helpers of the training tests: a tiny config and a tiny rendered hand dataset.

The dataset is made in the test (no files): random hands from the embedded default hand model,
posed and projected with ``params.hand_forward`` (weak perspective, so the labels are exactly what
the network's projector can produce), masks = pixels near a projected vertex (the dense mesh
covers the hand), images a flat skin colour over a noisy background. Samples follow
``hand_jax.data.schema``.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from hand_jax import mano, params
from launch.configs import synthetic


def tiny_config(**overrides):
    """The cpu_small preset shrunk for tests: ResNet-10, 32 px crops, batch 8, few steps."""
    c = synthetic.get_config("cpu_small")
    c.model.depth = 10
    c.model.width = 4
    c.model.head_width = 8
    c.model.hidden = 16
    c.model.conv_width = 8
    c.model.num_iterations = 2
    c.data.image_size = 32
    c.loss.silhouette_size = 16
    c.loss.silhouette_gate = "always"
    c.loss.silhouette_last_only = False
    c.train.global_batch_size = 8
    c.train.num_steps = 4
    c.train.e2d_steps = 1
    c.train.e3d_steps = 1
    c.train.log_every = 2
    c.train.eval_every = 1000
    c.train.eval_examples = 8
    c.train.png_examples = 2
    c.train.color_jitter = 0.0
    c.optim.warmup_steps = 0
    c.checkpoint.every = 2
    for key, value in overrides.items():
        section, name = key.split(".")
        c[section][name] = value
    return c


@functools.cache
def _hand_model():
    return mano.load_model()


@functools.partial(jax.jit, static_argnames=("image_size",))
def _pose(key, model, *, image_size):
    k1, k2, k3 = jax.random.split(key, 3)
    base = params.default_params(model, fill=0.6)
    axis = jnp.array([jnp.pi / 2, 0.0, 0.0]) + 0.4 * jax.random.normal(k1, (3,))  # palm to camera
    angle = jnp.linalg.norm(axis)
    quat = jnp.concatenate([jnp.cos(angle / 2)[None], jnp.sin(angle / 2) * axis / angle])
    p = base._replace(global_rot=quat, pose=base.pose + 0.2 * jax.random.normal(k2, (45,)))
    verts, _ = params.hand_forward_3d(model, p)
    centre = 0.5 * (jnp.min(verts[:, :2], axis=0) + jnp.max(verts[:, :2], axis=0))
    shift = 0.01 * jax.random.normal(k3, (2,))
    p = p._replace(cam=jnp.concatenate([base.cam[:1], shift - centre]))
    verts, kp3d, kp2d = params.hand_forward(model, p, image_size=image_size)
    return params.project_verts(verts, p.cam, image_size=image_size)[:, :2], kp2d, kp3d


def _splat(points, size):
    """Mask of the pixels whose centre lies within 0.75 px of a projected vertex."""
    centres = np.arange(size) + 0.5
    du = np.abs(points[:, 0, None] - centres[None])  # [V, W]
    dv = np.abs(points[:, 1, None] - centres[None])  # [V, H]
    near = (dv[:, :, None] ** 2 + du[:, None, :] ** 2) < 0.75**2  # [V, H, W]
    return near.any(axis=0)


def toy_samples(n: int, *, image_size: int = 32, seed: int = 0) -> list:
    """Return ``n`` schema samples of random hands rendered at ``image_size`` pixels."""
    model = _hand_model()
    keys = jax.random.split(jax.random.key(seed), n)
    verts_px, kp2d, kp3d = jax.device_get(
        jax.vmap(lambda k: _pose(k, model, image_size=image_size))(keys)
    )
    rng = np.random.default_rng(seed)
    skin = np.array([0.9, 0.7, 0.6])
    out = []
    for i in range(n):
        mask = _splat(np.asarray(verts_px[i]), image_size)
        background = 0.3 + 0.2 * rng.random((image_size, image_size, 3))
        image = np.where(mask[..., None], skin, background)
        out.append(
            {
                "id": f"toy/{seed}/{i}",
                "image": (image * 255).astype(np.uint8),
                "mask": mask.astype(np.uint8),
                "mask_valid": np.bool_(True),
                "keypoints_2d": np.asarray(kp2d[i], np.float32),
                "keypoints_3d": np.asarray(kp3d[i], np.float32),
                "keypoint_valid": np.ones(21, bool),
            }
        )
    return out
