"""Train state, losses and the jitted train step of the hand mesh estimator.

``TrainState`` is pure data; the Flax module, the Optax optimiser, the static loss settings and the
network's runtime settings (``hand_jax.network.settings``) are passed beside it. Batches are dicts
of global arrays sharded on the ``data`` mesh axis with the sample schema's fields
(``hand_jax.data.schema``) cropped to the input size: ``image`` [B, H, W, 3] uint8 or float in [0,
1], ``mask`` [B, H, W] uint8 or float (visible hand), ``mask_full`` [B, H, W] (the amodal hand where
the source has it, else the visible mask), ``mask_amodal`` bool [B] (whether ``mask_full`` is
amodal), ``mask_valid`` bool [B], ``keypoints_2d`` [B, K, 2] crop pixels, ``keypoints_3d`` [B, K, 3]
metres (crop camera frame), ``view_rotation`` [B, 3, 3] (crop camera frame -> the virtual camera
looking through the crop centre, ``hand_jax.data.crop.view_rotation``), ``keypoint_valid`` bool [B,
K]. The state is replicated over the mesh.

Frames: the network sees the hand along the crop's line of sight, so the 3D targets are rotated
into the view frame (``view_rotation @ X``) before the 3D loss, under either camera; predictions
are rotated back for reporting (``hand_jax.network.batches.run_predictions``). A perspective
network (``RuntimeSettings.camera``) projects with the crops' intrinsics ``K`` [B, 3, 3].

Silhouette target: the rendered silhouette is amodal (occluders are not rendered). Where the
source has the amodal mask the loss is the MSE against it; where only the visible mask exists an
occluder may hide part of the hand, so only visible hand pixels the render misses are penalised
(``losses.visible_silhouette_loss``), never rendered pixels outside the visible mask.

Stratified training: stage "e2d" trains fE2D (backbone + heads) alone on heatmap and mask
losses; stage "e3d" trains fE3D on frozen fE2D evidence; stage "joint" trains everything on all
losses. Each stage is its own compiled step; the silhouette loss is switched on inside the step
by a latched gate (``losses.silhouette_gate``) so that turning it on needs no recompilation.
"""

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from hand_jax import camera
from hand_jax.models import dhpe
from hand_jax.network.forward import project, silhouette
from hand_jax.network.settings import Constants, RuntimeSettings
from hand_jax.train import losses

STAGES = ("e2d", "e3d", "joint")
_TRAINABLE = {"e2d": ("backbone", "heads"), "e3d": ("regressor",), "joint": None}


class TrainState(NamedTuple):
    """Everything that changes during training (checkpointed as is).

    Attributes:
      step: [] int32 optimiser steps taken.
      params: model parameters.
      batch_stats: batch-norm running statistics.
      opt_state: optimiser state.
      silhouette_on: [] bool, latched silhouette-loss gate.
      skeleton_ema: [] float32 running mean of the 3D keypoint loss, metres (negative until
        the first step that computes it).
    """

    step: Any
    params: Any
    batch_stats: Any
    opt_state: Any
    silhouette_on: Any
    skeleton_ema: Any


@dataclasses.dataclass(frozen=True)
class LossSettings:
    """Static loss weights and training options (``launch/configs/default.py``, ``loss``).

    What the network needs at run time as well (the h layout, the silhouette's size and blur)
    is ``hand_jax.network.settings.RuntimeSettings``, passed beside these.
    """

    heatmap: float
    e2d_keypoints: float
    mask: float
    kp3d: float
    kp2d: float
    refine2d: float
    silhouette: float
    pose_prior: float
    shape_prior: float
    rot_reg: float
    heatmap_sigma: float
    silhouette_gate: str
    silhouette_threshold: float
    silhouette_start_step: int
    skeleton_ema: float
    silhouette_last_only: bool
    color_jitter: float

    @classmethod
    def from_config(cls, config):
        """Collect the settings from a full training config."""
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in config.loss.items() if k in fields}
        return cls(**kwargs, color_jitter=config.train.color_jitter)


