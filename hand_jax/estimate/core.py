"""From crops to refined hands: the network and test-time refinement as one compiled program.

``make_estimate_fn`` returns ``estimate(images) -> Estimate`` over a batch of square crops. One
jit-compiled program runs the network (fE2D and fE3D, inference mode), turns its outputs into
refinement evidence and refines h against that evidence (``hand_jax.refine``: a preconditioned
Optax loop in ``jax.lax.scan`` per example), exactly the paper's test time:

- keypoints: fE2D's soft-argmax keypoints (crop pixels), weighted in the 2D term by their
  confidences, the heatmap peaks in [0, 1] (``hand_jax.models.heads.soft_argmax``); keypoints
  whose confidence is below ``confidence_floor`` get weight 0 (an unsure keypoint pulls little,
  a rejected one not at all);
- silhouette: fE2D's foreground probability F(x) (a quarter of the crop's resolution), resized
  bilinearly to the silhouette resolution the model was trained with
  (``config.loss.silhouette_size``), compared with the soft silhouette of the posed mesh.

Frames: h, the vertices and the 3D keypoints are in the network's view frame (the camera looking
through the crop centre; root-relative, metres; ``hand_jax.network.forward``). For a photograph's
centred crop that is the camera frame up to a small rotation; dataset evaluation rotates them
back with the crop's ``view_rotation``.

Cameras: a weak-perspective network is refined under weak perspective. A perspective network
(``RuntimeSettings.camera``) needs the crops' intrinsics K: the refinement then runs in the crop
camera's frame with K (``forward.camera_params``) and its result is turned back into h.
"""

import dataclasses
import functools
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from hand_jax import network as net_lib
from hand_jax import refine, sharding
from hand_jax.geometry import decimation
from hand_jax.models import dhpe
from hand_jax.network import forward
from hand_jax.network.trained import Network

# Chosen on the synthetic validation split (benchmarks/refine_choice.py; BUILD.md): a strong
# proximity to the network's estimate is the only setting that did not raise the 3D error.
DEFAULT_STEPS = 30
DEFAULT_LEARNING_RATE = 0.05
DEFAULT_WEIGHTS = {"keypoints": 1.0, "silhouette": 1.0, "proximity": 1e-1}
# The refinement's silhouette: at the evidence mask's own resolution, from a decimated proxy of
# the hand (chosen on the validation split for speed at unchanged accuracy:
# benchmarks/refine_speed.py, BUILD.md "Refinement throughput").
DEFAULT_SILHOUETTE_FACES = 826
MAX_STEPS = 10_000  # refinement steps per example


def check_steps(refine_steps) -> None:
    """Refuse a refinement step count that is not an int in 0..``MAX_STEPS``."""
    ok = isinstance(refine_steps, int | np.integer) and not isinstance(refine_steps, bool)
    if not ok or not 0 <= refine_steps <= MAX_STEPS:
        raise ValueError(f"refine_steps: expected an int in 0..{MAX_STEPS}, got {refine_steps!r}")


class Estimate(NamedTuple):
    """The estimate for a batch [B] of crops (``*_network``: fE3D's output before refinement).

    Attributes:
      h_network, h: [B, D] flat hand parameters (``hand_jax.models.dhpe``), view frame.
      verts_network, verts: [B, V, 3] metres, root-relative, view frame.
      keypoints_3d_network, keypoints_3d: [B, 21, 3] metres, root-relative, view frame.
      keypoints_2d_network, keypoints_2d: [B, 21, 2] crop pixels (the mesh's reprojection).
      evidence: ``refine.Evidence`` [B]: fE2D keypoints (crop pixels), their confidences and
        weights' basis, the foreground probability at the silhouette resolution [B, M, M].
      keypoints_2d_hard: [B, 21, 2] the heatmaps' hard argmax, crop pixels.
      silhouette_network, silhouette: [B, M, M] soft silhouettes of the two meshes.
      energy: [B, T] energy before each refinement step (T = ``refine_steps``).
      energy_before, energy_after: [B] energy of the network's and the refined estimate.
      usable: [B] bool, whether the example had any usable evidence to refine against.
      trajectory: [B, T, D] h after each step (``return_trajectory``), else None.
    """

    h_network: chex.Array
    h: chex.Array
    verts_network: chex.Array
    verts: chex.Array
    keypoints_3d_network: chex.Array
    keypoints_3d: chex.Array
    keypoints_2d_network: chex.Array
    keypoints_2d: chex.Array
    evidence: refine.Evidence
    keypoints_2d_hard: chex.Array
    silhouette_network: chex.Array
    silhouette: chex.Array
    energy: chex.Array
    energy_before: chex.Array
    energy_after: chex.Array
    usable: chex.Array
    trajectory: Any = None


