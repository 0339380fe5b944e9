"""Read the official MANO pickles (``MANO_RIGHT.pkl``, ``MANO_LEFT.pkl``) without chumpy.

The official files were written by Python 2 and hold numpy arrays, a scipy sparse ``J_regressor``
(pickled under the old module path ``scipy.sparse.csc``) and chumpy objects (``shapedirs`` is a
``chumpy.ch.Ch``). They are read with ``hand_jax.safe_pickle``: only numpy, a few built-in
containers, and the stand-in classes below are allowed. The stand-ins keep the pickled state and
are resolved to numpy afterwards (``Ch`` -> its array, ``Select`` -> the selected entries,
``Reshape``/``transpose`` -> the reshaped array). Nothing named by the file is ever imported or
called, so chumpy need not be installed and a pickle that asks for ``os.system`` is refused.

Units in the file are metres; the layout is MANO's: ``v_template [V, 3]``, ``shapedirs
[V, 3, S]``, ``posedirs [V, 3, 135]``, ``J_regressor [16, V]``, ``weights [V, 16]``, ``f [F, 3]``,
``kintree_table [2, 16]`` (first row the parents), ``hands_components [C, 45]``, ``hands_mean
[45]``.
"""

import os
import re
import warnings
from typing import Any

import numpy as np
import scipy.sparse

from hand_jax import safe_pickle

NUM_JOINTS = 16
NUM_POSE_FEATURES = 9 * (NUM_JOINTS - 1)
WEIGHT_SUM_TOLERANCE = 1e-3  # |sum of a vertex's skinning weights - 1|; float32 files reach 1e-7
UNSIGNED_ROOT = (2**32 - 1, 2**64 - 1)  # the root's parent -1 as stored by old uint kintrees


class HandModelError(ValueError):
    """A hand model file (MANO pkl or npz) is malformed; the message names the file and field."""


class _StandIn:
    """A pickled object's state, kept without running any of its class's code."""

    def __setstate__(self, state):
        self.state = state if isinstance(state, dict) else {"_state": state}

    def __repr__(self):
        return f"{type(self).__name__}(keys={sorted(getattr(self, 'state', {}))})"


class ChStandIn(_StandIn):
    """Stands in for ``chumpy.ch.Ch``: a wrapped array in state ``x``."""

    def resolve(self, where):
        return to_numpy(self.state.get("x"), f"{where}.x")


class SelectStandIn(_StandIn):
    """Stands in for ``chumpy.reordering.Select``: ``a.ravel()[idxs]`` with ``preferred_shape``."""

    def resolve(self, where):
        a = to_numpy(self.state.get("a"), f"{where}.a")
        idxs = np.asarray(to_numpy(self.state.get("idxs"), f"{where}.idxs"), dtype=np.int64)
        out = np.asarray(a).ravel()[idxs.ravel()]
        shape = self.state.get("preferred_shape")
        return out.reshape(tuple(shape)) if shape is not None else out.reshape(idxs.shape)


class ReshapeStandIn(_StandIn):
    """Stands in for ``chumpy.reordering.Reshape``: ``a.reshape(newshape)``."""

    def resolve(self, where):
        a = to_numpy(self.state.get("a"), f"{where}.a")
        return np.asarray(a).reshape(self.state["newshape"])


class TransposeStandIn(_StandIn):
    """Stands in for ``chumpy.reordering.transpose``: ``np.transpose(a, axes)``."""

    def resolve(self, where):
        a = to_numpy(self.state.get("a"), f"{where}.a")
        return np.transpose(np.asarray(a), self.state.get("axes"))


class SparseStandIn(_StandIn):
    """Stands in for a scipy sparse matrix (csc, csr or coo) pickled by any scipy version."""

    format: str  # set by each subclass

    def resolve(self, where):
        s = self.state
        shape = tuple(int(n) for n in (s.get("_shape") or s.get("shape")))
        if self.format in ("csc", "csr"):
            cls = scipy.sparse.csc_matrix if self.format == "csc" else scipy.sparse.csr_matrix
            matrix = cls((s["data"], s["indices"], s["indptr"]), shape=shape)
        else:
            row, col = s["coords"] if "coords" in s else (s["row"], s["col"])
            matrix = scipy.sparse.coo_matrix((s["data"], (row, col)), shape=shape)
        return np.asarray(matrix.toarray())


class CscStandIn(SparseStandIn):
    format = "csc"


class CsrStandIn(SparseStandIn):
    format = "csr"


class CooStandIn(SparseStandIn):
    format = "coo"


