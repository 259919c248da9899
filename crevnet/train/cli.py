"""Lightning's CLI over :class:`CrevNetModule` and Moving MNIST: what ``crevnet fit | validate | test`` run.

The command itself is :mod:`crevnet.commands.fit`. Usage::

    crevnet fit --config configs/quickstart.yaml                  # the main job (2 CPU cores, < 15 min)
    crevnet fit --config configs/quickstart.yaml --ckpt_path last # resume: same step, optimizer, scheduler
    crevnet test --config configs/quickstart.yaml --ckpt_path runs/quickstart   # its newest run
    crevnet fit --config configs/smoke.yaml --trainer.strategy ddp --trainer.devices 2 \
        --trainer.accelerator cpu
    crevnet fit --config configs/smoke.yaml --trainer.logger lightning.pytorch.loggers.WandbLogger

Defaults added to every run: a CSV logger (:class:`~crevnet.train.logger.AtomicCSVLogger`: its
``metrics.csv`` and ``hparams.yaml`` written atomically, as is ``config.yaml`` by :class:`AtomicSaveConfig`)
whose ``save_dir`` is ``trainer.default_root_dir`` (``runs`` unless given; a ``save_dir`` given
explicitly wins), so every run writes its own folder
``<root>/<name>/version_N/`` with its checkpoints in ``checkpoints/`` (Lightning's layout, see
:mod:`crevnet.io.runs`); a ``checkpoint:`` section (``ModelCheckpoint`` keeping ``last.ckpt`` and the
best ``val/mse``); checkpoint files written atomically and read weights-only
(:class:`AtomicCheckpointIO`); and ``torch_threads`` to pin the CPU thread count. ``--ckpt_path last``
resumes the newest run (the one ``crevnet evaluate --ckpt <root>/<name>`` reads) in its own folder;
``--ckpt_path`` also takes a run folder. At the end ``fit`` prints the checkpoints it wrote and the
command to evaluate them. A bad argument or config key is one line (with the closest known keys), not
the usage. wandb never needs a login: ``WANDB_MODE`` is set to ``offline`` unless the user set it.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import difflib
import io
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.plugins.io import CheckpointIO
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from crevnet.data.datamodule import MovingMNISTDataModule
from crevnet.errors import CheckpointError, ConfigError, OutputError
from crevnet.io.atomic import atomic_write_bytes
from crevnet.io.checkpoint import check_compatible, read_checkpoint
from crevnet.io.runs import CHECKPOINT_DIR, LAST_CHECKPOINT, newest_run, point_latest
from crevnet.models.checkpoint import resolve_checkpoint
from crevnet.nn.model import without_run_options
from crevnet.train.checkpoint_io import AtomicCheckpointIO
from crevnet.train.logger import AtomicCSVLogger
from crevnet.train.module import CrevNetModule

__all__ = ["AtomicSaveConfig", "CrevNetCLI", "RunCheckpoint"]

DEFAULT_RUNS_DIR = "runs"
ROOT_DIR_PLACEHOLDER = "<default_root_dir>"
"""The logger's default ``save_dir``: replaced by ``trainer.default_root_dir`` after parsing."""
_LIGHTNING_CKPT_WORDS = ("best", "hpc", "registry")  # --ckpt_path values Lightning resolves itself
_METRICS = "metrics.csv"


class RunCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that also points ``<root>/<name>/latest`` at this run after each save."""

    def _save_checkpoint(self, trainer: Trainer, filepath: str) -> None:
        super()._save_checkpoint(trainer, filepath)
        if trainer.is_global_zero:
            _point_latest(Path(filepath).parent)


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
    """LightningCLI with crevnet's defaults (see the module docstring)."""

    def __init__(self, args: Sequence[str] | None = None, run: bool = True, **kwargs: Any) -> None:
        self._argv = list(sys.argv[1:] if args is None else args)
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
        self._resumed: tuple[Path, int] | None = None  # (run folder, its step) when fit resumes
        self._init_from: str | None = None  # set aside while a resumed or scored run is built
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

    def before_instantiate_classes(self) -> None:
        """Apply ``torch_threads`` before anything is built."""
        config = self.config[self.subcommand] if self.subcommand else self.config
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

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse; a bad argument or config key raises :class:`ConfigError` (one line, close matches)."""
        with _one_line_errors(self._explain):
            super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        _apply_root_dir(self.config[subcommand] if subcommand else self.config)

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
        parsers = list(getattr(self, "_subcommand_parsers", {}).values()) or [self.parser]
        keys = {a.dest for p in parsers for a in p._actions if isinstance(a.dest, str)}
        return sorted(k for k in keys if k not in ("help", "config") and not k.endswith(".help"))

    def _parse_ckpt_path(self) -> None:
        # One reader and one compatibility check for every command: a crafted or foreign file is refused
        # in words (Lightning's own parse would print torch's raw message); "last" and run folders are
        # resolved to the newest run's file, as evaluate and predict resolve them.
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else None
        spec = config.get("ckpt_path") if config is not None else None
        if not spec or spec in _LIGHTNING_CKPT_WORDS:
            super()._parse_ckpt_path()
            return
        if spec == "last":
            root = _runs_root(config)
            run = newest_run(root)
            if run is None:
                raise CheckpointError(
                    f"--ckpt_path last: no run under {root} holds {CHECKPOINT_DIR}/{LAST_CHECKPOINT}; train "
                    "once without --ckpt_path first"
                )
            path = run / CHECKPOINT_DIR / LAST_CHECKPOINT
        else:
            path = resolve_checkpoint(spec)
        checkpoint = read_checkpoint(path)
        net = config.model.net
        net = net.as_dict() if hasattr(net, "as_dict") else dataclasses.asdict(net)
        check_compatible(checkpoint, net, str(path))
        # As Lightning does, the checkpoint's module arguments become the config's, from the dict read
        # once above (Lightning's own version would torch.load the file a second time).
        hparams = dict(checkpoint.get("hyper_parameters") or {})
        hparams.pop("_instantiator", None)
        if isinstance(hparams.get("net"), Mapping):  # older checkpoints stored memory_saving / bf16 in net
            hparams["net"] = without_run_options(hparams["net"])
        if hparams:
            if "_class_path" in hparams:
                hparams = {"class_path": hparams.pop("_class_path"), "dict_kwargs": hparams}
            with _one_line_errors(self._explain):
                self.config = self.parser.parse_object({subcommand: {"model": hparams}}, self.config)
            config = self.config[subcommand]
        config.ckpt_path = str(path)
        if spec == "last" and subcommand == "fit":
            self._resume_in(config, path.parent.parent, int(checkpoint.get("global_step") or 0))

    def _resume_in(self, config: Any, run: Path, step: int) -> None:
        # The resumed run logs into its own folder; CSVLogger would delete its metrics.csv, so the rows
        # so far are set aside and merged back when the run ends (they are never lost).
        logger = _first_logger(config)
        if logger is not None and "version" in logger.get("init_args", {}):
            logger.init_args.version = run.name
        if rank_zero_only.rank == 0:
            metrics = run / _METRICS
            if metrics.is_file():
                os.replace(metrics, run / f"metrics.before-step-{step:09d}.csv")
            print(
                f"crevnet fit: resuming run {run} from step {step} ({run / CHECKPOINT_DIR / LAST_CHECKPOINT})"
            )
        self._resumed = (run, step)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """Add the atomic CheckpointIO."""
        config = self.config_init[self.subcommand] if self.subcommand else self.config_init
        plugins = config["trainer"].get("plugins")
        plugins = [] if plugins is None else list(plugins) if isinstance(plugins, list) else [plugins]
        if not any(isinstance(p, CheckpointIO) for p in plugins):
            plugins.append(AtomicCheckpointIO())
        kwargs["plugins"] = plugins
        return super().instantiate_trainer(**kwargs)

    def _run_subcommand(self, subcommand: str) -> None:
        with warnings.catch_warnings():
            # a resumed run logs into its own folder on purpose (its metrics.csv was set aside)
            warnings.filterwarnings("ignore", message="Experiment logs directory .* exists and is not empty")
            warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")
            super()._run_subcommand(subcommand)
        if subcommand == "fit" and not self.trainer.interrupted:
            self._save_final_last()
            if self.trainer.is_global_zero:
                self._finish_run()

    def _save_final_last(self) -> None:
        # ModelCheckpoint writes last.ckpt only when it saves (at validation); a run stopped by max_time
        # or max_steps between two validations would otherwise resume from an older step.
        for cb in self.trainer.checkpoint_callbacks:
            if isinstance(cb, ModelCheckpoint) and cb.save_last and cb.dirpath:
                if cb._last_global_step_saved != self.trainer.global_step:
                    path = Path(cb.dirpath) / f"{cb.CHECKPOINT_NAME_LAST}{cb.FILE_EXTENSION}"
                    # a full checkpoint (optimizer, loops, callbacks) so that it can be resumed
                    self.trainer.save_checkpoint(path, weights_only=False)
                    if self.trainer.is_global_zero:
                        _point_latest(path.parent)
                return

    def _finish_run(self) -> None:
        """Merge a resumed run's earlier metrics back; print the checkpoints written and what to run next."""
        dirs = [Path(cb.dirpath) for cb in self.trainer.checkpoint_callbacks if getattr(cb, "dirpath", None)]
        if not dirs:
            return
        run = dirs[0].parent
        _merge_metrics(run)
        written = sorted(p for d in dirs for p in d.glob("*.ckpt"))
        how = f"resumed from step {self._resumed[1]}" if self._resumed else "a new run"
        lines = [f"crevnet fit: run {run} ({how}) ended at step {self.trainer.global_step}; checkpoints:"]
        lines += [f"  {p}" for p in written]
        target = run.parent if newest_run(run.parent) == run else run
        lines.append(f"evaluate it: crevnet evaluate --ckpt {target}")
        if target != run:
            lines.append(
                f"  ({target} means its newest run, this one: {run / CHECKPOINT_DIR / LAST_CHECKPOINT})"
            )
        print("\n".join(lines))


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


def _merge_metrics(run: Path) -> None:
    # Put the rows of earlier parts of a resumed run (metrics.before-step-N.csv) before the current ones.
    parts = sorted(run.glob("metrics.before-step-*.csv"))
    if not parts:
        return
    rows: list[dict[str, str]] = []
    header: list[str] = []
    for part in [*parts, run / _METRICS]:
        if part.is_file():
            with part.open(newline="") as handle:
                reader = csv.DictReader(handle)
                header += [k for k in reader.fieldnames or [] if k not in header]
                rows += list(reader)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=header)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(run / _METRICS, text.getvalue().encode())
    for part in parts:
        part.unlink()
