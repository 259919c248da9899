"""Fault injection: a full disk, a read-only folder, a process killed mid-write.

``full_disk`` and ``read_only`` are real file systems where the test may mount a tmpfs (root in a
container, CI runners with sudo-less mount permission); elsewhere ``full_disk`` falls back to a
monkeypatched low-level writer that fails with ENOSPC (and an OpenCV writer that silently drops frames,
as OpenCV does on a full disk), and ``read_only`` to a ``chmod 0o555`` folder (not for root, who may
write anyway: then it is skipped).
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _mount_tmpfs(where: Path, options: str) -> bool:
    if os.name != "posix" or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return False
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
    return out.returncode == 0


def _umount(where: Path) -> None:
    subprocess.run(["umount", str(where)], capture_output=True)


def _fill(folder: Path, leave: int = 0) -> None:
    # Take every free byte but ``leave``, so a write fails with ENOSPC once that much is used up.
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        for size in (65536, 4096, 1):
            try:
                while os.write(fd, b"\0" * size):
                    pass
            except OSError as err:
                assert err.errno == errno.ENOSPC
        if leave:
            os.ftruncate(fd, max(0, os.fstat(fd).st_size - leave))
    finally:
        os.close(fd)


class FullDisk:
    """A folder whose file system is full once :meth:`fill` is called (earlier files stay readable)."""

    def __init__(self, folder: Path, monkeypatch: pytest.MonkeyPatch, real: bool) -> None:
        self.folder = folder
        self.real = real
        self._monkeypatch = monkeypatch

    def fill(self, leave: int = 0) -> None:
        """Make later writes into the folder fail as a full disk does.

        Args:
            leave: bytes left free (a real disk only): a writer then fails part-way, after its first
                bytes (a video's header) are on disk. The simulated disk fails every write.
        """
        if self.real:
            _fill(self.folder, leave)
            return
        import cv2

        import crevnet.io.atomic as atomic

        folder = str(self.folder.resolve())

        def no_space(fd: int, data: object) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        self._monkeypatch.setattr(atomic, "_os_write", no_space)
        self._monkeypatch.setattr(
            atomic, "free_bytes", lambda path: 0 if str(Path(path).resolve()).startswith(folder) else 1 << 40
        )

        class LosingWriter(cv2.VideoWriter):  # OpenCV on a full disk: no error, no frames
            def write(self, image):
                return None

        self._monkeypatch.setattr(cv2, "VideoWriter", LosingWriter)


@pytest.fixture
def full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FullDisk]:
    """A :class:`FullDisk` on a 300 KB tmpfs when one can be mounted, else simulated."""
    folder = tmp_path / "disk"
    folder.mkdir()
    real = _mount_tmpfs(folder, "size=300k")
    try:
        yield FullDisk(folder, monkeypatch, real)
    finally:
        if real:
            _umount(folder)


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A folder that cannot be written: a read-only tmpfs, else ``chmod 0o555`` (skipped for root)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if _mount_tmpfs(folder, "ro,size=64k"):
        try:
            yield folder
        finally:
            _umount(folder)
        return
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        pytest.skip("root can write into a 0o555 folder and no read-only tmpfs could be mounted")
    folder.chmod(0o555)
    try:
        yield folder
    finally:
        folder.chmod(0o755)
