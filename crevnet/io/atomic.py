"""The one way crevnet writes a file: a temporary file in the target's folder, checked, then renamed.

Every output of every command (videos, GIFs, PNGs, arrays, JSON, Markdown, checkpoints, downloads)
goes through this module, so all of them share the same guarantees:

- **Atomic.** Data go to a temporary file next to the target (same file system), are fsync'ed and
  then ``os.replace``-d onto the target: a reader sees the old file (or none) or the complete new
  one, never half of one, also after a crash or ``kill -9``.
- **Checked.** Every byte handed to :func:`atomic_write` is written with ``os.write`` and counted;
  the file's size is compared with the count before the rename. Writers that open the path
  themselves (OpenCV) pass a ``verify`` function to :func:`atomic_path` (e.g. re-open the video
  and count its frames).
- **Named failures.** Any failure raises :class:`~crevnet.errors.OutputError` naming the user's
  target (never the temporary name), the reason in words ("disk full", "read-only", "is a
  directory", ...) and what to do; the target is left as it was.
- **One file mode.** Files are created with ``0o666`` minus the umask, like ``open(path, "w")``.
- **No debris.** Temporary names carry the writing process id (``.<name>.<pid>-<random>
  .crevnet-tmp<suffix>``); a later write into the same folder removes those whose process is gone
  (a crash or ``kill -9`` mid-write), and nothing else.
- **Whole sets.** :func:`atomic_folder` builds a multi-file output in a temporary folder and renames
  it into place, so a set of files appears whole or not at all.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from crevnet.errors import OutputError

__all__ = [
    "TEMP_MARK",
    "atomic_folder",
    "atomic_path",
    "atomic_write",
    "atomic_write_bytes",
    "describe_os_error",
    "free_bytes",
    "remove_stale_temps",
]

TEMP_MARK = ".crevnet-tmp"
"""Part of every temporary name this module creates (files and folders)."""

_TEMP_RE = re.compile(r"^\..*\.(\d+)-[0-9a-f]{8}" + re.escape(TEMP_MARK) + r"(\.[^.]*)?$")
_FILE_MODE = 0o666  # minus the umask, applied by os.open

# errno -> (reason in words, what to do)
_REASONS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("disk full (no space left on the device)", "free some space or write elsewhere"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or write elsewhere"),
    errno.EROFS: ("read-only file system", "write to a writable folder"),
    errno.EACCES: ("permission denied (read-only folder or file?)", "write to a folder you can write to"),
    errno.EPERM: ("operation not permitted", "write to a folder you can write to"),
    errno.EISDIR: ("is a directory", "give a file name, not a folder"),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", "check the path"),
    errno.EEXIST: ("exists", "choose another name or remove it first"),
    errno.ENOENT: ("no such file or folder", "check the path"),
    errno.EFBIG: ("file too large for this file system", "write to another file system"),
    errno.ENAMETOOLONG: ("file name too long", "choose a shorter name"),
}


def describe_os_error(err: OSError) -> str:
    """The reason of an ``OSError`` in words plus what to do, e.g. ``"disk full (...); free some space"``."""
    reason = _REASONS.get(err.errno or -1)
    if reason is None:
        text = err.strerror or str(err) or type(err).__name__
        return f"{text} ({type(err).__name__})"
    return f"{reason[0]}; {reason[1]}"


def _fail(target: Path, err: OSError) -> OutputError:
    return OutputError(f"cannot write {target}: {describe_os_error(err)}")


def free_bytes(folder: str | os.PathLike[str]) -> int | None:
    """Free bytes on the file system that holds ``folder`` (None when it cannot be asked)."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, another user's
        return True
    return True


def remove_stale_temps(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove this module's temporary files and folders in ``folder`` whose writing process is gone.

    Only names this module creates are considered (see :data:`TEMP_MARK`); a temporary of a
    process that still runs (another command writing into the same folder) is left alone.

    Returns:
        The paths removed.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_RE.match(entry.name)
        if match is None or _pid_alive(int(match.group(1))):
            continue
        path = Path(entry.path)
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
        except OSError:
            pass  # another process removed it first, or it is not ours to remove
    return removed


def _temp_name(dest: Path, suffix: str | None = None) -> Path:
    tail = dest.suffix if suffix is None else suffix
    return dest.parent / f".{dest.name}.{os.getpid()}-{secrets.token_hex(4)}{TEMP_MARK}{tail}"


def _prepare(dest: Path) -> None:
    if dest.is_dir():
        raise OutputError(f"cannot write {dest}: is a directory; give a file name, not a folder")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError as err:
        raise OutputError(
            f"cannot write {dest}: a part of the path is a file, not a folder; check the path"
        ) from err
    except OSError as err:
        raise _fail(dest, err) from err
    remove_stale_temps(dest.parent)


def _discard(tmp: Path) -> None:
    # Our temporary file, if it is still there (a read-only folder refuses even its removal).
    with contextlib.suppress(OSError):
        tmp.unlink()


def _fsync_folder(folder: Path) -> None:
    # Makes the rename durable; not every platform / file system allows opening a folder.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class _CheckedFile(io.RawIOBase):
    """A write-only file whose every byte goes through ``os.write`` and is counted.

    Its OS errors come out as :class:`OutputError` naming ``target`` (the file the bytes are for),
    so the writer's block can tell them from errors of its own (a failed download, say).
    """

    def __init__(self, path: Path, target: Path) -> None:
        super().__init__()
        self.target = target
        try:
            self.fd = os.open(
                path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), _FILE_MODE
            )
        except OSError as err:
            raise _fail(target, err) from err
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(data).cast("B")
        done = 0
        try:
            while done < len(view):
                written = _os_write(self.fd, view[done:])
                if written <= 0:  # a file system that accepts nothing without saying why
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                done += written
        except OSError as err:
            raise _fail(self.target, err) from err
        self.count += done
        return done

    def finish(self) -> None:
        try:
            os.fsync(self.fd)
            size = os.fstat(self.fd).st_size
            if size != self.count:
                raise OSError(errno.EIO, f"{size} bytes on disk after writing {self.count}")
        except OSError as err:
            raise _fail(self.target, err) from err

    def close(self) -> None:
        if not self.closed:
            os.close(self.fd)
        super().close()


