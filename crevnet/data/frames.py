"""The one frame-I/O layer: every image, video and GIF that crevnet reads or writes goes through here.

Readers (:func:`crevnet.data.video.read_clip`, the clip folders of :mod:`crevnet.data.clips`, ``crevnet
predict --stream``) and writers (:func:`crevnet.data.video.write_video`, the stream's output) call these
functions, so a frame is decoded and encoded the same way whichever door it takes.

Decoding:
    - **Frames** come out as ``(H, W, C)`` uint8, C = 1 (grey) or 3 (RGB), from any OpenCV frame:
      grey, BGR or BGRA (alpha dropped), 8 or 16 bits (:func:`to_rgb`). A 16-bit value ``v`` becomes
      ``round(v / 257)``: 65535 / 255 = 257, so this is the nearest 8-bit level (``v >> 8`` would
      floor it and be up to one level dark).
    - **Images** (:data:`IMAGE_SUFFIXES`) are read with ``cv2.imread``; a folder of them is one clip in
      sorted name order (:func:`list_images`).
    - **Videos** (:data:`VIDEO_SUFFIXES`) are read forward one frame at a time (:func:`open_video`):
      containers with OpenCV's FFmpeg backend, ``.gif`` with Pillow (OpenCV's GIF support varies by
      build), a camera from its integer index. Frame counts are counted by decoding
      (:func:`count_frames`), never taken from the header, which can be wrong.

Writing: :func:`encode_png` encodes one frame as PNG; :class:`VideoWriter` writes a video frame by
frame through the one atomic writer (:func:`crevnet.io.atomic.atomic_path`) and re-reads the finished
file: unless it holds every frame written (OpenCV's writer reports nothing on a full disk), the target
is left as it was and :class:`~crevnet.errors.OutputError` names it.

FFmpeg and OpenCV print their own log lines ("moov atom not found", a missing camera) before our one-line
errors; both are silenced unless the user set ``OPENCV_FFMPEG_LOGLEVEL`` / ``OPENCV_LOG_LEVEL``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType

# Read by OpenCV when it first opens a video, so set before cv2 is used.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import cv2
import numpy as np
import torch

from crevnet.errors import DataError, OutputError
from crevnet.io.atomic import atomic_path, free_bytes

__all__ = [
    "IMAGE_SUFFIXES",
    "VIDEO_CODECS",
    "VIDEO_SUFFIXES",
    "VideoReader",
    "VideoWriter",
    "count_frames",
    "encode_png",
    "iter_video",
    "list_images",
    "open_video",
    "read_image",
    "read_video",
    "to_bgr",
    "to_rgb",
    "to_uint8",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
"""Image files read as frames (case-insensitive)."""

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif")
"""Files read as one clip each (case-insensitive): containers decoded by OpenCV, and GIFs by Pillow."""

VIDEO_CODECS = {".mp4": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG", ".webm": "VP80"}
"""Suffix -> FourCC that :class:`VideoWriter` writes (MPEG-4 part 2, Motion-JPEG, VP8): all lossy."""


# ----------------------------------------------------------------------------------------------
# Frames.


def to_rgb(image: np.ndarray, name: str = "image") -> np.ndarray:
    """An OpenCV frame as crevnet's frame: RGB or grey, uint8.

    Args:
        image: grey ``(H, W)`` / ``(H, W, 1)``, BGR or BGRA ``(H, W, 3|4)``, uint8 or uint16
            (``round(v / 257)``).
        name: the file in messages.

    Raises:
        DataError: another dtype.

    Shape:
        (H, W[, C]) -> (H, W, C) with C = 1 or 3.
    """
    if image.dtype == np.uint16:
        image = ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)  # round(v / 257)
    elif image.dtype != np.uint8:
        raise DataError(f"{name}: image dtype {image.dtype}; expected 8- or 16-bit")
    if image.ndim == 2:
        return image[..., None]
    if image.shape[2] == 1:
        return image
    return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB)


def to_bgr(frame: np.ndarray) -> np.ndarray:
    """A crevnet frame as the BGR frame OpenCV's writers take.

    Shape:
        (H, W, C) uint8, C = 1 or 3 (RGB) -> (H, W, 3)
    """
    return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR if frame.shape[2] == 1 else cv2.COLOR_RGB2BGR)


def to_uint8(frames: torch.Tensor | np.ndarray, name: str = "frames") -> np.ndarray:
    """Frames as the writers take them: float in [0, 1] (clipped, rounded) or uint8, channels last.

    Raises:
        DataError: another shape or dtype.

    Shape:
        (T, C, H, W) or (T, H, W), C in {1, 3} -> (T, H, W, C)
    """
    array = frames.detach().cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if array.ndim == 3:
        array = array[:, None]
    if array.ndim != 4 or array.shape[1] not in (1, 3) or min(array.shape) == 0:
        raise DataError(f"{name}: shape {array.shape}; expected (T, C, H, W) with C in {{1, 3}}")
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.floating):
            raise DataError(f"{name}: dtype {array.dtype}; expected float in [0, 1] or uint8")
        array = np.rint(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.ascontiguousarray(array.transpose(0, 2, 3, 1))


# ----------------------------------------------------------------------------------------------
# Images.


def encode_png(frame: np.ndarray, name: str = "image") -> bytes:
    """A frame as lossless PNG bytes (grey stays one channel), for :mod:`crevnet.io.atomic` to write.

    Raises:
        DataError: OpenCV could not encode it.

    Shape:
        (H, W, C) uint8, C = 1 (grey) or 3 (RGB).
    """
    image = frame if frame.shape[2] == 1 else cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode(".png", image)
    if not ok:
        raise DataError(f"{name}: OpenCV could not encode the PNG")
    return buffer.tobytes()


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one image file as a frame (:func:`to_rgb`).

    Raises:
        DataError: not a readable image, or not 8/16-bit.

    Shape:
        (H, W, C), C = 1 or 3.
    """
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DataError(f"{path}: not a readable image; expected one of {', '.join(IMAGE_SUFFIXES)}")
    return to_rgb(image, str(path))


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """The image files directly in ``folder``, in sorted name order (the frames of a clip).

    Raises:
        DataError: the folder holds none.
    """
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(
            f"{folder}: folder holds no images; expected frames named in order with suffix "
            f"{', '.join(IMAGE_SUFFIXES)}"
        )
    return files


