"""The MANO hand model as a pytree and a pure forward function.

Frames and units: the model frame of the file (MANO's own for the official models), metres.
Layout (V vertices, F faces, S shape components, C PCA components, J = 16 joints in MANO's native
order, K = 21 keypoints in the canonical OpenPose/FreiHAND order of ``hand_jax.keypoints``):

- ``pose`` [48]: axis-angle, radians; the first 3 rotate the root (wrist) globally, the other 45
  are the articulation of joints 1..15 relative to their parents (0 is the flat hand).
- ``betas`` [S'] with S' <= S: shape coefficients (unitless); missing trailing ones are zero.
- ``transl`` [3]: translation added to every output point, metres.

``forward`` poses one hand; batch with ``jax.vmap(forward, in_axes=(None, 0, 0))``. Pose-corrective
blend shapes use MANO's ``lrotmin`` features ``(R_j - I)`` of joints 1..15 flattened (135 values);
a model whose ``posedirs`` are all zero (the embedded default hand) skips that product entirely
(``HandModel.zero_posedirs``, decided from the array when the model is built).
Everything runs in the dtype of ``pose`` (float32 or float64): the model's arrays are cast to it.

Left hands. ``mirror_model`` turns a right hand into a left hand (x -> -x) and back;
``mirror_pose`` maps axis-angle parameters between the two: ``(x, y, z) -> (x, -y, -z)`` per joint,
so that ``forward(mirror_model(m), mirror_pose(p), b)`` is ``forward(m, p, b)`` with x negated.
The official ``MANO_LEFT.pkl`` has a known defect: the x component of its ``shapedirs`` equals the
right model's instead of its negation (https://github.com/vchoutas/smplx/issues/48), so betas
deform a left hand wrongly along x. ``load_model`` detects and flips it for left pickles only
(``hand_jax.mano_pkl.has_left_shapedirs_defect`` says how); ``fix_left_shapedirs`` does the same
for a model already in memory.
"""

import dataclasses
import os
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from hand_jax import keypoints as kp
from hand_jax import mano_pkl, safe_npz
from hand_jax.geometry import kinematics, rotations

NUM_JOINTS = kp.NUM_JOINTS
NUM_POSE_FEATURES = 9 * (NUM_JOINTS - 1)
NPZ_FORMAT_VERSION = 1
DEFAULT_MODEL_PATH = os.path.join(os.path.dirname(__file__), "assets", "default_hand_right.npz")
MANO_NUM_VERTS = 778
# Fingertip vertices of the MANO topology, order thumb, index, middle, ring, pinky.
TIP_PRESETS = {
    "manopth": (745, 317, 444, 556, 673),
    "smplx": (744, 320, 443, 554, 671),
    "freihand": (744, 320, 443, 555, 672),
}
DEFAULT_TIPS = "manopth"
SIDES = ("right", "left")
_ARRAY_FIELDS = tuple(mano_pkl.field_shapes(0))
HandModelError = mano_pkl.HandModelError


def _all_zero(x) -> bool | None:
    """Whether a concrete array is identically zero; None for anything else.

    None for tracers (inside ``jit``/``vmap``/``grad``) and for the non-array leaves JAX puts in
    a model's place (``ShapeDtypeStruct``, shardings, ``vmap`` axes, ...): the caller keeps the
    flag it was given. NaN counts as nonzero.
    """
    if isinstance(x, np.ndarray):
        return not np.any(x)
    if (
        isinstance(x, jax.Array)
        and not isinstance(x, jax.core.Tracer)
        and x.is_fully_addressable
        and not x.is_deleted()
    ):
        return not np.any(np.asarray(x))
    return None