def load_network(path: str | None = None, *, mano_path=None) -> Network:
    """Restore a training run or exported model (None: the shipped model) as a ``Network``."""
    return net_lib.restore(path, mano_path=mano_path)


def network_evidence(outputs: dict, *, mask_size: int, confidence_floor: float = 0.0):
    """Refinement evidence [B] from the network's outputs (``hand_jax.network.forward.predict``).

    Args:
      outputs: ``keypoints2d`` [B, 21, 2] crop pixels, ``confidence`` [B, 21] in [0, 1],
        ``mask`` [B, h, w] foreground probability.
      mask_size: the silhouette resolution M.
      confidence_floor: keypoints with a lower confidence get weight 0.

    Returns:
      ``refine.Evidence`` with ``mask`` [B, M, M] in [0, 1] and the weak-perspective camera.
    """
    conf = jnp.clip(outputs["confidence"], 0.0, 1.0)
    conf = jnp.where(conf >= confidence_floor, conf, 0.0)
    mask = outputs["mask"]
    shape = (mask.shape[0], mask_size, mask_size)
    mask = jnp.clip(jax.image.resize(mask, shape, method="bilinear", antialias=True), 0.0, 1.0)
    return refine.Evidence(outputs["keypoints2d"], conf, mask, None)


def _check_evidence(evidence, batch: int, mask_size: int) -> refine.Evidence:
    """Given evidence as float32 arrays of the shapes the compiled program expects (3D keypoints
    and their confidences optional)."""
    want = {"keypoints_2d": (batch, 21, 2), "confidence": (batch, 21),
            "mask": (batch, mask_size, mask_size)}  # fmt: skip
    if evidence.K is not None:
        raise ValueError("evidence: pass the crops' intrinsics as estimate(..., K=K), not in it")
    optional = {"keypoints_3d": (batch, 21, 3), "confidence_3d": (batch, 21)}
    want.update({k: v for k, v in optional.items() if getattr(evidence, k, None) is not None})
    for key, shape in want.items():
        value = getattr(evidence, key)
        if tuple(value.shape) != shape:
            raise ValueError(f"evidence.{key}: expected shape {shape}, got {tuple(value.shape)}")
    return refine.Evidence(**{k: jnp.asarray(getattr(evidence, k), jnp.float32) for k in want})


def _check_intrinsics(K, runtime, batch: int):
    """The crops' intrinsics as float32 [B, 3, 3] for a perspective network; None for weak."""
    if runtime.camera == "weak":
        return None
    if K is None:
        raise ValueError("K: this network is perspective; pass the crops' intrinsics [B, 3, 3]")
    K = jnp.asarray(K, jnp.float32)
    if K.shape != (batch, 3, 3):
        raise ValueError(f"K: expected the crops' intrinsics, shape {(batch, 3, 3)}; got {K.shape}")
    return K


class SilhouetteSetup(NamedTuple):
    """How refinement renders the silhouette it compares with the evidence mask.

    Attributes:
      size: M, the silhouette (and evidence mask) side in pixels.
      sigma: the soft rasterizer's blur at M, pixels^2 (the network's blur, rescaled to M).
      faces: [F', 3] the faces rendered (a decimated proxy of the hand's), or None for all.
    """

    size: int
    sigma: float
    faces: Any = None


def evidence_mask_size(network: Network) -> int:
    """The side of the network's foreground map F(x), pixels (traced shapes only)."""
    s = network.image_size
    images = jax.ShapeDtypeStruct((1, s, s, 3), jnp.float32)
    out = jax.eval_shape(
        lambda v, x, h: network.module.apply(v, x, h, train=False),
        network.variables, images, network.consts.h_init,
    )  # fmt: skip
    return int(out["mask_logits"].shape[1])


