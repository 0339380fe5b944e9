"""Skin shading beyond Lambertian, folded into the per-vertex colours the hard renderer shades.

The hard renderer (``hand_jax.render.hard``) draws ``c * (a + (1 - a) max(0, n . l))`` per pixel
from interpolated vertex colours ``c`` and normals ``n`` (two-sided: turned to the camera when
n_z > 0). This module only chooses ``c`` (Gouraud: every term is evaluated at the vertices):

    albedo = skin * (1 + blotch) * red tint where thin * nail mix * (1 - crease) * (1 - cavity)
    c = albedo * tint + (specular + translucency) / shade_v,   shade_v = a + (1 - a) max(0, n.l)

with ``shade_v`` the renderer's factor at the vertex, so that a vertex renders as
``albedo * tint * shade + specular + translucency``: the highlight (Blinn-Phong, in the light's
colour) and the light shining through thin parts are not darkened by the Lambertian factor.
"Thin" is the distance to the skeleton's nearest bone (fingers 5-8 mm, palm 10-15 mm); nails
(the back of each distal phalanx, by skinning weight) and flexion creases (the palm side of the
interphalangeal joints) are vertex sets of the rest pose; the cavity term is an ambient-occlusion
proxy of the posed mesh (how far neighbours within ``RADIUS`` rise above a vertex's tangent
plane: deep between fingers and in folds, zero on flat or convex skin).

Camera frame OpenCV (+x right, +y down, +z forward), metres; vertices [V, 3], keypoints [21, 3]
canonical order; colours [V, 3] RGB in [0, 1] (float32); unit light direction towards the light.
"""

from typing import NamedTuple

import numpy as np
from scipy.spatial import cKDTree

from hand_jax import keypoints as kp
from hand_jax.data.contact_sheet import skeleton_edges
from hand_jax.data.generator_config import GeneratorConfig

RADIUS = 0.012  # metres: neighbourhood of the cavity term and of the blotch smoothing
THIN = (0.005, 0.013)  # metres from the nearest bone: fully thin .. not thin
DISTAL_JOINTS = (15, 3, 6, 12, 9)  # MANO native distal joint of thumb, index, middle, ring, pinky
CREASE_JOINTS = (2, 3, 5, 6, 8, 9, 11, 12, 15)  # MANO native interphalangeal joints
CREASE_HALF_WIDTH = 0.0025  # metres along the bone
NAIL_COLOUR = np.array([0.86, 0.70, 0.68])  # the nail bed seen through the plate
TRANSLUCENT = np.array([1.0, 0.35, 0.25])  # colour of light scattered through skin
RED_TINT = np.array([0.3, -0.12, -0.22])  # albedo change per unit of thin translucency
MIN_SHADE = 0.05  # the additive terms are divided by the vertex's shade, at least this


def enabled(cfg: GeneratorConfig) -> bool:
    """Whether any of ``cfg``'s skin options is on (else the colours are skin * tint)."""
    return max(cfg.specular[1], cfg.subsurface[1], cfg.nail_crease, cfg.skin_blotch) > 0


def vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """[V, 3] area-weighted unit normals (outward for counter-clockwise faces), as the
    renderer's ``vertex_normals``; zero for isolated vertices."""
    tri = verts[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # [F, 3]
    acc = np.stack(
        [np.bincount(faces.ravel(), np.repeat(n[:, k], 3), len(verts)) for k in range(3)], -1
    )
    norm = np.linalg.norm(acc, axis=-1, keepdims=True)
    return np.where(norm > 0, acc / np.maximum(norm, 1e-30), 0.0)


def blinn_phong(normals, view, light, *, shininess: float) -> np.ndarray:
    """[V] Blinn-Phong highlight ``max(0, n . h)^shininess`` where n . l > 0 (else 0).

    Args:
      normals: [V, 3] unit normals; view: [V, 3] unit directions to the camera; light: [3]
        unit direction to the light; shininess: the exponent.
    """
    half = view + light
    half = half / np.maximum(np.linalg.norm(half, axis=-1, keepdims=True), 1e-12)
    lit = normals @ light > 0
    return np.where(lit, np.maximum(np.sum(normals * half, -1), 0.0) ** shininess, 0.0)


def bone_distance(verts: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """[V] distance (metres) from each vertex to the nearest bone of the 21-keypoint skeleton."""
    edges = np.array([(a, b) for a, b, _ in skeleton_edges()])
    p0, p1 = keypoints[edges[:, 0]], keypoints[edges[:, 1]]  # [E, 3]
    d = p1 - p0
    t = np.einsum("ved,ed->ve", verts[:, None] - p0, d) / np.maximum((d * d).sum(-1), 1e-12)
    closest = p0 + np.clip(t, 0, 1)[..., None] * d  # [V, E, 3]
    return np.linalg.norm(verts[:, None] - closest, axis=-1).min(axis=1)


class Regions(NamedTuple):
    """Per-model vertex data from the rest pose (``rest_regions``).

    Attributes:
      nail, crease: [V] weights in [0, 1].
      pair_i, pair_j: [M] vertex pairs closer than ``RADIUS`` at rest, both ways (the posed
        neighbourhoods of the cavity term and the blotch smoothing).
    """

    nail: np.ndarray
    crease: np.ndarray
    pair_i: np.ndarray
    pair_j: np.ndarray


def rest_regions(model) -> Regions:
    """Nail, crease and neighbour data of a hand model's rest pose.

    Nails: vertices skinned mostly to a distal joint, from 40 % to 98 % of the way from the
    joint to the fingertip, on the back of the phalanx (away from the palm). Creases: a
    Gaussian band (``CREASE_HALF_WIDTH``) across each ``CREASE_JOINTS`` joint on the palm
    side, on the vertices of the bones it joins.
    """
    verts = np.asarray(model.v_template, np.float64)
    weights = np.asarray(model.weights, np.float64)
    joints = np.asarray(model.J_regressor, np.float64) @ verts
    native = np.concatenate([joints, verts[list(model.tip_ids)]])
    palm = np.cross(joints[1] - joints[0], joints[7] - joints[0])  # out of a right palm
    palm = palm / np.linalg.norm(palm) * (-1.0 if model.side == "left" else 1.0)
    tips = kp.MANO_TO_CANONICAL[[4, 8, 12, 16, 20]]  # native index of each fingertip
    nail = np.zeros(len(verts))
    for joint, tip in zip(DISTAL_JOINTS, tips, strict=True):
        t, side = _along_and_side(verts, native[joint], native[tip], -palm)
        plate = _ramp(t, 0.4, 0.55) * (1 - _ramp(t, 0.88, 0.98)) * _ramp(side, 0.45, 0.7)
        nail = np.maximum(nail, weights[:, joint] * plate)
    crease = np.zeros(len(verts))
    for joint in CREASE_JOINTS:
        parent = kp.MANO_PARENTS[joint]
        t, side = _along_and_side(verts, joints[parent], joints[joint], palm)
        length = np.linalg.norm(joints[joint] - joints[parent])
        band = np.exp(-(((t - 1.0) * length / CREASE_HALF_WIDTH) ** 2))
        on_bone = np.clip(weights[:, joint] + weights[:, parent], 0, 1)
        crease = np.maximum(crease, band * on_bone * _ramp(side, 0.2, 0.5))
    pairs = cKDTree(verts).query_pairs(RADIUS, output_type="ndarray")
    i, j = np.concatenate([pairs[:, 0], pairs[:, 1]]), np.concatenate([pairs[:, 1], pairs[:, 0]])
    return Regions(nail, crease, i, j)


def _along_and_side(verts, start, end, towards):
    """Fraction along start -> end of each vertex and cosine of its radial offset with the
    part of ``towards`` across the bone."""
    axis = end - start
    t = (verts - start) @ axis / (axis @ axis)
    radial = verts - start - t[:, None] * axis
    across = towards - (towards @ axis) / (axis @ axis) * axis
    cos = (
        radial @ across / np.maximum(np.linalg.norm(radial, axis=1) * np.linalg.norm(across), 1e-12)
    )
    return t, cos


def _ramp(x, lo, hi):
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0)


def cavity(verts, normals, i, j) -> np.ndarray:
    """[V] ambient-occlusion proxy in [0, 1]: over the pairs (i [M], j [M]), the mean of how far
    vertex j rises above vertex i's tangent plane (cosine to i's outward normal, negatives
    dropped), weighted by 1 - distance / ``RADIUS`` (0 beyond)."""
    d = verts[j] - verts[i]  # [M, 3]
    dist = np.sqrt(np.einsum("mk,mk->m", d, d))
    w = np.maximum(1.0 - dist / RADIUS, 0.0)
    rise = np.maximum(np.einsum("mk,mk->m", normals[i], d) / np.maximum(dist, 1e-12), 0.0)
    total = np.bincount(i, w, len(verts))
    return np.bincount(i, w * rise, len(verts)) / np.maximum(total, 1e-12)


def smooth_noise(rng: np.random.Generator, i, j, num_verts: int) -> np.ndarray:
    """[V] unit-std noise averaged over the pairs (i [M], j [M]) and each vertex itself
    (blotches about ``RADIUS`` wide). Draws V normals."""
    z = rng.normal(size=num_verts)
    s = (z + np.bincount(i, z[j], num_verts)) / (1.0 + np.bincount(i, minlength=num_verts))
    return s / max(float(s.std()), 1e-12)


def _strengths(rng: np.random.Generator, cfg: GeneratorConfig):
    """(specular, shininess, subsurface, nail/crease) strengths; draws only for options on."""
    spec, shininess, sss, marks = 0.0, 1.0, 0.0, 0.0
    if cfg.specular[1] > 0:
        spec, shininess = rng.uniform(*cfg.specular), rng.uniform(*cfg.shininess)
    if cfg.subsurface[1] > 0:
        sss = rng.uniform(*cfg.subsurface)
    if cfg.nail_crease > 0:
        marks = cfg.nail_crease * rng.uniform(0.6, 1.0)
    return spec, shininess, sss, marks


def _albedo(rng, skin, verts, keypoints, frame, regions, sss, marks, cfg):
    """([V, 3] albedo, [V] thin translucency): blotches, red tint, nails, creases, cavities.

    ``frame`` is (outward normals, two-sided normals, view directions), each [V, 3].
    """
    outward, n, view = frame
    albedo = skin.astype(np.float64)
    if cfg.skin_blotch > 0:
        noise = smooth_noise(rng, regions.pair_i, regions.pair_j, len(verts))
        albedo = albedo * (1 + cfg.skin_blotch * noise[:, None])
    thin = np.zeros(len(verts))
    if sss > 0:
        thin = _ramp(-bone_distance(verts, keypoints), -THIN[1], -THIN[0]) * sss
        rim = (1.0 - np.abs(np.sum(n * view, 1))) ** 2
        albedo = albedo * (1 + (thin * (0.5 + 0.5 * rim))[:, None] * RED_TINT)
    if marks > 0:
        albedo = albedo + (marks * regions.nail)[:, None] * 0.5 * (NAIL_COLOUR - albedo)
        cav = cavity(verts, outward, regions.pair_i, regions.pair_j)
        dark = 0.35 * regions.crease + 0.8 * np.clip(cav - 0.05, 0, 0.5)
        albedo = albedo * (1 - marks * dark)[:, None]
    return np.clip(albedo, 0, 1), thin


def shade_colours(
    rng, skin, verts, keypoints, *, transl, faces, regions, light, ambient, tint, cfg
) -> np.ndarray:
    """The [V, 3] float32 colours to render for one hand (see the module docstring).

    Args:
      rng: the sample's generator. Draw order: [specular strength, shininess], [subsurface
        strength], [nail/crease strength], [blotch noise, V values]; each only when its option
        is on.
      skin: [V, 3] per-vertex skin colours (``procedural.skin_colours``).
      verts: [V, 3] posed vertices, camera orientation, before ``transl``; keypoints: [21, 3]
        the same hand's keypoints; transl: [3] the hand's translation, metres.
      faces: [F, 3] triangles; regions: ``rest_regions(model)``.
      light: [3] unit, towards the light; ambient: ambient level; tint: [3] light colour.
      cfg: the generator config (``specular``, ``shininess``, ``subsurface``, ``nail_crease``,
        ``skin_blotch``).
    """
    spec, shininess, sss, marks = _strengths(rng, cfg)
    outward = vertex_normals(verts, faces)
    n = np.where(outward[:, 2:] > 0, -outward, outward)  # the renderer's two-sided normal
    view = -(verts + transl)
    view /= np.linalg.norm(view, axis=1, keepdims=True)
    albedo, thin = _albedo(
        rng, skin, verts, keypoints, (outward, n, view), regions, sss, marks, cfg
    )
    n_l = n @ light
    direct = (1 - ambient) * np.asarray(tint, np.float64)  # [3] directional light's colour
    highlight = spec * (1 + marks * regions.nail) * blinn_phong(n, view, light, shininess=shininess)
    through = 0.5 * thin * np.maximum(-n_l, 0.0)
    extra = highlight[:, None] * direct + through[:, None] * TRANSLUCENT * albedo * direct
    shade = np.maximum(ambient + (1 - ambient) * np.maximum(n_l, 0.0), MIN_SHADE)
    return (albedo * tint + extra / shade[:, None]).astype(np.float32)


def shade_chunk(model, draws, skins, verts, keypoints, cams, cfg) -> list[np.ndarray]:
    """``shade_colours`` of a chunk of hands of ``model``, each drawing from its own generator.

    Args:
      model: the hand model (for ``rest_regions`` and its faces).
      draws: per hand, an object with ``rng``, ``light`` [3], ``ambient`` and ``tint`` [3].
      skins, verts, keypoints: per hand, as ``shade_colours``'s arguments.
      cams: per hand, (K [3, 3], transl [3] metres).
      cfg: the generator config.
    """
    regions, faces = rest_regions(model), np.asarray(model.faces)
    return [
        shade_colours(d.rng, c, v, k, transl=t, faces=faces, regions=regions, light=d.light,
                      ambient=d.ambient, tint=d.tint, cfg=cfg)
        for d, c, v, k, (_, t) in zip(draws, skins, verts, keypoints, cams, strict=True)
    ]  # fmt: skip
