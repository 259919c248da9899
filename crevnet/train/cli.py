"""Lightning's CLI over :class:`CrevNetModule` and Moving MNIST: what ``crevnet fit | validate | test`` run.

The command itself is :mod:`crevnet.commands.fit`. Usage::

    crevnet fit --config quickstart                      # the main job (2 CPU cores, < 15 min)
    crevnet fit --config quickstart --ckpt_path last     # resume: same step, optimizer, scheduler
    crevnet test --config quickstart --ckpt_path runs/quickstart   # its newest run
    crevnet fit --config configs/smoke.yaml --trainer.strategy ddp --trainer.devices 2 \
        --trainer.accelerator cpu
    crevnet fit --config smoke --trainer.logger lightning.pytorch.loggers.WandbLogger

``--config`` takes a file or the name of a config shipped with the package (:mod:`crevnet.configs`).

Defaults added to every run: a CSV logger (:class:`~crevnet.train.logger.AtomicCSVLogger`: its
``metrics.csv`` and ``hparams.yaml`` written atomically, as is ``config.yaml`` by :class:`AtomicSaveConfig`)
whose ``save_dir`` is ``trainer.default_root_dir`` (``runs`` unless given; a ``save_dir`` given
explicitly wins), so every run writes its own folder
``<root>/<name>/version_N/`` with its checkpoints in ``checkpoints/`` (Lightning's layout, see
:mod:`crevnet.io.runs`); a ``checkpoint:`` section (``ModelCheckpoint`` keeping ``last.ckpt`` and the
best ``val/mse``); checkpoint files written atomically and read weights-only
(:class:`AtomicCheckpointIO`); and ``torch_threads`` to pin the CPU thread count. ``--ckpt_path last``
resumes the newest run (the one ``crevnet evaluate --ckpt <root>/<name>`` reads) in its own folder;
``--ckpt_path`` also takes a run folder; the checkpoint is read once and checked against the config and
the run's budget (:mod:`crevnet.train.resume`). At the end (``after_fit``) ``fit`` prints the
checkpoints it wrote and the command to evaluate them. A bad argument or config key is one line (with
the closest known keys), not the usage. wandb never needs a login: ``WANDB_MODE`` is set to
``offline`` unless the user set it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import io
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.plugins.io import CheckpointIO

from crevnet.configs import resolve_config
from crevnet.data.datamodule import MovingMNISTDataModule
from crevnet.errors import ConfigError, OutputError
from crevnet.io.atomic import atomic_write_bytes
from crevnet.io.runs import CHECKPOINT_DIR, LAST_CHECKPOINT, newest_run, point_latest
from crevnet.train.checkpoint_io import AtomicCheckpointIO
from crevnet.train.logger import AtomicCSVLogger
from crevnet.train.module import CrevNetModule
from crevnet.train.resume import (
    LIGHTNING_CKPT_WORDS,
    ResumePoint,
    check_budget,
    find_resume_point,
    merge_metrics,
    set_aside_metrics,
)

__all__ = ["AtomicSaveConfig", "CrevNetCLI", "RunCheckpoint"]

DEFAULT_RUNS_DIR = "runs"
ROOT_DIR_PLACEHOLDER = "<default_root_dir>"
"""The logger's default ``save_dir``: replaced by ``trainer.default_root_dir`` after parsing."""


class RunCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that also points ``<root>/<name>/latest`` at this run after each save.

    Saves are seen through public hooks only: a save inside one of ModelCheckpoint's hooks calls this
    callback's :meth:`on_save_checkpoint` (on every rank), so :attr:`saved_step` is the same on all ranks.
    """

    saved_step: int | None = None
    """The step at which this callback last saved (its ``last.ckpt`` with ``save_last``); None before."""
    _saving = False

    def on_save_checkpoint(self, trainer: Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        """Note that a checkpoint is being written (by this callback when inside one of its hooks)."""
        self._saving = True
        super().on_save_checkpoint(trainer, pl_module, checkpoint)

    def _watch(self, trainer: Trainer, hook: Callable[[], None]) -> None:
        self._saving = False
        hook()
        if self._saving:
            self.saved_step = trainer.global_step
            if trainer.is_global_zero and self.dirpath:
                _point_latest(Path(self.dirpath))
        self._saving = False

    def on_train_batch_end(self, trainer: Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        """ModelCheckpoint's hook; then point ``latest`` at this run if it saved."""
        self._watch(trainer, lambda: super(RunCheckpoint, self).on_train_batch_end(trainer, pl_module, *args))

    def on_train_epoch_end(self, trainer: Trainer, pl_module: L.LightningModule) -> None:
        """ModelCheckpoint's hook; then point ``latest`` at this run if it saved."""
        self._watch(trainer, lambda: super(RunCheckpoint, self).on_train_epoch_end(trainer, pl_module))

    def on_validation_end(self, trainer: Trainer, pl_module: L.LightningModule) -> None:
        """ModelCheckpoint's hook; then point ``latest`` at this run if it saved."""
        self._watch(trainer, lambda: super(RunCheckpoint, self).on_validation_end(trainer, pl_module))

    def on_train_end(self, trainer: Trainer, pl_module: L.LightningModule) -> None:
        """ModelCheckpoint's hook; then point ``latest`` at this run if it saved."""
        self._watch(trainer, lambda: super(RunCheckpoint, self).on_train_end(trainer, pl_module))

    def on_exception(self, trainer: Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        """ModelCheckpoint's hook; then point ``latest`` at this run if it saved."""
        self._watch(trainer, lambda: super(RunCheckpoint, self).on_exception(trainer, pl_module, exception))


def _point_latest(checkpoint_dir: Path) -> None:
    # Only Lightning's layout <root>/<name>/version_N/checkpoints gets a "latest" link.
    run = checkpoint_dir.parent
    if checkpoint_dir.name == CHECKPOINT_DIR and re.fullmatch(r"version_\d+", run.name):
        point_latest(run)


class AtomicSaveConfig(SaveConfigCallback):
    """LightningCLI's ``config.yaml`` of a run, written through :mod:`crevnet.io.atomic` (rank 0)."""

    def setup(self, trainer: Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Write ``<log_dir>/config.yaml`` once per run, whole or not at all."""
        if self.already_saved:
            return
        log_dir = trainer.log_dir  # on every rank: it is a collective call
        if trainer.is_global_zero and log_dir is not None:
            path = Path(log_dir) / self.config_filename
            if not self.overwrite and path.is_file():
                raise OutputError(f"{path} exists; this run would overwrite another run's config")
            text = self.parser.dump(self.config, skip_none=False)
            atomic_write_bytes(path, text.encode())
            self.save_config(trainer, pl_module, stage)
        self.already_saved = trainer.strategy.broadcast(True)


class CrevNetCLI(LightningCLI):
    """LightningCLI with crevnet's defaults (see the module docstring).

    Built on LightningCLI's public hooks only: :meth:`parse_arguments` (one-line errors, ``--ckpt_path``
    read and checked, :mod:`crevnet.train.resume`), :meth:`before_instantiate_classes`,
    :meth:`instantiate_trainer`, :meth:`before_fit` and :meth:`after_fit` (the end-of-fit work).
    """

    def __init__(self, args: Sequence[str] | None = None, run: bool = True, **kwargs: Any) -> None:
        argv = list(sys.argv[1:] if args is None else args)
        named = _named_configs(argv)  # --config quickstart: the shipped file (crevnet.configs)
        self._argv = named
        os.environ.setdefault("WANDB_MODE", "offline")  # wandb is opt-in and never asks for a login
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("save_config_callback", AtomicSaveConfig)
        kwargs.setdefault("seed_everything_default", 0)
        # The optimizer and schedule are CrevNetModule arguments (model.lr, model.schedule, ...): one place.
        kwargs.setdefault("auto_configure_optimizers", False)
        defaults: dict[str, Any] = {
            "logger": {
                "class_path": f"{AtomicCSVLogger.__module__}.AtomicCSVLogger",
                "init_args": {"save_dir": ROOT_DIR_PLACEHOLDER, "name": "crevnet"},
            },
            "default_root_dir": DEFAULT_RUNS_DIR,
            "gradient_clip_val": 1.0,
        }
        self._resume: ResumePoint | None = None  # the checkpoint --ckpt_path names, read and checked
        self._init_from: str | None = None  # set aside while a resumed or scored run is built
        self._parsers: list[LightningArgumentParser] = []  # every parser built (for close-match hints)
        kwargs["trainer_defaults"] = {**defaults, **(kwargs.get("trainer_defaults") or {})}
        with warnings.catch_warnings():
            # crevnet's dispatcher passes its own argv on purpose; Lightning warns when sys.argv is non-empty.
            warnings.filterwarnings("ignore", message="LightningCLI's args parameter", category=UserWarning)
            # a resumed run logs into its own folder on purpose (its metrics.csv was set aside)
            warnings.filterwarnings("ignore", message="Experiment logs directory .* exists and is not empty")
            warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")
            # Any LightningDataModule may be the data section (``data: {class_path: ...}``, e.g.
            # crevnet.data.VideoFolderDataModule); without a class_path it is MovingMNISTDataModule.
            kwargs.setdefault("subclass_mode_data", True)
            super().__init__(
                CrevNetModule,
                L.LightningDataModule,
                args=None if args is None and named == argv else named,
                run=run,
                **kwargs,
            )

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        """LightningCLI's parser (the main one and each subcommand's), kept for the close-match hints."""
        parser = super().init_parser(**kwargs)
        self._parsers.append(parser)
        return parser

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Add the ``checkpoint:`` section and ``torch_threads``."""
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
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

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse; then read and check the ``--ckpt_path`` checkpoint (:mod:`crevnet.train.resume`).

        A bad argument or config key raises :class:`ConfigError` (one line, close matches); so does a
        ``fit`` budget the checkpoint has already passed.
        """
        with _one_line_errors(self._explain):
            super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if subcommand:
            _apply_root_dir(self.config[subcommand])
            self._read_ckpt_path(subcommand)
        else:
            _apply_root_dir(self.config)

    def _read_ckpt_path(self, subcommand: str) -> None:
        # One reader and one compatibility check for every command: a crafted or foreign file is refused
        # in words (Lightning's own parse would print torch's raw message); "last" and run folders are
        # resolved to the newest run's file, as evaluate and predict resolve them.
        config = self.config[subcommand]
        spec = config.get("ckpt_path")
        if not spec or spec in LIGHTNING_CKPT_WORDS:
            return
        net = config.model.net
        net = net.as_dict() if hasattr(net, "as_dict") else dataclasses.asdict(net)
        point = find_resume_point(spec, _runs_root(config), net, fit=subcommand == "fit")
        if subcommand == "fit":
            check_budget(point, config.trainer.get("max_epochs"), config.trainer.get("max_steps"))
        if point.hparams:
            with _one_line_errors(self._explain):
                self.config = self.parser.parse_object({subcommand: {"model": point.hparams}}, self.config)
            config = self.config[subcommand]
        if point.run is not None:
            # the resumed run logs into its own folder (its rows so far are set aside in before_fit)
            logger = _first_logger(config)
            if logger is not None and "version" in logger.get("init_args", {}):
                logger.init_args.version = point.run.name
        # The file is read: LightningCLI is given no path to read a second time (with torch's raw
        # messages) until the classes are built, when before_instantiate_classes puts it back.
        config.ckpt_path = None
        self._resume = point

    def before_instantiate_classes(self) -> None:
        """Put the checked ``ckpt_path`` back; apply ``torch_threads`` before anything is built."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        if self._resume is not None:
            config.ckpt_path = str(self._resume.path)
        threads = config.get("torch_threads")
        if threads is not None:
            if threads < 1:
                raise ValueError(f"--torch_threads must be >= 1, got {threads}")
            torch.set_num_threads(threads)
        # With a checkpoint to resume or score, its weights replace the starting ones: the init_from
        # source is not read (it may be gone by now); it is put back for config.yaml after the build.
        model = config.get("model")
        self._init_from = model.get("init_from") if config.get("ckpt_path") and model else None
        if self._init_from is not None:
            model.init_from = None

    def instantiate_classes(self) -> None:
        """Build the model, data and trainer (see :meth:`before_instantiate_classes`).

        A class that refuses its arguments is its own message: jsonargparse wraps the error of a
        subclass choice (the data section) into a dump of every Union member and the namespace.
        """
        try:
            super().instantiate_classes()
        except ValueError as err:
            if "Does not validate against any of the Union subtypes" not in str(err):
                raise
            cause: BaseException = err
            while cause.__cause__ is not None:
                cause = cause.__cause__
            if cause is not err:
                raise cause from None
            reasons = [line[4:] for line in str(err).splitlines() if line.startswith("  - ")]
            raise ConfigError("; ".join(r for r in reasons if "NoneType" not in r) or str(err)) from None
        if self._init_from is not None:
            config = self.config[self.subcommand] if self.subcommand else self.config
            config.model.init_from = self._init_from

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """Add the atomic CheckpointIO."""
        config = self.config_init[self.subcommand] if self.subcommand else self.config_init
        plugins = config["trainer"].get("plugins")
        plugins = [] if plugins is None else list(plugins) if isinstance(plugins, list) else [plugins]
        if not any(isinstance(p, CheckpointIO) for p in plugins):
            plugins.append(AtomicCheckpointIO())
        kwargs["plugins"] = plugins
        return super().instantiate_trainer(**kwargs)

    def before_fit(self) -> None:
        """A run resumed in place: set its rows so far aside (merged back in :meth:`after_fit`), say so."""
        point = self._resume
        if point is None or point.run is None or not self.trainer.is_global_zero:
            return
        set_aside_metrics(point.run, point.step)
        print(f"crevnet fit: resuming run {point.run} from step {point.step} ({point.path})")

    def after_fit(self) -> None:
        """The end-of-fit work: a final ``last.ckpt``, the run's metrics whole, what was written."""
        if self.trainer.interrupted:
            return
        self._save_final_last()
        if self.trainer.is_global_zero:
            self._finish_run()

    def _explain(self, text: str) -> str:
        # jsonargparse printed the usage and then "error: <message>"; keep the message, add close matches.
        match = re.search(r"^error: (.*)", text, flags=re.MULTILINE | re.DOTALL)
        message = " ".join((match.group(1) if match else text).split()) or "invalid arguments"
        unknown = re.findall(r"does not accept option '([^']+)'", message)
        if "unrecognized arguments:" in message:
            unknown += [
                a[2:].split("=")[0] for a in re.findall(r"--[\w.\-]+", message.split("arguments:")[1])
            ]
        keys = self._known_keys()
        hints = []
        for key in unknown:
            parent = key.rpartition(".")[0]
            leaves = {k.rpartition(".")[2]: k for k in keys if k.rpartition(".")[0] == parent}
            close = [
                leaves[m] for m in difflib.get_close_matches(key.rpartition(".")[2], leaves, n=2, cutoff=0.6)
            ]
            close = close or difflib.get_close_matches(key, keys, n=2, cutoff=0.8)
            if close:
                hints.append(f"did you mean {' or '.join(f'`{c}`' for c in close)} instead of `{key}`?")
        subcommand = next((a for a in self._argv if a in self.subcommands()), "")
        command = f"crevnet {subcommand}".strip()
        hint = f" ({'; '.join(hints)})" if hints else ""
        return f"{subcommand or 'crevnet'}: {message}{hint}; see '{command} --help'"

    def _known_keys(self) -> list[str]:
        # Every option of every parser built, as a user types it (data.batch_size, not data.init_args...).
        keys: set[str] = set()
        for parser in self._parsers:
            with contextlib.suppress(Exception):  # a parser whose defaults do not resolve adds nothing
                defaults = parser.get_defaults()  # a jsonargparse Namespace: keys() are the nested ones
                keys.update(k.replace(".init_args.", ".") for k in defaults.keys())  # noqa: SIM118
        return sorted(k for k in keys if k not in ("config", "subcommand") and not k.endswith(".class_path"))

    def _save_final_last(self) -> None:
        # ModelCheckpoint writes last.ckpt only when it saves (at validation); a run stopped by max_time
        # or max_steps between two validations would otherwise resume from an older step.
        for cb in self.trainer.checkpoint_callbacks:
            if isinstance(cb, RunCheckpoint) and cb.save_last and cb.dirpath:
                if cb.saved_step != self.trainer.global_step:
                    path = Path(cb.dirpath) / f"{cb.CHECKPOINT_NAME_LAST}{cb.FILE_EXTENSION}"
                    # a full checkpoint (optimizer, loops, callbacks) so that it can be resumed
                    self.trainer.save_checkpoint(path, weights_only=False)
                    cb.saved_step = self.trainer.global_step
                    if self.trainer.is_global_zero:
                        _point_latest(path.parent)
                return

    def _finish_run(self) -> None:
        """Merge a resumed run's earlier metrics back; print the checkpoints written and what to run next."""
        dirs = [Path(cb.dirpath) for cb in self.trainer.checkpoint_callbacks if getattr(cb, "dirpath", None)]
        if not dirs:
            return
        run = dirs[0].parent
        merge_metrics(run)
        written = sorted(p for d in dirs for p in d.glob("*.ckpt"))
        resumed = self._resume is not None and self._resume.run is not None
        how = f"resumed from step {self._resume.step}" if resumed else "a new run"
        lines = [f"crevnet fit: run {run} ({how}) ended at step {self.trainer.global_step}; checkpoints:"]
        lines += [f"  {p}" for p in written]
        target = run.parent if newest_run(run.parent) == run else run
        lines.append(f"evaluate it: crevnet evaluate --ckpt {target}")
        if target != run:
            lines.append(
                f"  ({target} means its newest run, this one: {run / CHECKPOINT_DIR / LAST_CHECKPOINT})"
            )
        print("\n".join(lines))


