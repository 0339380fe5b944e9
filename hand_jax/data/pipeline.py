"""The input pipeline: grain datasets of fixed-shape, cropped, augmented batches.

Built on ``grain`` (deterministic, checkpointable, per-host sharded, multi-process decoding).
For one host the pipeline is::

    samples (a Sequence of schema dicts, decoded lazily)
      -> this host's shard: indices shard_index, shard_index + shard_count, ...
      -> shuffle (seed; a new permutation each epoch) -> repeat(num_epochs)
      -> per-sample transform: crop with scale/rotation/shift jitter (K and labels exact),
         colour jitter; RNG derived from (seed, shard, position), so sample i of the stream is
         the same whatever the worker count
      -> batch(batch_size) -> threads / worker processes -> iterator

``iterator.get_state()`` is a small JSON-serialisable dict; ``set_state`` on a fresh iterator of
the same pipeline resumes exactly where the state was taken, mid-epoch included (see
``save_state``/``restore_state``; orbax users can save it with ``grain.checkpoint``).

Batch layout (B = per-host batch size, S = image size):

==================== ================ ================================================
``image``            float32 [B,S,S,3] RGB in [0, 1]
``mask``             float32 [B,S,S]   1 hand, 0 not (visible hand); ``mask_valid`` bool [B]
``mask_full``        float32 [B,S,S]   amodal hand where the source has it, else ``mask``
``mask_amodal``      bool [B]          whether ``mask_full`` is amodal
``keypoints_2d``     float32 [B,21,2]  crop pixels; ``keypoints_3d`` float32 [B,21,3] metres
``keypoint_valid``   bool [B,21]       ``keypoint_visible`` bool [B,21] (= valid if unknown)
``K``                float32 [B,3,3]   crop intrinsics
``mano_pose``        float32 [B,48]    ``mano_betas`` float32 [B,10]; ``mano_valid`` bool [B]
``crop_matrix``      float32 [B,3,3]   source pixels -> crop pixels
``camera_rotation``  float32 [B,3,3]   source camera frame -> crop camera frame
``view_rotation``    float32 [B,3,3]   crop camera frame -> frame looking through the crop centre
``is_left``          bool [B]          the sample was a left hand, mirrored at load time
``index``            int64 [B]         position in ``samples``
``example_valid``    bool [B]          False for the padding of evaluation batches
==================== ================ ================================================
"""

import dataclasses
import json
from collections.abc import Sequence

import grain
import numpy as np

from hand_jax.data import crop

