"""Test-time refinement of hand parameters against 2D evidence (the paper's Sec. 3), optionally
with 3D keypoints known up to translation and scale (a detector's world landmarks).

Modules: ``energy`` (the evidence, the energy terms), ``optimize`` (the preconditioned Optax
loop inside ``jax.lax.scan`` and the jit-compiled batch function), ``io`` (the evidence file
format), ``job`` (refining a file of evidence and writing meshes and pictures), ``viz``
(pictures). The public names of ``energy`` and ``optimize`` are re-exported here.
"""

from hand_jax.refine.energy import (
    DEFAULT_WEIGHTS,
    Evidence,
    HandParams,
    default_params,
    energy_terms,
    evidence_is_usable,
    forward,
    render_evidence,
    silhouette_and_keypoints,
)
from hand_jax.refine.optimize import RefineOutput, make_refine_fn, refine_batch

__all__ = [
    "DEFAULT_WEIGHTS",
    "Evidence",
    "HandParams",
    "RefineOutput",
    "default_params",
    "energy_terms",
    "evidence_is_usable",
    "forward",
    "make_refine_fn",
    "refine_batch",
    "render_evidence",
    "silhouette_and_keypoints",
]