def create_train_state(key, *, model, optimizer, image_size: int, h_init) -> TrainState:
    """Initialise the state (trace with ``jax.eval_shape`` first, then jit with shardings)."""
    images = jnp.zeros((1, image_size, image_size, 3), jnp.float32)
    variables = model.init(key, images, h_init, train=False)
    params = variables["params"]
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=variables["batch_stats"],
        opt_state=optimizer.init(params),
        silhouette_on=jnp.zeros((), bool),
        skeleton_ema=-jnp.ones((), jnp.float32),
    )


def _e2d_losses(outputs, batch, *, settings: LossSettings):
    """Heatmap MSE, soft-argmax keypoint distance and mask BCE per example ([B] each)."""
    hm = outputs["heatmaps"]
    stride = batch["image"].shape[1] // hm.shape[1]
    targets = jax.vmap(
        lambda kp: losses.gaussian_heatmaps(
            kp, size=hm.shape[1:3], stride=stride, sigma=settings.heatmap_sigma
        )
    )(batch["keypoints_2d"])
    heatmap = jax.vmap(losses.heatmap_loss)(hm, targets, batch["keypoint_valid"])
    size = batch["image"].shape[1:3]
    # Integral regression: the soft-argmax keypoints themselves, so that the keypoints fE3D
    # reads are trained directly (heatmap MSE alone leaves them pulled to the crop centre).
    keypoints = jax.vmap(functools.partial(losses.keypoint2d_loss, image_size=size))(
        outputs["keypoints2d"], batch["keypoints_2d"], batch["keypoint_valid"]
    )
    small_mask = jax.vmap(lambda m: losses.area_downsample(m, stride))(batch["mask_full"])
    mask = jax.vmap(losses.mask_loss)(outputs["mask_logits"], small_mask)
    return {"heatmap": heatmap, "e2d_keypoints": keypoints, "mask": mask * batch["mask_valid"]}


def _e3d_losses(consts, outputs, batch, silhouette_on, *, settings, runtime: RuntimeSettings):
    """fE3D losses per iteration and example ([T, B] each) through fProj."""
    size = batch["image"].shape[1]
    h = outputs["h"]  # [T, B, D]
    K = _intrinsics(batch, runtime)
    # One flat vmap over T * B (nested vmaps of the skinning hit an XLA CPU verifier bug).
    flat_K = None if K is None else jnp.broadcast_to(K, (h.shape[0], *K.shape)).reshape(-1, 3, 3)
    flat = jax.vmap(lambda x, k: project(consts, x, runtime=runtime, image_size=size, K=k))(
        h.reshape(-1, h.shape[-1]), flat_K
    )
    verts, kp3d, kp2d = (x.reshape(*h.shape[:2], *x.shape[1:]) for x in flat)
    rot, pose, betas, cam_h = dhpe.split_h(
        h, rot_repr=runtime.rot_repr, num_betas=runtime.num_betas
    )
    target3d = jnp.einsum("bij,bkj->bki", batch["view_rotation"], batch["keypoints_3d"])
    per_t = jax.vmap(jax.vmap(losses.keypoint3d_loss), in_axes=(0, None, None))
    kp2d_loss = jax.vmap(
        jax.vmap(functools.partial(losses.keypoint2d_loss, image_size=(size, size))),
        in_axes=(0, None, None),
    )
    refined_px = camera.ndc_to_pixels(outputs["refined2d"], image_size=size)
    valid = batch["keypoint_valid"]
    terms = {
        "kp3d": per_t(kp3d, target3d, valid),
        "kp2d": kp2d_loss(kp2d, batch["keypoints_2d"], valid),
        "refine2d": kp2d_loss(refined_px, batch["keypoints_2d"], valid),
        "pose_prior": jax.vmap(jax.vmap(losses.pose_prior, in_axes=(0, None)), in_axes=(0, None))(
            pose, consts.mean_pose
        ),
        "shape_prior": jax.vmap(jax.vmap(losses.shape_prior))(betas),
        "rot_reg": jax.vmap(jax.vmap(losses.rotation_regulariser))(rot),
    }
    terms["silhouette"] = jax.lax.cond(
        silhouette_on,
        lambda: _silhouette_losses(
            consts, verts, cam_h, K, batch=batch, settings=settings, runtime=runtime
        ),
        lambda: jnp.zeros((1 if settings.silhouette_last_only else h.shape[0], h.shape[1])),
    )
    return terms


