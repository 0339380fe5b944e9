"""Geometry: rotations, forward kinematics and skinning (pure jax.numpy, no model knowledge)."""

from hand_jax.geometry.kinematics import (
    blend_shapes,
    forward_kinematics,
    kinematic_levels,
    linear_blend_skinning,
    pose_features,
    regress_joints,
    skinning_transforms,
)
from hand_jax.geometry.rotations import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    matrix_to_rotation_6d,
    quaternion_to_axis_angle,
    quaternion_to_matrix,
    rotation_6d_to_matrix,
    skew,
)

__all__ = [
    "axis_angle_to_matrix",
    "blend_shapes",
    "forward_kinematics",
    "kinematic_levels",
    "linear_blend_skinning",
    "matrix_to_axis_angle",
    "matrix_to_quaternion",
    "matrix_to_rotation_6d",
    "pose_features",
    "quaternion_to_axis_angle",
    "quaternion_to_matrix",
    "regress_joints",
    "rotation_6d_to_matrix",
    "skew",
    "skinning_transforms",
]
