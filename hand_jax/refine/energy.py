"""Iterative test-time refinement of hand parameters against 2D evidence (the paper's Sec. 3).

Given an initial estimate h0 (``HandParams``) and evidence (2D keypoints with confidences and a
foreground probability map, both in crop pixels), gradient descent on h alone minimises

    E(h) = w_kp * sum_k c_k |kp2d_k(h) - j2D_k|^2 / S^2             (keypoint reprojection)
         + mu * mean_p d(A_p(h), F_p)                                (silhouette, L2 or BCE)
         + w_shape * |betas|^2 + w_pose * |pose - hands_mean|^2      (priors)
         + w_prox * |h - h0|^2                                       (proximity to the estimate)

where S is the crop side in pixels (so weights do not depend on the crop size), A(h) the soft
silhouette of the posed mesh and F the foreground evidence. Each example runs its own Optax loop
inside ``jax.lax.scan``; the public function is ``jax.jit(jax.vmap(...))`` over a leading batch
axis, so samples never share optimiser state.

Non-finite evidence (NaN/inf keypoints, confidences or mask pixels) is masked: such keypoints get
zero confidence and such pixels zero weight. A non-finite gradient step is skipped, and the
best-energy iterate is returned beside the last one, so a diverging run still yields its best.
"""

import functools
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from hand_jax import mano, render
from hand_jax.params import HandParams, default_params, hand_forward, screen_hand

__all__ = [
    "Evidence",
    "HandParams",
    "RefineOutput",
    "default_params",
    "energy_terms",
    "forward",
    "make_refine_fn",
    "render_evidence",
    "silhouette_and_keypoints",
]

forward = hand_forward


class Evidence(NamedTuple):
    """2D evidence for one example (leading [B] when batched).

    Attributes:
      keypoints_2d: [21, 2] crop pixels (u, v), canonical order.
      confidence: [21] per-keypoint confidence in [0, 1] (heatmap peak values).
      mask: [H, W] foreground probability in [0, 1].
      K: None for the weak-perspective camera, or the crop's [3, 3] intrinsics for the
        perspective variant (then ``HandParams.cam`` is the wrist translation in metres).
    """

    keypoints_2d: chex.Array
    confidence: chex.Array
    mask: chex.Array
    K: chex.Array | None = None


class RefineOutput(NamedTuple):
    """Result of refining one example (leading [B] when batched).

    Attributes:
      params: the last iterate.
      best_params: the iterate with the lowest energy.
      losses: [T] energy of the iterate before each step.
      best_loss: [] the lowest energy seen.
    """

    params: HandParams
    best_params: HandParams
    losses: chex.Array
    best_loss: chex.Array


def silhouette_and_keypoints(
    model: mano.HandModel, params: HandParams, *, image_size: int, sigma, K=None,
    silhouette_fn=None,
):  # fmt: skip
    """Pose, project and rasterize one hand.

    Args:
      model: the hand model.
      params: ``HandParams`` of one example.
      image_size: crop side in pixels (static).
      sigma: silhouette blur, pixels^2.
      K: None (weak perspective) or [3, 3] intrinsics (perspective variant).
      silhouette_fn: the rasterizer, ``render.soft_silhouette`` by default (same signature).

    Returns:
      verts [V, 3] metres (see ``params.screen_hand``), alpha [S, S], kp2d [21, 2] pixels.
    """
    verts, verts_px, kp2d = screen_hand(model, params, image_size=image_size, K=K)
    alpha = (silhouette_fn or render.soft_silhouette)(
        verts_px, model.faces, image_size=(image_size, image_size), sigma=sigma
    )
    return verts, alpha, kp2d


def render_evidence(
    model: mano.HandModel, params: HandParams, *, image_size: int, sigma=0.5, K=None
):
    """Return exact evidence for known parameters: projected keypoints and soft silhouette.

    Args:
      model: the hand model.
      params: ``HandParams`` of one example.
      image_size: crop side in pixels (static).
      sigma: silhouette blur, pixels^2.
      K: None (weak perspective) or [3, 3] intrinsics (perspective variant).

    Returns:
      ``Evidence`` with confidence 1 for every keypoint.
    """
    _, alpha, kp2d = silhouette_and_keypoints(
        model, params, image_size=image_size, sigma=sigma, K=K
    )
    return Evidence(kp2d, jnp.ones(kp2d.shape[:1], kp2d.dtype), alpha, K)


