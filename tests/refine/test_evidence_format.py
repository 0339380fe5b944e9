"""Evidence files, field by field: each rule of the format gets its exact message, and what loads
is what was written (plain numpy, no JAX compilation: fast enough to run per mutant)."""

# ruff: noqa: E501  (the table of rules reads best one case per line)

import numpy as np
import pytest

from hand_jax.refine import io as refine_io

N = 2


def _good(**change):
    rng = np.random.default_rng(0)
    arrays = {
        "keypoints_2d": rng.uniform(0, 32, (N, 21, 2)).astype(np.float64),
        "confidence": rng.uniform(0, 1, (N, 21)),
        "mask": rng.uniform(0, 1, (N, 8, 8)),
    }
    arrays.update(change)
    return {k: v for k, v in arrays.items() if v is not None}


def _write(tmp_path, arrays):
    path = tmp_path / "ev.npz"
    np.savez(path, **arrays)
    return path


PARAMS = {
    "global_rot": np.zeros((N, 4)),
    "pose": np.zeros((N, 45)),
    "betas": np.zeros((N, 10)),
    "cam": np.zeros((N, 3)),
}
RANGE_45 = tuple(range(1, 46))

BAD = [
    (dict(mask=None), "missing key 'mask' (have ['confidence', 'keypoints_2d'])"),
    (dict(confidence=None), "missing key 'confidence' (have ['keypoints_2d', 'mask'])"),
    (dict(keypoints_2d=np.zeros((0, 21, 2))), "'keypoints_2d' holds no examples (N = 0)"),
    (dict(keypoints_2d=np.float64(3.0)), "'keypoints_2d' holds no examples (N = 0)"),
    (dict(keypoints_2d=np.zeros((N, 20, 2))), "'keypoints_2d' has shape (2, 20, 2), expected [2, 21, 2]"),
    (dict(keypoints_2d=np.zeros((N, 21, 2, 1))), "'keypoints_2d' has shape (2, 21, 2, 1), expected [2, 21, 2]"),
    (dict(confidence=np.zeros((N, 20))), "'confidence' has shape (2, 20), expected [2, 21]"),
    (dict(confidence=np.zeros((N + 1, 21))), "'confidence' has shape (3, 21), expected [2, 21]"),
    (dict(confidence=np.array([["x"] * 21] * N)), "'confidence' has dtype <U1, expected a numeric array"),
    (dict(mask=np.zeros((N, 8, 9))), "'mask' has shape (2, 8, 9), expected square [N, M, M]"),
    (dict(mask=np.zeros((N, 0, 0))), "'mask' has shape (2, 0, 0), expected square [N, M, M]"),
    (dict(mask=np.zeros((N + 1, 8, 8))), "'mask' has shape (3, 8, 8), expected [2, ?, ?]"),
    (dict(mask=np.zeros((N, 8))), "'mask' has shape (2, 8), expected [2, ?, ?]"),
    (dict(mask=np.zeros((N, 8, 8), np.int16)), "'mask' has dtype int16: expected float, uint8, bool"),
    (dict(mask=np.full((N, 8, 8), 2.0)),
     "'mask' values span [2, 2], expected probabilities in [0, 1] (uint8 masks may be 0/255 or 0/1)"),
    (dict(mask=np.full((N, 8, 8), -0.01)),
     "'mask' values span [-0.01, -0.01], expected probabilities in [0, 1] (uint8 masks may be "
     "0/255 or 0/1)"),
    (dict(K=np.zeros((N, 3, 4))), "'K' has shape (2, 3, 4), expected [2, 3, 3]"),
    (dict(image=np.zeros((N, 8, 8, 3), np.float32)), "'image' has dtype float32, expected uint8"),
    (dict(image=np.zeros((N, 8, 8), np.uint8)), "'image' has shape (2, 8, 8), expected [2, ?, ?, 3]"),
    (dict(image=np.zeros((N, 8, 9, 3), np.uint8)), "'image' has shape (2, 8, 9, 3): crops are square"),
    (dict(betas=np.zeros((N, 10))), "initial parameters are partial, missing ['cam', 'global_rot', 'pose']"),
    (dict(PARAMS, pose=np.zeros((N, 50))), f"'pose' has 50 columns, expected {RANGE_45}"),
    (dict(PARAMS, pose=np.zeros((N, 0))), f"'pose' has 0 columns, expected {RANGE_45}"),
    (dict(PARAMS, global_rot=np.zeros((N, 5))), "'global_rot' has 5 columns, expected (4, 6)"),
    (dict(PARAMS, cam=np.zeros((N, 4))), "'cam' has 4 columns, expected (3,)"),
    (dict(PARAMS, cam=np.zeros((N, 3, 1))), "'cam' has shape (2, 3, 1), expected [2, ?]"),
    (dict(PARAMS, betas=np.zeros((N + 1, 10))), "'betas' has shape (3, 10), expected [2, ?]"),
    (dict(ids=np.array(["a", "a"])), "'ids' are not unique (e.g. ['a'])"),
    (dict(ids=np.array([7, 7])), "'ids' are not unique (e.g. ['7'])"),
    (dict(ids=np.array(["a", "b", "c"])), "'ids' has shape (3,), expected [2]"),
    (dict(ids=np.array([b"a", b"b"], dtype="S1").reshape(2, 1)), "'ids' has shape (2, 1), expected [2]"),
]  # fmt: skip


@pytest.mark.parametrize("change, message", BAD)
def test_each_rule_has_its_exact_message(tmp_path, change, message):
    path = _write(tmp_path, _good(**change))
    with pytest.raises(refine_io.EvidenceError) as err:
        refine_io.load_evidence(path)
    assert str(err.value) == f"{path}: {message}"