@dataclasses.dataclass(frozen=True)
class HandModel:
    """A MANO-layout hand model: arrays are pytree leaves, tree and tips are static.

    Attributes:
      v_template: [V, 3] rest vertices, metres.
      shapedirs: [V, 3, S] shape blend shapes per unit beta, metres.
      posedirs: [V, 3, 135] pose-corrective blend shapes over the ``lrotmin`` features, metres.
      J_regressor: [16, V] joint regressor.
      weights: [V, 16] skinning weights, rows sum to 1.
      faces: [F, 3] int32 triangles, counter-clockwise seen from outside.
      hands_components: [C, 45] articulation PCA components (rows), radians.
      hands_mean: [45] mean articulation (the relaxed hand), radians.
      parents: static tuple of 16 parent indices, MANO native order, root -1.
      tip_ids: static tuple of 5 fingertip vertex ids (thumb, index, middle, ring, pinky).
      side: static ``'right'`` or ``'left'``.
      zero_posedirs: static, derived from ``posedirs``: True when every entry is zero (the
        embedded default hand has no pose correctives). ``forward`` then does not emit the pose
        blend product at all. It is recomputed from the array whenever a model is built from
        concrete arrays (numpy or jax: ``make_model``, ``load_model``, ``mirror_model``,
        ``dataclasses.replace``, ``jax.tree.map``, ...), so it cannot go stale; a model rebuilt
        from traced arrays (inside ``jit``/``vmap``/``grad``) keeps the value of the model it was
        traced from. With zero ``posedirs`` the pose blend contributes nothing to the output,
        but its gradient with respect to ``posedirs`` is then zero too: to learn correctives
        starting from zero, start from any nonzero ``posedirs``.
    """

    v_template: jax.Array
    shapedirs: jax.Array
    posedirs: jax.Array
    J_regressor: jax.Array
    weights: jax.Array
    faces: jax.Array
    hands_components: jax.Array
    hands_mean: jax.Array
    parents: tuple[int, ...] = tuple(kp.MANO_PARENTS)
    tip_ids: tuple[int, ...] = TIP_PRESETS[DEFAULT_TIPS]
    side: str = "right"
    zero_posedirs: bool = False

    def __post_init__(self):
        zero = _all_zero(self.posedirs)
        if zero is not None:
            object.__setattr__(self, "zero_posedirs", zero)

    num_verts = property(lambda self: self.v_template.shape[0], doc="V")
    num_betas = property(lambda self: self.shapedirs.shape[-1], doc="S")


jax.tree_util.register_dataclass(
    HandModel,
    data_fields=list(_ARRAY_FIELDS),
    meta_fields=["parents", "tip_ids", "side", "zero_posedirs"],
)


class ManoOutput(NamedTuple):
    """Posed hand. verts [V, 3], joints [16, 3] MANO order, keypoints [21, 3] canonical; metres."""

    verts: jax.Array
    joints: jax.Array
    keypoints: jax.Array


def resolve_tips(tips, num_verts: int) -> tuple[int, ...]:
    """Return 5 fingertip vertex ids from a preset name or explicit ids.

    Args:
      tips: a name in ``TIP_PRESETS`` (MANO topology only, V == 778) or 5 vertex ids.
      num_verts: V of the model the ids index.

    Returns:
      Tuple of 5 ints, order thumb, index, middle, ring, pinky (ValueError if invalid).
    """
    if isinstance(tips, str):
        if tips not in TIP_PRESETS:
            raise ValueError(f"tips={tips!r}: expected one of {tuple(TIP_PRESETS)} or 5 vertex ids")
        if num_verts != MANO_NUM_VERTS:
            raise ValueError(
                f"tips={tips!r}: presets index the MANO topology (V={MANO_NUM_VERTS}), this model "
                f"has V={num_verts}; pass 5 vertex ids instead"
            )
        return TIP_PRESETS[tips]
    ids = tuple(int(i) for i in np.asarray(tips).reshape(-1))
    if len(ids) != 5 or min(ids) < 0 or max(ids) >= num_verts:
        raise ValueError(f"tips={ids}: expected 5 vertex ids in [0, {num_verts})")
    return ids


