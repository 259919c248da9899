"""Clips in a folder, read a few frames at a time: video files, GIFs and folders of frame images.

A clip is one video file (:data:`~crevnet.data.frames.VIDEO_SUFFIXES`: ``.mp4 .avi .mov .mkv .webm``
decoded by OpenCV's FFmpeg backend, ``.gif`` by Pillow) or one folder that directly holds frame images
(:data:`~crevnet.data.frames.IMAGE_SUFFIXES`, in sorted name order); every frame is decoded by
:mod:`crevnet.data.frames`. :func:`scan_clips` finds every clip below a root folder (recursively, hidden
files and folders skipped), opens each one once to learn its frame count, size, channels and frame
rate (:class:`ClipInfo`), and reports the clips it could not read instead of failing on them.
:func:`read_frames` then decodes only the frames a window needs: a video is opened, seeked to the
first frame and read forward (frames between two wanted ones are grabbed, not converted), so a long
video is never held in memory.

Frame counts are **counted by decoding** (``grab`` until the stream ends), not taken from the
container's header: OpenCV's ``CAP_PROP_FRAME_COUNT`` is an estimate that can be wrong (the opencv-doc
sample ``tree.avi`` claims 444 frames and decodes 68). Counting costs one pass over each video, so the
results are cached in memory per (path, size, modification time) and, when an index file is given, on
disk (JSON, written atomically).

A clip is "grey" when its sampled frames (the first and every 16th of a video; first, middle and last
image of a folder) have one channel, or three that agree up to codec noise (OpenCV decodes grey video
as three BGR channels). Frames come out RGB (or grey), uint8, (T, H, W, C) with C in
{1, 3}.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from crevnet.data.frames import (
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    iter_video,
    list_images,
    open_video,
    read_image,
    read_video,
)
from crevnet.errors import DataError
from crevnet.io.atomic import atomic_write_bytes

__all__ = [
    "ClipInfo",
    "ScanResult",
    "find_clips",
    "iter_frames",
    "probe_clip",
    "read_frames",
    "scan_clips",
]

# In-process cache of probes: (resolved path, size in bytes, mtime in ns) -> ClipInfo fields.
_PROBES: dict[str, dict] = {}


@dataclass(frozen=True)
class ClipInfo:
    """What one clip holds, learnt by opening it once.

    Attributes:
        path: the file or frame folder.
        frames: number of decodable frames.
        height, width: frame size in pixels.
        channels: 1 (grey) or 3 (colour, RGB).
        fps: frames per second from the container (GIF: from the frame durations); None when unknown
            (frame folders, or a container that does not say).
    """

    path: Path
    frames: int
    height: int
    width: int
    channels: int
    fps: float | None

    @property
    def size_text(self) -> str:
        """``"H×W"``."""
        return f"{self.height}×{self.width}"


@dataclass(frozen=True)
class ScanResult:
    """The clips found below a root and those left out.

    Attributes:
        root: the folder scanned.
        clips: readable clips, sorted by path.
        unreadable: (path, reason) of every clip that could not be read.
    """

    root: Path
    clips: tuple[ClipInfo, ...]
    unreadable: tuple[tuple[Path, str], ...]


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def find_clips(root: str | os.PathLike[str]) -> list[Path]:
    """Every clip below ``root``: video/GIF files and folders that directly hold images, sorted.

    Raises:
        DataError: ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            f"{root}: no such folder; expected a folder of video files ({' '.join(VIDEO_SUFFIXES)}) "
            "and/or folders of frame images"
        )
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        names = [f for f in files if not f.startswith(".")]
        found += [here / f for f in names if Path(f).suffix.lower() in VIDEO_SUFFIXES]
        if here != root and any(Path(f).suffix.lower() in IMAGE_SUFFIXES for f in names):
            found.append(here)
    return sorted(p for p in found if not _hidden(p, root))


_GREY_TOLERANCE = 8  # lossy codecs leave grey video with channels up to ~3 levels apart
_GREY_SAMPLE_EVERY = 16  # video frames tested for colour while counting (the first alone can be black)


def _is_grey(frame: np.ndarray) -> bool:
    # (H, W, C) uint8: one channel, or three that agree up to codec noise. Only notes depend on it:
    # the frames themselves are converted by their actual channel count.
    if frame.shape[2] == 1:
        return True
    spread = frame.max(axis=2).astype(np.int16) - frame.min(axis=2)
    return bool(spread.max() <= _GREY_TOLERANCE)


def _probe_video(path: Path) -> ClipInfo:
    with open_video(path) as video:
        first = video.read()
        if first is None:
            raise DataError(video.no_frames())
        grey, count = _is_grey(first), 1
        while grey:  # a black first frame says nothing: sample every 16th frame while counting
            skipped = video.skip(_GREY_SAMPLE_EVERY - 1)
            frame = video.read() if skipped == _GREY_SAMPLE_EVERY - 1 else None
            count += skipped + (frame is not None)
            if frame is None:
                break
            grey = _is_grey(frame)
        count += video.skip()
        fps = video.fps
    return ClipInfo(path, count, first.shape[0], first.shape[1], 1 if grey else 3, fps)