def _allowed_globals() -> dict[tuple[str, str], Any]:
    table = {
        ("chumpy.ch", "Ch"): ChStandIn,
        ("chumpy.reordering", "Select"): SelectStandIn,
        ("chumpy.reordering", "Reshape"): ReshapeStandIn,
        ("chumpy.reordering", "transpose"): TransposeStandIn,
    }
    sparse = {"csc": CscStandIn, "csr": CsrStandIn, "coo": CooStandIn}
    for fmt, cls in sparse.items():
        for module in (f"scipy.sparse.{fmt}", f"scipy.sparse._{fmt}"):
            table[(module, f"{fmt}_matrix")] = cls
    # Chumpy keeps a set of dirty variable names in its state; Python 2 spells it __builtin__.
    for module in ("__builtin__", "builtins"):
        table[(module, "set")] = set
        table[(module, "frozenset")] = frozenset
    return table


MANO_PKL_GLOBALS = _allowed_globals()


def to_numpy(value, where: str):
    """Resolve a value read from a MANO pickle to numpy (stand-ins evaluated, arrays copied).

    Args:
      value: an array, a stand-in object, a number or a string.
      where: the key path, used in error messages.

    Returns:
      A numpy array, or the value unchanged if it is a string.
    """
    if isinstance(value, _StandIn):
        return value.resolve(where)
    if isinstance(value, (str, bytes)):
        return value
    if value is None:
        raise HandModelError(f"{where}: missing value in the pickled object's state")
    return np.asarray(value)


def read_pkl(path) -> dict[str, Any]:
    """Read a MANO pickle into a dict of numpy arrays (and strings), without chumpy.

    Args:
      path: path of an official ``MANO_*.pkl`` (or any pickle in the same format).

    Returns:
      Dict from the file's keys to numpy arrays (chumpy and sparse objects resolved).

    Raises:
      hand_jax.safe_pickle.PickleReadError: the pickle is malformed or names a class outside
        the allow-list (``UnsafePickleError``).
      HandModelError: the file does not hold a dict, or a value cannot be resolved.
    """
    raw = safe_pickle.load(path, allowed=MANO_PKL_GLOBALS)
    if not isinstance(raw, dict):
        raise HandModelError(
            f"{path}: expected a pickled dict of MANO arrays, got {type(raw).__name__}"
        )
    out = {}
    for k, v in raw.items():
        try:
            out[str(k)] = to_numpy(v, f"{path}:{k}")
        except HandModelError:
            raise
        except Exception as e:  # a stand-in's state is file data: any malformation lands here
            raise HandModelError(
                f"{path}: key {str(k)[:80]!r}: cannot resolve the pickled value "
                f"({type(e).__name__}: {str(e)[:200]})"
            ) from e
    return out


def field_shapes(num_verts: int) -> dict[str, tuple]:
    """Expected shapes of the model fields (project names), None where any size is allowed."""
    return {
        "v_template": (num_verts, 3),
        "shapedirs": (num_verts, 3, None),
        "posedirs": (num_verts, 3, NUM_POSE_FEATURES),
        "J_regressor": (NUM_JOINTS, num_verts),
        "weights": (num_verts, NUM_JOINTS),
        "faces": (None, 3),
        "hands_components": (None, 45),
        "hands_mean": (45,),
    }


def check_shape(array, key: str, source, pattern) -> np.ndarray:
    """Return ``array`` as numpy if its shape matches ``pattern`` (ints fixed, None free).

    Raises:
      HandModelError: naming ``source``, ``key``, the shape found and the shape expected.
    """
    array = np.asarray(array)
    ok = array.ndim == len(pattern) and all(
        p is None or p == n for p, n in zip(pattern, array.shape, strict=False)
    )
    if not ok:
        expected = "[" + ", ".join("*" if p is None else str(p) for p in pattern) + "]"
        raise HandModelError(f"{source}: key '{key}' has shape {array.shape}, expected {expected}")
    return array


def _get(data, key, path):
    if key not in data:
        raise HandModelError(f"{path}: missing key '{key}' (an official MANO pkl has it)")
    return data[key]