def _intrinsics(batch, runtime: RuntimeSettings):
    """The crops' intrinsics [B, 3, 3] for a perspective network; None for weak perspective."""
    return None if runtime.camera == "weak" else batch["K"].astype(jnp.float32)


def _silhouette_losses(consts, verts, cam_h, K, *, batch, settings, runtime: RuntimeSettings):
    """Silhouette loss per iteration and example ([T, B], or [1, B] if only the last is rendered).

    Against the amodal mask where the example has one, else one-sided against the visible mask
    (see the module docstring). Examples whose mask is unlabelled get 0. ``cam_h`` [T, B, 3] is
    h's camera part, ``K`` [B, 3, 3] the crops' intrinsics (None: weak perspective).
    """
    size = batch["mask"].shape[1]
    factor = size // runtime.silhouette_size
    target = jax.vmap(lambda m: losses.area_downsample(m, factor))(batch["mask_full"])

    def render_one(v, c, k):
        return silhouette(consts, v, c, runtime=runtime, image_size=size, K=k)

    if settings.silhouette_last_only:
        alpha = jax.vmap(render_one)(verts[-1], cam_h[-1], K)[None]
    else:
        alpha = jax.vmap(jax.vmap(render_one), in_axes=(0, 0, None))(verts, cam_h, K)
    both = jax.vmap(jax.vmap(losses.silhouette_loss), in_axes=(0, None))(alpha, target)
    one_sided = jax.vmap(jax.vmap(losses.visible_silhouette_loss), in_axes=(0, None))(alpha, target)
    loss = jnp.where(batch["mask_amodal"] > 0, both, one_sided)
    return loss * batch["mask_valid"]


def compute_losses(
    consts, outputs, batch, silhouette_on, *, settings: LossSettings, runtime: RuntimeSettings,
    stage: str,
):  # fmt: skip
    """Weighted total loss and the mean of every term.

    Args:
      consts: step constants.
      outputs: the network outputs (``dhpe.DHPE``).
      batch: the batch with ``image``, ``mask`` float in [0, 1] (see the module docstring).
      silhouette_on: [] bool gate of the silhouette loss.
      settings: loss settings.
      runtime: the h layout and silhouette settings.
      stage: "e2d", "e3d" or "joint".

    Returns:
      (total [] float32, terms: dict name -> [] mean over batch (and iterations)).
    """
    terms = {}
    if stage != "e3d":
        terms.update(_e2d_losses(outputs, batch, settings=settings))
    if stage != "e2d":
        terms.update(
            _e3d_losses(consts, outputs, batch, silhouette_on, settings=settings, runtime=runtime)
        )
    means = {k: jnp.mean(v) for k, v in terms.items()}
    total = sum(getattr(settings, k) * v for k, v in means.items())
    if "kp3d" in terms:
        # The gate's running loss averages examples with a labelled root only.
        rooted = batch["keypoint_valid"][:, 0]
        means["kp3d_last"] = jnp.sum(terms["kp3d"][-1] * rooted) / jnp.maximum(jnp.sum(rooted), 1)
    return total, means


