"""Shared fixtures: one thread (CI has two cores) and the genuine MNIST files beside the repo."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"

torch.set_num_threads(1)


@pytest.fixture
def mnist_dir() -> Path:
    """Directory of the four genuine MNIST files (skips the test when it is absent)."""
    if not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"genuine MNIST files not found in {SHARED_MNIST}")
    return SHARED_MNIST
