"""New training triplets from a fitted hand: new viewpoints, new shapes, exact labels.

A fitted hand is its global rotation G (camera frame), articulation (45 axis-angle values),
betas and per-vertex colours (``hand_jax.augment.texture``). ``draw_views`` and
``render_posed`` turn it into new samples: each rotates the hand about its root by a drawn
rotation R (azimuth about the camera's vertical axis, elevation about its horizontal axis, roll
about the optical axis), keeps the articulation, optionally draws new betas, places the camera
as the synthetic generator does (``synthetic_gen.place_camera``: the hand fills a drawn
fraction of the image), renders RGB with the vertex colours and Lambertian shading and the
amodal mask with the hard renderer, composites over a background, and computes the 2D/3D
labels from the same camera. The samples are in the synthetic format
(``hand_jax.data.schema``), so the training pipeline reads them with no new code.

Everything random comes from the ``numpy.random.Generator`` passed in; the same generator state
gives the same views.
"""

import dataclasses

import jax.numpy as jnp
import numpy as np

from hand_jax.data import appearance, files, procedural, schema, synthetic_gen
from hand_jax.geometry import rotations

BACKGROUNDS = ("procedural", "source")


@dataclasses.dataclass(frozen=True)
class ViewConfig:
    """How new views are drawn (all recorded in the augmented dataset's manifest).

    Attributes:
      image_size: side S of the rendered samples, pixels.
      azimuth_deg, elevation_deg, roll_deg: (lo, hi) uniform ranges of the rotation about the
        camera's vertical axis, horizontal axis and optical axis, degrees, applied in that order.
      betas_prob: probability that a view draws new betas (else the fitted ones).
      betas_std, betas_clip: new betas ~ N(0, std) clipped to +-clip.
      fov_deg, fill, max_offset: the camera, as ``synthetic_gen.GeneratorConfig``.
      ambient: (lo, hi) ambient light; the directional light gets 1 - ambient (the colours
        already carry the source's shading, so the range is bright).
      background: ``"procedural"`` (the generator's backgrounds) or ``"source"`` (the source
        image with the hand filled in from its surroundings).
      pink_background_prob: as the generator's, for procedural backgrounds.
      degrade: blur, noise and JPEG as the generator does (its default config).
      visibility_tolerance: metres a keypoint may lie behind the surface and count as visible.
      supersample: antialiasing samples per pixel side.
    """

    image_size: int = 128
    azimuth_deg: tuple[float, float] = (-90.0, 90.0)
    elevation_deg: tuple[float, float] = (-60.0, 60.0)
    roll_deg: tuple[float, float] = (-180.0, 180.0)
    betas_prob: float = 0.5
    betas_std: float = 1.0
    betas_clip: float = 2.5
    fov_deg: tuple[float, float] = (35.0, 65.0)
    fill: tuple[float, float] = (0.45, 0.85)
    max_offset: float = 0.12
    ambient: tuple[float, float] = (0.55, 0.85)
    background: str = "procedural"
    pink_background_prob: float = 0.5
    degrade: bool = True
    visibility_tolerance: float = 0.025
    supersample: int = 2

    def __post_init__(self):
        if self.background not in BACKGROUNDS:
            raise ValueError(f"ViewConfig: background={self.background!r}; expected {BACKGROUNDS}")
        lo, hi = synthetic_gen.MIN_IMAGE_SIZE, synthetic_gen.MAX_IMAGE_SIZE
        if not synthetic_gen.is_int(self.image_size) or not lo <= self.image_size <= hi:
            raise ValueError(f"ViewConfig: image_size={self.image_size!r}: expected {lo} .. {hi}")
        synthetic_gen.check_fields(self)


