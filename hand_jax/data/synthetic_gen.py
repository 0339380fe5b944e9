"""The synthetic hand generator: MANO (or the default hand) rendered by the hard renderer.

For sample ``index`` of ``split`` every random draw comes from
``numpy.random.default_rng([seed, SPLIT_CODES[split], index])``, in a fixed order, and the
jitted MANO and render calls always run on fixed-size chunks; so a sample is the same whatever
the shard size, the chunking or the process that makes it.

Frames: model frame fingers along -x, palm facing -y, thumb on +z (right hand); camera frame
OpenCV (+x right, +y down, +z forward), metres; images S x S pixels.

A sample: articulation from ``pose_prior`` (anatomical per-joint ranges), betas ~ N(0,
``betas_std``) clipped, a global rotation (``views``): ``"natural"`` (default) draws
photograph-like views from ``pose_prior.natural_rotation``: a mixture of canonical views (palm
to the camera 0.30, back 0.25, thumb side 0.15, little-finger side 0.10, egocentric 0.20 -
looking along the forearm at the back of the hand, fingers away and up in the image), each
tilted out of the image plane by up to ``view_tilt_deg`` (40) and rolled in the image plane by a
wrapped normal around "fingers up" (std ``view_roll_std_deg`` = 45) or, with probability
``view_any_roll_prob`` (0.1), uniformly; so the forearm mostly points down or sideways.
``"uniform"`` draws uniformly over SO(3) (every view, as generator 1.0). ``"narrow"`` draws from
a narrow cone around the palm-to-camera view (``pose_prior.narrow_rotation``: tilt up to
``narrow_tilt_deg`` = 30, roll std ``narrow_roll_std_deg`` = 20), like a laboratory dataset's
few frontal viewpoints (STB): the training set of the self-data augmentation study.

Then a pinhole camera with a random field of view whose distance makes the hand span a random
fraction of the image, the hand's centre offset from the image centre; a skin tone (continuous
over a wide range) with a smooth variation, a low-frequency mottling and per-vertex noise;
Lambertian shading under a random directional light (from the camera's side) of a slightly
warm or cool colour plus a random ambient level; a procedural background (gradients, noise,
1/f noise, random shapes); with probability ``forearm_prob`` a forearm, in skin or
(``sleeve_prob``) with a sleeve, behind the hand; with probability ``occluder_prob`` shapes
occluding part of the hand; a Gaussian blur (``blur_prob``), pixel noise, and a JPEG round trip
(``jpeg_prob``). The image appearance (light colour, forearm, compositing, degradations) is
composed in ``hand_jax.data.appearance``; the opt-in photo-like appearance (photographs behind
the hand, skin shading beyond Lambertian, cast shadows, camera effects) is
``generator_config.appearance_config("photo")``, off by default.
Labels are exact: ``keypoints_2d`` is the projection of ``keypoints_3d`` with ``K``;
``mask_full`` is the rendered hand (not the forearm), ``mask`` the hand minus the occluders.

Generator 1.0 is reproduced draw for draw by ``views="uniform"`` with the appearance options
off (``legacy_config``).

The parameters are ``GeneratorConfig``, defined with its validation, ``VIEWS`` and
``legacy_config`` in ``hand_jax.data.generator_config`` and re-exported here.
"""

import dataclasses
import functools
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from hand_jax import camera, mano, outputs
from hand_jax.data import appearance, files, pose_prior, procedural, schema, skin_shading, synthetic
from hand_jax.data.contact_sheet import save_contact_sheet
from hand_jax.data.generator_config import (  # noqa: F401 (re-exported)
    LEGACY,
    MAX_IMAGE_SIZE,
    MIN_IMAGE_SIZE,
    VIEWS,
    GeneratorConfig,
    check_fields,
    is_int,
    legacy_config,
)
from hand_jax.render.hard import render_hard, vertex_normals

GENERATOR_VERSION = "2.0"
SPLIT_CODES = {"train": 0, "test": 1, "val": 2}
NEAR = 0.05  # metres: the closest any vertex may come to the camera
CONTACT_SHEET = "contact_sheet.png"
DEFAULT_CONFIG = GeneratorConfig()  # frozen: safe as an argument default


