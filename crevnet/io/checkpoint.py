"""The one checkpoint reader, writer and compatibility check.

Checkpoints of this project hold only tensors and plain containers (the model config is stored as
nested dicts), so :func:`read_checkpoint` loads them with ``torch.load(weights_only=True)``: a file
that pickles anything else is refused with a message naming the object, never executed.
:func:`write_checkpoint` writes through :func:`crevnet.io.atomic.atomic_write` (atomic, checked,
umask mode). :func:`check_compatible` compares a checkpoint's model config with the one a run was
given, key by key, leaving out the run options older checkpoints stored in it
(:func:`crevnet.nn.model.without_run_options`). ``crevnet fit``
(:class:`crevnet.train.checkpoint_io.AtomicCheckpointIO`, the LightningModule's ``on_load_checkpoint``),
:func:`crevnet.models.checkpoint.load_model`, ``evaluate`` and ``predict`` all use these three functions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from crevnet.errors import CheckpointError
from crevnet.io.atomic import atomic_write
from crevnet.nn.encoder import EncoderConfig
from crevnet.nn.model import CrevNetConfig, without_run_options
from crevnet.nn.predictor import PredictorConfig

__all__ = [
    "DATAMODULE_STATE_KEY",
    "EXPECTED",
    "check_compatible",
    "config_diff",
    "config_to_dict",
    "read_checkpoint",
    "write_checkpoint",
]

DATAMODULE_STATE_KEY = "VideoFolderDataModule"
"""Where Lightning stores the video-folder data module's ``state_dict`` (its split): its class name."""
EXPECTED = "expected a .ckpt written by 'crevnet fit' or crevnet.models.checkpoint.save_model"


def config_to_dict(config: CrevNetConfig) -> dict[str, Any]:
    """The model config as nested plain dicts and lists, so a checkpoint loads with ``weights_only=True``."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return plain(dataclasses.asdict(config))


def config_diff(saved: Mapping[str, Any], current: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``"key: checkpoint a, config b"`` for every (nested) key whose values differ."""
    diffs = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key, "<absent>"), current.get(key, "<absent>")
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            diffs += config_diff(a, b, f"{prefix}{key}.")
        elif a != b:
            diffs.append(f"{prefix}{key}: checkpoint {a!r}, config {b!r}")
    return diffs


def check_compatible(
    checkpoint: Mapping[str, Any], config: CrevNetConfig | Mapping[str, Any], source: str
) -> None:
    """Refuse a checkpoint whose model config differs from ``config``, naming every differing key.

    Args:
        checkpoint: the checkpoint dict (its ``hyper_parameters["net"]`` is compared).
        config: the model config of the run (a :class:`CrevNetConfig` or its nested dict).
        source: the checkpoint's name in messages.

    Raises:
        CheckpointError: no model config in the checkpoint, or a different one.
    """
    hparams = checkpoint.get("hyper_parameters")
    saved = hparams.get("net") if isinstance(hparams, Mapping) else None
    if isinstance(saved, CrevNetConfig):
        saved = config_to_dict(saved)
    if not isinstance(saved, Mapping):
        raise CheckpointError(f"{source}: no 'net' hyperparameters (the crevnet model config); {EXPECTED}")
    current = config_to_dict(config) if isinstance(config, CrevNetConfig) else config
    current = config_to_dict(CrevNetConfig.from_dict(current)) if isinstance(current, Mapping) else current
    # Fields added since the checkpoint was written (e.g. encoder.kind) take their defaults; a config
    # that does not parse is compared as written, and the differences are named below.
    with contextlib.suppress(TypeError, ValueError):
        saved = config_to_dict(CrevNetConfig.from_dict(saved, source=source))
    # Older checkpoints stored the run options memory_saving / bf16 in the config; they describe
    # the same network, so they are left out of the comparison.
    diffs = config_diff(without_run_options(saved), without_run_options(current))
    if diffs:
        raise CheckpointError(
            f"{source} was trained with a different model config (model.net): " + "; ".join(diffs)
        )


def read_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint file into a dict with ``torch.load(weights_only=True)``.

    The config dataclasses are allowlisted, so a checkpoint that pickled them (rather than plain
    dicts) loads too; any other object is refused instead of executed.

    Args:
        path: the ``.ckpt`` / ``.pt`` file.
        map_location: passed to ``torch.load``.

    Returns:
        The checkpoint dict.

    Raises:
        CheckpointError: missing file, a folder, a file that is not a torch checkpoint, a damaged
            one, or one holding objects a weights-only load refuses. The message names the file
            and never suggests loading it unsafely.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder; {EXPECTED} (a .ckpt file)")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path} ({EXPECTED})")
    with path.open("rb") as handle:
        magic = handle.read(4)
    # torch.save writes a zip archive ("PK\x03\x04"); files from torch < 1.6 start with a pickle opcode.
    if magic != b"PK\x03\x04" and magic[:1] != b"\x80":
        raise CheckpointError(
            f"{path}: not a torch checkpoint (not a file written by torch.save); {EXPECTED}"
        )
    try:
        with torch.serialization.safe_globals([CrevNetConfig, EncoderConfig, PredictorConfig]):
            checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        what = f"it pickles {found.group(1)}" if found else "it holds objects a weights-only load refuses"
        raise CheckpointError(
            f"{path}: refused to load: {what}, which could run code; {EXPECTED} (weights and plain "
            "containers only)"
        ) from err
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError) as err:
        raise CheckpointError(
            f"{path}: a damaged or truncated torch checkpoint ({type(err).__name__}); {EXPECTED}"
        ) from err
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f"{path}: holds a {type(checkpoint).__name__}, not a checkpoint dict; {EXPECTED}"
        )
    return checkpoint


def write_checkpoint(checkpoint: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """``torch.save`` a checkpoint dict to ``path`` atomically (see :mod:`crevnet.io.atomic`).

    Raises:
        OutputError: the file cannot be written (disk full, read-only, ...); ``path`` is unchanged.
    """
    with atomic_write(path) as handle:
        torch.save(dict(checkpoint), handle)
    return Path(path)
