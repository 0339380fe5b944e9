"""Meshes for the renderer tests and benchmark: a synthetic hand-sized mesh and the default hand.

Everything here is plain numpy and deterministic.
"""

import pathlib

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_HAND_NPZ = REPO / "hand_jax" / "assets" / "default_hand_right.npz"


def _uv_ellipsoid(segments: int, rings: int, radii, centre, axis_angle_z: float = 0.0):
    """Closed UV ellipsoid: V = segments * (rings - 1) + 2, F = 2 * segments * (rings - 1)."""
    theta = np.linspace(0.0, np.pi, rings + 1)[1:-1]  # interior latitudes
    phi = np.linspace(0.0, 2 * np.pi, segments, endpoint=False)
    st, ct = np.sin(theta)[:, None], np.cos(theta)[:, None]
    ring = np.stack(
        [st * np.cos(phi), st * np.sin(phi), np.broadcast_to(ct, (rings - 1, segments))], -1
    ).reshape(-1, 3)
    verts = np.concatenate([[[0, 0, 1]], ring, [[0, 0, -1]]])
    c, s = np.cos(axis_angle_z), np.sin(axis_angle_z)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    # the poles' axis (z) becomes the image's y axis; radii are (x, y, z), then turn about z
    verts = (verts[:, [0, 2, 1]] * np.asarray(radii)) @ rot.T + np.asarray(centre)
    faces = []
    n_inner = rings - 1
    top, bottom = 0, 1 + n_inner * segments
    for j in range(segments):
        k = (j + 1) % segments
        faces.append([top, 1 + j, 1 + k])
        faces.append([bottom, 1 + (n_inner - 1) * segments + k, 1 + (n_inner - 1) * segments + j])
        for r in range(n_inner - 1):
            a, b = 1 + r * segments + j, 1 + r * segments + k
            c2, d = a + segments, b + segments
            faces += [[a, c2, b], [b, c2, d]]
    return verts, np.asarray(faces)


def synthetic_hand_mesh():
    """A hand-sized closed mesh (palm + 5 fingers of ellipsoids), 776 verts, 1528 faces, metres.

    Model frame: x right, y down (fingers point to -y), z away from the camera; about 19 cm
    long, centred near the origin.
    """
    parts = [(22, 13, (0.045, 0.05, 0.015), (0.0, 0.02, 0.0), 0.0)]  # palm
    for dx, length, angle in [(-0.03, 0.035, 0.1), (-0.01, 0.045, 0.02), (0.01, 0.048, -0.02),
                              (0.03, 0.042, -0.08)]:  # fmt: skip
        parts.append((10, 11, (0.009, length, 0.009), (dx, -0.03 - length * 0.8, 0.0), angle))
    parts.append((10, 11, (0.01, 0.035, 0.01), (-0.055, 0.0, 0.005), 0.9))  # thumb
    verts, faces, offset = [], [], 0
    for segments, rings, radii, centre, angle in parts:
        v, f = _uv_ellipsoid(segments, rings, radii, centre, angle)
        verts.append(v)
        faces.append(f + offset)
        offset += len(v)
    return np.concatenate(verts).astype(np.float32), np.concatenate(faces).astype(np.int32)


def load_default_hand():
    """The default hand's rest mesh (v_template [V, 3] metres, faces [F, 3]) or None if absent."""
    if not DEFAULT_HAND_NPZ.exists():
        return None
    with np.load(DEFAULT_HAND_NPZ, allow_pickle=False) as data:
        return data["v_template"].astype(np.float32), data["faces"].astype(np.int32)


def rotation(rx: float, ry: float, rz: float) -> np.ndarray:
    """Rotation matrix R = Rz @ Ry @ Rx from angles in radians."""
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    mx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    my = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    mz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return mz @ my @ mx


def hand_in_crop(verts, image_size: int, *, rot=(0.0, 0.0, 0.0), fill: float = 0.85):
    """Screen vertices [V, 3] (u, v, depth) of a mesh rotated and fitted into a square crop.

    An orthographic view (weak perspective) scaled so that the mesh's larger screen extent is
    ``fill * image_size`` pixels, centred; depth = rotated z + 1 (positive, metres).
    """
    v = np.asarray(verts, np.float64) @ rotation(*rot).T
    centre = 0.5 * (v.min(0) + v.max(0))
    v = v - centre
    extent = np.max(v.max(0)[:2] - v.min(0)[:2])
    scale = fill * image_size / extent
    uv = v[:, :2] * scale + image_size / 2.0
    return np.concatenate([uv, v[:, 2:] + 1.0], axis=1).astype(np.float32)


def random_mesh(rng: np.random.Generator, num_faces: int, image_size: int, *, size: float = 6.0):
    """Random triangle soup in an image: verts [3F, 3] (u, v, depth in [1, 2]), faces [F, 3]."""
    centres = rng.uniform(0.1 * image_size, 0.9 * image_size, (num_faces, 1, 2))
    offsets = rng.normal(0.0, size / 2, (num_faces, 3, 2))
    uv = (centres + offsets).reshape(-1, 2)
    z = rng.uniform(1.0, 2.0, (3 * num_faces, 1))
    faces = np.arange(3 * num_faces).reshape(num_faces, 3)
    return np.concatenate([uv, z], 1).astype(np.float32), faces.astype(np.int32)