def _named_configs(argv: list[str]) -> list[str]:
    # --config NAME (or configs/NAME.yaml without a clone) means the shipped file; a path stays a path.
    out = list(argv)
    for i, arg in enumerate(out):
        if arg == "--config" and i + 1 < len(out):
            out[i + 1] = resolve_config(out[i + 1])
        elif arg.startswith("--config="):
            out[i] = "--config=" + resolve_config(arg.partition("=")[2])
    return out


@contextlib.contextmanager
def _one_line_errors(explain: Callable[[str], str]) -> Iterator[None]:
    # jsonargparse prints the usage and "error: ..." and exits; keep its message as one ConfigError.
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            yield
    except SystemExit as exit_:
        if not exit_.code:  # --help, --print_config: their output went to stdout
            raise
        raise ConfigError(explain(captured.getvalue())) from None


def _first_logger(config: Any) -> Any:
    logger = config.get("trainer", {}).get("logger") if hasattr(config, "get") else None
    if isinstance(logger, list):
        logger = logger[0] if logger else None
    return logger if hasattr(logger, "get") and logger.get("init_args") is not None else None


def _apply_root_dir(config: Any) -> None:
    # A logger whose save_dir was not given writes under trainer.default_root_dir (issue: the configs'
    # save_dir used to win silently over --trainer.default_root_dir).
    loggers = config.get("trainer", {}).get("logger")
    root = config.get("trainer", {}).get("default_root_dir") or DEFAULT_RUNS_DIR
    for logger in loggers if isinstance(loggers, list) else [loggers]:
        init = logger.get("init_args") if hasattr(logger, "get") else None
        if init is not None and init.get("save_dir") == ROOT_DIR_PLACEHOLDER:
            init.save_dir = str(root)


def _runs_root(config: Any) -> Path:
    # <save_dir>/<name>: the folder holding this config's version_N runs.
    logger = _first_logger(config)
    root = Path(config.trainer.get("default_root_dir") or DEFAULT_RUNS_DIR)
    if logger is None:
        return root
    save_dir = logger.init_args.get("save_dir") or root
    name = logger.init_args.get("name")
    return Path(save_dir) / name if name else Path(save_dir)
