"""Plain-numpy references for the renderers: loops over faces (and, in the scalar versions,
over pixels), float64, no binning, no JAX.

Conventions as in ``hand_jax.render``: pixels (x right, y down), pixel (i, j) centred at
(i + 0.5, j + 0.5); D = sigmoid(sign * d2 / sigma); alpha = 1 - prod_f (1 - D).
The silhouette's VJP is derived by hand (not by autodiff): with T = prod (1 - D),
d alpha / d x_f = T * D_f for x_f = sign * d2_f / sigma, and for the closest point
q = a + t (b - a) of the closest edge (t clamped to [0, 1]),
d d2 / d a = -2 (1 - t) (p - q), d d2 / d b = -2 t (p - q).
"""

import numpy as np


def _softplus(x):
    return np.logaddexp(0.0, x)


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def pixel_centres(h: int, w: int):
    """[H * W, 2] pixel centres (x, y), row-major."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x.ravel() + 0.5, y.ravel() + 0.5], axis=-1).astype(np.float64)


def _segment(p, a, b):
    """Squared distance from points p [P, 2] to segment ab, and clamped t [P]."""
    e = b - a
    len2 = e @ e
    if len2 > 1e-12:
        t = np.clip((p - a) @ e / len2, 0.0, 1.0)
    else:
        t = np.zeros(len(p))
    q = a + t[:, None] * e
    return np.sum((p - q) ** 2, axis=-1), t, q


def face_terms(p, tri):
    """For pixels p [P, 2] and one triangle tri [3, 2]: d2 [P], inside [P], edge k [P], t, q."""
    d2s, ts, qs, cross = [], [], [], []
    for k in range(3):
        a, b = tri[k], tri[(k + 1) % 3]
        d2, t, q = _segment(p, a, b)
        d2s.append(d2)
        ts.append(t)
        qs.append(q)
        e = b - a
        cross.append(e[0] * (p[:, 1] - a[1]) - e[1] * (p[:, 0] - a[0]))
    cross = np.stack(cross)
    inside = np.all(cross > 0, axis=0) | np.all(cross < 0, axis=0)
    d2s = np.stack(d2s)
    k = np.argmin(d2s, axis=0)
    rows = np.arange(len(p))
    return d2s[k, rows], inside, k, np.stack(ts)[k, rows], np.stack(qs)[k, rows]


def _valid_faces(verts, faces, near):
    verts = np.asarray(verts, np.float64)
    tri = verts[faces]
    valid = np.all(np.isfinite(tri), axis=(1, 2))
    if verts.shape[1] == 3 and near is not None:
        valid &= np.all(tri[..., 2] > near, axis=-1)
    return verts, valid


def soft_silhouette(verts, faces, h, w, sigma, near=0.0):
    """Alpha [H, W] of the SoftRas silhouette, every pixel against every face."""
    verts, valid = _valid_faces(verts, faces, near)
    p = pixel_centres(h, w)
    log_t = np.zeros(len(p))
    for f, face in enumerate(faces):
        if not valid[f]:
            continue
        d2, inside, *_ = face_terms(p, verts[face, :2])
        log_t -= _softplus(np.where(inside, d2, -d2) / sigma)
    return (-np.expm1(log_t)).reshape(h, w)


def soft_silhouette_vjp(verts, faces, h, w, sigma, cotangent, near=0.0):
    """Gradient of sum(cotangent * alpha) w.r.t. verts [V, 2 or 3] (z gets 0), by hand."""
    verts, valid = _valid_faces(verts, faces, near)
    p = pixel_centres(h, w)
    alpha = soft_silhouette(verts, faces, h, w, sigma, near).ravel()
    trans = 1.0 - alpha
    g = np.asarray(cotangent, np.float64).ravel()
    grad = np.zeros_like(verts)
    for f, face in enumerate(faces):
        if not valid[f]:
            continue
        tri = verts[face, :2]
        d2, inside, k, t, q = face_terms(p, tri)
        sign = np.where(inside, 1.0, -1.0)
        x = sign * d2 / sigma
        g_d2 = g * trans * _sigmoid(x) * sign / sigma  # d alpha / d x = T * D
        r = p - q
        g_a = (g_d2 * -2.0 * (1.0 - t))[:, None] * r
        g_b = (g_d2 * -2.0 * t)[:, None] * r
        for kk in range(3):
            sel = k == kk
            grad[face[kk], :2] += g_a[sel].sum(0)
            grad[face[(kk + 1) % 3], :2] += g_b[sel].sum(0)
    return grad


def soft_silhouette_scalar(verts, faces, h, w, sigma):
    """The same silhouette with explicit loops over pixels and faces (tiny inputs only)."""
    verts = np.asarray(verts, np.float64)
    out = np.zeros((h, w))
    for j in range(h):
        for i in range(w):
            pt = np.array([[i + 0.5, j + 0.5]])
            trans = 1.0
            for face in faces:
                d2, inside, *_ = face_terms(pt, verts[face, :2])
                x = (d2[0] if inside[0] else -d2[0]) / sigma
                trans *= 1.0 - _sigmoid(x)
            out[j, i] = 1.0 - trans
    return out


def soft_rasterize(verts, faces, attrs, h, w, *, sigma, gamma, eps, near, far, background,
                   background_depth, perspective, tol):  # fmt: skip
    """SoftRas alpha [H, W], depth [H, W] and attributes [H, W, A], every pixel x every face.

    Faces take part in a pixel's colour and depth where D >= tol (SoftRas's threshold).
    """
    verts, valid = _valid_faces(verts, faces, near)
    attrs = np.asarray(attrs, np.float64)
    p = pixel_centres(h, w)
    z_near = 0.0 if near is None else near
    log_t = np.zeros(len(p))
    terms = []  # per face: log weight, depth, attributes
    for f, face in enumerate(faces):
        if not valid[f]:
            continue
        tri = verts[face]
        d2, inside, *_ = face_terms(p, tri[:, :2])
        x = np.where(inside, d2, -d2) / sigma
        log_t -= _softplus(x)
        bary = _clipped_barycentrics(p, tri[:, :2])  # [P, 3]
        z = tri[:, 2] if tri.shape[1] == 3 else np.zeros(3)
        if perspective:
            bary = bary / z
            depth = 1.0 / bary.sum(1)
            bary = bary * depth[:, None]
        else:
            depth = bary @ z
        log_w = -_softplus(-x) + (far - depth) / (far - z_near) / gamma
        log_w = np.where(_sigmoid(x) >= tol, log_w, -np.inf)
        terms.append((log_w, depth, bary @ attrs[face]))
    log_ws = np.stack([t[0] for t in terms] + [np.full(len(p), eps / gamma)])
    weights = np.exp(log_ws - log_ws.max(0))
    weights /= weights.sum(0)
    depth = weights[-1] * background_depth
    out = weights[-1][:, None] * np.broadcast_to(background, (len(p), attrs.shape[1]))
    for wf, (_, d, a) in zip(weights[:-1], terms, strict=True):
        depth = depth + wf * d
        out = out + wf[:, None] * a
    alpha = -np.expm1(log_t)
    return alpha.reshape(h, w), depth.reshape(h, w), out.reshape(h, w, -1)


def _clipped_barycentrics(p, tri):
    """Barycentrics [P, 3] of pixels in a triangle, clamped to >= 0 and renormalised."""
    a, b, c = tri
    area = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    if abs(area) <= 1e-12:
        return np.full((len(p), 3), 1.0 / 3.0)

    def cross(u, v, q):
        return (v[0] - u[0]) * (q[:, 1] - u[1]) - (v[1] - u[1]) * (q[:, 0] - u[0])

    bary = np.stack([cross(b, c, p), cross(c, a, p), cross(a, b, p)], axis=1) / area
    bary = np.maximum(bary, 0.0)
    total = bary.sum(1, keepdims=True)
    return np.where(total > 0, bary / np.where(total > 0, total, 1.0), 1.0 / 3.0)


def hard_zbuffer(verts, faces, h, w, *, perspective, near=0.0):
    """Visible face per pixel ([H, W], -1 where none) and its depth ([H, W], 0 where none).

    A pixel centre belongs to a face if it lies in the closed triangle (zero-area faces never);
    the nearest depth wins, ties to the lower face index.
    """
    verts, valid = _valid_faces(verts, faces, near)
    p = pixel_centres(h, w)
    best = np.full(len(p), np.inf)
    face_map = np.full(len(p), -1)
    for f, face in enumerate(faces):
        tri = verts[face]
        a, b, c = tri[:, :2]
        area = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
        if not valid[f] or area == 0:
            continue
        e = np.stack([
            (c[0] - b[0]) * (p[:, 1] - b[1]) - (c[1] - b[1]) * (p[:, 0] - b[0]),
            (a[0] - c[0]) * (p[:, 1] - c[1]) - (a[1] - c[1]) * (p[:, 0] - c[0]),
            (b[0] - a[0]) * (p[:, 1] - a[1]) - (b[1] - a[1]) * (p[:, 0] - a[0]),
        ], axis=1)  # fmt: skip
        inside = np.all(e >= 0, axis=1) | np.all(e <= 0, axis=1)
        bary = e / area
        if perspective:
            depth = 1.0 / (bary @ (1.0 / tri[:, 2]))
        else:
            depth = bary @ tri[:, 2]
        win = inside & (depth < best)
        best[win] = depth[win]
        face_map[win] = f
    depth = np.where(face_map >= 0, best, 0.0)
    return face_map.reshape(h, w), depth.reshape(h, w)


def count_pairs(verts, faces, h, w, tile, margin, near=0.0):
    """Number of (tile, face) pairs: tiles holding a pixel centre within the grown box."""
    verts, valid = _valid_faces(verts, faces, near)
    total = 0
    for f, face in enumerate(faces):
        if not valid[f]:
            continue
        lo = verts[face, :2].min(0) - margin
        hi = verts[face, :2].max(0) + margin
        xs = [i for i in range(w) if lo[0] <= i + 0.5 <= hi[0]]
        ys = [j for j in range(h) if lo[1] <= j + 0.5 <= hi[1]]
        total += len({x // tile for x in xs}) * len({y // tile for y in ys})
    return total
