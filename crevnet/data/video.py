"""Any clip in and out: arrays, video files, GIFs and image folders <-> (T, C, H, W) float in [0, 1].

This is the only data module that imports OpenCV (and Pillow, for GIFs); ``crevnet.data`` does not
import it eagerly. Colour clips are RGB. Writers accept (T, C, H, W) or (T, H, W) tensors or arrays,
float in [0, 1] (clipped) or uint8, with C = 1 or 3, and write atomically (temporary file in the
same folder, then ``os.replace``).

Formats:
    - ``.npy`` / ``.npz``: (T, H, W), (T, H, W, C) or (T, C, H, W) with C in {1, 3, 4} (alpha is
      dropped), uint8 or float in [0, 1]. An ``.npz`` must hold one array, or one named
      ``video``, ``clip`` or ``frames``.
    - ``.mp4`` / ``.avi`` / ``.mov`` / ``.mkv`` / ``.webm``: decoded by
      :func:`crevnet.data.frames.read_video`; always RGB. Written frame by frame and verified by
      :class:`crevnet.data.frames.VideoWriter` (MPEG-4 mp4v; ``.avi`` Motion-JPEG; ``.webm`` VP8): lossy.
    - ``.gif``: read and written with Pillow (OpenCV 5.0's GIF writer fails on some frame sizes).
      Grey clips are stored exactly; colour clips are quantised to 256 colours. Pillow merges
      identical consecutive frames, so the writer changes pixel (0, 0) of such a frame by one grey
      level (1/255) to keep one GIF frame per clip frame.
    - A folder of images (:data:`crevnet.data.frames.IMAGE_SUFFIXES`), read in sorted name order;
      8- or 16-bit (16-bit rounded to 8, :func:`crevnet.data.frames.to_rgb`), grey or colour.

Every image and video frame is decoded and encoded by :mod:`crevnet.data.frames`.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from crevnet.data.frames import (
    VIDEO_SUFFIXES,
    VideoWriter,
    encode_png,
    list_images,
    read_image,
    read_video,
    to_uint8,
)
from crevnet.data.grid import tile
from crevnet.data.pixels import GREY_WEIGHTS, resize_frames, to_channels
from crevnet.errors import DataError
from crevnet.io.atomic import atomic_write, atomic_write_bytes

__all__ = [
    "GREY_WEIGHTS",
    "SHEET_COLUMNS",
    "describe_nonfinite",
    "encode_gif",
    "error_frames",
    "read_clip",
    "write_contact_sheet",
    "write_frames",
    "write_gif",
    "write_mp4",
    "write_npy",
    "write_video",
]

_NPZ_KEYS = ("video", "clip", "frames")
_ARRAY_LAYOUTS = "(T, H, W), (T, H, W, C) or (T, C, H, W) with C in {1, 3, 4}"
SHEET_COLUMNS = 20
"""Frames per line of a contact sheet; a longer row wraps onto more lines."""


def describe_nonfinite(values: np.ndarray | torch.Tensor, layout: str) -> str | None:
    """E.g. ``"3 non-finite value(s) (NaN or inf) of 4096, the first at (T, H, W, C) = (0, 5, 7, 0)"``.

    Returns None when every value is finite.
    """
    array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    bad = ~np.isfinite(array)
    count = int(bad.sum())
    if not count:
        return None
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    return f"{count} non-finite value(s) (NaN or inf) of {array.size}, the first at {layout} = {first}"


# ----------------------------------------------------------------------------------------------
# Reading. Every reader returns float32 (T, H, W, C) in [0, 1], C in {1, 3}, RGB.


def _array_to_thwc(array: np.ndarray, name: str, notes: list[str] | None = None) -> np.ndarray:
    shape = tuple(array.shape)
    if array.ndim == 3:
        layout = "(T, H, W)"
        array = array[..., None]
    elif array.ndim == 4:
        first, last = array.shape[1] in (1, 3, 4), array.shape[3] in (1, 3, 4)
        if first:
            layout = "(T, C, H, W)"
            array = array.transpose(0, 2, 3, 1)
        elif last:
            layout = "(T, H, W, C)"
        else:
            raise DataError(f"{name}: array of shape {shape}; expected {_ARRAY_LAYOUTS}")
    else:
        raise DataError(f"{name}: array of shape {shape}; expected {_ARRAY_LAYOUTS}")
    if min(array.shape) == 0:
        raise DataError(f"{name}: empty array of shape {shape}; expected {_ARRAY_LAYOUTS}")
    if notes is not None:
        note = f"array {shape} read as {layout}: {shape[0]} frames"
        if layout != "(T, H, W)":
            note += f" of {array.shape[3]} channel(s)"
            if layout == "(T, C, H, W)" and shape[1] == 3:
                note += " (if it is a (T, N, H, W) set of 3 grey sequences, give one: array[:, i])"
        notes.append(note)
    if array.shape[3] == 4:
        array = array[..., :3]
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if np.issubdtype(array.dtype, np.floating):
        nonfinite = describe_nonfinite(array, "(T, H, W, C)")
        if nonfinite:
            raise DataError(f"{name}: {nonfinite}; expected finite values in [0, 1] (or uint8 0..255)")
        low, high = float(np.min(array)), float(np.max(array))
        if not (low >= 0.0 and high <= 1.0):
            raise DataError(
                f"{name}: float values in [{low:.4g}, {high:.4g}]; expected values in [0, 1] "
                "(or uint8 0..255)"
            )
        return array.astype(np.float32)
    raise DataError(f"{name}: dtype {array.dtype}; expected uint8 or float in [0, 1]")


def _load_npy(path: Path, notes: list[str] | None = None) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"{path}: not a readable .npy file ({err})") from err
    return _array_to_thwc(array, str(path), notes)


def _load_npz(path: Path, notes: list[str] | None = None) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.keys())
            named = [k for k in _NPZ_KEYS if k in keys]
            if len(keys) == 1:
                key = keys[0]
            elif named:
                key = named[0]
            else:
                raise DataError(
                    f"{path}: holds arrays {keys}; expected one array or one named {' / '.join(_NPZ_KEYS)}"
                )
            array = archive[key]
    except DataError:
        raise
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"{path}: not a readable .npz file ({err})") from err
    return _array_to_thwc(array, f"{path}[{key}]", notes)


def _load_video(path: Path, notes: list[str] | None = None) -> np.ndarray:
    return np.stack(read_video(path)).astype(np.float32) / 255.0


def _load_folder(path: Path) -> np.ndarray:
    images = [read_image(p) for p in list_images(path)]
    channels = max(image.shape[2] for image in images)
    images = [np.repeat(im, channels // im.shape[2], axis=2) for im in images]
    sizes = {image.shape for image in images}
    if len(sizes) != 1:
        raise DataError(f"{path}: images of different sizes {sorted(sizes)}; expected one frame size")
    return np.stack(images).astype(np.float32) / 255.0


_READERS: dict[str, Callable[[Path, list[str] | None], np.ndarray]] = {
    ".npy": _load_npy,
    ".npz": _load_npz,
    **dict.fromkeys(VIDEO_SUFFIXES, _load_video),
}


def read_clip(
    path: str | os.PathLike[str],
    grayscale: bool = False,
    size: tuple[int, int] | None = None,
    notes: list[str] | None = None,
) -> torch.Tensor:
    """Read a clip from an array file, a video, a GIF or a folder of images.

    Args:
        path: ``.npy``, ``.npz``, a video (:data:`crevnet.data.frames.VIDEO_SUFFIXES`: ``.mp4``,
            ``.avi``, ``.mov``, ``.mkv``, ``.webm``, ``.gif``) or a folder of images (sorted by name).
        grayscale: Convert colour to one grey channel (BT.601 weights).
        size: Resize every frame to (H, W) (area interpolation when shrinking, bilinear otherwise).
        notes: if given, a line saying which layout was assumed for an array is appended to it
            (``crevnet predict`` prints it on stderr).

    Returns:
        The clip, float32 in [0, 1]; C = 1 for grey arrays/images or with ``grayscale``, else 3 (RGB).

    Shape:
        (T, C, H, W).

    Raises:
        DataError: Missing path, unknown suffix, unreadable content, bad layout, dtype or range.
    """
    path = Path(path)
    if path.is_dir():
        frames = _load_folder(path)
    elif not path.exists():
        raise DataError(f"{path}: no such file or folder (expected a clip)")
    else:
        reader = _READERS.get(path.suffix.lower())
        if reader is None:
            raise DataError(
                f"{path}: unknown clip type {path.suffix!r}; expected a folder of images or one of "
                f"{', '.join(_READERS)}"
            )
        frames = reader(path, notes)
    if grayscale and frames.shape[3] == 3:
        frames = to_channels(frames, 1)
    if size is not None:
        try:
            frames = resize_frames(frames, size)
        except ValueError as err:
            raise DataError(f"{path}: size must be two positive integers (H, W), got {size}") from err
    return torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2)))  # (T, C, H, W)


# ----------------------------------------------------------------------------------------------
# Writing.


def write_npy(frames: torch.Tensor | np.ndarray, path: str | os.PathLike[str]) -> Path:
    """Save frames unchanged (dtype and layout kept) as ``.npy``, atomically.

    Shape:
        frames: (T, C, H, W), as given.
    """
    array = frames.detach().cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    with atomic_write(path) as handle:
        np.save(handle, array, allow_pickle=False)
    return Path(path)


def encode_gif(frames: torch.Tensor | np.ndarray, fps: float = 4, name: str = "frames") -> bytes:
    """An animated, looping GIF in memory, verified to hold every frame (see the module notes on exactness).

    Args:
        frames: float in [0, 1] or uint8.
        fps: frames per second, > 0.
        name: the output in messages.

    Raises:
        DataError: a bad shape, dtype or fps, or an encoder that dropped frames.

    Shape:
        frames: (T, C, H, W) or (T, H, W), C in {1, 3}.
    """
    from PIL import Image

    if fps <= 0:
        raise DataError(f"{name}: fps must be > 0, got {fps}")
    array = to_uint8(frames, name)
    images = []
    previous: np.ndarray | None = None
    for frame in array:
        frame = frame[..., 0] if frame.shape[2] == 1 else frame
        if previous is not None and np.array_equal(frame, previous):
            frame = frame.copy()
            frame[0, 0] ^= 1  # keep the frame: Pillow would merge it with the previous one
        previous = frame
        images.append(Image.fromarray(frame))
    duration = max(1, round(1000.0 / fps))
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0)
    buffer.seek(0)
    with Image.open(buffer) as check:  # verify before anything reaches the disk
        frames_written = getattr(check, "n_frames", 1)
    if frames_written != len(images):
        raise DataError(f"cannot write {name}: the GIF encoder kept {frames_written} of {len(images)} frames")
    return buffer.getvalue()


def write_gif(frames: torch.Tensor | np.ndarray, path: str | os.PathLike[str], fps: float = 4) -> Path:
    """Write an animated, looping GIF (:func:`encode_gif`), atomically.

    Shape:
        frames: (T, C, H, W) or (T, H, W), C in {1, 3}.
    """
    return atomic_write_bytes(path, encode_gif(frames, fps, str(path)))


def write_video(frames: torch.Tensor | np.ndarray, path: str | os.PathLike[str], fps: float = 4) -> Path:
    """Write a video (``.mp4``/``.mov``/``.mkv``: mp4v, ``.avi``: MJPG, ``.webm``: VP8), atomically.

    The file is verified (:class:`crevnet.data.frames.VideoWriter`): it replaces ``path`` only if every
    frame can be read back.

    Shape:
        frames: (T, C, H, W) or (T, H, W), C in {1, 3}.
    """
    path = Path(path)
    with VideoWriter(path, fps) as video:
        for frame in to_uint8(frames, str(path)):
            video.write(frame.transpose(2, 0, 1))  # (C, H, W)
    return path


def write_mp4(frames: torch.Tensor | np.ndarray, path: str | os.PathLike[str], fps: float = 4) -> Path:
    """Write an MPEG-4 (mp4v) ``.mp4`` video, atomically. Lossy.

    Shape:
        frames: (T, C, H, W) or (T, H, W), C in {1, 3}.
    """
    if Path(path).suffix.lower() != ".mp4":
        raise DataError(f"{path}: write_mp4 expects a path ending in .mp4")
    return write_video(frames, path, fps)


def write_frames(
    frames: torch.Tensor | np.ndarray, folder: str | os.PathLike[str], prefix: str = "frame_"
) -> list[Path]:
    """Write one lossless PNG per frame (``frame_0000.png``, ...), each atomically.

    Shape:
        frames: (T, C, H, W) or (T, H, W), C in {1, 3}.
    """
    folder = Path(folder)
    array = to_uint8(frames, str(folder))
    digits = max(4, len(str(len(array) - 1)))
    paths = []
    for t, frame in enumerate(array):
        path = folder / f"{prefix}{t:0{digits}d}.png"
        atomic_write_bytes(path, encode_png(frame, str(path)))
        paths.append(path)
    return paths


def error_frames(prediction: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Absolute error |prediction − truth|, clipped to [0, 1], for display (bright = wrong).

    Shape:
        prediction, truth: (T, C, H, W) -> (T, C, H, W).
    """
    if prediction.shape != truth.shape:
        raise ValueError(f"prediction {tuple(prediction.shape)} and truth {tuple(truth.shape)} differ")
    return (prediction.float() - truth.float()).abs().clamp(0.0, 1.0)