@dataclasses.dataclass
class _Draw:
    """The random draws of one sample made before rendering."""

    rng: np.random.Generator
    pose: np.ndarray  # [48]
    betas: np.ndarray  # [B]
    fov: float
    fill: float
    offset: np.ndarray  # [2] pixels
    light: np.ndarray  # [3] unit, towards the light, camera frame
    ambient: float
    tint: np.ndarray | None = None  # [3] light colour


def global_rotation(rng: np.random.Generator, cfg: GeneratorConfig) -> np.ndarray:
    """Draw the [3] axis-angle global rotation of ``cfg.views``."""
    if cfg.views == "uniform":
        return pose_prior.uniform_rotation(rng)
    if cfg.views == "narrow":
        return pose_prior.narrow_rotation(
            rng, max_tilt_deg=cfg.narrow_tilt_deg, roll_std_deg=cfg.narrow_roll_std_deg
        )
    return pose_prior.natural_rotation(
        rng, max_tilt_deg=cfg.view_tilt_deg, roll_std_deg=cfg.view_roll_std_deg,
        any_roll_prob=cfg.view_any_roll_prob,
    )  # fmt: skip


def _draw(rng: np.random.Generator, axes, num_betas: int, cfg: GeneratorConfig) -> _Draw:
    articulation = pose_prior.sample_pose(rng, axes, independent_prob=cfg.independent_prob)
    pose = np.concatenate([global_rotation(rng, cfg), articulation])
    betas = np.clip(rng.normal(0, cfg.betas_std, num_betas), -cfg.betas_clip, cfg.betas_clip)
    fov = np.deg2rad(rng.uniform(*cfg.fov_deg))
    fill = rng.uniform(*cfg.fill)
    offset = rng.uniform(-cfg.max_offset, cfg.max_offset, 2) * cfg.image_size
    light = rng.normal(size=3)
    light[2] = -abs(light[2]) - 0.5  # from the camera's side (camera looks along +z)
    light /= np.linalg.norm(light)
    ambient = rng.uniform(*cfg.ambient)
    tint = appearance.light_colour(rng, cfg.light_tint)
    return _Draw(rng, pose, betas, fov, fill, offset, light, ambient, tint)