@functools.lru_cache(maxsize=8)
def _proxy_faces(verts: bytes, faces: bytes, num_verts: int, target: int) -> np.ndarray:
    return decimation.collapse_faces(
        np.frombuffer(verts, np.float64).reshape(num_verts, 3),
        np.frombuffer(faces, np.int64).reshape(-1, 3), target_faces=target,
    )  # fmt: skip


def silhouette_setup(network: Network, *, size: int | None = None, faces: int | None = None):
    """The refinement's silhouette for a network: its resolution and (proxy) faces.

    Args:
      network: the restored network.
      size: M in pixels (None: the evidence mask's own, ``evidence_mask_size``). The blur is
        scaled so that it covers the same part of the crop as in training:
        ``sigma * (M / M_train)^2``.
      faces: decimate the hand's faces to at most this many for the silhouette
        (``hand_jax.geometry.decimation``, on the rest pose; 0 or None: every face).

    Returns:
      ``SilhouetteSetup``.
    """
    runtime = network.runtime
    size = evidence_mask_size(network) if size is None else int(size)
    if size < 4:
        raise ValueError(f"silhouette_size: expected >= 4 pixels, got {size}")
    sigma = runtime.silhouette_sigma * (size / runtime.silhouette_size) ** 2
    proxy = None
    if faces:
        model = network.consts.hand_model
        verts = np.asarray(model.v_template, np.float64)
        proxy = _proxy_faces(verts.tobytes(), np.asarray(model.faces, np.int64).tobytes(),
                             len(verts), int(faces))  # fmt: skip
    return SilhouetteSetup(size, float(sigma), proxy)


def _refine_h(h, K, evidence, model, *, runtime, size: int, sil: SilhouetteSetup, refine_kw):
    """Refine the network's h [B, D] against the evidence; returns (result, h [B, D], iterates)."""
    if runtime.camera == "weak":
        init = dhpe.to_hand_params(h, rot_repr=runtime.rot_repr, num_betas=runtime.num_betas)
        res, iterates = refine.refine_batch(
            model, init, evidence, image_size=size, sigma=sil.sigma, **refine_kw
        )
        return res, dhpe.from_hand_params(res.best_params), dhpe.from_hand_params(iterates)
    to_camera = functools.partial(forward.camera_params, runtime=runtime, image_size=size)
    to_h = jax.vmap(functools.partial(forward.camera_h, image_size=size))
    init = jax.vmap(to_camera)(h, K)
    res, iterates = refine.refine_batch(
        model, init, evidence._replace(K=K), image_size=size, sigma=sil.sigma, **refine_kw
    )
    return res, to_h(res.best_params, K), jax.vmap(to_h, in_axes=(1, None), out_axes=1)(iterates, K)


def _estimate(
    variables, consts, images, evidence, K, *, net: Network, refine_kw: dict, confidence_floor,
    trace, sil: SilhouetteSetup,
):  # fmt: skip
    """The compiled program: network, evidence (the network's unless given), refinement."""
    runtime = net.runtime
    size = images.shape[1]
    out = forward.predict(variables, images, consts, module=net.module, runtime=runtime, K=K)
    if evidence is None:
        evidence = network_evidence(out, mask_size=sil.size, confidence_floor=confidence_floor)
    model = consts.hand_model
    if sil.faces is not None:  # the proxy only for the refinement's silhouette
        model = dataclasses.replace(model, faces=jnp.asarray(sil.faces))
    res, h, trajectory = _refine_h(
        out["h"], K, evidence, model, runtime=runtime, size=size, sil=sil, refine_kw=refine_kw
    )
    verts, kp3d, kp2d = jax.vmap(
        lambda x, k: forward.project(consts, x, runtime=runtime, image_size=size, K=k)
    )(h, K)
    silhouette = jax.vmap(
        lambda v, x, k: forward.silhouette(consts, v, x, runtime=runtime, image_size=size, K=k)
    )(verts, h[:, -3:], K)
    return Estimate(
        h_network=out["h"], h=h, verts_network=out["verts"], verts=verts,
        keypoints_3d_network=out["kp3d"], keypoints_3d=kp3d,
        keypoints_2d_network=out["kp2d"], keypoints_2d=kp2d, evidence=evidence,
        keypoints_2d_hard=out["keypoints2d_hard"], silhouette_network=out["silhouette"],
        silhouette=silhouette, energy=res.losses,
        energy_before=res.init_loss, energy_after=res.best_loss,
        usable=jax.vmap(refine.evidence_is_usable)(evidence),
        trajectory=trajectory if trace else None,
    )  # fmt: skip


