"""Shared fixtures: one thread (CI has two cores) and the genuine MNIST files beside the repo."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _library_notes_on_stderr() -> None:
    """The library logs its notes (logger ``crevnet``); commands show them on stderr, so do the tests."""
    from crevnet.commands.common import log_to_stderr

    log_to_stderr()


@pytest.fixture
def mnist_dir() -> Path:
    """Directory of the four genuine MNIST files (skips the test when it is absent)."""
    if not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"genuine MNIST files not found in {SHARED_MNIST}")
    return SHARED_MNIST


def _tiny_net():
    from crevnet.nn.encoder import EncoderConfig
    from crevnet.nn.model import CrevNetConfig
    from crevnet.nn.predictor import PredictorConfig

    return CrevNetConfig(
        encoder=EncoderConfig(dims=2, stages=(1,), strides=(1,), channels=(2,)),
        predictor=PredictorConfig(layers=1, cell="conv_lstm"),
        window=1,
    )


TINY_CONTEXT = 3  # the context the tiny checkpoint is trained with


def fit_tiny_checkpoint(path: Path, frames: int = 6, size: int = 16, net=None) -> torch.nn.Module:
    """Two optimizer steps of the real LightningModule and Trainer, saved as ``crevnet fit`` saves.

    Building the checkpoint through Lightning (not by hand) keeps the tests on the real file format.
    ``net`` replaces the tiny config. Returns the trained ``CrevNetModule``.
    """
    import lightning as L
    from torch.utils.data import DataLoader

    from crevnet.train.module import CrevNetModule

    torch.manual_seed(0)
    module = CrevNetModule(net=net or _tiny_net(), context=TINY_CONTEXT, lr=1e-2)
    videos = torch.rand(4, frames, 1, size, size, generator=torch.Generator().manual_seed(1))
    trainer = L.Trainer(
        max_steps=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=path.parent,
    )
    trainer.fit(module, DataLoader(videos, batch_size=2))
    trainer.save_checkpoint(path)
    return module


@pytest.fixture(scope="session")
def tiny_net():
    """The tiny 2-D CrevNetConfig the checkpoint tests train."""
    return _tiny_net()


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """``run_cli(*argv)`` runs ``crevnet *argv`` in this process: (exit status, stdout, stderr)."""
    from crevnet.cli import main

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture(scope="session")
def one_error_line() -> Callable[[str], str]:
    """Checks that stderr is one ``crevnet: error: ...`` line and no traceback; returns that line."""

    def check(err: str) -> str:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("crevnet: error: "), err
        assert "Traceback" not in err
        return lines[0]

    return check


@pytest.fixture(scope="session")
def fit_tiny():
    """:func:`fit_tiny_checkpoint`, for module-scoped fixtures that build their own checkpoint."""
    return fit_tiny_checkpoint


@pytest.fixture(scope="session")
def clip_factory():
    """``tests/clip_factory.py`` (tiny indexed clips written with OpenCV / Pillow), as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("crevnet_clip_factory", REPO / "tests" / "clip_factory.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