def make_model(*, parents=kp.MANO_PARENTS, tip_ids=DEFAULT_TIPS, side="right", **arrays):
    """Build a validated ``HandModel`` from numpy or jax arrays.

    Args:
      parents: 16 parent indices (MANO native order, root -1).
      tip_ids: a preset name or 5 vertex ids.
      side: ``'right'`` or ``'left'``.
      **arrays: every array field of ``HandModel`` (see its attributes for shapes).

    Returns:
      HandModel with float arrays in the default jax float dtype and int32 faces; a missing
      field, a wrong shape or a bad argument raises ValueError naming it.
    """
    missing, extra = set(_ARRAY_FIELDS) - set(arrays), set(arrays) - set(_ARRAY_FIELDS)
    if missing or extra:
        raise ValueError(f"make_model: missing {sorted(missing)}, unknown {sorted(extra)}")
    if side not in SIDES:
        raise ValueError(f"side={side!r}: expected one of {SIDES}")
    num_verts = np.shape(arrays["v_template"])[0]
    a = {}
    for key, pattern in mano_pkl.field_shapes(num_verts).items():
        a[key] = mano_pkl.check_shape(arrays[key], key, "make_model", pattern)
    parents = tuple(int(p) for p in parents)
    if len(parents) != NUM_JOINTS:
        raise ValueError(f"parents={parents}: expected {NUM_JOINTS} entries")
    kinematics.kinematic_levels(parents)  # validates the tree
    fields = {k: jnp.asarray(v, dtype=float) for k, v in a.items() if k != "faces"}
    fields["faces"] = jnp.asarray(a["faces"], dtype=jnp.int32)
    tips = resolve_tips(tip_ids, num_verts)
    return HandModel(**fields, parents=parents, tip_ids=tips, side=side)


def with_tips(model: HandModel, tips) -> HandModel:
    """Return the model with another fingertip set (preset name or 5 vertex ids)."""
    return dataclasses.replace(model, tip_ids=resolve_tips(tips, model.num_verts))


def _float_dtype(*xs):
    dtype = jnp.result_type(*xs)
    return dtype if jnp.issubdtype(dtype, jnp.floating) else jnp.result_type(float)


def forward_rotmats(model: HandModel, rotmats, betas, transl=None) -> ManoOutput:
    """Pose one hand from per-joint rotation matrices.

    Args:
      model: the hand model.
      rotmats: [16, 3, 3] rotations, MANO native order; the root's (index 0) is global, the
        others are relative to their parent.
      betas: [S'] shape coefficients, S' <= model.num_betas.
      transl: optional [3] translation, metres.

    Returns:
      ManoOutput with verts [V, 3], joints [16, 3] and keypoints [21, 3], metres.
    """
    chex.assert_shape(rotmats, (NUM_JOINTS, 3, 3))
    chex.assert_rank(betas, 1)
    num_betas = betas.shape[0]
    if num_betas > model.num_betas:
        raise ValueError(f"betas: got {num_betas} coefficients, the model has {model.num_betas}")
    dtype = _float_dtype(rotmats, betas)
    rotmats, betas = rotmats.astype(dtype), betas.astype(dtype)
    m = jax.tree.map(lambda x: x.astype(dtype) if x.dtype != jnp.int32 else x, model)

    # Blend shapes in the model's own vertex-major layout: the basis [V, 3, N] flattens to
    # [V * 3, N] without a copy, and under vmap the product is one [B, N] x [N, V * 3] matrix
    # multiplication. Shape and pose blend shapes share it (N = S' + 135), unless the model has
    # no pose correctives: then the pose product is not emitted at all (N = S'). Rest joints are
    # regressed from the template and the shape basis (linear in betas); all this model-side work
    # runs once per call, outside any vmap over hands.
    shapedirs = m.shapedirs[..., :num_betas]
    joint_dirs = jnp.einsum("jv,vcs->jcs", m.J_regressor, shapedirs)  # [16, 3, S']
    rest_joints = kinematics.regress_joints(m.J_regressor, m.v_template.T) + joint_dirs @ betas
    if m.zero_posedirs:
        dirs, coeffs = shapedirs, betas
    else:
        dirs = jnp.concatenate([shapedirs, m.posedirs], axis=-1)
        coeffs = jnp.concatenate([betas, kinematics.pose_features(rotmats)])
    v_posed = kinematics.blend_shapes(m.v_template, dirs, coeffs)  # [V, 3]
    global_rots, joints = kinematics.forward_kinematics(rotmats, rest_joints, parents=m.parents)
    skin_r, skin_t = kinematics.skinning_transforms(global_rots, joints, rest_joints)
    verts = kinematics.linear_blend_skinning(v_posed.T, m.weights, skin_r, skin_t).T
    if transl is not None:
        chex.assert_shape(transl, (3,))
        transl = transl.astype(dtype)
        verts, joints = verts + transl, joints + transl
    native21 = jnp.concatenate([joints, verts[np.asarray(m.tip_ids)]], axis=0)
    return ManoOutput(verts=verts, joints=joints, keypoints=native21[kp.MANO_TO_CANONICAL])


