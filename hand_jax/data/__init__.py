"""Data sources in one sample schema, crops, and the input pipeline.

``load_split(name, data_dir, split, **options)`` returns a lazy ``Sequence`` of sample dicts
(``hand_jax.data.schema``) for one split of one source:

============== ============================ ============================================
name           split                        module
============== ============================ ============================================
synthetic      train | test                 ``synthetic`` (``launch/make_synthetic.py``)
rhd            train | test                 ``rhd`` (Rendered Hand Pose, RHD_published_v2)
stb            train | test                 ``stb`` (Stereo Hand Pose Benchmark, SK camera)
dexter_object  test                         ``dexter_object`` (Dexter+Object, fingertips)
freihand       train | test                 ``freihand`` (FreiHAND v2)
============== ============================ ============================================

Options are passed to the source's ``load``; ``crop_size`` (int) and ``crop_margin`` (float),
when given, wrap the result so that every sample comes cropped (``crop.crop_sample``). The
default margin is the source's ``DEFAULT_CROP_MARGIN`` if it has one (Dexter+Object labels only
fingertips, so its box needs a wider margin to hold the palm), else ``crop.DEFAULT_MARGIN``.
"""

import importlib
from collections.abc import Sequence
from typing import Any

from hand_jax.data import crop as _crop

# name -> module in this package whose `load(data_dir, split, **options)` reads the source.
SOURCES = {
    "synthetic": "synthetic",
    "rhd": "rhd",
    "stb": "stb",
    "dexter_object": "dexter_object",
    "freihand": "freihand",
}


class CroppedSamples(Sequence):
    """A sequence of samples, each cropped around its keypoints on access."""

    def __init__(self, samples: Sequence[dict], *, out_size: int, margin: float):
        self.samples = samples
        self.out_size = int(out_size)
        self.margin = float(margin)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return _crop.crop_sample(self.samples[index], out_size=self.out_size, margin=self.margin)


def load_split(
    name: str,
    data_dir: str,
    split: str,
    *,
    crop_size: int | None = None,
    crop_margin: float | None = None,
    **options: Any,
) -> Sequence[dict]:
    """Load one split of one data source as a lazy sequence of sample dicts.

    Args:
      name: a key of ``SOURCES``.
      data_dir: the source's root directory (see each module for the layout it expects).
      split: ``"train"`` or ``"test"`` (sources also accept their own split names).
      crop_size: if given, crop every sample to this square size around its keypoints.
      crop_margin: crop margin (see ``crop.keypoint_box``); None: the source's default.
      **options: source-specific options (see the source's ``load``).

    Returns:
      A ``Sequence`` (``len``, integer indexing) of sample dicts.
    """
    if name not in SOURCES:
        raise ValueError(f"load_split: unknown source {name=}; expected one of {list(SOURCES)}")
    module = importlib.import_module(f"hand_jax.data.{SOURCES[name]}")
    samples = module.load(data_dir, split, **options)
    if crop_size is not None:
        if crop_margin is None:
            crop_margin = getattr(module, "DEFAULT_CROP_MARGIN", _crop.DEFAULT_MARGIN)
        samples = CroppedSamples(samples, out_size=crop_size, margin=crop_margin)
    return samples


__all__ = ["SOURCES", "CroppedSamples", "load_split"]
