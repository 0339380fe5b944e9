"""The refinement optimiser: a preconditioned Optax loop in ``jax.lax.scan``, batched and jitted.

Each example runs its own Optax loop inside ``jax.lax.scan`` over the energy of
``hand_jax.refine.energy``; ``refine_batch`` is the pure ``vmap`` of it (for use inside larger
compiled programs, such as estimation), ``make_refine_fn`` the validated, jit-compiled batch
function (optionally sharded over a device mesh), so samples never share optimiser state.

Conditioning: Adam takes steps of similar size in every coordinate, so the coordinates must have
comparable effects. With ``precondition`` (the default) the optimiser works on a step z from the
initial estimate in normalised units (``hand_jax.params.precondition``: one unit of rotation,
articulation, shape, log-scale or crop shift moves the keypoints a comparable number of pixels),
and the proximity term is ``|z|^2`` in those units. Without it, the raw parameters are optimised
(a unit of weak-perspective translation moves the hand by half the crop, a unit of scale by a
few pixels) and the proximity is ``|h - h0|^2``.

A non-finite gradient step is skipped, and the best-energy iterate is returned beside the last
one, so a diverging run still yields its best.

A silhouette weight of exactly 0 (a Python number, known when the energy is built) skips the
rasterizer altogether, which dominates the cost of a step: the masks are then never read (a
[B, 1, 1] dummy will do). Fitting 3D keypoints (``Evidence.keypoints_3d``) needs a positive
``keypoints_3d`` weight; its default is 0.
"""

import functools
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from hand_jax import mano, sharding
from hand_jax.params import HandParams, precondition, zeros_like
from hand_jax.refine.energy import DEFAULT_WEIGHTS, Evidence, energy_terms

DEFAULT_LEARNING_RATE = {True: 0.1, False: 1e-2}  # by ``precondition``


class RefineOutput(NamedTuple):
    """Result of refining one example (leading [B] when batched).

    Attributes:
      params: the last iterate.
      best_params: the iterate with the lowest energy.
      losses: [T] energy of the iterate before each step.
      best_loss: [] the lowest energy seen (that of ``best_params``).
      init_loss: [] the energy of the initial estimate.
    """

    params: HandParams
    best_params: HandParams
    losses: chex.Array
    best_loss: chex.Array
    init_loss: chex.Array


def _where_tree(cond, new, old):
    return jax.tree.map(lambda n, o: jnp.where(cond, n, o), new, old)


def _all_finite(tree):
    return functools.reduce(
        jnp.logical_and, [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)], True
    )


def _sq_norm(tree):
    return sum(jnp.sum(x**2) for x in jax.tree.leaves(tree))


def _is_zero(weight) -> bool:
    """Whether a weight is a plain number equal to 0 (an array, even a concrete one, is not)."""
    return isinstance(weight, (int, float, np.number)) and weight == 0


def make_energy_fn(
    *, image_size: int, sigma: float = 1.0, silhouette_loss: str = "l2", weights=None,
    preconditioned: bool = True, silhouette_fn=None,
):  # fmt: skip
    """Return ``energy(model, x, evidence, init) -> []`` and ``decode(x, init, K) -> params``.

    ``x`` is the optimiser's variable: the step z (``preconditioned``) or the parameters. A
    ``silhouette`` weight of exactly 0 (a Python or numpy number) leaves the rasterizer out.
    """
    weights = dict(DEFAULT_WEIGHTS, **(weights or {}))
    unknown = set(weights) - set(DEFAULT_WEIGHTS)
    if unknown:
        raise ValueError(
            f"weights: unknown keys {sorted(unknown)}; expected {list(DEFAULT_WEIGHTS)}"
        )
    with_silhouette = not _is_zero(weights["silhouette"])

    def decode(x, init, K):
        return precondition(init, x, image_size=image_size, K=K) if preconditioned else x

    def energy(model, x, evidence, init):
        params = decode(x, init, evidence.K)
        terms = energy_terms(
            model, params, evidence, init, image_size=image_size, sigma=sigma,
            silhouette_loss=silhouette_loss, silhouette_fn=silhouette_fn,
            with_silhouette=with_silhouette,
        )  # fmt: skip
        if preconditioned:
            terms["proximity"] = _sq_norm(x)
        return sum(weights[k] * terms[k] for k in DEFAULT_WEIGHTS)

    return energy, decode


def _refine_one(model, init, evidence, *, num_steps, optimizer, energy_fn, decode, start):
    """Run ``num_steps`` optimiser steps on one example; return (RefineOutput, iterates [T])."""
    value_and_grad = jax.value_and_grad(lambda x: energy_fn(model, x, evidence, init))
    x0 = start(init)
    init_loss = energy_fn(model, x0, evidence, init)
    inf = jnp.asarray(jnp.inf, init.cam.dtype)

    def step(carry, _):
        x, opt_state, best_x, best_loss = carry
        loss, grads = value_and_grad(x)
        ok = jnp.isfinite(loss) & _all_finite(grads)
        better = ok & (loss < best_loss)
        best_x = _where_tree(better, x, best_x)
        best_loss = jnp.where(better, loss, best_loss)
        updates, new_state = optimizer.update(grads, opt_state, x)
        # A non-finite step is skipped rather than poisoning the iterate.
        x = _where_tree(ok, optax.apply_updates(x, updates), x)
        opt_state = _where_tree(ok, new_state, opt_state)
        return (x, opt_state, best_x, best_loss), (loss, x)

    carry = (x0, optimizer.init(x0), x0, jnp.where(jnp.isfinite(init_loss), init_loss, inf))
    (x, _, best_x, best_loss), (losses, xs) = jax.lax.scan(step, carry, None, length=num_steps)
    final_loss = energy_fn(model, x, evidence, init)
    better = jnp.isfinite(final_loss) & (final_loss < best_loss)
    best_x = _where_tree(better, x, best_x)
    best_loss = jnp.where(better, final_loss, best_loss)
    to_params = jax.vmap(lambda xi: decode(xi, init, evidence.K))
    out = RefineOutput(
        decode(x, init, evidence.K), decode(best_x, init, evidence.K), losses, best_loss,
        init_loss,
    )  # fmt: skip
    return out, to_params(xs)


