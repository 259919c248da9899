"""``crevnet fit | validate | test``: Lightning's CLI over :class:`CrevNetModule` and Moving MNIST.

Usage::

    crevnet fit --config configs/quickstart.yaml                  # the main job (2 CPU cores, < 15 min)
    crevnet fit --config configs/quickstart.yaml --ckpt_path last # resume: same step, optimizer, scheduler
    crevnet test --config configs/quickstart.yaml --ckpt_path runs/quickstart/checkpoints/last.ckpt
    crevnet fit --config configs/smoke.yaml --trainer.strategy ddp --trainer.devices 2 \
        --trainer.accelerator cpu
    crevnet fit --config configs/smoke.yaml --trainer.logger lightning.pytorch.loggers.WandbLogger

Defaults added to every run: a CSV logger under ``runs/<name>/version_N``, a ``checkpoint:`` section
(``ModelCheckpoint`` keeping ``last.ckpt`` and the best ``val/mse``, in ``runs/<name>/checkpoints`` so
that ``--ckpt_path last`` finds it), checkpoint files written atomically and read weights-only
(:class:`AtomicCheckpointIO`), and ``torch_threads`` to pin the CPU thread count. wandb never needs a
login: ``WANDB_MODE`` is set to ``offline`` unless the user set it.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.plugins.io import CheckpointIO

from crevnet.data.datamodule import MovingMNISTDataModule
from crevnet.errors import CheckpointError
from crevnet.nn.model import CrevNetConfig, without_run_options
from crevnet.train.checkpoint_io import AtomicCheckpointIO, load_checkpoint_file
from crevnet.train.module import CrevNetModule, config_diff, config_to_dict

__all__ = ["CrevNetCLI", "main"]

DEFAULT_RUNS_DIR = "runs"


class CrevNetCLI(LightningCLI):
    """LightningCLI with crevnet's defaults (see the module docstring)."""

    def __init__(self, args: Sequence[str] | None = None, run: bool = True, **kwargs: Any) -> None:
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("seed_everything_default", 0)
        # The optimizer and schedule are CrevNetModule arguments (model.lr, model.schedule, ...): one place.
        kwargs.setdefault("auto_configure_optimizers", False)
        defaults: dict[str, Any] = {
            "logger": {
                "class_path": "lightning.pytorch.loggers.CSVLogger",
                "init_args": {"save_dir": DEFAULT_RUNS_DIR, "name": "crevnet"},
            },
            "gradient_clip_val": 1.0,
        }
        kwargs["trainer_defaults"] = {**defaults, **(kwargs.get("trainer_defaults") or {})}
        with warnings.catch_warnings():
            # crevnet's dispatcher passes its own argv on purpose; Lightning warns when sys.argv is non-empty.
            warnings.filterwarnings("ignore", message="LightningCLI's args parameter", category=UserWarning)
            # Any LightningDataModule may be the data section (``data: {class_path: ...}``, e.g.
            # crevnet.data.VideoFolderDataModule); without a class_path it is MovingMNISTDataModule.
            kwargs.setdefault("subclass_mode_data", True)
            super().__init__(
                CrevNetModule,
                L.LightningDataModule,
                args=None if args is None else list(args),
                run=run,
                **kwargs,
            )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Add the ``checkpoint:`` section and ``torch_threads``."""
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {"data": {"class_path": f"{MovingMNISTDataModule.__module__}.MovingMNISTDataModule"}}
        )
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/mse",
                "checkpoint.mode": "min",
                "checkpoint.save_last": True,
                "checkpoint.save_top_k": 1,
                "checkpoint.filename": "best-{step}",
            }
        )
        parser.add_argument(
            "--torch_threads",
            type=int | None,
            default=None,
            help="torch.set_num_threads for this run (default: leave PyTorch's choice)",
        )

    def before_instantiate_classes(self) -> None:
        """Apply ``torch_threads`` before anything is built."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        threads = config.get("torch_threads")
        if threads is not None:
            if threads < 1:
                raise ValueError(f"--torch_threads must be >= 1, got {threads}")
            torch.set_num_threads(threads)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """Add the atomic CheckpointIO and give the checkpoint callback a stable folder."""
        config = self.config_init[self.subcommand] if self.subcommand else self.config_init
        plugins = config["trainer"].get("plugins")
        plugins = [] if plugins is None else list(plugins) if isinstance(plugins, list) else [plugins]
        if not any(isinstance(p, CheckpointIO) for p in plugins):
            plugins.append(AtomicCheckpointIO())
        kwargs["plugins"] = plugins
        trainer = super().instantiate_trainer(**kwargs)
        for callback in trainer.checkpoint_callbacks:
            if isinstance(callback, ModelCheckpoint) and callback.dirpath is None:
                callback.dirpath = str(_stable_checkpoint_dir(trainer))
        return trainer

    def _parse_ckpt_path(self) -> None:
        # Lightning would silently rebuild the model from the checkpoint's hyperparameters; a checkpoint
        # of another model config is a user error here, named key by key.
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt_path and Path(ckpt_path).is_file():
            hparams = dict(load_checkpoint_file(ckpt_path).get("hyper_parameters", {}))
            saved = hparams.get("net")
            if not isinstance(saved, Mapping):
                raise CheckpointError(
                    f"{ckpt_path}: no 'net' hyperparameters; expected a checkpoint of crevnet fit"
                )
            saved = without_run_options(saved)  # older checkpoints stored memory_saving / bf16 in net
            net = self.config[subcommand].model.net
            net = net.as_dict() if hasattr(net, "as_dict") else dataclasses.asdict(net)
            diffs = config_diff(saved, config_to_dict(CrevNetConfig.from_dict(net)))
            if diffs:
                raise CheckpointError(
                    f"{ckpt_path} was trained with a different model config (model.net): " + "; ".join(diffs)
                )
            # What Lightning's own _parse_ckpt_path does, with the cleaned net.
            hparams.pop("_instantiator", None)
            hparams["net"] = saved
            self.config = self.parser.parse_object({subcommand: {"model": hparams}}, self.config)

    def _run_subcommand(self, subcommand: str) -> None:
        config = self.config_init[subcommand]
        if config.get("ckpt_path") == "last":
            found = [
                path
                for cb in self.trainer.checkpoint_callbacks
                if isinstance(cb, ModelCheckpoint) and cb.dirpath
                for path in [Path(cb.dirpath) / f"{cb.CHECKPOINT_NAME_LAST}{cb.FILE_EXTENSION}"]
                if path.is_file()
            ]
            if not found:
                dirs = [
                    cb.dirpath for cb in self.trainer.checkpoint_callbacks if isinstance(cb, ModelCheckpoint)
                ]
                raise CheckpointError(
                    f"--ckpt_path last: no last.ckpt in {dirs}; train once without it first"
                )
        super()._run_subcommand(subcommand)
        if subcommand == "fit" and not self.trainer.interrupted:
            self._save_final_last()

    def _save_final_last(self) -> None:
        # ModelCheckpoint writes last.ckpt only when it saves (at validation); a run stopped by max_time
        # or max_steps between two validations would otherwise resume from an older step.
        for cb in self.trainer.checkpoint_callbacks:
            if isinstance(cb, ModelCheckpoint) and cb.save_last and cb.dirpath:
                if cb._last_global_step_saved != self.trainer.global_step:
                    path = Path(cb.dirpath) / f"{cb.CHECKPOINT_NAME_LAST}{cb.FILE_EXTENSION}"
                    # a full checkpoint (optimizer, loops, callbacks) so that it can be resumed
                    self.trainer.save_checkpoint(path, weights_only=False)
                return


def _stable_checkpoint_dir(trainer: Trainer) -> Path:
    # <save_dir>/<name>/checkpoints: the same for every version, so "--ckpt_path last" finds it.
    logger = trainer.logger
    save_dir = getattr(logger, "save_dir", None) if logger is not None else None
    name = getattr(logger, "name", None) if logger is not None else None
    if save_dir and isinstance(name, str) and name:
        return Path(save_dir) / name / "checkpoints"
    return Path(trainer.default_root_dir) / "checkpoints"


def main(argv: Sequence[str]) -> int:
    """Run ``crevnet fit|validate|test ARGS`` (``argv`` starts with the subcommand); returns 0."""
    os.environ.setdefault("WANDB_MODE", "offline")  # wandb is opt-in and never asks for a login
    CrevNetCLI(args=argv, run=True)
    return 0
