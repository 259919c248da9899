"""Decode each clip once: a uint8 array per clip on disk, at the working size and channels, memory-mapped.

Reading a training window straight from a video seeks into the file and decodes full-size frames for
a few small ones; done for every window of every pass, decoding sets the pace of training. The cache
decodes every clip once, brings every frame to the framing's **scaled size** and **channels**
(:meth:`~crevnet.data.framing.Framing.scaled_size`: the size the frame is scaled to before the cut,
``size`` itself for ``resize``; :func:`~crevnet.data.pixels.resize_frames` and
:func:`~crevnet.data.pixels.to_channels`, as a window read directly is), and writes them as one ``.npy``
file per clip. Windows are then read from it memory-mapped (``numpy.load(mmap_mode="r")``): only the
pages of the frames a window takes are read, the operating system keeps the hot ones, and nothing
holds a whole folder in memory. The cut (centre, or random for training) is made at read time from
the cached frames, so one file serves the random training crops and the centre crops of val/test,
and windows read from the cache are bit-equal to windows decoded directly.

**Cost.** A clip costs ``frames × h × w × channels`` bytes on disk at the scaled size ``h × w``, e.g.
a 768×576 colour video framed to 64×64 by a crop is cached at 64×86: 16.5 kB per frame, 13 MB for
opencv-doc's 795-frame ``vtest.avi``; resized to 64×64: 12.3 kB per frame. Memory: the pages of the
frames being read (page cache, shared, reclaimable) plus at most a few dozen open maps per process.

**Keys.** A cache file's name holds the clip's name, a hash of the clip's content key, the scaled size
and channels, and :data:`CACHE_VERSION`: ``<clip>.<content>.<h>x<w>x<c>.v<version>.npy``. The
content key (:func:`content_key`) is the file's size, modification time and a SHA-256 of its first
and last MiB (a frame folder: every image's name, size and modification time). The frame step
(``frame_stride``, ``fps``) is not part of the key: every frame is cached, and windows pick theirs.
A clip whose content key changes, or a file of another cache version, gets a new name; the old files
of that clip are removed when the new one is written. Files of the same content at another framing
stay (switching between two sizes does not rebuild).

**Never trusted when partial.** Files are written with :func:`crevnet.io.atomic.atomic_write` (a
temporary file, checked and renamed), so a run killed mid-write leaves a hidden temporary file that is
never read (and is removed by the next write into the folder), not a short cache file. A file that is
there but damaged anyway (truncated by a full disk or a copy, wrong shape or size) is rebuilt.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from crevnet.data.clips import ClipInfo, iter_frames
from crevnet.data.frames import list_images
from crevnet.data.framing import Framing
from crevnet.data.pixels import resize_frames, to_channels
from crevnet.errors import DataError, OutputError
from crevnet.io.atomic import atomic_write

__all__ = [
    "CACHE_DIR_NAME",
    "CACHE_VERSION",
    "FrameCache",
    "cache_shape",
    "content_key",
    "open_cached",
]

_log = logging.getLogger(__name__)

CACHE_VERSION = 1
"""Version of the cache files' layout and framing; a file of another version is rebuilt."""
CACHE_DIR_NAME = ".crevnet_cache"
"""The default cache folder inside a clip folder (hidden: scanning a folder for clips skips it)."""
_EDGE = 1 << 20  # bytes hashed at each end of a video file
_CHUNK_BYTES = 64 << 20  # full-size frames decoded at once while caching


def content_key(path: str | os.PathLike[str]) -> str:
    """What identifies a clip's content: size, modification time and a hash of its first and last MiB.

    A frame folder: the name, size and modification time of every image in it. Returned as 16 hex
    digits (a SHA-256 prefix).
    """
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_dir():
        for file in list_images(path):
            stat = file.stat()
            digest.update(f"{file.name}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    else:
        stat = path.stat()
        digest.update(f"{stat.st_size}|{stat.st_mtime_ns}\n".encode())
        with open(path, "rb") as handle:
            digest.update(handle.read(_EDGE))
            if stat.st_size > _EDGE:
                handle.seek(max(_EDGE, stat.st_size - _EDGE))
                digest.update(handle.read(_EDGE))
    return digest.hexdigest()[:16]


def cache_shape(clip: ClipInfo, framing: Framing) -> tuple[int, int, int, int]:
    """Shape of a clip's cached frames: (frames, h, w, channels) at the framing's scaled size."""
    height, width = framing.scaled_size(clip.height, clip.width)
    return clip.frames, height, width, framing.channels


def open_cached(path: str | os.PathLike[str]) -> np.ndarray:
    """A cache file's frames, memory-mapped read-only. Shape: (frames, h, w, channels) uint8."""
    return np.load(path, mmap_mode="r")


def _safe_name(name: str) -> str:
    # "nested/clip 1.mp4" -> "nested__clip_1.mp4": one flat folder, names a file system takes.
    return re.sub(r"[^A-Za-z0-9._-]", "_", name.replace("/", "__"))[:120]


def _npy_header(shape: tuple[int, ...]) -> bytes:
    header = {"descr": "|u1", "fortran_order": False, "shape": shape}
    buffer = _Bytes()
    np.lib.format.write_array_header_1_0(buffer, header)
    return bytes(buffer.data)


class _Bytes:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)