def forward(model: HandModel, pose, betas, transl=None) -> ManoOutput:
    """Pose one hand from axis-angle parameters.

    Args:
      model: the hand model.
      pose: [48] axis-angle, radians: 3 global root rotation + 45 articulation (joints 1..15).
      betas: [S'] shape coefficients, S' <= model.num_betas.
      transl: optional [3] translation, metres.

    Returns:
      ManoOutput with verts [V, 3], joints [16, 3] (MANO order) and keypoints [21, 3]
      (canonical order), metres, in the dtype of ``pose``.
    """
    chex.assert_shape(pose, (3 * NUM_JOINTS,))
    rotmats = rotations.axis_angle_to_matrix(pose.reshape(NUM_JOINTS, 3))
    return forward_rotmats(model, rotmats, betas, transl)


def pca_to_pose(model: HandModel, coeffs, *, flat_hand_mean: bool):
    """Map articulation PCA coefficients to the 45 axis-angle articulation parameters.

    ``pose45 = coeffs @ hands_components[:n]`` plus ``hands_mean`` unless ``flat_hand_mean``.
    With ``flat_hand_mean=True`` (manopth's default) zero coefficients give the flat hand; with
    ``False`` (smplx's default) they give the relaxed mean hand. Callers must choose.

    Args:
      model: the hand model.
      coeffs: [n] PCA coefficients, n <= C.
      flat_hand_mean: whether the PCA space is centred on the flat hand (no mean added).

    Returns:
      [45] articulation axis-angle, radians (joints 1..15, MANO order).
    """
    chex.assert_rank(coeffs, 1)
    n = coeffs.shape[0]
    if n > model.hands_components.shape[0]:
        raise ValueError(f"coeffs: got {n}, the model has {model.hands_components.shape[0]}")
    dtype = _float_dtype(coeffs)
    pose = coeffs.astype(dtype) @ model.hands_components[:n].astype(dtype)
    return pose if flat_hand_mean else pose + model.hands_mean.astype(dtype)


def _signed(x, signs):
    return x * jnp.asarray(signs, dtype=x.dtype)


def _axis_angle_mirror_signs(num_joints: int) -> np.ndarray:
    return np.tile(np.array([1.0, -1.0, -1.0]), num_joints)


