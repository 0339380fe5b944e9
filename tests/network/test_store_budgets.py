"""Loading exported parameters checks keys, dtypes, shapes and sizes before reading any data.

The old loader decompressed every member first: a 1 MB npz with an unused 1.3 GB member cost
1.3 GB before being refused as "unexpected", and a member declaring 10^12 values raised a bare
``MemoryError`` naming nothing. Memory is measured with ``tracemalloc`` (numpy is traced).
"""

import re

import jax
import numpy as np
import pytest

from hand_jax.network import store as model_store
from tests.npz_helpers import npy_header, traced_peak, write_npz

SHAPES = {"params/w": (3, 4), "batch_stats/mean": (4,)}


def _abstract(shapes=SHAPES):
    trees = {"params": {}, "batch_stats": {}}
    for key, shape in shapes.items():
        collection, name = key.split("/")
        trees[collection][name] = jax.ShapeDtypeStruct(shape, np.float32)
    return trees


def _valid():
    return {key: np.ones(shape, np.float16) for key, shape in SHAPES.items()}


def test_valid_file_still_loads(tmp_path):
    path = str(tmp_path / "params.npz")
    write_npz(path, _valid())
    out = model_store.load_params(path, _abstract())
    assert out["params"]["w"].dtype == np.float32
    np.testing.assert_array_equal(out["batch_stats"]["mean"], np.ones(4))


def test_a_huge_unexpected_member_is_refused_unread(tmp_path):
    path = str(tmp_path / "params.npz")
    write_npz(path, {**_valid(), "params/extra": ("zeros", "<f4", (64, 1024, 1024))})
    out, peak = traced_peak(lambda: model_store.load_params(path, _abstract()))
    assert isinstance(out, ValueError), out
    assert re.search(f"{re.escape(path)}: .*unexpected \\['params/extra'\\]", str(out))
    assert peak < 2_000_000


@pytest.mark.parametrize("declared", [(3, 4), (10**12,)])
def test_a_forged_member_names_file_and_key_not_memory_error(tmp_path, declared):
    # The header declares 10^12 float32 values (4 TB) but the member holds 48 bytes of data.
    path = str(tmp_path / "params.npz")
    forged = npy_header("<f4", (10**12,)) + bytes(48)
    write_npz(path, {**_valid(), "params/w": forged})
    out, peak = traced_peak(
        lambda: model_store.load_params(path, _abstract({**SHAPES, "params/w": declared}))
    )
    assert isinstance(out, ValueError) and not isinstance(out.__cause__, MemoryError), out
    assert f"{path}: key 'params/w' " in str(out)
    want = "has shape (1000000000000,); expected" if declared == (3, 4) else "holds 48 bytes"
    assert want in str(out)
    assert peak < 1_000_000