def make_estimate_fn(
    network: Network | str | None = None,
    *,
    refine_steps: int = DEFAULT_STEPS,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    weights: dict | None = None,
    confidence_floor: float = 0.0,
    silhouette_loss: str = "l2",
    mesh: jax.sharding.Mesh | None = None,
    return_trajectory: bool = False,
    mano_path=None,
    silhouette_fn=None,
    silhouette_size: int | None = None,
    silhouette_faces: int | None = DEFAULT_SILHOUETTE_FACES,
):
    """Build the jit-compiled batch estimation function.

    Args:
      network: a ``Network``, or a run / exported-model path for ``load_network`` (None: the
        shipped model).
      refine_steps: T, refinement steps per example (static); 0 gives the network alone.
      learning_rate: Adam's step in the refinement's normalised units (``hand_jax.refine``).
      weights: energy weights (``refine.DEFAULT_WEIGHTS`` keys); missing keys take
        ``DEFAULT_WEIGHTS`` here, then the refinement's defaults.
      confidence_floor: keypoints below this confidence do not pull the fit.
      silhouette_loss: ``"l2"`` or ``"bce"``.
      mesh: optional device mesh with a ``data`` axis: the batch is sharded over it, the
        network's state replicated.
      return_trajectory: keep h after every step (for animations).
      mano_path: the hand model the network was trained with (when ``network`` is a path).
      silhouette_fn: the refinement's rasterizer (default ``render.soft_silhouette``; the
        benchmark swaps in a stub to measure the rasterizer's share of the time).
      silhouette_size: M, the refinement's silhouette and evidence-mask side in pixels (None:
        the resolution of the network's foreground map); see ``silhouette_setup``.
      silhouette_faces: render the refinement's silhouette from a decimated proxy of at most
        this many faces (0 or None: every face); see ``silhouette_setup``.

    Returns:
      ``estimate(images, evidence=None) -> Estimate`` for images [B, S, S, 3] (uint8, or float
      in [0, 1]) at the network's input size S; compiles once per batch size. ``K`` [B, 3, 3]
      are the crops' intrinsics, required by a perspective network (ignored by weak
      perspective). ``evidence``
      (``refine.Evidence`` [B], weak perspective: keypoints in crop pixels, weights, masks at
      the silhouette resolution M, ``estimate.silhouette.size``) replaces the network's own,
      e.g. labels to fit against (``hand_jax.augment.fit``). ``estimate.network`` is the
      ``Network``.
    """
    if not isinstance(network, Network):
        network = load_network(network, mano_path=mano_path)
    check_steps(refine_steps)
    refine_kw = dict(
        num_steps=int(refine_steps), optimizer=optax.adam(learning_rate),
        silhouette_loss=silhouette_loss, weights=dict(DEFAULT_WEIGHTS, **(weights or {})),
        silhouette_fn=silhouette_fn,
    )  # fmt: skip
    refine.optimize.make_energy_fn(image_size=network.image_size, weights=refine_kw["weights"])
    sil = silhouette_setup(network, size=silhouette_size, faces=silhouette_faces)
    body = functools.partial(
        _estimate, net=network, refine_kw=refine_kw, confidence_floor=float(confidence_floor),
        trace=return_trajectory, sil=sil,
    )  # fmt: skip
    if mesh is None:
        compiled = jax.jit(body)
    else:
        rep, data = sharding.replicated(mesh), sharding.batch_sharding(mesh)
        compiled = jax.jit(body, in_shardings=(rep, rep, data, data, data), out_shardings=data)

    def estimate(images, evidence: refine.Evidence | None = None, K=None) -> Estimate:
        images = jnp.asarray(images)
        size = network.image_size
        if images.ndim != 4 or images.shape[1:] != (size, size, 3):
            raise ValueError(
                f"images: expected [B, {size}, {size}, 3] crops (the network's input size), "
                f"got shape {images.shape}"
            )
        if evidence is not None:
            evidence = _check_evidence(evidence, len(images), sil.size)
        return compiled(network.variables, network.consts, images, evidence,
                        _check_intrinsics(K, network.runtime, len(images)))  # fmt: skip

    estimate.network = network
    estimate.silhouette = sil
    estimate.compiled = compiled
    return estimate
