"""Mesh decimation by half-edge collapses onto existing vertices (a coarser face set, same verts).

``collapse_faces`` returns a coarser triangulation of the same vertex array: every collapse moves
a vertex u onto a neighbour v (both existing vertices) and drops the two faces of the edge, so
the result indexes the original vertices and poses with them under any skinning. It is meant for
a proxy of the soft silhouette (``hand_jax.refine``), whose pixels are far larger than the
mesh's faces, not for display.

Collapses are taken greedily by the quadric error (Garland & Heckbert 1997) of the target
vertex, area-weighted planes of the faces around both end points. A collapse is skipped if it
would break the manifold (the link condition: the edge's end points share exactly the two
vertices opposite it), turn a remaining face away from the surface (its normal more than ~73
degrees from the face before or from the rest surface's normals at its corners, or its area
vanishing), or move a boundary vertex (open borders such as MANO's wrist keep
their outline). Host-side numpy, float64, deterministic (ties broken by vertex ids).

Units: whatever the vertices are in (metres for hand models); faces are [F, 3] int indices,
winding preserved.
"""

import heapq

import numpy as np


def _face_quadrics(verts, faces):
    """[F, 4, 4] area-weighted plane quadrics p p^T of the faces (p = (n, -n.x0))."""
    a, b, c = (verts[faces[:, k]] for k in range(3))
    cross = np.cross(b - a, c - a)
    norm = np.linalg.norm(cross, axis=1, keepdims=True)
    n = cross / np.maximum(norm, 1e-300)
    p = np.concatenate([n, -np.sum(n * a, axis=1, keepdims=True)], axis=1)
    return 0.5 * norm[:, :, None] * p[:, :, None] * p[:, None, :]


class _Mesh:
    """Mutable adjacency of a triangle mesh under half-edge collapses."""

    def __init__(self, verts, faces):
        self.verts = np.asarray(verts, np.float64)
        self.faces = np.array(faces, np.int64)
        self.alive = np.ones(len(self.faces), bool)
        self.vert_faces = [set() for _ in range(len(self.verts))]
        for f, tri in enumerate(self.faces):
            for v in tri:
                self.vert_faces[v].add(f)
        self.quadric = np.zeros((len(self.verts), 4, 4))
        np.add.at(self.quadric, self.faces.reshape(-1), np.repeat(
            _face_quadrics(self.verts, self.faces), 3, axis=0))  # fmt: skip
        self.boundary = self._boundary_vertices()
        self.version = np.zeros(len(self.verts), np.int64)
        a, b, c = (self.verts[self.faces[:, k]] for k in range(3))
        self.normals = np.zeros_like(self.verts)  # area-weighted rest normals, never updated
        np.add.at(self.normals, self.faces.reshape(-1), np.repeat(np.cross(b - a, c - a), 3, 0))

    def _boundary_vertices(self):
        edges = np.sort(self.faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
        unique, counts = np.unique(edges, axis=0, return_counts=True)
        out = np.zeros(len(self.verts), bool)
        out[unique[counts == 1].reshape(-1)] = True
        return out

    def neighbours(self, v):
        return {int(w) for f in self.vert_faces[v] for w in self.faces[f]} - {v}

    def cost(self, u, v):
        x = np.append(self.verts[v], 1.0)
        return float(x @ (self.quadric[u] + self.quadric[v]) @ x)

    def can_collapse(self, u, v, *, min_cos):
        if self.boundary[u] or len(self.neighbours(u) & self.neighbours(v)) != 2:
            return False
        for f in self.vert_faces[u] - self.vert_faces[v]:
            tri = self.faces[f]
            old = self.verts[tri]
            new = np.where((tri == u)[:, None], self.verts[v], old)
            n_new = np.cross(new[1] - new[0], new[2] - new[0])
            # Against the face before and the rest surface around it, so tilts cannot add up.
            for ref in (np.cross(old[1] - old[0], old[2] - old[0]), self.normals[tri].sum(0)):
                size = np.linalg.norm(ref) * np.linalg.norm(n_new)
                if size <= 1e-30 or ref @ n_new < min_cos * size:
                    return False
        return True

    def collapse(self, u, v):
        for f in list(self.vert_faces[u]):
            if v in self.faces[f]:
                self.alive[f] = False
                for w in self.faces[f]:
                    self.vert_faces[w].discard(f)
            else:
                self.faces[f][self.faces[f] == u] = v
                self.vert_faces[v].add(f)
        self.vert_faces[u] = set()
        self.quadric[v] += self.quadric[u]
        self.version[[u, v]] += 1


def collapse_faces(verts, faces, *, target_faces: int, min_cos: float = 0.3) -> np.ndarray:
    """Decimate a triangle mesh to at most ``target_faces`` faces on its own vertices.

    Args:
      verts: [V, 3] vertex positions (the rest pose the collapses are judged in).
      faces: [F, 3] int vertex indices of a manifold (possibly open) triangle mesh.
      target_faces: stop once this many faces or fewer remain (static).
      min_cos: a collapse is not taken if a face it changes would have a normal at a cosine
        below this to the face before, or to the rest surface's normals at its corners (or
        would degenerate).

    Returns:
      [F', 3] int32 faces over the same vertex ids, F' <= F; F' > ``target_faces`` only when no
      valid collapse is left.

    Raises:
      ValueError: bad shapes or indices, or a target below 4 faces.
    """
    verts, faces = np.asarray(verts), np.asarray(faces)
    if verts.ndim != 2 or verts.shape[1] != 3 or not np.all(np.isfinite(verts)):
        raise ValueError(f"verts: expected finite [V, 3], got {verts.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.min(initial=0) < 0 or (
        faces.max(initial=-1) >= len(verts)
    ):  # fmt: skip
        raise ValueError(f"faces: expected [F, 3] indices into {len(verts)} vertices")
    if not isinstance(target_faces, int) or target_faces < 4:
        raise ValueError(f"target_faces: expected an int >= 4, got {target_faces!r}")
    mesh = _Mesh(verts, faces)
    heap = []

    def push(u, v):
        heapq.heappush(heap, (mesh.cost(u, v), u, v, mesh.version[u], mesh.version[v]))

    for u in range(len(verts)):
        for v in sorted(mesh.neighbours(u)):
            push(u, v)
    while heap and int(mesh.alive.sum()) > target_faces:
        _, u, v, ver_u, ver_v = heapq.heappop(heap)
        if ver_u != mesh.version[u] or ver_v != mesh.version[v] or not mesh.vert_faces[u]:
            continue
        if not mesh.can_collapse(u, v, min_cos=min_cos):
            continue
        mesh.collapse(u, v)
        for w in sorted(mesh.neighbours(v)):
            push(w, v)
            push(v, w)
    return mesh.faces[mesh.alive].astype(np.int32)