def _axis_rotation(axis: int, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    i, j = [k for k in range(3) if k != axis]
    out = np.eye(3)
    out[i, i], out[i, j], out[j, i], out[j, j] = c, -s, s, c
    return out


def view_rotation(azimuth: float, elevation: float, roll: float) -> np.ndarray:
    """[3, 3] camera-frame rotation: azimuth about y, then elevation about x, then roll about z
    (radians; OpenCV camera frame: x right, y down, z forward)."""
    return _axis_rotation(2, roll) @ _axis_rotation(0, elevation) @ _axis_rotation(1, azimuth)


def draw_view(rng: np.random.Generator, cfg: ViewConfig) -> np.ndarray:
    """Draw one view rotation [3, 3] from ``cfg``'s ranges."""
    angles = [np.deg2rad(rng.uniform(*r)) for r in (cfg.azimuth_deg, cfg.elevation_deg,
                                                    cfg.roll_deg)]  # fmt: skip
    return view_rotation(*angles)


def fill_hole(image: np.ndarray, hole: np.ndarray, *, iterations: int = 200) -> np.ndarray:
    """Fill ``hole`` (bool [S, S]) of a float image [S, S, 3] from its surroundings.

    Starts from the mean of the pixels outside the hole, then relaxes every hole pixel towards
    the mean of its four neighbours (a discrete harmonic fill); pixels outside are unchanged.
    """
    out = np.array(image, np.float64)
    if not hole.any():
        return out
    out[hole] = out[~hole].mean(axis=0) if (~hole).any() else 0.5
    for _ in range(iterations):
        p = np.pad(out, ((1, 1), (1, 1), (0, 0)), mode="edge")
        avg = (p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:]) / 4
        out[hole] = avg[hole]
    return out


def _background(rng, cfg: ViewConfig, source_background) -> np.ndarray:
    if cfg.background == "source" and source_background is not None:
        return source_background
    return procedural.background(rng, cfg.image_size, pink_prob=cfg.pink_background_prob)


def _betas(rng, fitted: np.ndarray, cfg: ViewConfig) -> np.ndarray:
    if rng.uniform() < cfg.betas_prob:
        return np.clip(rng.normal(0, cfg.betas_std, fitted.shape), -cfg.betas_clip, cfg.betas_clip)
    return fitted


def _pose48(global_mat: np.ndarray, articulation: np.ndarray) -> np.ndarray:
    root = np.asarray(rotations.matrix_to_axis_angle(jnp.asarray(global_mat, jnp.float32)))
    return np.concatenate([root, np.asarray(articulation, np.float32).reshape(45)])


def _finish(rng, cfg, pose, betas, transl, K, keypoints, rgb, alpha, depth, background, *, sid):
    """One view's sample: composite, degrade, labels from the same camera."""
    full = alpha >= 0.5
    kp3d = (keypoints.astype(np.float64) + transl).astype(np.float32)
    kp2d = files.project(kp3d.astype(np.float64), K.astype(np.float32).astype(np.float64))
    image = rgb + (1.0 - alpha[..., None]) * background
    if cfg.degrade:
        image = appearance.degrade(rng, image, synthetic_gen.GeneratorConfig())
    else:
        image = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
    visible = synthetic_gen.visible_keypoints(
        kp2d, kp3d, np.zeros_like(full), full, depth, tolerance=cfg.visibility_tolerance
    )
    return schema.make_sample(
        id=sid, image=image, mask=full, mask_full=full, keypoints_2d=kp2d, keypoints_3d=kp3d,
        keypoint_visible=visible, K=K, mano_pose=pose, mano_betas=betas, mano_trans=transl,
    )  # fmt: skip