def _sanitize(evidence: Evidence):
    """Mask non-finite evidence; return (keypoints, confidence, mask, pixel weights)."""
    kp_ok = jnp.all(jnp.isfinite(evidence.keypoints_2d), axis=-1) & jnp.isfinite(
        evidence.confidence
    )
    conf = jnp.where(kp_ok, jnp.clip(evidence.confidence, 0.0, 1.0), 0.0)
    kp = jnp.where(kp_ok[:, None], evidence.keypoints_2d, 0.0)
    px_ok = jnp.isfinite(evidence.mask)
    mask = jnp.where(px_ok, jnp.clip(evidence.mask, 0.0, 1.0), 0.0)
    return kp, conf, mask, px_ok.astype(mask.dtype)


def _silhouette_discrepancy(alpha, mask, weight, kind: str):
    if kind == "l2":
        per_pixel = (alpha - mask) ** 2
    elif kind == "bce":
        eps = 1e-6
        a = jnp.clip(alpha, eps, 1.0 - eps)
        per_pixel = -(mask * jnp.log(a) + (1.0 - mask) * jnp.log1p(-a))
    else:
        raise ValueError(f"silhouette_loss: expected 'l2' or 'bce', got {kind!r}")
    return jnp.sum(weight * per_pixel) / jnp.maximum(jnp.sum(weight), 1.0)


def _sq_dist(a: HandParams, b: HandParams):
    return sum(jnp.sum((x - y) ** 2) for x, y in zip(a, b, strict=True))


def energy_terms(
    model: mano.HandModel,
    params: HandParams,
    evidence: Evidence,
    init_params: HandParams,
    *,
    image_size: int,
    sigma: float = 1.0,
    silhouette_loss: str = "l2",
    silhouette_fn=None,
):
    """Return the unweighted energy terms for one example as a dict of scalars.

    Args:
      model: the hand model.
      params: current ``HandParams``.
      evidence: ``Evidence`` (non-finite entries are masked).
      init_params: the initial estimate, for the proximity term.
      image_size: crop side in pixels (static).
      sigma: silhouette blur, pixels^2.
      silhouette_loss: ``"l2"`` or ``"bce"``.
      silhouette_fn: the rasterizer, ``render.soft_silhouette`` by default (same signature).

    Returns:
      dict with ``keypoints``, ``silhouette``, ``shape``, ``pose``, ``proximity``.
    """
    kp, conf, mask, weight = _sanitize(evidence)
    _, alpha, kp2d = silhouette_and_keypoints(
        model, params, image_size=image_size, sigma=sigma, K=evidence.K,
        silhouette_fn=silhouette_fn,
    )  # fmt: skip
    kp_err = jnp.sum((kp2d - kp) ** 2, axis=-1) / float(image_size) ** 2
    pose_mean = model.hands_mean if params.pose.shape[-1] == 45 else 0.0
    return {
        "keypoints": jnp.sum(conf * kp_err),
        "silhouette": _silhouette_discrepancy(alpha, mask, weight, silhouette_loss),
        "shape": jnp.sum(params.betas**2),
        "pose": jnp.sum((params.pose - pose_mean) ** 2),
        "proximity": _sq_dist(params, init_params),
    }


DEFAULT_WEIGHTS = {
    "keypoints": 1.0,
    "silhouette": 1.0,
    "shape": 1e-3,
    "pose": 1e-3,
    "proximity": 1e-3,
}


def _where_tree(cond, new, old):
    return jax.tree.map(lambda n, o: jnp.where(cond, n, o), new, old)


def _all_finite(tree):
    return functools.reduce(
        jnp.logical_and, [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)], True
    )


def _refine_one(
    model, init_params, evidence, *, num_steps, optimizer, energy_fn, return_trajectory
):
    """Run ``num_steps`` optimiser steps on one example inside ``lax.scan``."""
    value_and_grad = jax.value_and_grad(lambda p: energy_fn(model, p, evidence, init_params))
    inf = jnp.asarray(jnp.inf, init_params.cam.dtype)

    def step(carry, _):
        params, opt_state, best_params, best_loss = carry
        loss, grads = value_and_grad(params)
        ok = jnp.isfinite(loss) & _all_finite(grads)
        better = ok & (loss < best_loss)
        best_params = _where_tree(better, params, best_params)
        best_loss = jnp.where(better, loss, best_loss)
        updates, new_state = optimizer.update(grads, opt_state, params)
        # A non-finite step is skipped rather than poisoning the iterate.
        params = _where_tree(ok, optax.apply_updates(params, updates), params)
        opt_state = _where_tree(ok, new_state, opt_state)
        trace = (loss, params if return_trajectory else None)
        return (params, opt_state, best_params, best_loss), trace

    carry = (init_params, optimizer.init(init_params), init_params, inf)
    (params, _, best_params, best_loss), (losses, trajectory) = jax.lax.scan(
        step, carry, None, length=num_steps
    )
    final_loss = energy_fn(model, params, evidence, init_params)
    better = jnp.isfinite(final_loss) & (final_loss < best_loss)
    best_params = _where_tree(better, params, best_params)
    best_loss = jnp.where(better, final_loss, best_loss)
    out = RefineOutput(params, best_params, losses, best_loss)
    return out, trajectory


