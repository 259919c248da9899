"""Fixtures for the training tests: the smoke config, run in a temporary folder with genuine MNIST."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import lightning as L
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


QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


class Interrupt(L.Callback):
    """Stops the run with an error when training reaches ``step`` (a crash after a checkpoint)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError("simulated crash")


def _fit_smoke(root: Path, extra: list[str], callbacks: list[L.Callback] | None = None):
    from crevnet.train.cli import CrevNetCLI

    args = ["fit", "--config", str(SMOKE), *QUIET, *extra, f"--trainer.logger.init_args.save_dir={root}"]
    return CrevNetCLI(args=args, trainer_defaults={"callbacks": callbacks} if callbacks else None)


@pytest.fixture
def fit_smoke() -> Callable[..., object]:
    """``fit_smoke(root, extra, callbacks=None)``: ``crevnet fit`` of the smoke config, logs under root."""
    return _fit_smoke


@pytest.fixture
def crash_at() -> type[L.Callback]:
    """The callback class ``crash_at(step)``: raises when training reaches ``step``."""
    return Interrupt
