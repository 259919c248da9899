"""``crevnet fit|validate|test`` through LightningCLI: configs parse, training learns, resume is exact."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import pytest
import yaml

from crevnet.commands.fit import main
from crevnet.errors import CheckpointError
from crevnet.io.checkpoint import read_checkpoint
from crevnet.nn.model import CrevNet, load_config
from crevnet.train.checkpoint_io import AtomicCheckpointIO
from crevnet.train.cli import AtomicSaveConfig, CrevNetCLI
from crevnet.train.logger import AtomicCSVLogger

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SMOKE = CONFIGS / "smoke.yaml"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_config_parses_and_builds_its_model(path: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cli = CrevNetCLI(args=["--config", str(path)], run=False)
    expected = CrevNet(load_config(path))  # the model section read independently of the CLI
    assert cli.model.net.config == expected.config
    assert sum(p.numel() for p in cli.model.parameters()) == sum(p.numel() for p in expected.parameters())
    assert any(isinstance(p, AtomicCheckpointIO) for p in [cli.trainer.strategy.checkpoint_io])
    # metrics.csv, hparams.yaml and config.yaml go through crevnet.io.atomic too
    assert cli.trainer.loggers and all(isinstance(lg, AtomicCSVLogger) for lg in cli.trainer.loggers)
    assert cli.save_config_callback is AtomicSaveConfig
    assert not list(tmp_path.iterdir())  # parsing and building write nothing


def _losses(csv_path: Path, key: str) -> list[float]:
    with csv_path.open() as fh:
        return [float(row[key]) for row in csv.DictReader(fh) if row.get(key)]


def test_smoke_config_trains_and_the_loss_falls(smoke_env: Path) -> None:
    assert main(["fit", "--config", str(SMOKE)]) == 0
    version = smoke_env / "runs" / "smoke" / "version_0"
    losses = _losses(version / "metrics.csv", "train/loss")
    assert len(losses) == 24
    # the same 4 batches every epoch (fixed_train): the last epoch's loss is well below the first's
    assert sum(losses[-4:]) / 4 < 0.85 * sum(losses[:4]) / 4
    val = _losses(version / "metrics.csv", "val/loss")
    assert len(val) == 2 and val[-1] < val[0]
    recon = _losses(version / "metrics.csv", "val/recon_max_abs")
    assert recon and max(recon) < 1e-4  # the autoencoder stays lossless
    checkpoint = read_checkpoint(version / "checkpoints" / "last.ckpt")
    assert checkpoint["global_step"] == 24
    assert (version / "config.yaml").is_file()


def test_a_data_seed_apart_from_the_model_seed_trains_and_both_are_logged(smoke_env: Path) -> None:
    # Both sections have a ``seed`` (the data's draws the clips, the model's the scheduled sampling);
    # Lightning refuses to merge two hyperparameter sets that disagree on a key, so --data.seed alone
    # used to end the run with a traceback. The data section is logged under its own key.
    args = ["fit", "--config", str(SMOKE), "--trainer.max_steps", "2", "--data.seed", "3"]
    assert main(args) == 0
    hparams = yaml.safe_load((smoke_env / "runs" / "smoke" / "version_0" / "hparams.yaml").read_text())
    assert hparams["seed"] == 0 and hparams["lr"] == 0.01  # the model's, at the top as before
    assert hparams["data"]["seed"] == 3 and hparams["data"]["num_frames"] == 8
    assert "num_frames" not in hparams and not any(k.startswith("_") for k in hparams["data"])


@pytest.mark.parametrize("fixed_train", [True, False])
@pytest.mark.parametrize("interrupt_at", [4, 6, 7])  # an epoch boundary (4 batches/epoch), mid-epoch
def test_resume_continues_exactly_like_a_straight_run(
    smoke_env: Path, interrupt_at: int, fixed_train: bool, fit_smoke, crash_at, same_training_state
) -> None:
    """Interrupt after ``interrupt_at`` steps, resume with ``--ckpt_path last``, compare with a straight run.

    Step, scheduler, Adam state and weights all match, also mid-epoch: the training loader saves its
    position (epoch, samples consumed) in the checkpoint and the resumed run continues with the very
    batches the straight run saw next. Fresh sequences every epoch (``fixed_train=false``) make a
    wrong epoch or offset change the data, so the comparison would catch it.
    """
    common = [
        "--trainer.max_steps=10",
        "--data.train_size=16",  # 4 batches of 4 per epoch
        f"--data.fixed_train={str(fixed_train).lower()}",
        "--model.schedule.kind=cosine",
        "--model.total_steps=10",
        "--trainer.val_check_interval=2",
        "--checkpoint.every_n_train_steps=1",
    ]
    straight = fit_smoke(smoke_env / "a", common)
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit_smoke(smoke_env / "b", common, [crash_at(interrupt_at)])
    last = smoke_env / "b" / "smoke" / "version_0" / "checkpoints" / "last.ckpt"
    assert read_checkpoint(last)["global_step"] == interrupt_at
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*dataloader is not resumable.*")
        resumed = fit_smoke(smoke_env / "b", [*common, "--ckpt_path=last"])
    assert resumed.trainer.global_step == straight.trainer.global_step == 10
    assert resumed.trainer.current_epoch == straight.trainer.current_epoch
    sched_a = straight.trainer.lr_scheduler_configs[0].scheduler.state_dict()
    sched_b = resumed.trainer.lr_scheduler_configs[0].scheduler.state_dict()
    assert sched_a["last_epoch"] == sched_b["last_epoch"] == 10
    assert sched_a["_last_lr"] == pytest.approx(sched_b["_last_lr"])
    same_training_state(straight, resumed, 10)


def test_resume_without_a_checkpoint_and_a_foreign_checkpoint_are_clear_errors(smoke_env: Path) -> None:
    with pytest.raises(CheckpointError, match=r"no run under runs/smoke holds checkpoints/last\.ckpt"):
        main(["fit", "--config", str(SMOKE), "--ckpt_path", "last"])
    assert main(["fit", "--config", str(SMOKE), "--trainer.max_steps=1"]) == 0
    ckpt = smoke_env / "runs" / "smoke" / "version_0" / "checkpoints" / "last.ckpt"
    assert read_checkpoint(ckpt)["global_step"] == 1  # saved at the end, not only at validation
    other_layers = "--model.net.predictor.layers=3"
    args = ["validate", "--config", str(SMOKE), other_layers, "--ckpt_path", str(ckpt)]
    with pytest.raises(CheckpointError, match=r"predictor\.layers: checkpoint 2, config 3"):
        main(args)
    # the dispatcher turns it into one line and exit status 2
    from crevnet.cli import main as crevnet_main

    assert crevnet_main(args) == 2


def test_validate_and_test_log_metrics_under_the_test_set_name(smoke_env: Path) -> None:
    assert main(["fit", "--config", str(SMOKE), "--trainer.max_steps=2"]) == 0
    ckpt = smoke_env / "runs" / "smoke" / "version_0" / "checkpoints" / "last.ckpt"
    cli = CrevNetCLI(args=["test", "--config", str(SMOKE), "--ckpt_path", str(ckpt)])
    keys = set(cli.trainer.callback_metrics)
    assert {"test/surrogate/mse", "test/surrogate/ssim"} <= keys
    mse = float(cli.trainer.callback_metrics["test/surrogate/mse"])
    assert 20.0 < mse < 2000.0  # a per-frame sum over 64x64 pixels, not a per-pixel mean