# ----------------------------------------------------------------------------------------------
# Videos.


def _quiet_opencv() -> None:
    # OpenCV logs its own warnings for a missing camera or an undecodable file; ours says it in one line.
    if "OPENCV_LOG_LEVEL" not in os.environ:
        with contextlib.suppress(AttributeError):  # builds without the logging utilities
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


class VideoReader:
    """A video read forward one frame at a time; frames come out as :func:`to_rgb` gives them.

    Made by :func:`open_video`; a context manager (closes the file or camera) and an iterator over
    the remaining frames. ``position`` is the index of the next frame :meth:`read` returns.
    """

    name: str
    position: int = 0

    @property
    def fps(self) -> float | None:
        """Frames per second the file states; None when it states none."""
        raise NotImplementedError

    def read(self) -> np.ndarray | None:
        """Decode the next frame; None at the end of the video."""
        raise NotImplementedError

    def skip(self, count: int | None = None) -> int:
        """Pass over up to ``count`` frames (all that are left when None); returns how many there were."""
        raise NotImplementedError

    def seek(self, index: int) -> None:
        """Make frame ``index`` the next one :meth:`read` returns."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the file or camera."""

    def no_frames(self) -> str:
        """The message for a video that gives no frame at all."""
        raise NotImplementedError

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[np.ndarray]:
        frame = self.read()
        while frame is not None:
            yield frame
            frame = self.read()


