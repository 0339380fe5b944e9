"""Mixing training sources (self-augmented data beside the original) in the grain pipeline."""

import numpy as np
import pytest

from hand_jax.data import pipeline
from hand_jax.train import config as train_config
from tests.data.test_pipeline import Samples
from tests.train_helpers import tiny_config


@pytest.fixture(scope="module")
def sources():
    base = [Samples(n=6, seed=1)[i] for i in range(6)]
    plain = [{k: v for k, v in s.items() if not k.startswith("mano_")} for s in base]
    marked = [dict(s, mano_pose=np.zeros(48, np.float32), mano_betas=np.zeros(10, np.float32))
              for s in base]  # fmt: skip
    return plain, marked  # mano_valid tells the source of an example


def _fraction_from_second(dataset, batches: int) -> float:
    it = iter(dataset)
    flags = np.concatenate([next(it)["mano_valid"] for _ in range(batches)])
    return float(flags.mean())


@pytest.mark.parametrize("weight", [1.0, 3.0])
def test_sources_are_drawn_in_proportion_to_their_weights(sources, weight):
    plain, marked = sources
    ds = pipeline.make_dataset(
        plain, batch_size=8, image_size=24, seed=0, train=True, shard_index=0, shard_count=1,
        augmentation=pipeline.NO_AUGMENTATION, mixture=[(marked, weight)],
    )  # fmt: skip
    expected = weight / (1.0 + weight)
    assert abs(_fraction_from_second(ds, 40) - expected) < 0.03
    alone = pipeline.make_dataset(plain, batch_size=8, image_size=24, seed=0, train=True,
                                  shard_index=0, shard_count=1)  # fmt: skip
    assert _fraction_from_second(alone, 5) == 0.0


def test_bad_mixtures_are_refused(sources):
    plain, marked = sources
    with pytest.raises(ValueError, match="weight"):
        pipeline.make_dataset(plain, batch_size=2, image_size=24, seed=0, train=True,
                              shard_index=0, shard_count=1, mixture=[(marked, 0.0)])  # fmt: skip
    with pytest.raises(ValueError, match="only training"):
        pipeline.make_dataset(plain, batch_size=2, image_size=24, seed=0, train=False,
                              shard_index=0, shard_count=1, mixture=[(marked, 1.0)])  # fmt: skip


def test_config_mixture_pairs_dirs_with_weights():
    c = tiny_config()
    assert train_config.mixture(c) == []
    c.data.extra_dirs, c.data.extra_weights = "/a, /b", "0.5,2"
    assert train_config.mixture(c) == [("/a", 0.5), ("/b", 2.0)]
    train_config.validate_config(c)
    c.data.extra_weights = "0.5"
    with pytest.raises(ValueError, match="one weight"):
        train_config.validate_config(c)
    c.data.extra_weights = "0.5,-1"
    with pytest.raises(ValueError, match="'-1'"):
        train_config.validate_config(c)
