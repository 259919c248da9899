"""``Framing``: bring decoded frames of any size and colour to the frame size and channels a model takes.

Three ways to reach the target size ``(H, W)`` (``mode``):

- ``"resize"``: stretch the whole frame to H×W (the aspect ratio changes when it differs).
- ``"center_crop"``: scale the frame, aspect ratio kept, until it just covers H×W, then cut the
  centre (nothing is stretched; the borders of the longer side are lost).
- ``"random_crop"``: as ``center_crop`` but the cut is placed at random (drawn from the generator
  given; the same offset for every frame of a window, so motion is not faked). Used for training;
  without a generator it is the centre cut.

Resizing and channels go through :mod:`crevnet.data.pixels` (area averaging when shrinking, else
bilinear; BT.601 grey; a grey frame becomes colour as three equal channels), like every other clip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from crevnet.data.pixels import resize_frames, to_channels

__all__ = ["RESIZE_MODES", "Framing", "ResizeMode"]

ResizeMode = Literal["resize", "center_crop", "random_crop"]
RESIZE_MODES: tuple[str, ...] = ("resize", "center_crop", "random_crop")


@dataclass(frozen=True)
class Framing:
    """Target frame size, how to reach it, and target channels.

    Args:
        size: (H, W) of the output frames.
        mode: "resize", "center_crop" or "random_crop" (see the module docstring).
        channels: 1 (grey) or 3 (RGB).
    """

    size: tuple[int, int] = (64, 64)
    mode: ResizeMode = "center_crop"
    channels: int = 3

    def __post_init__(self) -> None:
        if len(self.size) != 2 or not all(isinstance(v, int) and v > 0 for v in self.size):
            raise ValueError(f"Framing: size must be two positive integers (H, W), got {self.size!r}")
        if self.mode not in RESIZE_MODES:
            raise ValueError(f"Framing: mode {self.mode!r}; expected one of {', '.join(RESIZE_MODES)}")
        if self.channels not in (1, 3):
            raise ValueError(f"Framing: channels must be 1 (grey) or 3 (RGB), got {self.channels}")

    def scaled_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) the frame is scaled to before the cut: H×W for "resize", else just covering H×W."""
        if self.mode == "resize":
            return self.size
        scale = max(self.size[0] / height, self.size[1] / width)
        return max(self.size[0], math.ceil(height * scale - 1e-9)), max(
            self.size[1], math.ceil(width * scale - 1e-9)
        )

    def apply(self, frames: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Resize/crop and convert ``frames``.

        Args:
            frames: uint8 (or float, in [0, 1]) RGB or grey frames of one window.
            rng: draws the cut of "random_crop" (None: the centre cut).

        Returns:
            Frames of the input's dtype, channels first.

        Shape:
            frames: (T, h, w, C) with C in {1, 3} -> (T, channels, H, W)
        """
        _, h, w, _ = frames.shape
        sh, sw = self.scaled_size(h, w)
        frames = resize_frames(frames, (sh, sw))
        top, left = (sh - self.size[0]) // 2, (sw - self.size[1]) // 2
        if self.mode == "random_crop" and rng is not None:
            top = int(rng.integers(0, sh - self.size[0] + 1))
            left = int(rng.integers(0, sw - self.size[1] + 1))
        frames = to_channels(frames[:, top : top + self.size[0], left : left + self.size[1]], self.channels)
        return np.ascontiguousarray(frames.transpose(0, 3, 1, 2))  # (T, C, H, W)
