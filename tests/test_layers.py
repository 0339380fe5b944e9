"""The import layering (pyproject.toml, ``[tool.importlinter]``) holds, and breaking it fails.

``lint-imports`` (import-linter) checks the contracts: the layers of ``hand_jax`` (every module
in one, imports only downward), no circle between siblings, layers 1-4 free of flax, optax,
orbax, absl and ml_collections, nothing that runs a trained network importing the trainer, and
``eval`` scoring predictions only. The planted violations are made in a copy of the sources, so
each contract is shown to be able to fail.
"""

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINT = os.path.join(os.path.dirname(sys.executable), "lint-imports")
_DATA = ("*.npz", "*.png", "*.jpg", "*.json", "*.md", "*.txt", "mpfb2_cache", "__pycache__")


def _lint(cwd: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200")  # one contract a line in the report
    return subprocess.run([LINT, "--no-cache", "--no-logo"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_the_contracts_hold():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.fixture(scope="module")
def copy_of_sources(tmp_path_factory):
    """The packages and pyproject.toml, without the data files (imports only)."""
    root = tmp_path_factory.mktemp("layers")
    for name in ("hand_jax", "launch"):
        shutil.copytree(os.path.join(ROOT, name), root / name,
                        ignore=shutil.ignore_patterns(*_DATA))  # fmt: skip
    shutil.copy(os.path.join(ROOT, "pyproject.toml"), root / "pyproject.toml")
    return root


@pytest.mark.parametrize(
    "module, line, broken",
    [
        # An arrow back up: the runtime importing the trainer (two contracts catch it).
        ("hand_jax/network/forward.py", "from hand_jax.train import losses", "trainer"),
        ("hand_jax/network/forward.py", "from hand_jax.train import losses", "Layers"),
        # eval running a checkpoint again, as it once did.
        ("hand_jax/eval/evaluate.py", "from hand_jax import network", "eval scores"),
        # A circle inside a layer: the generator's config importing the generator.
        ("hand_jax/data/generator_config.py", "from hand_jax.data import synthetic_gen", "circles"),
        # A heavy framework in a pure layer.
        ("hand_jax/render/soft.py", "import optax", "Layers 1-4"),
        # The library importing a launcher.
        ("hand_jax/outputs.py", "import launch.train", "launchers"),
    ],
)
def test_a_planted_violation_breaks_its_contract(copy_of_sources, module, line, broken):
    path = copy_of_sources / module
    original = path.read_text()
    try:
        path.write_text(original + f"\n{line}  # planted\n")
        result = _lint(str(copy_of_sources))
    finally:
        path.write_text(original)
    assert result.returncode != 0
    names = [x for x in result.stdout.splitlines() if x.endswith("BROKEN")]
    assert any(broken in x for x in names), result.stdout