def check_parents(parents, source, key: str = "parents") -> tuple[int, ...]:
    """Return 16 parent indices as ints if they form one tree rooted at joint 0.

    Args:
      parents: [16] integers, ``parents[0] == -1`` and every other entry a joint in [0, 16).
      source: the file (or caller), for error messages. key: the field's name in the file.

    Raises:
      HandModelError: naming ``source`` and ``key``: not integers, wrong length, not one root
        at joint 0, out of range, or a cycle.
    """
    array = np.asarray(parents)
    if array.dtype.kind not in "iu" or array.shape != (NUM_JOINTS,):
        raise HandModelError(
            f"{source}: key '{key}' must hold {NUM_JOINTS} integers, got {array.dtype} "
            f"{array.shape}"
        )
    values = tuple(int(p) for p in array)
    if values[0] != -1 or any(not 0 <= p < NUM_JOINTS for p in values[1:]):
        raise HandModelError(
            f"{source}: key '{key}'={values}: expected -1 for the root (joint 0) and a joint in "
            f"[0, {NUM_JOINTS}) for every other joint"
        )
    for joint in range(NUM_JOINTS):  # walking up from any joint must reach the root
        seen, k = set(), joint
        while k != -1:
            if k in seen:
                raise HandModelError(f"{source}: key '{key}'={values}: cycle through joint {k}")
            seen.add(k)
            k = values[k]
    return values


def _check_dtype(array: np.ndarray, key: str, source, kinds: str, what: str) -> None:
    if array.dtype.kind not in kinds:
        raise HandModelError(f"{source}: key '{key}' has dtype {array.dtype}; expected {what}")


def validate_model_arrays(arrays: dict, parents, source, *, names=None) -> dict[str, np.ndarray]:
    """Check the model fields of a hand model file; one validation for the pkl and npz paths.

    Args:
      arrays: every field of ``field_shapes`` (project names) as read from the file.
      parents: the 16 parent indices.
      source: the file, for error messages.
      names: project name -> the key in the file, where they differ (the pkl's ``f``).

    Returns:
      The fields as numpy: floats as float64, ``faces`` as int32.

    Raises:
      HandModelError: naming ``source`` and the key: a non-numeric (e.g. object) array, a wrong
        shape, non-finite values, float or out-of-range face indices, skinning-weight rows that
        are negative or do not sum to 1, or parents that do not form a tree.
    """
    names = names or {}
    raw = {k: np.asarray(v) for k, v in arrays.items()}
    for key, value in raw.items():
        kinds, what = ("iu", "integer vertex indices") if key == "faces" else ("iuf", "numbers")
        _check_dtype(value, names.get(key, key), source, kinds, what)
    template_key = names.get("v_template", "v_template")
    num_verts = check_shape(raw["v_template"], template_key, source, (None, 3)).shape[0]
    if num_verts == 0:
        raise HandModelError(f"{source}: key '{template_key}' has no vertices")
    out = {}
    for key, pattern in field_shapes(num_verts).items():
        name = names.get(key, key)
        array = check_shape(raw[key], name, source, pattern)
        if key == "faces":
            if array.shape[0] == 0:
                raise HandModelError(f"{source}: key '{name}' has no faces")
            if array.min() < 0 or array.max() >= num_verts:
                raise HandModelError(
                    f"{source}: key '{name}' indexes vertices outside [0, {num_verts}): "
                    f"min {array.min()}, max {array.max()}"
                )
            out[key] = array.astype(np.int32)
            continue
        array = array.astype(np.float64)
        if not np.all(np.isfinite(array)):
            raise HandModelError(
                f"{source}: key '{name}' has {np.size(array) - np.isfinite(array).sum()} "
                "non-finite values (NaN or inf)"
            )
        out[key] = array
    weights, name = out["weights"], names.get("weights", "weights")
    sums = weights.sum(axis=1)
    worst = int(np.argmax(np.abs(sums - 1.0)))
    if abs(sums[worst] - 1.0) > WEIGHT_SUM_TOLERANCE or weights.min() < -WEIGHT_SUM_TOLERANCE:
        raise HandModelError(
            f"{source}: key '{name}': skinning weights must be >= 0 and each vertex's row must "
            f"sum to 1 (within {WEIGHT_SUM_TOLERANCE}); vertex {worst} sums to {sums[worst]:.6g}, "
            f"min weight {weights.min():.6g}"
        )
    check_parents(parents, source, names.get("parents", "parents"))
    return out


def _parents_from_kintree(kintree, path):
    kintree = check_shape(kintree, "kintree_table", path, (2, NUM_JOINTS))
    _check_dtype(kintree, "kintree_table", path, "iu", "integer joint indices")
    # The root's parent is stored as -1 or as a wrapped unsigned value (4294967295).
    parents = [-1 if p in UNSIGNED_ROOT else p for p in kintree[0].tolist()]
    parents = np.array([p if -1 <= p < NUM_JOINTS else NUM_JOINTS for p in parents])  # range
    children = kintree[1].tolist()
    if sorted(children) != list(range(NUM_JOINTS)):
        raise HandModelError(
            f"{path}: key 'kintree_table': the second row must list each joint 0..15 once, got "
            f"{children}"
        )
    order = np.argsort(children)
    return check_parents(parents[order], path, "kintree_table")