NUM_BETAS = 10
FAR_FOCAL = 1e4  # crop sides: the focal length standing in for an unknown, distant camera


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Augmentation ranges (each drawn uniformly per sample).

    Attributes:
      scale: (lo, hi) multiplier of the crop box side (> 1 zooms out).
      rotation: max |in-plane rotation|, radians (a camera roll; labels follow exactly).
      shift: max |box centre shift| per axis, fraction of the box side.
      brightness, contrast, saturation: max relative change (0 = none).
      hue: max hue rotation, fraction of a full turn.
    """

    scale: tuple[float, float] = (0.9, 1.15)
    rotation: float = 0.5
    shift: float = 0.08
    brightness: float = 0.25
    contrast: float = 0.25
    saturation: float = 0.25
    hue: float = 0.04


NO_AUGMENTATION = Augmentation(scale=(1.0, 1.0), rotation=0.0, shift=0.0, brightness=0.0,
                               contrast=0.0, saturation=0.0, hue=0.0)  # fmt: skip

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
_RGB_TO_YIQ = np.array(
    [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], np.float32
)


def colour_jitter(image: np.ndarray, rng: np.random.Generator, aug: Augmentation) -> np.ndarray:
    """Jitter brightness, contrast, saturation and hue of a [H, W, 3] float image in [0, 1]."""
    b = rng.uniform(1 - aug.brightness, 1 + aug.brightness)
    c = rng.uniform(1 - aug.contrast, 1 + aug.contrast)
    s = rng.uniform(1 - aug.saturation, 1 + aug.saturation)
    angle = rng.uniform(-aug.hue, aug.hue) * 2 * np.pi
    image = image * b
    image = (image - (image @ _LUMA).mean()) * c + (image @ _LUMA).mean()
    grey = (image @ _LUMA)[..., None]
    image = grey + (image - grey) * s
    if angle:
        rot = np.eye(3, dtype=np.float32)
        rot[1:, 1:] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
        image = image @ (np.linalg.inv(_RGB_TO_YIQ) @ rot @ _RGB_TO_YIQ).T.astype(np.float32)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def derived_fields(sample: dict) -> dict:
    """The training fields a cropped sample may lack, derived from what it has.

    ``mask_full`` (the amodal mask; the visible ``mask`` where there is none), ``mask_amodal``
    (whether it is amodal), ``keypoint_visible`` (``keypoint_valid`` where unknown, never
    outside it) and ``view_rotation`` [3, 3] float32 from the crop's ``K`` (the identity for a
    sample without intrinsics, whose labels come from a weak-perspective camera). ``K`` itself
    for such a sample is a centred pinhole ``FAR_FOCAL`` crop sides long: the limit in which a
    perspective camera is weak perspective.
    """
    valid = sample["keypoint_valid"]
    size = sample["image"].shape[0]
    if "K" in sample:
        K = np.asarray(sample["K"], np.float32)
        rotation = crop.view_rotation(sample["K"], image_size=size).astype(np.float32)
    else:
        K = np.array([[FAR_FOCAL * size, 0, size / 2], [0, FAR_FOCAL * size, size / 2], [0, 0, 1]],
                     np.float32)  # fmt: skip
        rotation = np.eye(3, dtype=np.float32)
    return {
        "K": K,
        "mask_full": sample.get("mask_full", sample["mask"]),
        "mask_amodal": np.bool_("mask_full" in sample),
        "keypoint_visible": sample.get("keypoint_visible", valid) & valid,
        "view_rotation": rotation,
    }


def to_example(sample: dict, *, index: int, example_valid: bool = True) -> dict:
    """Turn a cropped sample into a fixed-structure batch element (see the module doc)."""
    valid = sample["keypoint_valid"]
    betas = np.zeros(NUM_BETAS, np.float32)
    has_mano = "mano_pose" in sample and "mano_betas" in sample
    if has_mano:
        n = min(NUM_BETAS, sample["mano_betas"].shape[0])
        betas[:n] = sample["mano_betas"][:n]
    derived = derived_fields(sample)
    return {
        "image": sample["image"].astype(np.float32) / 255.0,
        "mask": sample["mask"].astype(np.float32),
        "mask_full": derived["mask_full"].astype(np.float32),
        "mask_amodal": derived["mask_amodal"],
        "mask_valid": np.bool_(sample["mask_valid"]),
        "keypoints_2d": sample["keypoints_2d"],
        "keypoints_3d": sample["keypoints_3d"],
        "keypoint_valid": valid,
        "keypoint_visible": derived["keypoint_visible"],
        "K": sample["K"],
        "mano_pose": sample["mano_pose"] if has_mano else np.zeros(48, np.float32),
        "mano_betas": betas,
        "mano_valid": np.bool_(has_mano),
        "crop_matrix": sample["crop_matrix"],
        "camera_rotation": sample["camera_rotation"],
        "view_rotation": derived["view_rotation"],
        "is_left": np.bool_(sample["original_side"] == "left"),
        "index": np.int64(index),
        "example_valid": np.bool_(example_valid),
    }


class _IndexedSource:
    """``samples`` padded to ``length`` by repeating from the start; yields (index, valid)."""

    def __init__(self, samples: Sequence[dict], length: int):
        self.samples = samples
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[int, bool]:
        n = len(self.samples)
        return i % n, i < n


@dataclasses.dataclass(frozen=True)
class PrepareExample(grain.transforms.RandomMap):
    """Read, crop, augment and format one sample; RNG supplied by grain per position."""

    samples: Sequence[dict]
    image_size: int
    margin: float
    augmentation: Augmentation

    def random_map(self, element: tuple[int, bool], rng: np.random.Generator) -> dict:
        index, valid = element
        sample = self.samples[index]
        aug = self.augmentation
        cropped = crop.crop_sample(
            sample,
            out_size=self.image_size,
            margin=self.margin,
            rotation=rng.uniform(-aug.rotation, aug.rotation),
            scale=rng.uniform(*aug.scale),
            shift=rng.uniform(-aug.shift, aug.shift, size=2),
        )
        example = to_example(cropped, index=index, example_valid=valid)
        if aug != NO_AUGMENTATION:
            example["image"] = colour_jitter(example["image"], rng, aug)
        return example


def host_shard(shard_index: int | None, shard_count: int | None) -> tuple[int, int]:
    """Return (index, count) of this host's shard: the arguments, else JAX's process layout."""
    if shard_index is None or shard_count is None:
        import jax  # only to ask for the process layout

        shard_index, shard_count = jax.process_index(), jax.process_count()
    if not 0 <= shard_index < shard_count:
        raise ValueError(f"shard_index={shard_index} must be in [0, shard_count={shard_count})")
    return shard_index, shard_count


def make_dataset(
    samples: Sequence[dict],
    *,
    batch_size: int,
    image_size: int,
    seed: int,
    train: bool,
    augmentation: Augmentation | None = None,
    margin: float = crop.DEFAULT_MARGIN,
    num_epochs: int | None = None,
    shard_index: int | None = None,
    shard_count: int | None = None,
    mixture: Sequence[tuple[Sequence[dict], float]] = (),
) -> grain.MapDataset:
    """Build this host's dataset of batches (random access; see ``make_iterator``).

    Args:
      samples: a sequence of sample dicts (``hand_jax.data.load_split``).
      batch_size: per-host batch size B (the global batch is B x shard_count).
      image_size: crop side S, pixels.
      seed: shuffling and augmentation seed.
      train: True: shuffle, augment, repeat ``num_epochs`` (None: forever), drop the
        incomplete last batch. False: the plain crop in order, one pass, the last batch padded
        (``example_valid`` False) so that every host yields the same number of full batches.
      augmentation: ranges for training (default ``Augmentation()``); ignored when not training.
      margin: crop margin (see ``crop.keypoint_box``).
      num_epochs: passes over the data when training (None: infinite).
      shard_index, shard_count: this host's shard (default: ``jax.process_index()`` and
        ``jax.process_count()``).
      mixture: more training sources, each (samples, weight) with weights relative to
        ``samples``' 1.0 (e.g. self-augmented data, ``hand_jax.augment``): each source is
        sharded, shuffled and repeated on its own, then ``grain.MapDataset.mix`` draws from them
        in proportion to the weights. Training only.

    Returns:
      A ``grain.MapDataset`` of batch dicts.
    """
    shard_index, shard_count = host_shard(shard_index, shard_count)
    if mixture and not train:
        raise ValueError("mixture: only training datasets mix sources")
    sources = [(samples, 1.0), *mixture]
    for k, (_, weight) in enumerate(sources):
        if not weight > 0:
            raise ValueError(f"mixture: source {k} has weight {weight!r}; expected > 0")
    parts = [
        _source_dataset(
            source,
            k,
            batch_size=batch_size,
            image_size=image_size,
            seed=seed,
            train=train,
            augmentation=augmentation,
            margin=margin,
            num_epochs=num_epochs,
            shard=(shard_index, shard_count),
        )
        for k, (source, _) in enumerate(sources)
    ]
    ds = parts[0] if len(parts) == 1 else grain.MapDataset.mix(parts, [w for _, w in sources])
    return ds.batch(batch_size, drop_remainder=train)


def _source_dataset(
    samples, k, *, batch_size, image_size, seed, train, augmentation, margin, num_epochs, shard
) -> grain.MapDataset:
    """One source's examples: this host's shard, shuffled and repeated when training."""
    shard_index, shard_count = shard
    n = len(samples)
    if train:
        total = (n // shard_count) * shard_count
        if total == 0:
            raise ValueError(f"{n} samples cannot fill {shard_count} shards")
    else:
        per_step = batch_size * shard_count
        total = -(-n // per_step) * per_step
    ds = grain.MapDataset.source(_IndexedSource(samples, total))
    ds = ds.slice(slice(shard_index, total, shard_count))
    aug = (augmentation or Augmentation()) if train else NO_AUGMENTATION
    seed = seed + 7919 * k  # source 0 keeps the single-source pipeline's streams exactly
    if train:
        ds = ds.shuffle(seed=seed).repeat(num_epochs)
    transform = PrepareExample(samples, image_size, margin, aug)
    return ds.random_map(transform, seed=seed * 1_000_003 + shard_index)


def make_iterator(
    dataset: grain.MapDataset,
    *,
    worker_count: int = 0,
    num_threads: int = 2,
    prefetch: int = 4,
) -> grain.DatasetIterator:
    """Start iterating a ``make_dataset`` result with threads and optional worker processes.

    Args:
      dataset: from ``make_dataset``.
      worker_count: decoding processes (0: decode in this process's threads). Batches are the
        same whatever the count; a saved state restores only into the same count.
      num_threads: reading threads per process.
      prefetch: batches read ahead per process.

    Returns:
      A checkpointable iterator of batch dicts (``get_state``/``set_state``).
    """
    read = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch)
    ds = dataset.to_iter_dataset(read)
    if worker_count > 0:
        from absl import flags

        if not flags.FLAGS.is_parsed():  # grain reads its absl flags; outside an absl app
            flags.FLAGS.mark_as_parsed()  # they are unparsed, so take their defaults
        ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))
    return iter(ds)


def save_state(iterator: grain.DatasetIterator) -> bytes:
    """Serialise an iterator's position (JSON bytes) to store beside a training checkpoint."""
    return json.dumps(iterator.get_state(), sort_keys=True).encode()


def restore_state(iterator: grain.DatasetIterator, state: bytes) -> None:
    """Move a fresh iterator of the same pipeline to a position saved by ``save_state``."""
    iterator.set_state(json.loads(state.decode()))
