"""Mesh files: write and read Wavefront OBJ (vertices and triangles only).

Vertices are written in the units they are given (the library uses metres); faces are 0-based
[F, 3] int arrays in memory and 1-based in the file, counter-clockwise seen from outside.
"""

import os

import numpy as np


def write_obj(path, verts, faces, *, overwrite: bool = False) -> None:
    """Write a triangle mesh as OBJ.

    Args:
      path: output file path.
      verts: [V, 3] vertex positions.
      faces: [F, 3] 0-based vertex indices.
      overwrite: replace an existing file; otherwise an existing file is an error.
    """
    verts = np.asarray(verts, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    if verts.ndim != 2 or verts.shape[1] != 3:
        raise ValueError(f"verts: expected [V, 3], got shape {verts.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces: expected [F, 3], got shape {faces.shape}")
    if faces.size and (faces.min() < 0 or faces.max() >= len(verts)):
        raise ValueError(f"faces: indices must lie in [0, {len(verts)}), got {faces.min()}..")
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path}: exists; pass overwrite=True to replace it")
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in verts]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def read_obj(path):
    """Read the vertices and triangles of an OBJ file.

    Args:
      path: an OBJ file with ``v`` and triangular ``f`` records (``f a/b/c`` forms accepted).

    Returns:
      verts: [V, 3] float64; faces: [F, 3] int64, 0-based.
    """
    verts, faces = [], []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "v":
                verts.append([float(x) for x in parts[1:4]])
            elif parts[0] == "f":
                idx = [int(p.split("/")[0]) - 1 for p in parts[1:]]
                if len(idx) != 3:
                    raise ValueError(f"{path}:{lineno}: expected a triangle, got {len(idx)} verts")
                faces.append(idx)
    return np.asarray(verts, np.float64).reshape(-1, 3), np.asarray(faces, np.int64).reshape(-1, 3)
