"""Atomic file writes: a temporary file in the destination folder, then ``os.replace``.

A reader never sees a half-written file: either the old file (or none) or the complete new one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["atomic_path", "atomic_write", "atomic_write_bytes"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success move it onto ``path``.

    The temporary name keeps the suffix of ``path`` (writers such as OpenCV choose the container
    from it). If the body raises, the temporary file is removed and ``path`` is left untouched.

    Args:
        path: Final destination. Its parent folder is created if missing.

    Yields:
        The temporary path to write to.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.stem}.", suffix=dest.suffix)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates 0600; give the file the mode an ordinary open() would (0666 & ~umask).
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, dest)
    finally:
        # After a successful replace the temporary name no longer exists.
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Open a binary file handle whose content replaces ``path`` only when the block succeeds.

    Args:
        path: Final destination.

    Yields:
        A writable binary file object on a temporary file in the same folder.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path) as handle:
        handle.write(data)
