"""Fixtures for the training tests: the smoke config, run in a temporary folder with genuine MNIST."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"
SMOKE = CONFIGS / "smoke.yaml"
MNIST = REPO / ".." / "shared" / "data" / "mnist"


@pytest.fixture
def smoke_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in ``tmp_path`` with ``CREVNET_DATA_DIR`` at the genuine MNIST files (skip without them)."""
    if not (MNIST / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"genuine MNIST files not found in {MNIST.resolve()}")
    monkeypatch.setenv("CREVNET_DATA_DIR", str(MNIST.resolve()))
    monkeypatch.chdir(tmp_path)
    return tmp_path