_os_write = os.write  # the one low-level write; the fault tests replace it to simulate a full disk


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[io.RawIOBase]:
    """A binary handle whose bytes replace ``path`` when the block succeeds, checked and atomic.

    Args:
        path: the target; its folder is created.

    Yields:
        A writable binary file object (``write``) on a temporary file in the target's folder.

    Raises:
        OutputError: the target cannot be written; the message names it and the reason. On any
            failure (also an exception of the block) the target is left as it was.
    """
    dest = Path(path)
    _prepare(dest)
    tmp = _temp_name(dest, ".tmp")
    handle: _CheckedFile | None = None
    try:
        handle = _CheckedFile(tmp, dest)
        # The block's own errors pass unchanged (a download's network error is not a write error);
        # the handle reports its write errors as OutputError naming dest.
        yield handle
        handle.finish()
        try:
            handle.close()
            os.replace(tmp, dest)
        except OSError as err:
            raise _fail(dest, err) from err
        _fsync_folder(dest.parent)
    finally:
        if handle is not None:
            handle.close()
        _discard(tmp)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes | bytearray | memoryview) -> Path:
    """Write ``data`` to ``path`` with :func:`atomic_write`; returns ``path`` as a Path."""
    with atomic_write(path) as handle:
        handle.write(data)
    return Path(path)


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike[str], verify: Callable[[Path], str | None] | None = None
) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` for writers that open files themselves (OpenCV).

    The temporary name keeps the suffix of ``path`` (OpenCV picks the container from it). After the
    block the file must exist and be non-empty, and ``verify(tmp)`` (when given) must return None;
    it returns a reason in words otherwise. Then the file gets the umask mode, is fsync'ed and is
    renamed onto ``path``.

    Raises:
        OutputError: the block wrote nothing, ``verify`` found a problem, or an OS error; the message
            names ``path``, and the target is left as it was.
    """
    dest = Path(path)
    _prepare(dest)
    tmp = _temp_name(dest)
    try:
        try:
            # Create the file here, so an unwritable folder is reported with its reason (OpenCV would
            # only say that it could not open the file).
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE))
            yield tmp
            size = tmp.stat().st_size if tmp.exists() else 0
            problem = "nothing was written" if size == 0 else verify(tmp) if verify else None
            if problem is not None:
                free = free_bytes(dest.parent)
                if free is not None and free < (1 << 20):
                    problem += f"; disk full ({free} bytes free): free some space or write elsewhere"
                raise OutputError(f"cannot write {dest}: {problem}; {dest} was left as it was")
            mask = os.umask(0)
            os.umask(mask)
            os.chmod(tmp, _FILE_MODE & ~mask)
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, dest)
        except OSError as err:
            raise _fail(dest, err) from err
        _fsync_folder(dest.parent)
    finally:
        _discard(tmp)


@contextlib.contextmanager
def atomic_folder(
    path: str | os.PathLike[str], replaceable: Callable[[Path], bool] | None = None
) -> Iterator[Path]:
    """Build a set of files in a temporary folder that appears as ``path`` whole, or not at all.

    If ``path`` exists it must be an empty folder or one that ``replaceable(path)`` accepts (an
    earlier output of the same command): it is then swapped for the new one and removed. Files
    written into the yielded folder should use the writers of this module too.

    Args:
        path: the output folder.
        replaceable: says whether an existing, non-empty ``path`` may be replaced.

    Yields:
        The temporary folder to write into.

    Raises:
        OutputError: ``path`` is a file, or a folder that holds other files, or an OS error; on any
            failure ``path`` is left as it was and the temporary folder is removed.
    """
    dest = Path(path)
    if dest.exists() and not dest.is_dir():
        raise OutputError(f"cannot write the folder {dest}: a file of that name exists; give a new folder")
    if dest.is_dir() and any(dest.iterdir()) and not (replaceable and replaceable(dest)):
        raise OutputError(
            f"cannot write the folder {dest}: it exists and holds files that are not an earlier output "
            "of this command; give a new or empty folder"
        )
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _fail(dest, err) from err
    remove_stale_temps(dest.parent)
    tmp = _temp_name(dest, "")
    old = _temp_name(dest, "")
    try:
        try:
            tmp.mkdir(mode=0o777)
            yield tmp
            if dest.is_dir():
                os.replace(dest, old)  # dest -> hidden old name, then the new folder in its place
            os.replace(tmp, dest)
        except OSError as err:
            if old.exists() and not dest.exists():
                os.replace(old, dest)  # put the earlier output back
            raise _fail(dest, err) from err
        _fsync_folder(dest.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
