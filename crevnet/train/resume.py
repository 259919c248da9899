"""What ``--ckpt_path`` means for ``crevnet fit | validate | test``, and the checks made before a run resumes.

:class:`crevnet.train.cli.CrevNetCLI` calls :func:`find_resume_point` once the arguments are parsed:
``--ckpt_path last`` is the newest run of the config's ``<save_dir>/<name>``
(:func:`crevnet.io.runs.newest_run`, the run ``crevnet evaluate --ckpt <save_dir>/<name>`` reads), a run
folder is its ``last.ckpt``
(:func:`crevnet.models.checkpoint.resolve_checkpoint`, as for ``evaluate`` and ``predict``), and a file is
itself. The file is read once, weights-only, and checked against the config's model
(:func:`crevnet.io.checkpoint.check_compatible`) and, for ``fit``, against the run's budget
(:func:`check_budget`): a budget the checkpoint has already passed is one line that says what to pass,
not Lightning's traceback. A run resumed in place (``fit --ckpt_path last``) keeps the rows it logged so
far: :func:`set_aside_metrics` moves them out of the way of the CSV logger, :func:`merge_metrics` puts
them back in front when the run ends.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from crevnet.errors import CheckpointError, ConfigError
from crevnet.io.atomic import atomic_write_bytes
from crevnet.io.checkpoint import check_compatible, read_checkpoint
from crevnet.io.runs import CHECKPOINT_DIR, LAST_CHECKPOINT, newest_run
from crevnet.models.checkpoint import resolve_checkpoint
from crevnet.nn.model import without_run_options

__all__ = [
    "LIGHTNING_CKPT_WORDS",
    "METRICS",
    "ResumePoint",
    "check_budget",
    "find_resume_point",
    "merge_metrics",
    "set_aside_metrics",
]

LIGHTNING_CKPT_WORDS = ("best", "hpc", "registry")
"""``--ckpt_path`` values Lightning resolves itself (left to it)."""
METRICS = "metrics.csv"
_SET_ASIDE = "metrics.before-step-{step:09d}.csv"


@dataclasses.dataclass(frozen=True)
class ResumePoint:
    """A checkpoint that a run starts from, read and checked.

    Attributes:
        path: the checkpoint file.
        step: its ``global_step``.
        epoch: its ``epoch`` (epochs completed when it was written).
        hparams: the module arguments it records (what LightningCLI puts in the config's ``model``),
            run options dropped; empty when it records none.
        run: the run folder a ``fit --ckpt_path last`` continues in (its own folder, its own logs);
            None when the checkpoint was named otherwise (the run gets a folder of its own).
    """

    path: Path
    step: int
    epoch: int
    hparams: dict[str, Any]
    run: Path | None = None


def find_resume_point(spec: str, runs_root: Path, net: Mapping[str, Any], fit: bool) -> ResumePoint:
    """Read and check the checkpoint that ``--ckpt_path SPEC`` names.

    Args:
        spec: ``last``, a run folder or a checkpoint file (not one of :data:`LIGHTNING_CKPT_WORDS`).
        runs_root: the config's ``<save_dir>/<name>``, where ``last`` looks for the newest run.
        net: the config's model architecture (``model.net`` as a dict), checked against the file's.
        fit: the command is ``fit`` (``last`` then continues that run in its own folder).

    Raises:
        CheckpointError: no run to resume, an unreadable or foreign file, or one whose model differs.
    """
    if spec == "last":
        run = newest_run(runs_root)
        if run is None:
            raise CheckpointError(
                f"--ckpt_path last: no run under {runs_root} holds {CHECKPOINT_DIR}/{LAST_CHECKPOINT}; "
                "train once without --ckpt_path first"
            )
        path = run / CHECKPOINT_DIR / LAST_CHECKPOINT
    else:
        path = resolve_checkpoint(spec)
    checkpoint = read_checkpoint(path)
    check_compatible(checkpoint, dict(net), str(path))
    return ResumePoint(
        path=path,
        step=int(checkpoint.get("global_step") or 0),
        epoch=int(checkpoint.get("epoch") or 0),
        hparams=_module_arguments(checkpoint),
        run=path.parent.parent if spec == "last" and fit else None,
    )


def _module_arguments(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    # As LightningCLI does with a checkpoint: its module arguments become the config's.
    hparams = dict(checkpoint.get("hyper_parameters") or {})
    hparams.pop("_instantiator", None)
    if isinstance(hparams.get("net"), Mapping):  # older checkpoints stored memory_saving / bf16 in net
        hparams["net"] = without_run_options(hparams["net"])
    if "_class_path" in hparams:
        hparams = {"class_path": hparams.pop("_class_path"), "dict_kwargs": hparams}
    return hparams


def check_budget(point: ResumePoint, max_epochs: int | None, max_steps: int | None) -> None:
    """Refuse a ``fit`` budget that the checkpoint has already passed (Lightning's own check is a traceback).

    Args:
        point: the checkpoint the run resumes from.
        max_epochs: ``trainer.max_epochs`` (None or -1: no limit).
        max_steps: ``trainer.max_steps`` (None or -1: no limit).

    Raises:
        ConfigError: one line that names the checkpoint and the value to pass instead.
    """
    for key, budget, done, unit in (
        ("max_epochs", max_epochs, point.epoch, "epoch"),
        ("max_steps", max_steps, point.step, "step"),
    ):
        if budget is not None and budget >= 0 and budget < done:
            raise ConfigError(
                f"--trainer.{key} {budget}: the checkpoint {point.path} is already at {unit} {done}; pass "
                f"--trainer.{key} {done + 1} or more to train further, or start a new run without --ckpt_path"
            )


def set_aside_metrics(run: Path, step: int) -> Path | None:
    """Move ``run``'s ``metrics.csv`` aside before the run resumes (the CSV logger would replace it).

    Returns:
        Where the rows went (``metrics.before-step-N.csv``), or None when there were none.
    """
    metrics = run / METRICS
    if not metrics.is_file():
        return None
    target = run / _SET_ASIDE.format(step=step)
    os.replace(metrics, target)
    return target


def merge_metrics(run: Path) -> None:
    """Put the rows of the earlier parts of a resumed run (set aside) back before the current ones."""
    parts = sorted(run.glob(_SET_ASIDE.replace("{step:09d}", "*")))
    if not parts:
        return
    rows: list[dict[str, str]] = []
    header: list[str] = []
    for part in [*parts, run / METRICS]:
        if part.is_file():
            with part.open(newline="") as handle:
                reader = csv.DictReader(handle)
                header += [k for k in reader.fieldnames or [] if k not in header]
                rows += list(reader)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=header)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(run / METRICS, text.getvalue().encode())
    for part in parts:
        part.unlink()