class _CaptureReader(VideoReader):
    """A container file or a camera, through ``cv2.VideoCapture``."""

    def __init__(self, source: str | os.PathLike[str] | int) -> None:
        self.camera = isinstance(source, int)
        self.source = source if self.camera else str(source)
        self.name = f"camera {source}" if self.camera else str(source)
        _quiet_opencv()
        self._capture = cv2.VideoCapture(self.source)
        if not self._capture.isOpened():
            self._capture.release()
            if self.camera:
                raise DataError(
                    f"camera {source}: cannot be opened (no such camera, or it is in use); give another "
                    "index or a video file as --input"
                )
            raise DataError(
                f"{source}: not a readable video (OpenCV cannot open it: not a video, or a codec it "
                "lacks); expected a video file"
            )

    @property
    def fps(self) -> float | None:
        fps = float(self._capture.get(cv2.CAP_PROP_FPS))
        return fps if fps > 0 else None

    def read(self) -> np.ndarray | None:
        ok, frame = self._capture.read()
        if not ok or frame is None:
            return None
        self.position += 1
        return to_rgb(frame, self.name)

    def skip(self, count: int | None = None) -> int:
        done = 0
        while (count is None or done < count) and self._capture.grab():  # grab: no conversion
            done += 1
        self.position += done
        return done

    def seek(self, index: int) -> None:
        if index == self.position:
            return
        if not self.camera:
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, index)
            if int(self._capture.get(cv2.CAP_PROP_POS_FRAMES)) == index:
                self.position = index
                return
            # No exact seek in this container: decode forward from the start.
            self._capture.release()
            self._capture = cv2.VideoCapture(self.source)
            self.position = 0
        self.skip(index - self.position)

    def close(self) -> None:
        self._capture.release()

    def no_frames(self) -> str:
        if self.camera:
            return f"{self.name}: opened but delivered no frame (closed, or in use)"
        return (
            f"{self.name}: not a readable video (OpenCV decoded no frames: empty or corrupt); expected a "
            "video file"
        )