def _check_inputs(init_params: HandParams, evidence: Evidence, image_size: int):
    """Validate batched shapes and reject non-finite initial parameters, naming the field."""
    batch = evidence.keypoints_2d.shape[0] if evidence.keypoints_2d.ndim == 3 else None
    if batch is None:
        raise ValueError(
            "evidence.keypoints_2d: expected a batch [B, 21, 2], got shape "
            f"{evidence.keypoints_2d.shape} (refine_fn is batched: add a leading axis)"
        )
    chex.assert_shape(evidence.keypoints_2d, (batch, 21, 2))
    chex.assert_shape(evidence.confidence, (batch, 21))
    chex.assert_shape(evidence.mask, (batch, image_size, image_size))
    if evidence.K is not None:
        chex.assert_shape(evidence.K, (batch, 3, 3))
    for name, value in init_params._asdict().items():
        chex.assert_rank(value, 2)
        if value.shape[0] != batch:
            raise ValueError(
                f"init_params.{name}: batch {value.shape[0]} != evidence batch {batch}"
            )
    bad = {
        name: np.nonzero(~np.all(np.isfinite(np.asarray(value)), axis=-1))[0].tolist()
        for name, value in init_params._asdict().items()
    }
    bad = {name: rows for name, rows in bad.items() if rows}
    if bad:
        raise ValueError(f"init_params: non-finite values at batch rows {bad}")


def make_refine_fn(
    model: mano.HandModel,
    *,
    num_steps: int,
    image_size: int,
    optimizer: optax.GradientTransformation | None = None,
    sigma: float = 1.0,
    silhouette_loss: str = "l2",
    weights: dict | None = None,
    mesh: jax.sharding.Mesh | None = None,
    return_trajectory: bool = False,
    silhouette_fn=None,
):
    """Build the jit-compiled batch refinement function.

    Args:
      model: the hand model (passed to the compiled function as an argument, not baked in).
      num_steps: T, optimiser steps per example (static).
      image_size: crop side S in pixels of the evidence (static).
      optimizer: any Optax optimizer; default ``optax.adam(1e-2)``.
      sigma: silhouette blur, pixels^2.
      silhouette_loss: ``"l2"`` or ``"bce"``.
      weights: energy weights; keys of ``DEFAULT_WEIGHTS`` (``silhouette`` is the paper's mu),
        missing keys take the defaults, unknown keys are an error.
      mesh: optional device mesh with a ``data`` axis: the batch is sharded over it.
      return_trajectory: also return the [B, T] iterates (for animations).
      silhouette_fn: the rasterizer (default ``render.soft_silhouette``; benchmarks swap in the
        dense formulation).

    Returns:
      ``refine_fn(init_params, evidence) -> RefineOutput`` (or ``(RefineOutput, trajectory)``)
      over a leading batch axis [B]; compiles once per (B, image_size, num_steps).
    """
    weights = dict(DEFAULT_WEIGHTS, **(weights or {}))
    unknown = set(weights) - set(DEFAULT_WEIGHTS)
    if unknown:
        raise ValueError(
            f"weights: unknown keys {sorted(unknown)}; expected {list(DEFAULT_WEIGHTS)}"
        )
    optimizer = optimizer if optimizer is not None else optax.adam(1e-2)

    def energy_fn(model, params, evidence, init_params):
        terms = energy_terms(
            model, params, evidence, init_params,
            image_size=image_size, sigma=sigma, silhouette_loss=silhouette_loss,
            silhouette_fn=silhouette_fn,
        )  # fmt: skip
        return sum(weights[k] * terms[k] for k in DEFAULT_WEIGHTS)

    one = functools.partial(
        _refine_one,
        num_steps=num_steps,
        optimizer=optimizer,
        energy_fn=energy_fn,
        return_trajectory=return_trajectory,
    )
    batched = jax.vmap(one, in_axes=(None, 0, 0))
    if mesh is None:
        compiled = jax.jit(batched)
    else:
        rep = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
        data = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
        compiled = jax.jit(batched, in_shardings=(rep, data, data), out_shardings=data)

    def refine_fn(init_params: HandParams, evidence: Evidence):
        init_params = HandParams(*(jnp.asarray(x) for x in init_params))
        evidence = Evidence(*(None if x is None else jnp.asarray(x) for x in evidence))
        _check_inputs(init_params, evidence, image_size)
        out, trajectory = compiled(model, init_params, evidence)
        return (out, trajectory) if return_trajectory else out

    refine_fn.compiled = compiled
    return refine_fn
