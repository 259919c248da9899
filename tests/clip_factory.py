"""Tiny clips written with OpenCV / Pillow for the video-folder tests.

Frame ``i`` of a clip made here carries its index: every pixel of the red channel is ``INDEX_LEVEL * i``
(+ a small pattern), so a test can read back which frame a decoder returned, through lossy codecs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

INDEX_LEVEL = 8  # red level per frame index; lossy codecs stay well within half of it

# A colour 2-D CrevNet small enough to fit 2 steps in seconds, on 5-frame 16x16 windows of a folder.
TINY_FOLDER_CONFIG = """
seed_everything: 0
torch_threads: 1
trainer:
  max_steps: 2
  limit_val_batches: 1
  val_check_interval: 2
  check_val_every_n_epoch: null
  num_sanity_val_steps: 0
  enable_progress_bar: false
  enable_model_summary: false
  logger:
    class_path: crevnet.train.logger.AtomicCSVLogger
    init_args: {name: folder}
  callbacks:
    - class_path: crevnet.train.callbacks.FitReport
      init_args: {test_set: null, batch_size: 2}
model:
  net:
    encoder: {in_channels: 3, dims: 2, init_downsample: 2, stages: [1], strides: [1], channels: [6]}
    predictor: {layers: 1, cell: conv_lstm}
    window: 1
  context: 3
  lr: 0.01
data:
  class_path: crevnet.data.VideoFolderDataModule
  init_args: {root: data/videos, num_frames: 5, size: [16, 16], batch_size: 2, val_size: 2}
"""


def indexed_frames(num: int, height: int, width: int, colour: bool = True, hue: int = 0) -> np.ndarray:
    """``num`` frames whose red channel encodes the frame index. Shape: (T, C, H, W) uint8."""
    if num * INDEX_LEVEL > 255:
        raise ValueError(f"at most {255 // INDEX_LEVEL} frames")
    frames = np.zeros((num, 3, height, width), dtype=np.uint8)
    for i in range(num):
        frames[i, 0] = INDEX_LEVEL * i
        frames[i, 1] = 255 - INDEX_LEVEL * i
        frames[i, 2] = hue
    if not colour:
        frames = frames[:, :1].copy()
    return frames


def frame_index(frame: np.ndarray) -> int:
    """Index carried by a (C, H, W) float frame in [0, 1] or uint8 (C = 3: red; C = 1: none)."""
    value = float(np.asarray(frame, dtype=np.float64)[0].mean())
    if value <= 1.0 and np.asarray(frame).dtype != np.uint8:
        value *= 255.0
    return round(value / INDEX_LEVEL)


def write_clip(path: Path, frames: np.ndarray, fps: float = 10) -> Path:
    """Write ``frames`` ((T, C, H, W) uint8) as a video, a GIF or (a path without suffix) PNG frames."""
    from crevnet.data.video import write_frames, write_gif, write_video

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gif":
        write_gif(frames, path, fps=fps)
    elif path.suffix == ".webm":
        import cv2

        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"VP80"), fps, frames.shape[:1:-1])
        for frame in frames:
            rgb = np.repeat(frame, 3 // frame.shape[0], axis=0).transpose(1, 2, 0)
            writer.write(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
        writer.release()
    elif path.suffix:
        write_video(frames, path, fps=fps)
    else:
        write_frames(frames, path)
    return path
