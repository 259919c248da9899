"""Fixtures for the training tests: the smoke config, run in a temporary folder with genuine MNIST."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import lightning as L
import pytest
import torch

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


class Interrupt(L.Callback):
    """Stops the run with an error when training reaches ``step`` (a crash after a checkpoint)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError("simulated crash")


def _fit_smoke(root: Path, extra: list[str], callbacks: list[L.Callback] | None = None):
    from crevnet.train.cli import CrevNetCLI

    args = ["fit", "--config", str(SMOKE), *extra, f"--trainer.logger.init_args.save_dir={root}"]
    return CrevNetCLI(args=args, trainer_defaults={"callbacks": callbacks} if callbacks else None)


@pytest.fixture
def fit_smoke() -> Callable[..., object]:
    """``fit_smoke(root, extra, callbacks=None)``: ``crevnet fit`` of the smoke config, logs under root."""
    return _fit_smoke


@pytest.fixture
def crash_at() -> type[L.Callback]:
    """The callback class ``crash_at(step)``: raises when training reaches ``step``."""
    return Interrupt


def _assert_same_training_state(straight, resumed, steps: int) -> None:
    """Two finished ``fit_smoke`` runs hold the same Adam state (``steps`` steps) and weights."""
    opt_a = straight.trainer.optimizers[0].state_dict()
    opt_b = resumed.trainer.optimizers[0].state_dict()
    assert opt_a["param_groups"] == opt_b["param_groups"]
    for key, state in opt_a["state"].items():
        assert int(state["step"]) == int(opt_b["state"][key]["step"]) == steps
        torch.testing.assert_close(state["exp_avg"], opt_b["state"][key]["exp_avg"], rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(
            state["exp_avg_sq"], opt_b["state"][key]["exp_avg_sq"], rtol=1e-5, atol=1e-9
        )
    for name, value in straight.model.state_dict().items():
        torch.testing.assert_close(value, resumed.model.state_dict()[name], rtol=1e-5, atol=1e-6)


@pytest.fixture
def same_training_state() -> Callable[..., None]:
    """``same_training_state(straight, resumed, steps)``: asserts equal optimizer state and weights."""
    return _assert_same_training_state
