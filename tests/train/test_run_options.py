"""Run options (memory saving, bf16) are arguments of the run, not of the model: a checkpoint written in one
mode resumes in another, and checkpoints that still record them in ``net`` load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from crevnet.commands.fit import main
from crevnet.io.checkpoint import read_checkpoint
from crevnet.models.checkpoint import load_model
from crevnet.train.cli import CrevNetCLI

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml"


def test_a_run_written_with_full_memory_saving_resumes_with_it_off(
    smoke_env: Path, fit_smoke, crash_at, same_training_state
) -> None:
    common = [
        "--trainer.max_steps=10",
        "--data.train_size=16",
        "--model.schedule.kind=cosine",
        "--model.total_steps=10",
        "--trainer.val_check_interval=2",
        "--checkpoint.every_n_train_steps=1",
    ]
    straight = fit_smoke(smoke_env / "a", [*common, "--model.memory_saving=off"])
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit_smoke(smoke_env / "b", [*common, "--model.memory_saving=full"], [crash_at(6)])
    last = smoke_env / "b" / "smoke" / "version_0" / "checkpoints" / "last.ckpt"
    saved = read_checkpoint(last)
    assert saved["global_step"] == 6
    assert "memory_saving" not in saved["hyper_parameters"]  # not part of what the checkpoint records
    resumed = fit_smoke(smoke_env / "b", [*common, "--model.memory_saving=off", "--ckpt_path=last"])
    assert resumed.model.memory_saving.value == "off"
    assert resumed.trainer.global_step == straight.trainer.global_step == 10
    same_training_state(straight, resumed, 10)


def test_a_checkpoint_recording_run_options_in_net_still_loads_and_resumes(smoke_env: Path) -> None:
    assert main(["fit", "--config", str(SMOKE), "--trainer.max_steps=2"]) == 0
    ckpt = smoke_env / "runs" / "smoke" / "version_0" / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(ckpt, weights_only=True)
    net = checkpoint["hyper_parameters"]["net"]
    net["encoder"]["memory_saving"] = True  # what older versions wrote
    net["predictor"]["bf16"] = False
    old = smoke_env / "old.ckpt"
    torch.save(checkpoint, old)
    loaded = load_model(old)
    assert loaded.model.config == CrevNetCLI(args=["--config", str(SMOKE)], run=False).model.net.config
    args = ["--trainer.max_steps=3", "--model.memory_saving=encoder", f"--ckpt_path={old}"]
    assert main(["fit", "--config", str(SMOKE), *args]) == 0
    # started from a file (not --ckpt_path last), the run gets a folder of its own
    new_run = smoke_env / "runs" / "smoke" / "version_1" / "checkpoints" / "last.ckpt"
    assert read_checkpoint(new_run)["global_step"] == 3