class _GifReader(VideoReader):
    """A GIF, through Pillow (frames as RGB)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        from PIL import Image, UnidentifiedImageError

        self.name = str(path)
        try:
            self._image = Image.open(path)
            self.frames = int(getattr(self._image, "n_frames", 1))
        except (UnidentifiedImageError, OSError, ValueError) as err:
            raise DataError(f"{path}: not a readable GIF ({err}); expected an (animated) GIF") from err

    @property
    def fps(self) -> float | None:
        duration = self._image.info.get("duration")
        return 1000.0 / float(duration) if duration else None

    def read(self) -> np.ndarray | None:
        if self.position >= self.frames:
            return None
        try:
            self._image.seek(self.position)
            frame = np.asarray(self._image.convert("RGB"))
        except (OSError, ValueError, EOFError) as err:
            raise DataError(f"{self.name}: not a readable GIF ({err}); expected an (animated) GIF") from err
        self.position += 1
        return frame

    def skip(self, count: int | None = None) -> int:
        done = self.frames - self.position if count is None else min(count, self.frames - self.position)
        self.position += done
        return done

    def seek(self, index: int) -> None:
        self.position = index

    def close(self) -> None:
        self._image.close()

    def no_frames(self) -> str:
        return f"{self.name}: GIF without frames; expected an (animated) GIF"


def open_video(source: str | os.PathLike[str] | int) -> VideoReader:
    """Open a video file (:data:`VIDEO_SUFFIXES`) or a camera (its integer index) for reading.

    Raises:
        DataError: it cannot be opened (the message names it and says why).
    """
    if not isinstance(source, int) and Path(source).suffix.lower() == ".gif":
        return _GifReader(source)
    return _CaptureReader(source)


def iter_video(source: str | os.PathLike[str] | int) -> Iterator[np.ndarray]:
    """Every frame of a video file or a camera, decoded one at a time (never all held in memory).

    Raises:
        DataError: it cannot be opened, or it gives no frame at all.

    Shape:
        each (H, W, C), uint8, C = 1 or 3.
    """
    with open_video(source) as video:
        frame = video.read()
        if frame is None:
            raise DataError(video.no_frames())
        while frame is not None:
            yield frame
            frame = video.read()


def read_video(path: str | os.PathLike[str], indices: Sequence[int] | None = None) -> list[np.ndarray]:
    """Decode a video file: all its frames, or frames ``indices`` (increasing) only.

    Frames between two wanted ones are passed over without conversion; the first is reached by an
    exact seek where the container allows it.

    Raises:
        DataError: unreadable, no frame at all, or an index past the end.

    Shape:
        each (H, W, C), uint8, C = 1 or 3.
    """
    if indices is None:
        return list(iter_video(path))
    frames = []
    with open_video(path) as video:
        if indices:
            video.seek(indices[0])
        for index in indices:
            video.skip(index - video.position)
            frame = video.read()
            if frame is None:
                raise DataError(f"{path}: frame {index} could not be decoded (the video ends early)")
            frames.append(frame)
    return frames


def count_frames(path: str | os.PathLike[str]) -> int:
    """Frames that can be decoded from a video file, counted by decoding; 0 for an unreadable file."""
    try:
        with open_video(path) as video:
            return video.skip()
    except DataError:
        return 0


# ----------------------------------------------------------------------------------------------
# Writing.


class VideoWriter:
    """Write a video frame by frame, atomically, and verify it before it replaces anything.

    Use as a context manager::

        with VideoWriter("out.mp4", fps=10) as video:
            for frame in frames:
                video.write(frame)

    The frames go to a temporary file beside ``path`` (:func:`crevnet.io.atomic.atomic_path`). On a
    clean exit the file is re-opened and its frames counted: it replaces ``path`` only if it holds
    every frame written; otherwise (a full disk: OpenCV reports nothing), and on any exception in the
    block, ``path`` is left as it was. The first frame fixes the size.

    Args:
        path: the output; its suffix picks the codec (:data:`VIDEO_CODECS`).
        fps: frames per second, > 0.

    Raises:
        DataError: an unknown suffix, fps <= 0, a frame of another size than the first, or a size
            OpenCV cannot encode. OutputError: the file could not be written, or holds fewer frames
            than were written (the message names ``path`` and says "disk full" when it is).
    """

    def __init__(self, path: str | os.PathLike[str], fps: float) -> None:
        self.path = Path(path)
        fourcc = VIDEO_CODECS.get(self.path.suffix.lower())
        if fourcc is None:
            raise DataError(f"{self.path}: unknown video suffix; expected one of {', '.join(VIDEO_CODECS)}")
        if not fps > 0:
            raise DataError(f"{self.path}: fps must be > 0, got {fps}")
        self.fourcc, self.fps = fourcc, float(fps)
        self.written = 0
        self._stack = ExitStack()
        self._tmp: Path | None = None
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None

    def __enter__(self) -> VideoWriter:
        self._tmp = self._stack.enter_context(atomic_path(self.path, self._verify))
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> bool | None:
        if self._writer is not None:
            self._writer.release()  # finishes the file before atomic_path verifies and renames it
        return self._stack.__exit__(kind, error, trace)

    def write(self, frame: torch.Tensor | np.ndarray) -> None:
        """Append one frame: float in [0, 1] or uint8.

        Shape:
            (C, H, W) with C in {1, 3}, or (H, W).
        """
        if self._tmp is None:
            raise RuntimeError("VideoWriter.write outside its with block")
        image = to_bgr(to_uint8(frame[None], str(self.path))[0])  # (H, W, 3) BGR uint8
        size = (image.shape[1], image.shape[0])  # (W, H), as OpenCV takes it
        if self._writer is None:
            self._writer = self._open(size)
        elif size != self._size:
            raise DataError(
                f"{self.path}: frame {self.written} is {size[1]}×{size[0]}, the video is "
                f"{self._size[1]}×{self._size[0]}; a video keeps one frame size"
            )
        self._writer.write(image)
        self.written += 1

    def _open(self, size: tuple[int, int]) -> cv2.VideoWriter:
        writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, size)
        if not writer.isOpened():
            free = free_bytes(self.path.parent)
            if free is not None and free < (1 << 20):
                raise OutputError(f"cannot write {self.path}: disk full ({free} bytes free); free some space")
            raise DataError(
                f"{self.path}: OpenCV cannot write {self.fourcc} video of size {size[0]}x{size[1]}"
            )
        self._size = size
        return writer

    def _verify(self, tmp: Path) -> str | None:
        found = count_frames(tmp)
        return None if found == self.written else f"the video holds {found} readable of {self.written} frames"
