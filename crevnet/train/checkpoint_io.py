"""Checkpoint files written atomically and read without executing pickled code.

Lightning's ``TorchCheckpointIO`` (2.6) writes through an fsspec transaction whose temporary file lives
in the *system* temp directory and is then moved with ``shutil.move``: when that directory is on another
file system (a tmpfs ``/tmp``) the move is a copy, so a crash can leave a truncated checkpoint, and the
data are never fsync'ed. :class:`AtomicCheckpointIO` writes a temporary file next to the target, fsyncs
it and ``os.replace``-s it: a reader sees the old file or the new one, never half of one.

It also loads with ``torch.load(weights_only=True)``: checkpoints of this project hold only tensors and
plain containers (the module stores its hyperparameters as dicts), so no pickled code runs.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from crevnet.errors import CheckpointError

__all__ = ["AtomicCheckpointIO", "atomic_torch_save", "load_checkpoint_file"]


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save`` to a temporary file in the target's folder, fsync, then ``os.replace``.

    Args:
        obj: anything ``torch.save`` accepts.
        path: the destination; its folder is created.

    Returns:
        ``path`` as a Path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(buffer.getbuffer())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint_file(
    path: str | os.PathLike[str], map_location: Any = "cpu", weights_only: bool = True
) -> dict[str, Any]:
    """Read a checkpoint dict with ``torch.load``, safely by default.

    Raises:
        CheckpointError: the file is missing, unreadable, holds objects a weights-only load refuses,
            or is not a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=weights_only)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        raise CheckpointError(
            f"{path}: cannot read this checkpoint ({type(err).__name__}: {str(err).splitlines()[0]}); "
            "expected a file written by crevnet fit"
        ) from err
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path}: expected a checkpoint dict, got {type(checkpoint).__name__}")
    return checkpoint


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning ``CheckpointIO`` with atomic local writes and weights-only reads.

    Args:
        weights_only: load with ``torch.load(weights_only=True)`` (default). Set False only for a
            trusted checkpoint that holds other objects.
    """

    def __init__(self, weights_only: bool = True) -> None:
        super().__init__()
        self.weights_only = weights_only

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        """Write ``checkpoint`` to ``path`` atomically (see :func:`atomic_torch_save`)."""
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO.save_checkpoint does not take storage_options")
        if "://" in str(path):  # remote URL: keep Lightning's fsspec path
            super().save_checkpoint(checkpoint, path)
            return
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(
        self,
        path: Any,
        map_location: Callable[..., Any] | None = lambda storage, loc: storage,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        """Read a checkpoint, weights-only unless this IO was built with ``weights_only=False``."""
        if "://" in str(path):
            return super().load_checkpoint(path, map_location, self.weights_only)
        return load_checkpoint_file(path, map_location, self.weights_only)
