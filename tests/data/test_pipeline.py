"""Input pipeline: determinism, sharding, exact resume, label consistency under augmentation."""

import itertools

import numpy as np
import pytest

from hand_jax.data import crop, pipeline, schema

N = 11
S = 24


class Samples:
    """A lazy in-memory source of random hands (a Sequence, like the real loaders)."""

    def __init__(self, n=N, seed=0):
        self.n, self.seed = n, seed

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        rng = np.random.default_rng([self.seed, i])
        K = np.array([[70.0, 0, 32.0], [0, 71.0, 24.0], [0, 0, 1]])
        xyz = rng.normal(size=(21, 3)) * 0.03 + [0.0, 0.0, 0.5]
        h = xyz @ K.T
        return schema.make_sample(
            id=f"fake/{i}",
            side="left" if i % 3 == 0 else "right",
            image=rng.integers(0, 256, (48, 64, 3)),
            mask=rng.integers(0, 2, (48, 64)),
            keypoints_2d=h[:, :2] / h[:, 2:],
            keypoints_3d=xyz,
            K=K,
            **(
                {"mano_pose": rng.normal(size=48), "mano_betas": rng.normal(size=10)}
                if i % 2
                else {}
            ),
        )


def _take(it, k):
    return [next(it) for _ in range(k)]


def _assert_batches_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)


def _train_iter(seed=0, **kw):
    ds = pipeline.make_dataset(
        Samples(), batch_size=4, image_size=S, seed=seed, train=True, shard_index=0,
        shard_count=1, **kw,
    )  # fmt: skip
    return pipeline.make_iterator(ds)


def test_batches_have_fixed_shapes_and_exact_labels():
    for batch in _take(_train_iter(), 3):
        assert batch["image"].shape == (4, S, S, 3) and batch["image"].dtype == np.float32
        assert batch["mask"].shape == (4, S, S) and batch["mano_betas"].shape == (4, 10)
        assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0
        for b in range(4):
            h = batch["keypoints_3d"][b].astype(np.float64) @ batch["K"][b].T.astype(np.float64)
            np.testing.assert_allclose(h[:, :2] / h[:, 2:], batch["keypoints_2d"][b], atol=2e-3)
            i = int(batch["index"][b])
            assert batch["is_left"][b] == (i % 3 == 0)
            assert batch["mano_valid"][b] == (i % 2 == 1)


def test_crop_and_augmentation_follow_the_sample():
    """Each element is the crop of its source sample with the transform it reports."""
    batch = next(_train_iter())
    samples = Samples()
    for b in range(4):
        s = samples[int(batch["index"][b])]
        M, R = batch["crop_matrix"][b].astype(np.float64), batch["camera_rotation"][b]
        np.testing.assert_allclose(
            crop.apply_affine(M, s["keypoints_2d"]), batch["keypoints_2d"][b], atol=2e-3
        )
        np.testing.assert_allclose(s["keypoints_3d"] @ R.T, batch["keypoints_3d"][b], atol=1e-6)
        assert abs(np.linalg.det(R) - 1) < 1e-5 and np.allclose(R[2], [0, 0, 1])


def test_same_seed_same_stream_other_seed_other_stream():
    a, b, c = (_take(_train_iter(seed), 4) for seed in (0, 0, 1))
    _assert_batches_equal(a, b)
    assert not np.array_equal(a[0]["image"], c[0]["image"])


def test_epochs_cover_every_sample_once_and_reshuffle():
    ds = pipeline.make_dataset(
        Samples(n=12), batch_size=3, image_size=S, seed=0, train=True, num_epochs=2,
        shard_index=0, shard_count=1,
    )  # fmt: skip
    order = np.concatenate([b["index"] for b in pipeline.make_iterator(ds)])
    assert len(order) == 24
    assert sorted(order[:12]) == list(range(12)) and sorted(order[12:]) == list(range(12))
    assert not np.array_equal(order[:12], order[12:])


def test_resume_mid_epoch_is_exact():
    it = _train_iter()
    _take(it, 3)  # 12 samples: past the first epoch boundary (11 samples)
    state = pipeline.save_state(it)
    expected = _take(it, 4)
    fresh = _train_iter()
    pipeline.restore_state(fresh, state)
    _assert_batches_equal(_take(fresh, 4), expected)


@pytest.mark.parametrize("shard_count", [2, 3])
def test_host_shards_are_disjoint_and_equal_sized(shard_count):
    seen = []
    for shard in range(shard_count):
        ds = pipeline.make_dataset(
            Samples(), batch_size=1, image_size=S, seed=0, train=True, num_epochs=1,
            shard_index=shard, shard_count=shard_count,
        )  # fmt: skip
        seen.append([int(b["index"][0]) for b in pipeline.make_iterator(ds)])
    assert len({len(s) for s in seen}) == 1 and len(seen[0]) == N // shard_count
    flat = list(itertools.chain(*seen))
    assert len(set(flat)) == len(flat)


def test_evaluation_is_ordered_unaugmented_and_padded():
    samples = Samples()
    ds = pipeline.make_dataset(
        samples, batch_size=2, image_size=S, seed=0, train=False, shard_index=1, shard_count=2
    )
    batches = list(pipeline.make_iterator(ds))
    assert len(batches) == 3  # 11 samples padded to 12, 6 per host
    index = np.concatenate([b["index"] for b in batches])
    valid = np.concatenate([b["example_valid"] for b in batches])
    np.testing.assert_array_equal(index, [1, 3, 5, 7, 9, 0])
    np.testing.assert_array_equal(valid, [True] * 5 + [False])
    plain = crop.crop_sample(samples[3], out_size=S)
    np.testing.assert_allclose(batches[0]["image"][1], plain["image"] / 255.0, atol=1e-6)
    np.testing.assert_allclose(batches[0]["keypoints_2d"][1], plain["keypoints_2d"])


def test_colour_jitter_identity_and_range():
    rng = np.random.default_rng(0)
    image = rng.uniform(size=(8, 8, 3)).astype(np.float32)
    same = pipeline.colour_jitter(image, rng, pipeline.NO_AUGMENTATION)
    np.testing.assert_allclose(same, image, atol=1e-5)
    strong = pipeline.Augmentation(brightness=0.9, contrast=0.9, saturation=0.9, hue=0.5)
    out = pipeline.colour_jitter(image, rng, strong)
    assert out.min() >= 0 and out.max() <= 1 and not np.allclose(out, image)


def test_worker_processes_give_the_same_batches_and_resume():
    ds = pipeline.make_dataset(
        Samples(), batch_size=4, image_size=S, seed=3, train=True, shard_index=0, shard_count=1
    )
    reference = _take(pipeline.make_iterator(ds), 4)
    it = pipeline.make_iterator(ds, worker_count=2)
    _assert_batches_equal(_take(it, 2), reference[:2])
    state = pipeline.save_state(it)
    fresh = pipeline.make_iterator(ds, worker_count=2)
    pipeline.restore_state(fresh, state)
    _assert_batches_equal(_take(fresh, 2), reference[2:])


def test_default_shard_is_the_jax_process():
    assert pipeline.host_shard(None, None) == (0, 1)
    with pytest.raises(ValueError, match="shard_index=2 must be in"):
        pipeline.host_shard(2, 2)
