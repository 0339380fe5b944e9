"""Flax modules of the hand mesh estimator: ResNet backbone, fE2D heads, fE3D regressor, DHPE."""

from hand_jax.models.dhpe import DHPE, h_dim, make_model, split_h
from hand_jax.models.heads import EvidenceHeads, soft_argmax
from hand_jax.models.regressor import IterativeRegressor
from hand_jax.models.resnet import ResNet

__all__ = [
    "DHPE",
    "EvidenceHeads",
    "IterativeRegressor",
    "ResNet",
    "h_dim",
    "make_model",
    "soft_argmax",
    "split_h",
]
