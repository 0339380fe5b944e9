"""Files the fuzzer found that crashed a process; each must now be a clear error naming the file."""

import os
import shutil

import pytest

from hand_jax.data import files, stb

CASES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases")


def test_mat_file_that_segfaults_scipy_is_a_data_error(tmp_path):
    # 1.9 kB, a mutated savemat file: scipy.io.loadmat (1.17) dies with SIGSEGV reading it.
    path = tmp_path / "B1Counting_SK.mat"
    shutil.copy(os.path.join(CASES, "stb_scipy_segfault.mat"), path)
    with pytest.raises(files.DataError, match=r"B1Counting_SK.mat: cannot read .mat file"):
        stb.read_labels(str(path))
