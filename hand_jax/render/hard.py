"""Hard renderer: z-buffered triangles, perspective-correct barycentrics, Lambertian shading.

Screen space as in the package doc (pixels, pixel centres at integer + 0.5, third column depth,
nearer is smaller). A pixel belongs to the nearest face whose closed triangle holds the pixel
centre (edges shared by two faces are covered by both; ties go to the lower face index).
Zero-area faces and faces with a vertex at depth <= ``near`` never cover anything.

Shading (camera frame): ``rgb = colour * (ambient + diffuse * max(0, n . l))`` with the
interpolated vertex normal ``n`` turned towards the camera (two-sided lighting) and ``l`` the unit
direction towards a directional light. Antialiasing renders ``supersample`` x larger and
averages ``supersample^2`` samples per pixel (RGB composited over the background, mask becomes
coverage, depth the mean of the covered samples).

The face search uses the same binning and chunked loops as the soft rasterizer, without blur
margin. Gradients flow only through the interpolation (barycentrics, colours, normals) of the
winning face: this renderer is for data generation and overlays, not for fitting.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from hand_jax.camera import image_hw, project_perspective
from hand_jax.render import binning, pairs, primitives, soft

_K = primitives.NUM_PARAMS


class HardRender(NamedTuple):
    """Output of ``render_hard`` for one image.

    Attributes:
      rgb: [H, W, 3] shaded colour composited over the background, in the colours' range.
      mask: [H, W] coverage in [0, 1] (exactly 0 or 1 without supersampling).
      depth: [H, W] depth of the visible surface, units of the depth column; 0 where empty.
    """

    rgb: jax.Array
    mask: jax.Array
    depth: jax.Array


def vertex_normals(verts, faces):
    """Area-weighted unit vertex normals (faces counter-clockwise seen from outside).

    Args:
      verts: [V, 3] vertices, camera (or model) frame.
      faces: [F, 3] int vertex indices.

    Returns:
      [V, 3] unit normals in the frame of ``verts`` (zero for isolated vertices).
    """
    tri = verts[faces]
    n = jnp.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # [F, 3], |n| = 2 area
    acc = jnp.zeros_like(verts).at[faces.reshape(-1)].add(jnp.repeat(n, 3, axis=0))
    norm2 = jnp.sum(acc**2, axis=-1, keepdims=True)
    ok = norm2 > 0
    return jnp.where(ok, acc * jax.lax.rsqrt(jnp.where(ok, norm2, 1.0)), 0.0)


def _covered_depth(px, py, p, perspective):
    """Depth of pairs whose closed triangle holds the pixel centre, +inf elsewhere: [C, P]."""
    cols = primitives.columns(p[:, :_K], axis=1)
    _, edge = primitives.edge_terms(px, py, cols)
    c0, c1, c2 = edge
    closed = ((c0 >= 0) & (c1 >= 0) & (c2 >= 0)) | ((c0 <= 0) & (c1 <= 0) & (c2 <= 0))
    closed &= cols[15] != 0
    b = primitives.barycentrics(edge, cols, clip=False)
    depth = _interp_depth(b, p[:, None, _K : _K + 3], perspective)[1]
    return jnp.where(closed, depth, jnp.inf)


def _interp_depth(b, z, perspective):
    """Barycentrics (perspective-corrected if asked) and depth; z [..., 3] per-vertex depths."""
    if perspective:
        inv_z = tuple(1.0 / jnp.where(z[..., k] > 0, z[..., k], 1.0) for k in range(3))
        return primitives.perspective_correct(b, inv_z)
    return b, b[0] * z[..., 0] + b[1] * z[..., 1] + b[2] * z[..., 2]


def _zbuf_kernel(px, py, tile, p, extra, *, perspective):
    del tile, extra
    return _covered_depth(px, py, p, perspective)


def _winner_kernel(px, py, tile, p, zbuf, *, perspective):
    depth = _covered_depth(px, py, p, perspective)
    best = pairs.gather_tiles(zbuf, tile, -jnp.inf)
    face = jnp.broadcast_to(p[:, -1:], depth.shape)
    return jnp.where((depth == best) & jnp.isfinite(depth), face, jnp.inf)


def visible_faces(xy, z, valid, *, hw, perspective, tile_size, capacity, chunk):
    """Index of the visible face at each pixel centre ([H, W] int32, F where none) and info."""
    num_faces = xy.shape[0]
    capacity = soft.round_capacity(capacity, num_faces, hw, tile_size, chunk, 0.0)
    bins = binning.bin_faces(xy, valid, 0.0, image_size=hw, tile_size=tile_size, capacity=capacity)
    ids = jnp.arange(num_faces, dtype=xy.dtype)[:, None]
    params = jax.lax.stop_gradient(jnp.concatenate([primitives.face_params(xy), z, ids], 1))
    loop = (hw, tile_size, chunk, params)
    idx = (bins.face, bins.tile, bins.num_pairs)
    kw = dict(perspective=perspective)
    zbuf = pairs.pair_reduce(
        functools.partial(_zbuf_kernel, **kw), *loop, (), *idx, op="min", init=jnp.inf
    )
    winner = pairs.pair_reduce(
        functools.partial(_winner_kernel, **kw), *loop, zbuf, *idx, op="min", init=jnp.inf
    )
    winner = binning.tiles_to_image(winner, image_size=hw, tile_size=tile_size)
    face = jnp.where(jnp.isfinite(winner), winner, num_faces).astype(jnp.int32)
    return face, soft.RasterInfo(bins.num_pairs, bins.overflow)


def _pixel_grid(hw, dtype):
    h, w = hw
    y, x = jnp.meshgrid(jnp.arange(h, dtype=dtype), jnp.arange(w, dtype=dtype), indexing="ij")
    return x + 0.5, y + 0.5


def _shade(face, xy, z, colors, normals, light, *, hw, perspective, ambient, diffuse):
    """Interpolate colour and normal of the visible face per pixel; Lambertian shading."""
    safe = jnp.minimum(face, xy.shape[0] - 1)
    px, py = _pixel_grid(hw, xy.dtype)
    cols = tuple(c[safe] for c in primitives.columns(primitives.face_params(xy), axis=1))
    cols = tuple(c[..., 0] for c in cols)
    _, edge = primitives.edge_terms(px, py, cols)
    b = primitives.barycentrics(edge, cols, clip=True)
    b, depth = _interp_depth(b, z[safe], perspective)

    def interp(values):  # [F, 3, C] -> [H, W, C]
        v = values[safe]
        return sum(b[k][..., None] * v[..., k, :] for k in range(3))

    rgb = interp(colors)
    if normals is not None:
        n = interp(normals)
        n = n * jax.lax.rsqrt(jnp.maximum(jnp.sum(n**2, -1, keepdims=True), 1e-20))
        n = jnp.where(n[..., 2:] > 0, -n, n)  # face the camera (two-sided lighting)
        lambert = jnp.maximum(jnp.sum(n * light, -1, keepdims=True), 0.0)
        rgb = rgb * (ambient + diffuse * lambert)
    return rgb, depth


def render_hard(
    verts_px,
    faces,
    vert_colors=None,
    *,
    image_size,
    vert_normals=None,
    light_dir=(0.0, 0.0, -1.0),
    ambient=0.4,
    diffuse=0.6,
    background=0.0,
    near: float | None = 0.0,
    perspective_correct: bool = True,
    supersample: int = 1,
    tile_size: int = 8,
    capacity: int | None = None,
    chunk: int = 1024,
    return_info: bool = False,
):
    """Render a mesh with a z-buffer and Lambertian shading.

    Args:
      verts_px: [V, 3] screen vertices (u, v pixels; depth, > 0 for ``perspective_correct``),
        e.g. ``camera.project_perspective(verts, K, with_depth=True)``; [V, 2] draws in index
        order with no depth test meaning (all depths 1).
      faces: [F, 3] int vertex indices.
      vert_colors: [V, 3] per-vertex colours (e.g. RGB in [0, 1]); None = white.
      image_size: ``(H, W)`` or int, pixels (static).
      vert_normals: [V, 3] unit normals in the camera frame (``vertex_normals``); None = unlit
        (the colours as they are).
      light_dir: [3] direction towards the light, camera frame (default: from the camera).
      ambient, diffuse: light intensities.
      background: [3] or scalar background colour.
      near: cull faces with a vertex depth <= near (None: no culling).
      perspective_correct: interpolate with 1 / depth (perspective); False for affine screens.
      supersample: antialiasing factor s (static int): s^2 samples per pixel.
      tile_size, capacity, chunk: binning (as ``soft_silhouette``, capacity at the supersampled
        size; static).
      return_info: also return a ``RasterInfo``.

    Returns:
      ``HardRender(rgb [H, W, 3], mask [H, W], depth [H, W])``; with ``return_info``,
      ``(HardRender, RasterInfo)``.
    """
    h, w = image_hw(image_size)
    s = int(supersample)
    if s < 1:
        raise ValueError(f"supersample must be an int >= 1; got {supersample!r}")
    verts_px = jnp.asarray(verts_px)
    if verts_px.ndim == 2 and verts_px.shape[-1] == 2:
        verts_px = jnp.concatenate([verts_px, jnp.ones_like(verts_px[:, :1])], axis=1)
    xy, z, valid = soft.face_screen(verts_px, faces, near=near)
    dtype = xy.dtype
    colors = _per_face(vert_colors, faces, verts_px.shape[0], dtype, "vert_colors", 1.0)
    normals = None
    if vert_normals is not None:
        normals = _per_face(vert_normals, faces, verts_px.shape[0], dtype, "vert_normals", 0.0)
    hw = (h * s, w * s)
    face, info = visible_faces(
        xy * s, z, valid, hw=hw, perspective=perspective_correct, tile_size=tile_size,
        capacity=capacity, chunk=chunk,
    )  # fmt: skip
    light = jnp.asarray(light_dir, dtype)
    light = light / jnp.linalg.norm(light)
    rgb, depth = _shade(
        face, xy * s, z, colors, normals, light, hw=hw, perspective=perspective_correct,
        ambient=ambient, diffuse=diffuse,
    )  # fmt: skip
    mask = (face < xy.shape[0]).astype(dtype)
    rgb = jnp.where(mask[..., None] > 0, rgb, jnp.asarray(background, dtype))
    depth = jnp.where(mask > 0, depth, 0.0)
    out = _downsample(rgb, mask, depth, s)
    return (out, info) if return_info else out


def _per_face(values, faces, num_verts, dtype, name, default):
    """Per-face vertex values [F, 3, 3] from [V, 3] (``default`` everywhere if None)."""
    faces = jnp.asarray(faces)
    if values is None:
        return jnp.full((faces.shape[0], 3, 3), default, dtype)
    values = jnp.asarray(values, dtype)
    if values.shape != (num_verts, 3):
        raise ValueError(f"{name} must have shape [V, 3] = [{num_verts}, 3]; got {values.shape}")
    return values[faces]


def _downsample(rgb, mask, depth, s):
    """Average s x s samples: RGB and coverage by mean, depth by mean over covered samples."""
    if s == 1:
        return HardRender(rgb=rgb, mask=mask, depth=depth)
    h, w = mask.shape[0] // s, mask.shape[1] // s

    def pool(x):
        return x.reshape(h, s, w, s, *x.shape[2:]).mean(axis=(1, 3))

    cover = pool(mask)
    depth = pool(depth * mask) / jnp.maximum(cover, 1e-12)
    return HardRender(rgb=pool(rgb), mask=cover, depth=jnp.where(cover > 0, depth, 0.0))


def render_mesh(verts, faces, vert_colors=None, *, K, image_size, **kwargs):
    """Project camera-frame vertices with ``K``, compute normals, and ``render_hard``.

    Args:
      verts: [V, 3] camera-frame vertices (OpenCV frame), metres.
      faces: [F, 3] int vertex indices (counter-clockwise seen from outside).
      vert_colors: [V, 3] per-vertex colours; None = white.
      K: [3, 3] intrinsics (pixel centres at integer + 0.5).
      image_size: ``(H, W)`` or int, pixels (static).
      **kwargs: the other keywords of ``render_hard`` (light, background, supersample, ...).

    Returns:
      ``HardRender(rgb, mask, depth)`` with depth in metres (camera z).
    """
    screen = project_perspective(verts, K, with_depth=True)
    normals = vertex_normals(jnp.asarray(verts), jnp.asarray(faces))
    return render_hard(
        screen, faces, vert_colors, image_size=image_size, vert_normals=normals, **kwargs
    )