def write_contact_sheet(
    rows: Sequence[tuple[str, torch.Tensor | np.ndarray]],
    path: str | os.PathLike[str],
    scale: int = 2,
    gap: int = 2,
    columns: int = SHEET_COLUMNS,
) -> Path:
    """Write a PNG grid: one labelled row per clip (e.g. context | ground truth | prediction | error).

    Rows may have different numbers of frames; all frames must share one (H, W). Grey rows are
    shown grey, colour rows in colour; the label is drawn left of each row. A row longer than
    ``columns`` frames wraps onto more lines (labelled ``"<label> t=k.."``), so a long clip gives a
    tall sheet, not a strip thousands of frames wide. The frames are laid out by
    :func:`crevnet.data.grid.tile`.

    Args:
        rows: (label, frames) pairs; frames (T, C, H, W) or (T, H, W), float in [0, 1] or uint8.
        path: Output ``.png``.
        scale: Integer upscaling of every frame (nearest neighbour).
        gap: Pixels between frames and rows.
        columns: Most frames per line (>= 1).

    Returns:
        ``path`` as a Path.
    """
    path = Path(path)
    if not rows:
        raise DataError(f"{path}: no rows to draw; expected (label, frames) pairs")
    if scale < 1 or gap < 0 or columns < 1:
        raise DataError(f"{path}: need scale >= 1, gap >= 0 and columns >= 1, got {scale}, {gap}, {columns}")
    clips = []
    for label, frames in rows:
        clip = to_uint8(frames, f"{path} row {label!r}")
        for first in range(0, len(clip), columns):
            shown = label if first == 0 else f"{label} t={first}.."
            clips.append((shown, clip[first : first + columns]))
    sizes = {clip.shape[1:3] for _, clip in clips}
    if len(sizes) != 1:
        raise DataError(f"{path}: rows have frame sizes {sorted(sizes)}; expected one (H, W)")
    height = sizes.pop()[0] * scale
    cells = []
    for _, clip in clips:  # (T, H, W, C) uint8 -> (T, 3, H·scale, W·scale): grey rows shown as grey RGB
        frames = torch.from_numpy(np.ascontiguousarray(clip)).permute(0, 3, 1, 2).expand(-1, 3, -1, -1)
        cells.append(list(frames.repeat_interleave(scale, 2).repeat_interleave(scale, 3)))
    grid = tile(cells, gap, border=gap, fill=255).permute(1, 2, 0).numpy()  # (H', W', 3)
    font, font_scale, thickness = cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1
    text_sizes = [cv2.getTextSize(label, font, font_scale, thickness)[0] for label, _ in clips]
    label_width = max(w for w, _ in text_sizes) + 4 * gap + 4  # the grid's border adds the last gap
    labels = np.full((grid.shape[0], label_width - gap, 3), 255, dtype=np.uint8)
    sheet = np.ascontiguousarray(np.concatenate((labels, grid), axis=1))
    for r, ((label, _), (_, text_h)) in enumerate(zip(clips, text_sizes, strict=True)):
        baseline = gap + r * (height + gap) + (height + text_h) // 2
        cv2.putText(sheet, label, (2 * gap, baseline), font, font_scale, (0, 0, 0), thickness, cv2.LINE_AA)
    atomic_write_bytes(path, encode_png(sheet, str(path)))
    return path