def test_a_valid_file_loads_as_written(tmp_path):
    arrays = _good(K=np.tile(np.eye(3), (N, 1, 1)), image=np.full((N, 8, 8, 3), 7, np.uint8))
    rng = np.random.default_rng(1)
    params = {k: rng.normal(size=v.shape) for k, v in PARAMS.items()}
    params["global_rot"] = rng.normal(size=(N, 6))  # 6D global rotation
    params["pose"] = rng.normal(size=(N, 12))  # PCA pose coefficients
    evidence, init, images, ids = refine_io.load_evidence(_write(tmp_path, arrays | params))
    for key in ("keypoints_2d", "confidence", "mask", "K"):
        value = getattr(evidence, key)
        assert value.dtype == np.float32, key
        np.testing.assert_allclose(value, arrays[key], rtol=1e-6, err_msg=key)
    for key, value in params.items():
        got = getattr(init, key)
        assert got.dtype == np.float32, key
        np.testing.assert_allclose(got, value, rtol=1e-6, err_msg=key)
    np.testing.assert_array_equal(images, arrays["image"])
    np.testing.assert_array_equal(ids, np.arange(N))


def test_without_optional_keys(tmp_path):
    evidence, init, images, ids = refine_io.load_evidence(_write(tmp_path, _good()))
    assert evidence.K is None and init is None and images is None
    assert ids.tolist() == [0, 1]
    _, _, _, ids = refine_io.load_evidence(_write(tmp_path, _good(ids=np.array(["x", "y"]))))
    assert ids.tolist() == ["x", "y"]


@pytest.mark.parametrize(
    "mask, want",
    [
        (np.array([0, 1, 1, 0], np.uint8), [0, 1, 1, 0]),  # 0/1
        (np.array([0, 255, 128, 0], np.uint8), [0, 1, 128 / 255, 0]),  # 0/255
        (np.array([0, 0, 0, 0], np.uint8), [0, 0, 0, 0]),  # empty
        (np.array([2, 0, 0, 0], np.uint8), [2 / 255, 0, 0, 0]),  # a maximum above 1: 0/255
        (np.array([True, False, True, True]), [1, 0, 1, 1]),
        (np.array([0.0, np.nan, 1.0005, -0.0005]), [0, np.nan, 1, 0]),  # NaN kept, tiny overshoot
        (np.array([0.25, 0.5, 1.001, -0.001]), [0.25, 0.5, 1, 0]),  # clipped within tolerance
        (np.full(4, np.nan), [np.nan] * 4),  # all unknown: no range to check
    ],
)
def test_mask_encodings(tmp_path, mask, want):
    masks = np.stack([np.resize(mask, (2, 2))] * N)
    evidence, *_ = refine_io.load_evidence(_write(tmp_path, _good(mask=masks)))
    assert evidence.mask.dtype == np.float32
    np.testing.assert_allclose(evidence.mask, np.stack([np.resize(want, (2, 2))] * N), rtol=1e-6)


def test_text_ids_do_not_stop_the_check_of_the_keys_after_them(tmp_path):
    arrays = {"ids": np.array(["a", "b"])} | _good(confidence=np.array([["x"] * 21] * N))
    assert next(iter(arrays)) == "ids"  # written first, read first
    path = _write(tmp_path, arrays)
    with pytest.raises(refine_io.EvidenceError) as err:
        refine_io.load_evidence(path)
    assert str(err.value) == f"{path}: 'confidence' has dtype <U1, expected a numeric array"


def test_a_one_pixel_mask_is_a_mask(tmp_path):
    evidence, *_ = refine_io.load_evidence(_write(tmp_path, _good(mask=np.full((N, 1, 1), 0.5))))
    np.testing.assert_array_equal(evidence.mask, np.full((N, 1, 1), 0.5, np.float32))


def test_duplicate_ids_message_lists_only_repeated_ids_and_at_most_five(tmp_path):
    # 14 rows: six ids written twice, two written once (sorting before the repeated ones).
    ids = np.array(list("fedcba") * 2 + ["0", "1"])
    arrays = {k: np.resize(v, (len(ids), *v.shape[1:])) for k, v in _good().items()}
    path = _write(tmp_path, arrays | {"ids": ids})
    with pytest.raises(refine_io.EvidenceError) as err:
        refine_io.load_evidence(path)
    assert str(err.value) == f"{path}: 'ids' are not unique (e.g. ['a', 'b', 'c', 'd', 'e'])"


def test_save_evidence_writes_every_field_and_never_overwrites(tmp_path):
    rng = np.random.default_rng(2)
    arrays = _good(K=np.tile(np.eye(3), (N, 1, 1)))
    evidence = refine_io.Evidence(**{k: arrays.get(k) for k in refine_io.Evidence._fields})
    params = refine_io.HandParams(**{k: rng.normal(size=v.shape) for k, v in PARAMS.items()})
    images = rng.integers(0, 256, (N, 8, 8, 3)).astype(np.int64)  # saved as uint8
    path = tmp_path / "saved.npz"
    refine_io.save_evidence(path, evidence, init_params=params, images=images, ids=["p", "q"])
    with np.load(path) as f:
        assert sorted(f.files) == sorted([*arrays, *PARAMS, "image", "ids"])
        assert f["image"].dtype == np.uint8
        np.testing.assert_array_equal(f["image"], images)
        np.testing.assert_array_equal(f["ids"], ["p", "q"])
        for key, value in (arrays | params._asdict()).items():
            np.testing.assert_array_equal(f[key], value, err_msg=key)
    before = path.read_bytes()
    with pytest.raises(FileExistsError) as err:
        refine_io.save_evidence(path, evidence)
    assert str(err.value) == f"{path}: exists; refusing to overwrite"
    assert path.read_bytes() == before
