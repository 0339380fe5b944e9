"""What a trained network needs at run time: its module, runtime settings and step constants.

A training config (``launch/configs/default.py``, as a run writes it into ``config.json``)
decides the network: ``model.*`` builds the Flax module (``hand_jax.models.dhpe``);
``RuntimeSettings`` holds the few values that shape its outputs at test time (the layout of the
flat hand parameters h: rotation representation and number of betas; the silhouette's size and
blur); ``Constants`` holds the arrays every forward pass needs beside the parameters (the hand
model, the mean-hand h the regressor starts from, the mean articulation). Loss weights are not
here: they belong to training (``hand_jax.train.step.LossSettings``).

Units: metres, radians, pixels (the silhouette side); h is laid out as ``dhpe.split_h`` says.
"""

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from hand_jax import mano, params
from hand_jax.models import dhpe

CAMERAS = ("weak", "perspective")


@dataclasses.dataclass(frozen=True)
class RuntimeSettings:
    """Static settings of a network's test-time outputs (hashable: bound with ``partial``).

    Attributes:
      rot_repr: global rotation representation of h (``"quat"`` or ``"6d"``).
      num_betas: S, shape coefficients in h (resolved against the hand model).
      silhouette_size: M, side of the rendered silhouette, pixels.
      silhouette_sigma: the soft rasterizer's blur at M, pixels^2.
      camera: ``"weak"`` (weak perspective) or ``"perspective"`` (the crop's intrinsics K;
        ``hand_jax.network.forward``). A config without ``model.camera`` is weak perspective.
    """

    rot_repr: str
    num_betas: int
    silhouette_size: int
    silhouette_sigma: float
    camera: str = "weak"

    def __post_init__(self):
        if self.camera not in CAMERAS:
            raise ValueError(f"camera={self.camera!r}: expected one of {CAMERAS}")

    @classmethod
    def from_config(cls, config, *, num_betas: int) -> "RuntimeSettings":
        """Collect the settings from a training config.

        Args:
          config: the training config (``model.rot_repr``, ``model.camera``,
            ``loss.silhouette_size``, ``loss.silhouette_sigma``).
          num_betas: S, resolved against the hand model (``Constants``' h length).
        """
        return cls(
            rot_repr=config.model.rot_repr,
            num_betas=int(num_betas),
            silhouette_size=int(config.loss.silhouette_size),
            silhouette_sigma=float(config.loss.silhouette_sigma),
            camera=config.model.get("camera", "weak"),
        )


class Constants(NamedTuple):
    """Arrays a forward pass needs beside the parameters (replicated, never trained).

    Attributes:
      hand_model: the MANO ``HandModel`` pytree.
      h_init: [D] mean-hand h.
      mean_pose: [45] mean articulation, radians.
    """

    hand_model: Any
    h_init: Any
    mean_pose: Any


def make_constants(config, *, mano_path=None) -> Constants:
    """Load the hand model and build the mean-hand h.

    Args:
      config: the training config (``model.tips``, ``model.num_betas``, ``model.rot_repr``,
        ``model.init_fill``).
      mano_path: MANO ``.pkl``/``.npz``; None = the embedded default hand.

    Raises:
      ValueError: ``model.num_betas`` exceeds the hand model's shape components.
    """
    tips = config.model.tips or None
    hand_model = mano.load_model(mano_path, side="right", tips=tips)
    num_betas = config.model.num_betas or hand_model.num_betas
    if num_betas > hand_model.num_betas:
        raise ValueError(
            f"config: model.num_betas={num_betas} exceeds the hand model's "
            f"{hand_model.num_betas} shape components"
        )
    rotation = "quaternion" if config.model.rot_repr == "quat" else "6d"
    mean = jax.jit(params.default_params, static_argnames=("rotation", "fill"))(
        hand_model, rotation=rotation, fill=config.model.init_fill
    )  # jit: one compile instead of a hundred eager ones
    mean = mean._replace(betas=mean.betas[:num_betas])
    h_init = dhpe.from_hand_params(mean).astype(jnp.float32)
    return Constants(hand_model, h_init, jnp.asarray(hand_model.hands_mean, jnp.float32))


def num_betas_of(consts: Constants, *, rot_repr: str) -> int:
    """S, the betas in h: the length of ``consts.h_init`` less the rotation, pose and camera."""
    return int(consts.h_init.shape[0]) - dhpe.h_dim(rot_repr=rot_repr, num_betas=0)


def make_module(config) -> dhpe.DHPE:
    """The Flax module of a config's ``model`` section."""
    m = config.model
    return dhpe.make_model(
        depth=m.depth, width=m.width, head_width=m.head_width, threshold=m.threshold,
        num_iterations=m.num_iterations, hidden=m.hidden, conv_width=m.conv_width, dtype=m.dtype,
        rot_repr=m.rot_repr,
    )  # fmt: skip


def abstract_variables(module, *, image_size: int, h_dim: int) -> dict:
    """``{"params": ..., "batch_stats": ...}`` of ``ShapeDtypeStruct`` that ``module`` builds.

    Args:
      module: the ``dhpe.DHPE`` module.
      image_size: input crop side, pixels.
      h_dim: D, the length of the flat h.
    """
    images = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32)
    h_init = jax.ShapeDtypeStruct((h_dim,), jnp.float32)
    key = jax.ShapeDtypeStruct((), jax.random.key(0).dtype)
    variables = jax.eval_shape(
        lambda k, x, h: module.init(k, x, h, train=False), key, images, h_init
    )
    return {"params": variables["params"], "batch_stats": variables["batch_stats"]}
