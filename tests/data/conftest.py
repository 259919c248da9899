"""Fixtures of the data tests: the genuine MNIST files kept in ``<repo>/../shared/data/mnist``."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
SHARED_MNIST = SHARED_DATA / "mnist"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data directory holding ``mnist/`` (skips when the genuine files are absent)."""
    if not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"genuine MNIST files not found in {SHARED_MNIST.resolve()}")
    return SHARED_DATA.resolve()


@pytest.fixture(autouse=True)
def _no_data_dir_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's CREVNET_DATA_DIR must not change what the tests see.
    monkeypatch.delenv("CREVNET_DATA_DIR", raising=False)