def place_camera(
    verts: np.ndarray, *, fov: float, fill: float, offset, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Choose K and the hand's translation for one sample.

    Args:
      verts: [V, 3] posed vertices (global rotation applied, no translation), metres.
      fov: horizontal field of view, radians.
      fill: fraction of the image side spanned by the hand's larger x/y extent.
      offset: [2] pixels, the hand's centre from the image centre.
      size: image side S.

    Returns:
      (K [3, 3], transl [3] metres) with the hand's bounding-box centre projecting to the
      image centre plus ``offset`` and every vertex at depth >= ``NEAR``.
    """
    f = size / 2 / np.tan(fov / 2)
    K = np.array([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1.0]])
    lo, hi = verts.min(axis=0), verts.max(axis=0)
    centre, extent = (lo + hi) / 2, max(hi[0] - lo[0], hi[1] - lo[1])
    z = max(f * extent / (fill * size), NEAR - (lo[2] - centre[2]))
    transl = np.array([offset[0] * z / f, offset[1] * z / f, z]) - centre
    return K, transl


def visible_keypoints(kp2d, kp3d, occluded, full, depth, *, tolerance: float) -> np.ndarray:
    """bool [21]: inside the image, not under an occluder, and not behind the hand's surface.

    Args:
      kp2d: [21, 2] pixels; kp3d: [21, 3] camera frame, metres.
      occluded, full: [S, S] bool occluder and amodal hand masks; depth: [S, S] the rendered
        surface's depth (metres).
      tolerance: metres a keypoint may lie behind the surface (joints sit inside the skin).
    """
    size = full.shape[0]
    cols, rows = np.floor(kp2d[:, 0]).astype(int), np.floor(kp2d[:, 1]).astype(int)
    inside = (cols >= 0) & (cols < size) & (rows >= 0) & (rows < size)
    c, r = np.clip(cols, 0, size - 1), np.clip(rows, 0, size - 1)
    surface = np.where(full[r, c], depth[r, c], np.inf)
    in_front = kp3d[:, 2] <= surface + tolerance
    return inside & ~occluded[r, c] & in_front


# Module-level jitted batch functions: compiled once per shape, shared by every Generator.
forward_batch = jax.jit(jax.vmap(mano.forward, in_axes=(None, 0, 0)))


@functools.partial(jax.jit, static_argnames=("image_size", "supersample"))
def render_batch(verts_cam, faces, K, colours, light, ambient, *, image_size, supersample):
    """Render [B] hands: verts_cam [B, V, 3] m, K [B, 3, 3], colours [B, V, 3], light [B, 3]."""

    def one(verts, k, colour, light_dir, amb):
        verts_px = camera.project_perspective(verts, k, with_depth=True)
        return render_hard(
            verts_px, faces, colour, image_size=(image_size, image_size),
            vert_normals=vertex_normals(verts, faces), light_dir=light_dir, ambient=amb,
            diffuse=1.0 - amb, near=NEAR / 2, supersample=supersample,
        )  # fmt: skip

    return jax.vmap(one)(verts_cam, K, colours, light, ambient)


class Generator:
    """Renders synthetic samples from a hand model, deterministically by (seed, split, index)."""

    def __init__(self, model: mano.HandModel, config: GeneratorConfig, *, seed: int):
        self.model = model
        self.config = config
        self.seed = int(seed)
        rest = mano.forward(model, jnp.zeros(48), jnp.zeros(model.num_betas))
        tips = np.asarray(rest.verts)[list(model.tip_ids)]
        self.axes = pose_prior.joint_axes(np.asarray(rest.joints), tips, side=model.side)
        self.faces = np.asarray(model.faces)

    def rng(self, split: str, index: int) -> np.random.Generator:
        """The random generator of one sample."""
        return np.random.default_rng([self.seed, SPLIT_CODES[split], int(index)])

    def _chunk(self, split: str, indices: Sequence[int]) -> list[dict]:
        n, cfg = len(indices), self.config
        padded = list(indices) + [indices[-1]] * (cfg.chunk - n)
        draws = [_draw(self.rng(split, i), self.axes, self.model.num_betas, cfg) for i in padded]
        posed = forward_batch(
            self.model,
            jnp.asarray(np.stack([d.pose for d in draws]), jnp.float32),
            jnp.asarray(np.stack([d.betas for d in draws]), jnp.float32),
        )
        verts, keypoints = np.asarray(posed.verts), np.asarray(posed.keypoints)
        cams = [
            place_camera(v, fov=d.fov, fill=d.fill, offset=d.offset, size=cfg.image_size)
            for v, d in zip(verts, draws, strict=True)
        ]
        skins = [
            procedural.skin_colours(d.rng, v, vertex_noise=cfg.vertex_noise,
                                    wide_tones=cfg.wide_skin, texture=cfg.skin_texture)
            for v, d in zip(verts, draws, strict=True)
        ]  # fmt: skip
        colours = [c * d.tint for c, d in zip(skins, draws, strict=True)]
        if skin_shading.enabled(cfg):
            colours = skin_shading.shade_chunk(
                self.model, draws, skins, verts, keypoints, cams, cfg
            )
        rgb, mask, depth = (np.asarray(x) for x in render_batch(
            jnp.asarray(verts + np.stack([t for _, t in cams])[:, None], jnp.float32),
            jnp.asarray(self.faces),
            jnp.asarray(np.stack([k for k, _ in cams]), jnp.float32),
            jnp.asarray(np.stack(colours)),
            jnp.asarray(np.stack([d.light for d in draws]), jnp.float32),
            jnp.asarray([d.ambient for d in draws], jnp.float32),
            image_size=cfg.image_size,
            supersample=cfg.supersample,
        ))  # fmt: skip
        return [
            self._finish(
                split, indices[k], draws[k], cams[k], keypoints[k], rgb[k], mask[k], depth[k],
                skin=skins[k].mean(axis=0),
            )
            for k in range(n)
        ]  # fmt: skip

    def _finish(self, split, index, d: _Draw, cam, keypoints, rgb, alpha, depth, *, skin) -> dict:
        cfg = self.config
        K, transl = cam
        full = alpha >= 0.5
        kp3d = (keypoints.astype(np.float64) + transl).astype(np.float32)
        under = appearance.backdrop(
            d.rng, kp3d.astype(np.float64), K, skin=skin, light=d.light, ambient=d.ambient,
            tint=d.tint, near=NEAR, cfg=cfg,
        )  # fmt: skip
        image, occluded = appearance.composite(d.rng, rgb, alpha, under, full, cfg, light=d.light)
        kp2d = files.project(kp3d.astype(np.float64), K.astype(np.float32).astype(np.float64))
        return schema.make_sample(
            id=f"synthetic/{split}/{index:07d}",
            image=image,
            mask=full & ~occluded,
            mask_full=full,
            keypoints_2d=kp2d,
            keypoints_3d=kp3d,
            keypoint_visible=visible_keypoints(
                kp2d, kp3d, occluded, full, depth, tolerance=cfg.visibility_tolerance
            ),
            K=K,
            mano_pose=d.pose,
            mano_betas=d.betas,
            mano_trans=transl,
        )

    def samples(self, split: str, indices: Sequence[int]) -> list[dict]:
        """Render the samples ``indices`` of ``split`` (in chunks of ``config.chunk``)."""
        if split not in SPLIT_CODES:
            raise ValueError(f"unknown {split=}; expected one of {list(SPLIT_CODES)}")
        indices = list(indices)
        out = []
        for start in range(0, len(indices), self.config.chunk):
            out += self._chunk(split, indices[start : start + self.config.chunk])
        return out


def file_sha256(path: str) -> str:
    """The SHA-256 of a file's bytes, read a megabyte at a time (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_format_file(name: str) -> bool:
    """Whether ``name`` is one of the files a synthetic dataset consists of."""
    return name in (synthetic.MANIFEST, CONTACT_SHEET) or bool(
        re.fullmatch(r"\w+-\d{5}-of-\d{5}\.npz(\.tmp\.npz)?", name)
    )


def _keep_other_files(old_dir: str, new_dir: str) -> None:
    """Copy what a user kept beside an old dataset (anything not ours) into the new one."""
    if not os.path.isdir(old_dir):
        return
    for name in os.listdir(old_dir):
        if _is_format_file(name) or os.path.lexists(os.path.join(new_dir, name)):
            continue
        src, dst = os.path.join(old_dir, name), os.path.join(new_dir, name)
        if os.path.isdir(src) and not os.path.islink(src):
            shutil.copytree(src, dst, symlinks=True)
        else:
            shutil.copy2(src, dst, follow_symlinks=False)


def check_arguments(*, splits, seed, config, shard_size, sheet_count) -> None:
    """Raise ``ValueError`` naming the argument if a dataset request cannot be satisfied."""
    if not isinstance(splits, dict) or not splits:
        raise ValueError(f"splits={splits!r}: expected {{split: count}} with at least one split")
    for split, count in splits.items():
        if split not in SPLIT_CODES:
            raise ValueError(
                f"splits: unknown split {split!r}; expected one of {list(SPLIT_CODES)}"
            )
        if not is_int(count) or count < 0:
            raise ValueError(f"splits[{split!r}]={count!r}: expected a count >= 0")
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed={seed!r}: expected an int >= 0")
    if not is_int(shard_size) or shard_size <= 0:
        raise ValueError(f"shard_size={shard_size!r}: expected an int > 0")
    if not is_int(sheet_count) or sheet_count < 0:
        raise ValueError(f"sheet_count={sheet_count!r}: expected an int >= 0")
    if not isinstance(config, GeneratorConfig):
        raise ValueError(f"config: expected a GeneratorConfig, got {type(config).__name__}")


def generate_dataset(
    out_dir: str,
    *,
    splits: dict[str, int],
    seed: int,
    config: GeneratorConfig = DEFAULT_CONFIG,
    model_path: str | None = None,
    shard_size: int = 1000,
    overwrite: bool = False,
    sheet_count: int = 32,
    progress: bool = True,
) -> dict:
    """Render a synthetic dataset to ``out_dir`` (format: ``hand_jax.data.synthetic``).

    Every argument is checked and the model loaded before anything is written. The dataset is
    written into a temporary sibling of ``out_dir`` that replaces it only when complete
    (``hand_jax.outputs.staged_dir``), so a failed or interrupted run leaves a previous dataset
    intact. Files a user kept beside a replaced dataset (anything but the manifest, shards and
    contact sheet) are carried over.

    Args:
      out_dir: output directory; must be empty or absent unless ``overwrite``.
      splits: samples per split, e.g. ``{"train": 2048, "test": 256}``.
      seed: dataset seed (sample i of a split depends only on seed, split and i), >= 0.
      config: the generator's distribution parameters.
      model_path: MANO ``.pkl``/``.npz``; None = the embedded default hand.
      shard_size: samples per shard file, > 0.
      overwrite: replace an existing dataset in ``out_dir``.
      sheet_count: samples drawn on ``contact_sheet.png`` (0: none).
      progress: show a tqdm progress bar.

    Returns:
      The manifest (also written to ``manifest.json``), with timing.

    Raises:
      ValueError: a bad argument or model file; FileNotFoundError: no model file;
      FileExistsError: ``out_dir`` is not empty and ``overwrite`` is False.
    """
    check_arguments(
        splits=splits, seed=seed, config=config, shard_size=shard_size, sheet_count=sheet_count
    )
    outputs.check_out_dir(out_dir, overwrite=overwrite, inputs=[model_path], merge=True)
    model = mano.load_model(model_path)
    generator = Generator(model, config, seed=seed)
    path = mano.DEFAULT_MODEL_PATH if model_path is None else model_path
    manifest = {
        "format": synthetic.FORMAT, "format_version": synthetic.FORMAT_VERSION,
        "generator_version": GENERATOR_VERSION, "seed": int(seed),
        "image_size": config.image_size, "parameters": dataclasses.asdict(config),
        "model": {"path": "default" if model_path is None else os.path.abspath(path),
                  "sha256": file_sha256(path), "side": model.side,
                  "num_verts": model.num_verts, "num_betas": model.num_betas},
        "keypoint_order": "canonical (OpenPose/FreiHAND, hand_jax.keypoints)", "splits": {},
    }  # fmt: skip
    with outputs.staged_dir(
        out_dir, overwrite=overwrite, inputs=[model_path], merge=True
    ) as staging:
        _write_dataset(staging, manifest, splits, generator, shard_size, sheet_count, progress)
        _keep_other_files(out_dir, staging)
    return manifest


def _write_dataset(out_dir, manifest, splits, generator, shard_size, sheet_count, progress):
    total = sum(splits.values())
    start = time.perf_counter()
    with tqdm.tqdm(total=total, unit="sample", disable=not progress) as bar:
        for split, count in splits.items():
            manifest["splits"][split] = _write_split(
                out_dir, split, count, generator, shard_size=shard_size, bar=bar
            )
    seconds = time.perf_counter() - start
    manifest["timing"] = {"seconds": seconds, "samples_per_second": total / max(seconds, 1e-9)}
    with open(os.path.join(out_dir, synthetic.MANIFEST), "w") as f:
        json.dump(manifest, f, indent=1)
    first = next((s for s, n in splits.items() if n > 0), None)
    if sheet_count > 0 and first is not None:
        loaded = synthetic.load(out_dir, first)
        picks = [loaded[i] for i in range(min(sheet_count, len(loaded)))]
        save_contact_sheet(picks, os.path.join(out_dir, CONTACT_SHEET))


def _write_split(out_dir, split, count, generator, *, shard_size, bar) -> dict:
    num_shards = max(1, -(-count // shard_size))
    shards = []
    for shard in range(num_shards if count > 0 else 0):
        indices = list(range(shard * shard_size, min(count, (shard + 1) * shard_size)))
        samples = []
        for start in range(0, len(indices), generator.config.chunk):
            part = indices[start : start + generator.config.chunk]
            samples += generator.samples(split, part)
            bar.update(len(part))
        name = synthetic.shard_name(split, shard, num_shards)
        synthetic.write_shard(os.path.join(out_dir, name), samples, indices)
        shards.append({"file": name, "count": len(indices), "first_index": indices[0]})
    return {"count": count, "shards": shards}
