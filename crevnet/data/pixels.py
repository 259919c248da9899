"""The one home of frame conversions: colour to grey (and back) and resizing.

Every path that brings frames to the size and channels a model takes goes through these two
functions: a clip read from disk (:func:`crevnet.data.video.read_clip`), a clip handed to ``crevnet
predict`` (:func:`crevnet.inference.predict.prepare_clip`) and the windows of a video folder
(:class:`crevnet.data.framing.Framing`). So a frame is converted the same way whichever door it came
through.

- Grey from RGB with the ITU-R BT.601 weights (``GREY_WEIGHTS``, as OpenCV's ``RGB2GRAY``); uint8
  frames are rounded back to uint8. Grey to RGB repeats the channel.
- Resizing: area averaging when no side grows, else bilinear (OpenCV); the dtype is kept and float
  frames stay within [0, 1].
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["GREY_WEIGHTS", "resize_frames", "to_channels"]

GREY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma, as OpenCV's RGB2GRAY


def to_channels(frames: np.ndarray, channels: int) -> np.ndarray:
    """Convert frames to ``channels`` (1 grey or 3 RGB); frames that have them already come back as is.

    Args:
        frames: uint8 or float frames, channels last.
        channels: 1 or 3.

    Returns:
        Frames of the same dtype with ``channels`` channels.

    Raises:
        ValueError: a channel count other than 1 or 3 on either side.

    Shape:
        (..., H, W, C) with C in {1, 3} -> (..., H, W, channels)
    """
    c = frames.shape[-1]
    if c not in (1, 3) or channels not in (1, 3):
        raise ValueError(f"to_channels: converts between 1 and 3 channels, got {c} -> {channels}")
    if c == channels:
        return frames
    if channels == 3:
        return np.repeat(frames, 3, axis=-1)
    grey = frames.astype(np.float32) @ np.asarray(GREY_WEIGHTS, dtype=np.float32)
    if frames.dtype == np.uint8:
        return np.clip(np.rint(grey), 0, 255).astype(np.uint8)[..., None]
    return grey.astype(frames.dtype, copy=False)[..., None]


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize every frame to ``size``: area averaging when no side grows, else bilinear.

    Args:
        frames: uint8 or float frames, channels last.
        size: (H, W) of the output, positive.

    Returns:
        Frames of the same dtype (float ones clipped to [0, 1]); the input itself when the size is
        already ``size``.

    Raises:
        ValueError: a size that is not two positive integers.

    Shape:
        (T, h, w, C) -> (T, H, W, C)
    """
    height, width = (int(v) for v in size)
    if height < 1 or width < 1:
        raise ValueError(f"resize_frames: size must be two positive integers (H, W), got {tuple(size)}")
    t, h, w, c = frames.shape
    if (h, w) == (height, width):
        return frames
    method = cv2.INTER_AREA if height <= h and width <= w else cv2.INTER_LINEAR
    out = np.stack(
        [cv2.resize(np.ascontiguousarray(f), (width, height), interpolation=method) for f in frames]
    )
    out = out.reshape(t, height, width, c)
    if np.issubdtype(out.dtype, np.floating):
        out = np.clip(out, 0.0, 1.0)
    return out