def refine_batch(
    model: mano.HandModel,
    init_params: HandParams,
    evidence: Evidence,
    *,
    num_steps: int,
    image_size: int,
    optimizer: optax.GradientTransformation | None = None,
    sigma: float = 1.0,
    silhouette_loss: str = "l2",
    weights: dict | None = None,
    precondition: bool = True,
    silhouette_fn=None,
):
    """Refine a batch [B] of examples (pure: call it inside ``jax.jit``; no input checks).

    Args: as ``make_refine_fn``, with ``init_params`` and ``evidence`` batched [B, ...].

    Returns:
      (``RefineOutput`` [B], iterates: ``HandParams`` [B, T] after each step).
    """
    if optimizer is None:
        optimizer = optax.adam(DEFAULT_LEARNING_RATE[precondition])
    energy_fn, decode = make_energy_fn(
        image_size=image_size, sigma=sigma, silhouette_loss=silhouette_loss, weights=weights,
        preconditioned=precondition, silhouette_fn=silhouette_fn,
    )  # fmt: skip
    one = functools.partial(
        _refine_one, num_steps=num_steps, optimizer=optimizer, energy_fn=energy_fn,
        decode=decode, start=zeros_like if precondition else (lambda p: p),
    )  # fmt: skip
    return jax.vmap(one, in_axes=(None, 0, 0))(model, init_params, evidence)


def _check_inputs(init_params: HandParams, evidence: Evidence):
    """Validate batched shapes and reject non-finite initial parameters, naming the field."""
    batch = evidence.keypoints_2d.shape[0] if evidence.keypoints_2d.ndim == 3 else None
    if batch is None:
        raise ValueError(
            "evidence.keypoints_2d: expected a batch [B, 21, 2], got shape "
            f"{evidence.keypoints_2d.shape} (refine_fn is batched: add a leading axis)"
        )
    chex.assert_shape(evidence.keypoints_2d, (batch, 21, 2))
    chex.assert_shape(evidence.confidence, (batch, 21))
    chex.assert_rank(evidence.mask, 3)
    if evidence.mask.shape[0] != batch or evidence.mask.shape[1] != evidence.mask.shape[2]:
        raise ValueError(f"evidence.mask: expected [{batch}, M, M], got {evidence.mask.shape}")
    if evidence.K is not None:
        chex.assert_shape(evidence.K, (batch, 3, 3))
    if evidence.keypoints_3d is not None:
        chex.assert_shape(evidence.keypoints_3d, (batch, 21, 3))
    if evidence.confidence_3d is not None:
        if evidence.keypoints_3d is None:
            raise ValueError("evidence.confidence_3d is given without evidence.keypoints_3d")
        chex.assert_shape(evidence.confidence_3d, (batch, 21))
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
    precondition: bool = True,
):
    """Build the jit-compiled batch refinement function.

    Args:
      model: the hand model (passed to the compiled function as an argument, not baked in).
      num_steps: T, optimiser steps per example (static).
      image_size: crop side S in pixels of the keypoint evidence (static).
      optimizer: any Optax optimizer; default Adam at ``DEFAULT_LEARNING_RATE[precondition]``.
      sigma: silhouette blur, pixels^2 at the evidence mask's resolution.
      silhouette_loss: ``"l2"`` or ``"bce"``.
      weights: energy weights; keys of ``DEFAULT_WEIGHTS`` (``silhouette`` is the paper's mu),
        missing keys take the defaults, unknown keys are an error. A ``silhouette`` weight of
        exactly 0 skips the rasterizer; ``keypoints_3d`` (default 0) weighs the 3D evidence.
      mesh: optional device mesh with a ``data`` axis: the batch is sharded over it.
      return_trajectory: also return the [B, T] iterates (for animations).
      silhouette_fn: the rasterizer (default ``render.soft_silhouette``; benchmarks swap in the
        dense formulation).
      precondition: optimise in normalised units (see the module docstring).

    Returns:
      ``refine_fn(init_params, evidence) -> RefineOutput`` (or ``(RefineOutput, trajectory)``)
      over a leading batch axis [B]; compiles once per (B, image_size, num_steps).
    """
    batched = functools.partial(
        refine_batch, num_steps=num_steps, image_size=image_size, optimizer=optimizer,
        sigma=sigma, silhouette_loss=silhouette_loss, weights=weights,
        precondition=precondition, silhouette_fn=silhouette_fn,
    )  # fmt: skip
    make_energy_fn(image_size=image_size, weights=weights)  # unknown weights fail here, early
    if not return_trajectory:
        run = batched
        batched = lambda *a: (run(*a)[0], None)  # noqa: E731
    if mesh is None:
        compiled = jax.jit(batched)
    else:
        rep, data = sharding.replicated(mesh), sharding.batch_sharding(mesh)
        compiled = jax.jit(batched, in_shardings=(rep, data, data), out_shardings=data)

    def refine_fn(init_params: HandParams, evidence: Evidence):
        init_params = HandParams(*(jnp.asarray(x) for x in init_params))
        evidence = Evidence(*(None if x is None else jnp.asarray(x) for x in evidence))
        _check_inputs(init_params, evidence)
        out, trajectory = compiled(model, init_params, evidence)
        return (out, trajectory) if return_trajectory else out

    refine_fn.compiled = compiled
    return refine_fn
