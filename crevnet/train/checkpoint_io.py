"""Lightning's ``CheckpointIO`` over crevnet's one checkpoint reader and writer.

Lightning's ``TorchCheckpointIO`` (2.6) writes through an fsspec transaction whose temporary file lives
in the *system* temp directory and is then moved with ``shutil.move``: when that directory is on another
file system (a tmpfs ``/tmp``) the move is a copy, so a crash can leave a truncated checkpoint, and the
data are never fsync'ed. :class:`AtomicCheckpointIO` writes with ``write_checkpoint``
(temporary file next to the target, every byte checked, fsync, ``os.replace``, the umask's file mode) and
reads with :func:`crevnet.io.checkpoint.read_checkpoint` (``torch.load(weights_only=True)``, so no pickled
code runs, and the same messages as ``evaluate`` and ``predict``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from crevnet.io.checkpoint import read_checkpoint, write_checkpoint

__all__ = ["AtomicCheckpointIO"]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning ``CheckpointIO`` with atomic, checked local writes and weights-only reads."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        """Write ``checkpoint`` to ``path`` atomically (``crevnet.io.checkpoint.write_checkpoint``)."""
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO.save_checkpoint does not take storage_options")
        if "://" in str(path):  # remote URL: keep Lightning's fsspec path
            super().save_checkpoint(checkpoint, path)
            return
        write_checkpoint(checkpoint, path)

    def load_checkpoint(
        self,
        path: Any,
        map_location: Callable[..., Any] | None = lambda storage, loc: storage,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        """Read a checkpoint weights-only (see :func:`crevnet.io.checkpoint.read_checkpoint`)."""
        if "://" in str(path):
            return super().load_checkpoint(path, map_location, True)
        return read_checkpoint(path, map_location)