def mirror_pose(pose):
    """Mirror axis-angle parameters between right and left hands (x -> -x reflection).

    Args:
      pose: [..., 3N] axis-angle per joint (e.g. [48] or the [45] articulation), radians.

    Returns:
      [..., 3N] with each joint's ``(x, y, z)`` mapped to ``(x, -y, -z)``; an involution.
    """
    if pose.shape[-1] % 3:
        raise ValueError(f"pose: last axis {pose.shape[-1]} is not a multiple of 3")
    return _signed(pose, _axis_angle_mirror_signs(pose.shape[-1] // 3))


def mirror_model(model: HandModel) -> HandModel:
    """Return the model of the other hand, reflected through the plane x = 0.

    Template, shape and pose blend shapes are reflected (``posedirs`` entry ``(v, d, j, a, b)``
    gains the sign ``m_d m_a m_b``, m = (-1, 1, 1), because the features ``R - I`` of a mirrored
    rotation ``M R M`` change sign entrywise by ``m_a m_b``); PCA components and mean are
    mirrored like poses; faces reverse their winding so normals still point outwards;
    ``J_regressor``, ``weights``, parents and tips are unchanged. Mirroring twice is the identity.
    """
    m = np.array([-1.0, 1.0, 1.0])
    feature_signs = np.tile(np.outer(m, m).reshape(-1), NUM_JOINTS - 1)
    pose_signs = _axis_angle_mirror_signs(15)
    return dataclasses.replace(
        model,
        v_template=_signed(model.v_template, m),
        shapedirs=_signed(model.shapedirs, m[:, None]),
        posedirs=_signed(model.posedirs, m[:, None] * feature_signs),
        faces=model.faces[:, ::-1],
        hands_components=_signed(model.hands_components, pose_signs),
        hands_mean=_signed(model.hands_mean, pose_signs),
        side="left" if model.side == "right" else "right",
    )


def fix_left_shapedirs(left: HandModel, right: HandModel | None = None) -> HandModel:
    """Negate the x component of a left model's ``shapedirs`` if it has the known defect.

    Detection: ``hand_jax.mano_pkl.has_left_shapedirs_defect`` (against ``right`` when given,
    else a scale heuristic). Models built by ``mirror_model`` never have the defect.
    """
    right_sd = None if right is None else np.asarray(right.shapedirs)
    if not mano_pkl.has_left_shapedirs_defect(
        np.asarray(left.v_template), np.asarray(left.shapedirs), right_sd
    ):
        return left
    flip = np.array([-1.0, 1.0, 1.0])[:, None]
    return dataclasses.replace(left, shapedirs=_signed(left.shapedirs, flip))


def _load_pkl(path, side, tips) -> HandModel:
    arrays = mano_pkl.load_mano_pkl(path, side=side)
    parents, file_side = arrays.pop("parents"), arrays.pop("side")
    tips = DEFAULT_TIPS if tips is None else tips
    try:
        return make_model(**arrays, parents=parents, tip_ids=tips, side=file_side)
    except ValueError as e:
        raise HandModelError(f"{path}: {e}") from e


def _scalar(d, key, path, kinds, what):
    value = d[key]
    if value.shape != () or value.dtype.kind not in kinds:
        raise HandModelError(
            f"{path}: key '{key}' must be {what}, got {value.dtype} of shape {value.shape}"
        )
    return value.item()


def _load_npz(path, tips) -> HandModel:
    keys = (*_ARRAY_FIELDS, "parents", "tip_ids", "side", "format_version")
    # Only the model's own keys are read: anything else in the archive is never decompressed.
    d = safe_npz.read_npz(path, error=HandModelError, what="a hand model",
                          expected={k: (None, None) for k in keys})  # fmt: skip
    for key in keys:
        if key not in d:
            raise HandModelError(f"{path}: missing key '{key}' (see BUILD.md for the npz layout)")
    version = _scalar(d, "format_version", path, "iu", "an integer scalar")
    if version != NPZ_FORMAT_VERSION:
        raise HandModelError(f"{path}: format_version {version}, expected {NPZ_FORMAT_VERSION}")
    side = _scalar(d, "side", path, "U", f"one of {SIDES}")
    if side not in SIDES:
        raise HandModelError(f"{path}: key 'side' is {side!r:.50}, expected one of {SIDES}")
    if tips is None:
        tips = d["tip_ids"]
        if tips.dtype.kind not in "iu":
            raise HandModelError(f"{path}: key 'tip_ids' has dtype {tips.dtype}, expected ints")
    arrays = mano_pkl.validate_model_arrays({k: d[k] for k in _ARRAY_FIELDS}, d["parents"], path)
    try:
        return make_model(**arrays, parents=d["parents"], side=side, tip_ids=tips)
    except ValueError as e:
        raise HandModelError(f"{path}: {e}") from e


def load_model(path=None, *, side: str = "right", tips=None) -> HandModel:
    """Load a hand model: the embedded default, an official MANO pickle, or the project's npz.

    Args:
      path: None for the embedded default right hand (``hand_jax/assets/default_hand_right.npz``);
        a ``.pkl`` (official ``MANO_RIGHT.pkl``/``MANO_LEFT.pkl``, read without chumpy) or a
        ``.npz`` in the layout of BUILD.md.
      side: ``'right'`` or ``'left'``: the hand wanted. With ``path=None``, ``'left'`` mirrors
        the default right hand. A file's side comes from the npz or the pkl's name
        (``MANO_LEFT``); a mismatch is an error (use ``mirror_model`` deliberately).
      tips: None for the model's own fingertips (``'manopth'`` for a pkl), a preset name in
        ``TIP_PRESETS`` (MANO topology only) or 5 vertex ids.

    Returns:
      HandModel. FileNotFoundError if the file (or the embedded default) is missing; ValueError
      for a bad side or an unknown extension; ``HandModelError`` (a ValueError) for a malformed
      file: both paths go through ``mano_pkl.validate_model_arrays`` (numeric arrays of
      consistent shapes, finite, integer faces in range, weight rows summing to 1, parents
      forming a tree), and the message names the file and the key;
      ``safe_pickle.PickleReadError`` for a pickle that cannot be read safely.
    """
    if side not in SIDES:
        raise ValueError(f"side={side!r}: expected one of {SIDES}")
    if path is None:
        if not os.path.exists(DEFAULT_MODEL_PATH):
            raise FileNotFoundError(
                f"The embedded default hand {DEFAULT_MODEL_PATH} is missing. Use MANO instead: "
                "register at https://mano.is.tue.mpg.de, download the models and pass the path "
                "of MANO_RIGHT.pkl (load_model(path) or --mano_path)."
            )
        model = _load_npz(DEFAULT_MODEL_PATH, tips)
        return mirror_model(model) if side != model.side else model
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such hand model file (expected a MANO .pkl or .npz)")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".pkl":
        model = _load_pkl(path, side, tips)
    elif ext == ".npz":
        model = _load_npz(path, tips)
    else:
        raise ValueError(f"{path}: unknown extension {ext!r}, expected .pkl or .npz")
    if model.side != side:
        raise ValueError(
            f"{path} holds a {model.side} hand but side={side!r} was requested; pass "
            f"side={model.side!r} (or mirror_model the loaded model)"
        )
    return model


def save_npz(model: HandModel, path, *, source: str = "unspecified") -> None:
    """Write the model in the project's npz layout (BUILD.md), float32 arrays, int32 indices.

    Args:
      model: the hand model. path: output ``.npz`` path (overwritten if present).
      source: provenance and licence line stored under ``source``.
    """
    arrays = {k: np.asarray(getattr(model, k), dtype=np.float32) for k in _ARRAY_FIELDS}
    arrays["faces"] = np.asarray(model.faces, dtype=np.int32)
    np.savez(
        path,
        format_version=np.int64(NPZ_FORMAT_VERSION),
        side=np.str_(model.side),
        parents=np.asarray(model.parents, dtype=np.int32),
        tip_ids=np.asarray(model.tip_ids, dtype=np.int32),
        source=np.str_(source),
        **arrays,
    )
