"""``crevnet predict --stream``: predict the next frames of a video or a camera, frame by frame, as they come.

Frames are read one at a time from a video file (OpenCV ``VideoCapture``), a camera (an integer index,
``--input 0``), a folder of images (read lazily, in name order) or any other clip
:func:`crevnet.data.video.read_clip` reads. Each frame is brought to the model's channels and frame
size exactly as ``crevnet predict`` does (:func:`crevnet.inference.predict.prepare_clip`), pushed into a
:class:`~crevnet.nn.stream.FrameStream` (one encode and one RPM step, the past is never re-encoded),
and, once a window of frames has arrived, the next ``--horizon`` frames are forecast. What runs the
model is ``--backend`` (:mod:`crevnet.deploy.backends`); the default, ``auto``, times every backend available
here on the first frame's shape and keeps the fastest, and says which on stderr. Every output frame
shows, side by side, the frame just received and the ``horizon`` frames predicted after it; a video
output (``.mp4``/``.avi``) is written frame by frame as the predictions come, a ``.gif`` at the end.
Both are written atomically: the file appears when the stream ends (end of file, ``--max-frames``,
a camera that stops, or Ctrl-C).

At the end one line on stderr gives the model latency per new frame (push + forecast: median, p95) and
the predicted frames per second. Bad input raises :class:`~crevnet.errors.DataError` (one line, exit 2
from the CLI): a missing or unreadable file, a camera that cannot be opened or delivers no frame, and a
frame whose size or channel count differs from the first frame's.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from crevnet.errors import DataError

__all__ = ["STREAM_SUFFIXES", "StreamReport", "iter_frames", "run_stream", "side_by_side"]

STREAM_SUFFIXES = (".mp4", ".avi", ".gif")
"""Outputs ``crevnet predict --stream`` writes."""

_CAPTURE_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
_GAP = 2  # pixels between the panels of an output frame


@dataclass(frozen=True)
class StreamReport:
    """What a stream did.

    Attributes:
        frames: frames read.
        written: output frames written (one per frame from the model's window on).
        latency_ms: model time per new frame (push + forecast), in arrival order.
        predicted_per_s: predicted frames per second of model time.
        summary: the first frame as read and what was changed to feed it (one line).
        stopped: why the stream ended ("end of input", "--max-frames", "camera stopped", "interrupted").
        backend: the backend that ran and why (:meth:`crevnet.deploy.backends.BackendChoice.line`).
    """

    frames: int
    written: int
    latency_ms: tuple[float, ...]
    predicted_per_s: float
    summary: str
    stopped: str
    backend: str = ""

    def line(self) -> str:
        """The latency line printed on stderr."""
        if not self.latency_ms:
            return f"crevnet predict --stream: {self.frames} frame(s), no forecast ({self.stopped})"
        ms = sorted(self.latency_ms)
        p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
        return (
            f"crevnet predict --stream: {self.frames} frames ({self.stopped}); latency per new frame "
            f"median {statistics.median(ms):.2f} ms, p95 {p95:.2f} ms; "
            f"{self.predicted_per_s:.1f} predicted frames/s"
        )


def _silence_opencv() -> None:
    import cv2

    # OpenCV logs its own warnings for a missing camera or an undecodable file; ours says it in one line.
    with contextlib.suppress(AttributeError):  # builds without the logging utilities
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def _capture_frames(source: str | int, name: str, camera: bool) -> Iterator[np.ndarray]:
    import cv2

    _silence_opencv()
    capture = cv2.VideoCapture(source)
    try:
        if not capture.isOpened():
            if camera:
                raise DataError(
                    f"camera {source}: cannot be opened (no such camera, or it is in use); give another "
                    "index or a video file as --input"
                )
            raise DataError(f"{name}: not a readable video (OpenCV cannot open it); expected a video file")
        count = 0
        while True:
            ok, frame = capture.read()
            if not ok or frame is None:
                break
            count += 1
            if frame.ndim == 2:
                frame = frame[..., None]
            elif frame.shape[2] == 4:
                frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
            else:
                frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            yield frame
        if count == 0:
            what = (
                f"camera {source}: opened but delivered no frame (closed, or in use)"
                if camera
                else (f"{name}: not a readable video (OpenCV decoded no frames)")
            )
            raise DataError(what)
    finally:
        capture.release()


def _folder_frames(folder: Path) -> Iterator[np.ndarray]:
    from crevnet.data.video import IMAGE_SUFFIXES, _load_image

    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(
            f"{folder}: folder holds no images; expected frames with suffix {', '.join(IMAGE_SUFFIXES)}"
        )
    for path in files:
        yield _load_image(path)


def iter_frames(source: str) -> Iterator[torch.Tensor]:
    """Frames of ``source`` one at a time, float32 in [0, 1] (uint8 sources are divided by 255).

    Args:
        source: a camera index (``"0"``), a video file, a folder of images, or any clip
            :func:`crevnet.data.video.read_clip` reads.

    Yields:
        (C, H, W) tensors, C = 1 or 3 (RGB).

    Raises:
        DataError: a missing path, an unreadable file, a camera that cannot be opened or gives no frame.
    """
    if source.strip().isdigit():
        frames: Iterator[np.ndarray] = _capture_frames(int(source), f"camera {source}", camera=True)
    else:
        path = Path(source)
        if not path.exists():
            raise DataError(
                f"--input {source}: no such file or folder (expected a video, a folder of images or a "
                "camera index)"
            )
        if path.is_dir():
            frames = _folder_frames(path)
        elif path.suffix.lower() in _CAPTURE_SUFFIXES:
            frames = _capture_frames(str(path), str(path), camera=False)
        else:
            from crevnet.data.video import read_clip

            for frame in read_clip(path):
                yield frame
            return
    for frame in frames:
        array = frame.astype(np.float32) / (255.0 if frame.dtype == np.uint8 else 1.0)
        yield torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def side_by_side(frame: torch.Tensor, prediction: torch.Tensor) -> torch.Tensor:
    """One output frame: the frame received, then the predicted frames, left to right, white gaps.

    Shape:
        frame: (C, H, W); prediction: (k, C, H, W) -> (C, H, (k + 1)·W + k·gap)
    """
    from crevnet.data.grid import tile

    return tile([[frame, *prediction]], gap=_GAP)


class _VideoSink:
    """Writes frames into a video as they come (atomically: the file appears on a clean close)."""

    def __init__(self, path: Path, fps: float, stack: ExitStack) -> None:
        from crevnet.io.atomic import atomic_path

        self.path, self.fps, self.stack = path, fps, stack
        self.tmp = stack.enter_context(atomic_path(path))
        self.writer = None

    def write(self, frame: torch.Tensor) -> None:
        import cv2

        from crevnet.data.video import _FOURCC, _to_bgr, _to_uint8  # the clip writers' own conversions

        image = _to_bgr(_to_uint8(frame[None], str(self.path))[0])  # (H, W, 3) BGR uint8
        if self.writer is None:
            fourcc = cv2.VideoWriter_fourcc(*_FOURCC[self.path.suffix.lower()])
            height, width = image.shape[:2]
            self.writer = cv2.VideoWriter(str(self.tmp), fourcc, self.fps, (width, height))
            if not self.writer.isOpened():
                raise DataError(f"--out {self.path}: OpenCV cannot write a video of size {width}x{height}")
            self.stack.callback(self.writer.release)
        self.writer.write(image)


def run_stream(
    ckpt: str,
    source: str,
    horizon: int,
    out: str | Path,
    size: str | tuple[int, int] = "train",
    device: str = "auto",
    fps: float = 10,
    max_frames: int | None = None,
    backend: str = "auto",
    resize: str = "train",
) -> StreamReport:
    """Stream ``source`` through the model of ``ckpt`` and write the side-by-side forecasts to ``out``.

    Args:
        ckpt: a checkpoint written by ``crevnet fit``.
        source: see :func:`iter_frames`.
        horizon: frames forecast after every new frame (>= 1).
        out: ``.mp4`` / ``.avi`` (written frame by frame) or ``.gif``.
        size: frame size fed to the model, as for ``crevnet predict`` ("train", "keep" or (H, W)).
        device: where the model runs.
        fps: frame rate of the output.
        max_frames: stop after this many frames (None: until the input ends or Ctrl-C).
        backend: what runs the model (:mod:`crevnet.deploy.backends`): "auto" (default) times each backend
            available here at 1 thread and at PyTorch's thread count on the first frame's shape and
            keeps the fastest; or "eager", "torchscript", "onnxruntime", "compiled" at PyTorch's count.
        resize: framing of frames of another aspect ratio, as for ``crevnet predict`` ("train",
            "center_crop" or "resize").

    Returns:
        The :class:`StreamReport`.

    Raises:
        DataError: bad output suffix, horizon or backend, unreadable input, a frame of another size or
            channel count than the first one. CheckpointError: a bad checkpoint.
    """
    from crevnet.deploy.backends import check_backend, pick_backend
    from crevnet.inference.predict import check_resize, prepare_clip, resolve_framing
    from crevnet.models.checkpoint import load_model
    from crevnet.models.device import resolve_device
    from crevnet.nn.model import check_horizon
    from crevnet.nn.stream import FrameStream

    out = Path(out)
    if out.suffix.lower() not in STREAM_SUFFIXES:
        raise DataError(
            f"--out {out}: --stream writes {', '.join(STREAM_SUFFIXES)}, got {out.suffix or '(none)'!r}"
        )
    check_horizon(horizon, "--horizon")
    if max_frames is not None and max_frames < 1:
        raise DataError(f"--max-frames {max_frames}: expected a positive number")
    check_backend(backend)
    check_resize(resize)
    dev = resolve_device(device)
    loaded = load_model(ckpt, map_location=dev)
    config = loaded.config
    size, resize = resolve_framing(loaded, size, resize)
    model = loaded.model.eval()
    stream: FrameStream | None = None
    chosen = ""
    latencies: list[float] = []
    outputs: list[torch.Tensor] = []
    first: tuple[int, ...] | None = None
    summary, stopped, count = "", "end of input", 0
    with ExitStack() as stack:
        sink = _VideoSink(out, fps, stack) if out.suffix.lower() != ".gif" else None
        frames = iter_frames(source)
        try:
            for frame in frames:
                if first is None:
                    first = tuple(frame.shape)
                elif tuple(frame.shape) != first:
                    c, h, w = frame.shape
                    raise DataError(
                        f"--input {source}: frame {count} is {h}×{w} with {c} channel(s), the stream started "
                        f"with {first[1]}×{first[2]} with {first[0]}; a stream keeps one frame size and "
                        "channel count"
                    )
                prepared = prepare_clip(
                    frame[None],
                    config.encoder.in_channels,
                    config.encoder.downsample,
                    size,
                    1,
                    1,
                    source,
                    resize=resize,
                )
                if not summary:
                    summary = prepared.summary.replace("; context = last 1 frames", "")
                x = prepared.context.to(dev)  # (1, C, H, W): one stream
                if stream is None:  # the backend is built (and, for auto, timed) for this frame shape
                    threads = (torch.get_num_threads(), 1)
                    choice = pick_backend(model, backend, tuple(x.shape[-2:]), 1, horizon, threads)
                    stream, chosen = FrameStream(choice.graphs), choice.line()
                t0 = time.perf_counter()
                stream.push(x)
                pred = stream.forecast(horizon) if stream.ready else None
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
                count += 1
                if pred is not None:
                    latencies.append(1000 * (time.perf_counter() - t0))
                    panel = side_by_side(prepared.context[0], pred[0].float().cpu().clamp(0, 1))
                    if sink is not None:
                        sink.write(panel)
                    else:
                        outputs.append(panel)
                if max_frames is not None and count >= max_frames:
                    stopped = "--max-frames"
                    break
        except KeyboardInterrupt:
            stopped = "interrupted"
        if not latencies:
            raise DataError(
                f"--input {source}: {count} frame(s), fewer than the model's window of {config.window}; "
                "nothing to predict"
            )
        if sink is None:
            from crevnet.data.video import write_gif

            write_gif(torch.stack(outputs), out, fps=fps)
    rate = 1000 * horizon * len(latencies) / sum(latencies)
    return StreamReport(count, len(latencies), tuple(latencies), rate, summary, stopped, chosen)