def _probe_folder(path: Path) -> ClipInfo:
    files = list_images(path)
    samples = [read_image(file) for file in dict.fromkeys((files[0], files[len(files) // 2], files[-1]))]
    grey = all(_is_grey(rgb) for rgb in samples)
    return ClipInfo(path, len(files), samples[0].shape[0], samples[0].shape[1], 1 if grey else 3, None)


def _cache_key(path: Path) -> str:
    stat = path.stat()
    if path.is_dir():  # a frame folder changes when its listing changes
        return f"{path.resolve()}|dir|{len(list_images(path))}|{stat.st_mtime_ns}"
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def probe_clip(path: str | os.PathLike[str]) -> ClipInfo:
    """Open a clip once: frame count (decoded), size, channels, frame rate (cached in memory).

    Raises:
        DataError: the clip cannot be opened or holds no frame.
    """
    path = Path(path)
    key = _cache_key(path)
    cached = _PROBES.get(key)
    if cached is not None:
        return ClipInfo(**{**cached, "path": path})
    info = _probe_folder(path) if path.is_dir() else _probe_video(path)
    _PROBES[key] = {k: v for k, v in asdict(info).items() if k != "path"}
    return info


def _load_index(path: Path | None) -> dict[str, dict]:
    if path is None or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # a damaged cache is rebuilt, never trusted
    return data.get("clips", {}) if isinstance(data, dict) else {}


def scan_clips(
    root: str | os.PathLike[str],
    index_file: str | os.PathLike[str] | None = None,
    warn: Callable[[str], None] | None = None,
) -> ScanResult:
    """Find and probe every clip below ``root``; unreadable clips are skipped, each with one warning.

    Args:
        root: the folder (searched recursively).
        index_file: optional JSON file caching the probes across runs (read if present, rewritten
            atomically when something new was probed).
        warn: called with one message per unreadable clip (default: nothing).

    Returns:
        The readable clips and the unreadable ones with their reasons.

    Raises:
        DataError: ``root`` is not a folder.
    """
    root = Path(root)
    paths = find_clips(root)
    index_path = None if index_file is None else Path(index_file)
    for key, fields in _load_index(index_path).items():
        _PROBES.setdefault(key, fields)
    before = len(_PROBES)
    clips: list[ClipInfo] = []
    unreadable: list[tuple[Path, str]] = []
    for path in paths:
        try:
            clips.append(probe_clip(path))
        except DataError as err:
            reason = str(err).removeprefix(f"{path}: ")
            unreadable.append((path, reason))
            if warn is not None:
                warn(f"{path}: skipped, {reason}")
    if index_path is not None and len(_PROBES) != before:
        keys = {_cache_key(c.path) for c in clips}
        entries = {k: v for k, v in _PROBES.items() if k in keys or k in _load_index(index_path)}
        payload = json.dumps({"format": 1, "clips": entries}, indent=1, sort_keys=True) + "\n"
        atomic_write_bytes(index_path, payload.encode())
    return ScanResult(root, tuple(clips), tuple(unreadable))


def read_frames(clip: ClipInfo, indices: Sequence[int]) -> np.ndarray:
    """Decode frames ``indices`` (increasing) of ``clip``; only those (and the ones between) are decoded.

    Frames of one clip that differ in size (image folders) are resized to the first frame's size.

    Returns:
        uint8 RGB (or grey) frames.

    Shape:
        (len(indices), H, W, C) with C = ``clip.channels`` when every frame agrees, else 3.

    Raises:
        DataError: an index past the end, or a frame that cannot be decoded.
    """
    if not indices or list(indices) != sorted(indices) or indices[0] < 0 or indices[-1] >= clip.frames:
        raise DataError(
            f"{clip.path}: frames {list(indices)[:3]}... requested; expected increasing indices in "
            f"0..{clip.frames - 1}"
        )
    if clip.path.is_dir():
        files = list_images(clip.path)
        frames = [read_image(files[index]) for index in indices]
    else:
        frames = read_video(clip.path, indices)
    return _stack(clip, frames)


def iter_frames(clip: ClipInfo, chunk: int) -> Iterator[np.ndarray]:
    """Every frame of ``clip`` in order, decoded in one sequential pass, ``chunk`` frames at a time.

    Each chunk holds the frames :func:`read_frames` gives for those indices (same size; channels as
    there: 3 unless every frame of the chunk decodes grey), without seeking and without holding more
    than ``chunk`` decoded frames.

    Shape:
        each (n <= chunk, H, W, C).

    Raises:
        DataError: a frame cannot be decoded, or the clip ends before ``clip.frames``.
    """
    source = (read_image(f) for f in list_images(clip.path)) if clip.path.is_dir() else iter_video(clip.path)
    batch: list[np.ndarray] = []
    count = 0
    for frame in source:
        if count == clip.frames:
            break
        batch.append(frame)
        count += 1
        if len(batch) == chunk:
            yield _stack(clip, batch)
            batch = []
    if batch:
        yield _stack(clip, batch)
    if count < clip.frames:
        raise DataError(f"{clip.path}: frame {count} could not be decoded (the clip ends early)")


def _stack(clip: ClipInfo, frames: list[np.ndarray]) -> np.ndarray:
    channels = max(f.shape[2] for f in frames)
    return np.stack([_as_clip_frame(clip, frame, channels) for frame in frames])


def _as_clip_frame(clip: ClipInfo, frame: np.ndarray, channels: int) -> np.ndarray:
    # Frames of one clip that differ in size (image folders) take the first frame's size.
    if frame.shape[:2] != (clip.height, clip.width):
        frame = cv2.resize(frame, (clip.width, clip.height), interpolation=cv2.INTER_AREA)
        frame = frame[..., None] if frame.ndim == 2 else frame
    return np.repeat(frame, channels // frame.shape[2], axis=2)