def render_posed(model, colours, views: list[dict], rng, cfg: ViewConfig, *, id_prefix: str):
    """Render a coloured hand in given poses and cameras as samples.

    Args:
      model: the hand model.
      colours: [V, 3] vertex colours in [0, 1].
      views: per sample ``pose`` [48] (axis-angle, global rotation first), ``betas`` [B],
        ``K`` [3, 3], ``transl`` [3] metres, ``light`` [3] unit (towards the light, camera
        frame), ``ambient`` (1: the colours unlit), ``background`` [S, S, 3] float in [0, 1].
      rng: draws the degradation (``cfg.degrade``).
      cfg: the view settings (image size, supersampling, visibility tolerance, degradation).
      id_prefix: sample ids are ``f"{id_prefix}/{k}"``.

    Returns:
      One sample per view (``schema.make_sample``), labels from the view's camera.
    """
    n = len(views)
    posed = synthetic_gen.forward_batch(
        model, jnp.asarray(np.stack([v["pose"] for v in views]), jnp.float32),
        jnp.asarray(np.stack([v["betas"] for v in views]), jnp.float32),
    )  # fmt: skip
    verts, keypoints = np.asarray(posed.verts), np.asarray(posed.keypoints)
    transl = np.stack([np.asarray(v["transl"], np.float64) for v in views])
    colours = np.asarray(colours, np.float32)
    rgb, alpha, depth = (np.asarray(x, np.float64) for x in synthetic_gen.render_batch(
        jnp.asarray(verts + transl[:, None], jnp.float32), jnp.asarray(model.faces),
        jnp.asarray(np.stack([v["K"] for v in views]), jnp.float32),
        jnp.asarray(np.broadcast_to(colours, (n, *colours.shape))),
        jnp.asarray(np.stack([v["light"] for v in views]), jnp.float32),
        jnp.asarray([v["ambient"] for v in views], jnp.float32),
        image_size=cfg.image_size, supersample=cfg.supersample,
    ))  # fmt: skip
    return [
        _finish(
            rng,
            cfg,
            np.asarray(v["pose"], np.float32),
            np.asarray(v["betas"], np.float32),
            transl[k],
            np.asarray(v["K"], np.float32),
            keypoints[k],
            rgb[k],
            alpha[k],
            depth[k],
            v["background"],
            sid=f"{id_prefix}/{k}",
        )  # fmt: skip
        for k, v in enumerate(views)
    ]


def draw_views(model, fitted: dict, rng, cfg: ViewConfig, *, count: int) -> list[dict]:
    """Draw ``count`` new views of a fitted hand (``render_posed``'s ``views``).

    Args:
      model: the hand model the fit used.
      fitted: ``global_mat`` [3, 3] (camera frame), ``articulation`` [45], ``betas``
        [model.num_betas]; ``background`` [S, S, 3] float in [0, 1] for ``cfg.background ==
        "source"``.
      rng: the random generator. Draw order per view: rotation, betas, field of view, fill,
        offset, light, ambient, [background].
      cfg: the view distribution.
      count: number of views.
    """
    views = []
    for _ in range(count):
        R = draw_view(rng, cfg)
        pose = _pose48(R @ np.asarray(fitted["global_mat"]), fitted["articulation"])
        betas = _betas(rng, np.asarray(fitted["betas"], np.float64), cfg)
        fov = np.deg2rad(rng.uniform(*cfg.fov_deg))
        fill, offset = rng.uniform(*cfg.fill), rng.uniform(-1, 1, 2) * cfg.max_offset
        light = rng.normal(size=3)
        light[2] = -abs(light[2]) - 0.5  # from the camera's side
        ambient = rng.uniform(*cfg.ambient)
        verts = np.asarray(synthetic_gen.forward_batch(
            model, jnp.asarray(pose[None], jnp.float32), jnp.asarray(betas[None], jnp.float32)
        ).verts[0], np.float64)  # fmt: skip
        K, transl = synthetic_gen.place_camera(
            verts, fov=fov, fill=fill, offset=offset * cfg.image_size, size=cfg.image_size
        )
        views.append({"pose": pose, "betas": betas, "K": K, "transl": transl,
                      "light": light / np.linalg.norm(light), "ambient": ambient,
                      "background": _background(rng, cfg, fitted.get("background"))})  # fmt: skip
    return views