def _valid(path: Path, shape: tuple[int, ...]) -> bool:
    # The whole file must be there: the header's shape and dtype as expected, and exactly its bytes.
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version != (1, 0):
                return False
            found, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
            offset = handle.tell()
        size = path.stat().st_size
    except (OSError, ValueError):
        return False
    return (
        tuple(found) == shape and not fortran and dtype == np.uint8 and size == offset + int(np.prod(shape))
    )


class FrameCache:
    """The cache files of a clip folder, in ``folder`` (see the module docstring).

    Args:
        folder: where the cache files go (created when the first one is written).
        note: prints one line on stderr (what is cached, how long it took, a cache it cannot write).
    """

    def __init__(self, folder: str | os.PathLike[str], note: Callable[[str], None] | None = None) -> None:
        self.folder = Path(folder)
        self.note = note or _log.info  # notes on what is cached (a command shows them on stderr)

    def path(self, clip: ClipInfo, name: str, framing: Framing, key: str | None = None) -> Path:
        """The cache file of ``clip`` (called ``name``, its path in the folder) at ``framing``."""
        _, height, width, channels = cache_shape(clip, framing)
        key = content_key(clip.path) if key is None else key
        return self.folder / f"{_safe_name(name)}.{key}.{height}x{width}x{channels}.v{CACHE_VERSION}.npy"

    def lookup(self, clip: ClipInfo, name: str, framing: Framing) -> Path | None:
        """The clip's cache file when it is there and whole, else None."""
        path = self.path(clip, name, framing)
        return path if _valid(path, cache_shape(clip, framing)) else None

    def build(self, clip: ClipInfo, name: str, framing: Framing) -> Path:
        """Decode ``clip`` once and write its cache file (atomically); stale files of the clip go.

        Raises:
            OutputError: the cache file cannot be written. DataError: a frame cannot be decoded.
        """
        key = content_key(clip.path)
        path = self.path(clip, name, framing, key)
        shape = cache_shape(clip, framing)
        _, height, width, channels = shape
        chunk = max(1, _CHUNK_BYTES // max(1, clip.height * clip.width * 3))
        with atomic_write(path) as handle:
            handle.write(_npy_header(shape))
            for frames in iter_frames(clip, chunk):  # one sequential decode: no seek per chunk
                frames = to_channels(resize_frames(frames, (height, width)), channels)
                handle.write(np.ascontiguousarray(frames, dtype=np.uint8).data)
        self._remove_stale(name, key)
        return path

    def _remove_stale(self, name: str, key: str) -> None:
        # Files of this clip with another content key or cache version: they can never be read again.
        prefix = f"{_safe_name(name)}."
        pattern = re.compile(re.escape(prefix) + r"([0-9a-f]{16})\.\d+x\d+x\d\.v(\d+)\.npy$")
        for entry in self.folder.iterdir():
            match = pattern.match(entry.name)
            if match and (match.group(1) != key or int(match.group(2)) != CACHE_VERSION):
                entry.unlink(missing_ok=True)

    def ensure(self, clips: Sequence[ClipInfo], names: Sequence[str], framing: Framing) -> list[Path | None]:
        """The cache file of every clip, building those missing, stale or damaged (said on stderr).

        A cache that cannot be written (a read-only folder, a full disk) is said once; the clips
        without a cache file (None) are then read directly.
        """
        paths: list[Path | None] = [self.lookup(c, n, framing) for c, n in zip(clips, names, strict=True)]
        missing = [i for i, p in enumerate(paths) if p is None]
        if not missing:
            if clips:
                self.note(
                    f"cache: {len(clips)} clip(s) read from {self.folder} ({_size_text(clips, framing)})"
                )
            return paths
        todo = [clips[i] for i in missing]
        _, height, width, channels = cache_shape(todo[0], framing)
        colour = "RGB" if channels == 3 else "grey"
        self.note(
            f"cache: decoding {len(todo)} clip(s) ({sum(c.frames for c in todo)} frames) once into "
            f"{self.folder}, {colour}, scaled to cover {framing.size[0]}×{framing.size[1]} "
            f"(e.g. {height}×{width}): {_size_text(todo, framing)} ..."
        )
        start = time.monotonic()
        for i in missing:
            try:
                paths[i] = self.build(clips[i], names[i], framing)
            except OutputError as err:
                self.note(f"warning: cache: {err}; reading the clips directly (slower)")
                return paths
            except DataError as err:
                self.note(f"warning: cache: {names[i]} not cached ({err}); reading it directly")
        self.note(f"cache: {len(missing)} clip(s) cached in {time.monotonic() - start:.1f} s")
        return paths


def _size_text(clips: Sequence[ClipInfo], framing: Framing) -> str:
    total = sum(int(np.prod(cache_shape(c, framing))) for c in clips)
    return f"{total / 1e6:.1f} MB"