def mano_arrays_from_pkl(path) -> dict[str, Any]:
    """Read and validate an official MANO pickle into the project's field names.

    Args:
      path: path of ``MANO_RIGHT.pkl`` or ``MANO_LEFT.pkl``.

    Returns:
      Dict with ``v_template [V, 3]``, ``shapedirs [V, 3, S]``, ``posedirs [V, 3, 135]``,
      ``J_regressor [16, V]`` (dense), ``weights [V, 16]``, ``faces [F, 3]`` int32,
      ``hands_components [C, 45]``, ``hands_mean [45]`` (float64 numpy arrays) and ``parents``
      (tuple of 16 ints).

    Raises:
      HandModelError: a key is missing or fails ``validate_model_arrays`` (the message names
        the file and the key).
    """
    data = read_pkl(path)
    arrays = {}
    for key in field_shapes(0):
        file_key = "f" if key == "faces" else key
        arrays[key] = _get(data, file_key, path)
    parents = _parents_from_kintree(_get(data, "kintree_table", path), path)
    out = validate_model_arrays(arrays, parents, path, names={"faces": "f"})
    out["parents"] = parents
    return out


def side_from_filename(path) -> str | None:
    """Return ``'left'`` or ``'right'`` if the file name says so (``MANO_LEFT.pkl``), else None."""
    name = os.path.basename(os.fspath(path)).lower()
    has_left = re.search(r"(^|[^a-z])left([^a-z]|$)", name) is not None
    has_right = re.search(r"(^|[^a-z])right([^a-z]|$)", name) is not None
    if has_left == has_right:
        return None
    return "left" if has_left else "right"


def has_left_shapedirs_defect(v_template, shapedirs, right_shapedirs=None) -> bool:
    """Detect the official left model's unmirrored ``shapedirs`` x component.

    In the official ``MANO_LEFT.pkl`` the x component of ``shapedirs`` equals the right model's
    instead of its negation (https://github.com/vchoutas/smplx/issues/48).

    Args:
      v_template: [V, 3] left template.
      shapedirs: [V, 3, S] left shape blend shapes.
      right_shapedirs: optional [V, 3, S] of the matching right model (same vertex order). With
        it the defect is present when the left x components are closer to the right ones than to
        their negation (the criterion HaMeR and others use). Without it, a heuristic: the first
        shape component of MANO is close to a uniform scaling of the hand, so its x component
        must correlate with the centred template's x with the same sign as its y and z
        components correlate with y and z.

    Returns:
      True if the x component should be negated.
    """
    sd_x = np.asarray(shapedirs)[:, 0, :]
    if right_shapedirs is not None:
        ref = np.asarray(right_shapedirs)[:, 0, :]
        return bool(np.linalg.norm(sd_x - ref) < np.linalg.norm(sd_x + ref))
    centred = np.asarray(v_template) - np.mean(v_template, axis=0)
    first = np.asarray(shapedirs)[:, :, 0]
    along_x = np.sum(first[:, 0] * centred[:, 0])
    along_yz = np.sum(first[:, 1:] * centred[:, 1:])
    return bool(along_x * along_yz < 0)


def load_mano_pkl(path, *, side: str | None = None) -> dict[str, Any]:
    """Read an official MANO pickle, fixing the left model's ``shapedirs`` defect when present.

    The file's side comes from its name (``MANO_LEFT.pkl``) or else from ``side``. For a left
    file, the defect test compares with ``MANO_RIGHT.pkl`` in the same directory when that file
    exists, and otherwise falls back to the scale heuristic (with a warning when it flips).

    Args:
      path: path of the pickle.
      side: the side to assume when the file name does not say (default ``'right'``).

    Returns:
      The dict of ``mano_arrays_from_pkl`` plus ``side``.
    """
    arrays = mano_arrays_from_pkl(path)
    arrays["side"] = side_from_filename(path) or side or "right"
    if arrays["side"] != "left":
        return arrays
    sibling = os.path.join(os.path.dirname(os.fspath(path)), "MANO_RIGHT.pkl")
    right_sd = mano_arrays_from_pkl(sibling)["shapedirs"] if os.path.exists(sibling) else None
    if has_left_shapedirs_defect(arrays["v_template"], arrays["shapedirs"], right_sd):
        if right_sd is None:
            warnings.warn(
                f"{path}: negating the x component of shapedirs (known MANO_LEFT defect) as "
                "detected by the scale heuristic; put MANO_RIGHT.pkl beside it for a firm check",
                stacklevel=2,
            )
        arrays["shapedirs"] = arrays["shapedirs"] * np.array([-1.0, 1.0, 1.0])[:, None]
    return arrays
