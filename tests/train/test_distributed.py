"""Multi-process training (DDP on 2 CPU processes) and offline wandb logging, each in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from crevnet.models.checkpoint import resolve_checkpoint

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml"

_DDP_SCRIPT = """
import sys, torch, lightning as L
from crevnet.train.cli import CrevNetCLI

class SaveWeights(L.Callback):
    def on_train_end(self, trainer, pl_module):
        torch.save({k: v.detach().clone() for k, v in pl_module.state_dict().items()},
                   f"rank{trainer.global_rank}.pt")
        torch.save(trainer.world_size, f"world{trainer.global_rank}.pt")

CrevNetCLI(args=sys.argv[1:], trainer_defaults={"callbacks": [SaveWeights()]})
"""


@pytest.mark.slow
def test_ddp_two_cpu_processes_end_with_equal_weights(smoke_env: Path) -> None:
    script = smoke_env / "ddp_fit.py"
    script.write_text(textwrap.dedent(_DDP_SCRIPT))
    args = ["fit", "--config", str(SMOKE), "--trainer.strategy", "ddp", "--trainer.devices", "2"]
    args += [
        "--trainer.accelerator",
        "cpu",
        "--trainer.max_steps",
        "3",
        "--trainer.enable_progress_bar",
        "false",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, str(script), *args],
        cwd=smoke_env,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert torch.load(smoke_env / "world0.pt") == torch.load(smoke_env / "world1.pt") == 2
    rank0 = torch.load(smoke_env / "rank0.pt", weights_only=True)
    rank1 = torch.load(smoke_env / "rank1.pt", weights_only=True)
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        torch.testing.assert_close(rank0[name], rank1[name], rtol=0, atol=0, msg=name)
    # and training changed them: compare with a fresh model of the same seed
    from crevnet.nn.model import load_config
    from crevnet.train.module import CrevNetModule

    torch.manual_seed(0)
    fresh = CrevNetModule(load_config(SMOKE)).state_dict()
    assert any(not torch.equal(fresh[k], rank0[k]) for k in rank0 if k.endswith("weight"))


def test_wandb_logger_runs_offline_without_login(smoke_env: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(
        HOME=str(smoke_env), NO_PROXY="", HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9"
    )
    code = (
        "import os, sys; from crevnet.commands.fit import main; "
        "rc = main(sys.argv[1:]); print('WANDB_MODE=' + os.environ['WANDB_MODE']); sys.exit(rc)"
    )
    args = [
        "fit",
        "--config",
        str(SMOKE),
        "--trainer.max_steps",
        "2",
        "--trainer.enable_progress_bar",
        "false",
    ]
    args += ["--trainer.logger", "lightning.pytorch.loggers.WandbLogger", "--trainer.logger.save_dir", "wb"]
    args += ["--trainer.logger.project", "crevnet-test"]
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=smoke_env,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "WANDB_MODE=offline" in proc.stdout
    runs = list((smoke_env / "wb" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, list((smoke_env / "wb").rglob("*"))
    assert list(runs[0].glob("run-*.wandb")), list(runs[0].iterdir())
    # each run has its own folder (wandb names it by the run id); "runs/<name>" finds the newest
    (last,) = (smoke_env / "wb" / "crevnet-test").glob("*/checkpoints/last.ckpt")
    assert resolve_checkpoint(smoke_env / "wb" / "crevnet-test") == last