def _prepare(batch, key, *, color_jitter: float):
    """Convert images and masks (uint8 or float) to float in [0, 1]; jitter brightness, contrast."""
    images = batch["image"].astype(jnp.float32)
    if batch["image"].dtype == jnp.uint8:
        images = images / 255.0
    if color_jitter > 0:
        k1, k2 = jax.random.split(key)
        b = images.shape[0]
        gain = 1.0 + color_jitter * jax.random.uniform(k1, (b, 1, 1, 1), minval=-1, maxval=1)
        bias = color_jitter * jax.random.uniform(k2, (b, 1, 1, 1), minval=-1, maxval=1)
        mean = jnp.mean(images, axis=(1, 2, 3), keepdims=True)
        images = jnp.clip((images - mean) * gain + mean + bias, 0.0, 1.0)
    out = dict(batch, image=images, mask=batch["mask"].astype(jnp.float32))
    out["mask_full"] = batch["mask_full"].astype(jnp.float32)
    out["mask_amodal"] = batch["mask_amodal"].astype(jnp.float32)
    out["mask_valid"] = batch["mask_valid"].astype(jnp.float32)
    out["keypoint_valid"] = batch["keypoint_valid"].astype(jnp.float32)
    return out


def _mask_frozen(tree, stage: str):
    keep = _TRAINABLE[stage]
    if keep is None:
        return tree
    return {k: v if k in keep else jax.tree.map(jnp.zeros_like, v) for k, v in tree.items()}


def train_step(
    state: TrainState, batch, key, consts: Constants, *, model, optimizer, settings, runtime,
    stage: str,
):  # fmt: skip
    """One optimiser step (jit with ``donate_argnums=0`` and the stage etc. bound).

    Args:
      state: the current state (donated).
      batch: a global batch (see the module docstring).
      key: the run's base PRNG key; the step's key is ``fold_in(key, state.step)``.
      consts: step constants.
      model: the ``dhpe.DHPE`` module.
      optimizer: the Optax optimiser.
      settings: loss settings.
      runtime: the h layout and silhouette settings (``RuntimeSettings``).
      stage: "e2d", "e3d" or "joint".

    Returns:
      (new state, metrics: dict name -> [] float32).
    """
    if stage not in STAGES:
        raise ValueError(f"stage={stage!r}: expected one of {STAGES}")
    step_key = jax.random.fold_in(key, state.step)
    batch = _prepare(batch, step_key, color_jitter=settings.color_jitter)
    gate = losses.silhouette_gate(
        state.silhouette_on,
        state.skeleton_ema,
        state.step,
        mode=settings.silhouette_gate,
        threshold=settings.silhouette_threshold,
        start_step=settings.silhouette_start_step,
    )
    gate = jnp.logical_and(gate, stage != "e2d")

    def loss_fn(params):
        outputs, new_vars = model.apply(
            {"params": params, "batch_stats": state.batch_stats},
            batch["image"],
            consts.h_init,
            train=True,
            freeze_e2d=stage == "e3d",
            run_e3d=stage != "e2d",
            mutable=["batch_stats"],
        )
        total, terms = compute_losses(
            consts, outputs, batch, gate, settings=settings, runtime=runtime, stage=stage
        )
        return total, (terms, new_vars["batch_stats"])

    (total, (terms, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    grads = _mask_frozen(grads, stage)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, _mask_frozen(updates, stage))
    ema = state.skeleton_ema
    if "kp3d_last" in terms:
        updated = losses.running_skeleton_loss(ema, terms["kp3d_last"], decay=settings.skeleton_ema)
        ema = jnp.where(jnp.any(batch["keypoint_valid"][:, 0] > 0), updated, ema)
    new_state = TrainState(
        step=state.step + 1,
        params=params,
        batch_stats=batch_stats,
        opt_state=opt_state,
        silhouette_on=gate,
        skeleton_ema=ema.astype(jnp.float32),
    )
    metrics = {"loss": total, **terms, "grad_norm": optax.tree.norm(grads)}
    metrics["silhouette_on"] = gate.astype(jnp.float32)
    return new_state, metrics


def make_train_step(
    *, model, optimizer, settings: LossSettings, runtime: RuntimeSettings, stage: str
):
    """Jit ``train_step`` for one stage with the state donated and replicated."""
    step = functools.partial(
        train_step,
        model=model,
        optimizer=optimizer,
        settings=settings,
        runtime=runtime,
        stage=stage,
    )
    return jax.jit(step, donate_argnums=0)
