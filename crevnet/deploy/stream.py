"""``crevnet predict --stream``: predict the next frames of a video or a camera, frame by frame, as they come.

Frames are read one at a time from a video file, a camera (an integer index, ``--input 0``) or a
folder of images (read lazily, in name order), all decoded by :mod:`crevnet.data.frames`, or from any
other clip :func:`crevnet.data.video.read_clip` reads (``.npy``/``.npz``). Each frame is brought to the
model's channels and frame size exactly as ``crevnet predict`` does
(:func:`crevnet.inference.predict.prepare_clip`), pushed into a :class:`~crevnet.nn.stream.FrameStream`
(one encode and one RPM step, the past is never re-encoded), and, once a window of frames has arrived,
the next ``--horizon`` frames are forecast. What runs the model is ``--backend``
(:mod:`crevnet.deploy.backends`); the default, ``auto``, times every backend available here on the first
frame's shape and keeps the fastest. Every output frame shows, side by side, the frame just received
and the ``horizon`` frames predicted after it; a video output (``.mp4``/``.avi``) is written frame by
frame as the predictions come (:class:`crevnet.data.frames.VideoWriter`), a ``.gif`` is encoded at the
end. Both are written atomically and verified: the file appears when the stream ends (end of file,
``--max-frames``, a camera that stops, or Ctrl-C), and only if it holds every frame written; otherwise
(a full disk, a read-only folder, a kill) :class:`~crevnet.errors.OutputError` names it and an earlier
file of that name is left whole. The output's temporary file is created before the model is loaded, so
a folder that cannot be written is reported first.

:func:`run_stream` returns a :class:`StreamReport`: the backend chosen and why, the model latency per
new frame (push + forecast: median, p95) and the predicted frames per second (``crevnet predict
--stream`` prints them on stderr). Bad input raises :class:`~crevnet.errors.DataError` (one line, exit 2
from the CLI): a missing or unreadable file, a camera that cannot be opened or delivers no frame, and a
frame whose size or channel count differs from the first frame's.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np
import torch

from crevnet.data.frames import VIDEO_SUFFIXES, VideoWriter, iter_video, list_images, read_image
from crevnet.data.grid import tile
from crevnet.data.video import encode_gif, read_clip
from crevnet.deploy.backends import check_backend, pick_backend
from crevnet.errors import DataError
from crevnet.inference.predict import PreparedClip, check_prediction_arguments, prepare_clip, resolve_framing
from crevnet.io.atomic import atomic_write
from crevnet.models.checkpoint import LoadedModel, load_model
from crevnet.models.device import resolve_device
from crevnet.nn.stream import FrameStream

__all__ = ["STREAM_SUFFIXES", "StreamReport", "iter_frames", "run_stream", "side_by_side"]

STREAM_SUFFIXES = (".mp4", ".avi", ".gif")
"""Outputs ``crevnet predict --stream`` writes."""

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
        frames: Iterator[np.ndarray] = iter_video(int(source))
    else:
        path = Path(source)
        if not path.exists():
            raise DataError(
                f"--input {source}: no such file or folder (expected a video, a folder of images or a "
                "camera index)"
            )
        if path.is_dir():
            frames = (read_image(file) for file in list_images(path))
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            frames = iter_video(path)
        else:
            yield from read_clip(path)
            return
    for frame in frames:  # (H, W, C) uint8
        yield torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1))).float() / 255.0


def side_by_side(frame: torch.Tensor, prediction: torch.Tensor) -> torch.Tensor:
    """One output frame: the frame received, then the predicted frames, left to right, white gaps.

    Shape:
        frame: (C, H, W); prediction: (k, C, H, W) -> (C, H, (k + 1)·W + k·gap)
    """
    return tile([[frame, *prediction]], gap=_GAP)


class _GifOutput:
    """A GIF output: its temporary file is made at once (a read-only folder fails before any work), the
    frames are kept and encoded on a clean close."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = path, fps
        self.frames: list[torch.Tensor] = []
        self._stack = ExitStack()

    def __enter__(self) -> _GifOutput:
        self._handle = self._stack.enter_context(atomic_write(self.path))
        return self

    def write(self, panel: torch.Tensor) -> None:
        self.frames.append(panel)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> bool | None:
        if kind is not None:  # the temporary file goes, an earlier GIF stays
            return self._stack.__exit__(kind, error, trace)
        with self._stack:
            self._handle.write(encode_gif(torch.stack(self.frames), self.fps, str(self.path)))
        return None


def _open_output(out: Path, fps: float) -> VideoWriter | _GifOutput:
    return _GifOutput(out, fps) if out.suffix.lower() == ".gif" else VideoWriter(out, fps)


def _check_arguments(
    out: Path, horizon: int, max_frames: int | None, backend: str, resize: str, fps: float
) -> None:
    if out.suffix.lower() not in STREAM_SUFFIXES:
        raise DataError(
            f"--out {out}: --stream writes {', '.join(STREAM_SUFFIXES)}, got {out.suffix or '(none)'!r}"
        )
    check_prediction_arguments(horizon, fps, resize)
    if max_frames is not None and max_frames < 1:
        raise DataError(f"--max-frames {max_frames}: expected a positive number")
    check_backend(backend)


class _Streamer:
    """The model side of a stream: frames in, side-by-side panels out, latency and counts kept."""

    def __init__(
        self, loaded: LoadedModel, dev: torch.device, size: tuple[int, int] | str, resize: str, source: str
    ) -> None:
        self.config, self.model = loaded.config, loaded.model.eval()
        self.dev, self.size, self.resize, self.source = dev, size, resize, source
        self.stream: FrameStream | None = None
        self.backend = ""
        self.latencies: list[float] = []
        self.count = 0
        self.summary = ""
        self._first: tuple[int, ...] | None = None

    def _prepare(self, frame: torch.Tensor) -> PreparedClip:
        if self._first is None:
            self._first = tuple(frame.shape)
        elif tuple(frame.shape) != self._first:
            (c, h, w), first = frame.shape, self._first
            raise DataError(
                f"--input {self.source}: frame {self.count} is {h}×{w} with {c} channel(s), the stream "
                f"started with {first[1]}×{first[2]} with {first[0]}; a stream keeps one frame size and "
                "channel count"
            )
        encoder = self.config.encoder
        prepared = prepare_clip(
            frame[None],
            encoder.in_channels,
            encoder.downsample,
            self.size,
            1,
            1,
            self.source,
            resize=self.resize,
        )
        if not self.summary:
            self.summary = prepared.summary.replace("; context = last 1 frames", "")
        return prepared

    def step(self, frame: torch.Tensor, horizon: int, backend: str) -> torch.Tensor | None:
        """Push one frame; the panel (frame | forecast) once the model's window is full, else None."""
        prepared = self._prepare(frame)
        x = prepared.context.to(self.dev)  # (1, C, H, W): one stream
        if self.stream is None:  # the backend is built (and, for auto, timed) for this frame shape
            threads = (torch.get_num_threads(), 1)
            choice = pick_backend(self.model, backend, tuple(x.shape[-2:]), 1, horizon, threads)
            self.stream, self.backend = FrameStream(choice.graphs), choice.line()
        t0 = time.perf_counter()
        self.stream.push(x)
        pred = self.stream.forecast(horizon) if self.stream.ready else None
        if self.dev.type == "cuda":
            torch.cuda.synchronize(self.dev)
        self.count += 1
        if pred is None:
            return None
        self.latencies.append(1000 * (time.perf_counter() - t0))
        return side_by_side(prepared.context[0], pred[0].float().cpu().clamp(0, 1))


def _run(
    streamer: _Streamer, output: VideoWriter | _GifOutput, horizon: int, backend: str, max_frames: int | None
) -> str:
    # Feeds every frame of the source; returns why the stream stopped.
    try:
        for frame in iter_frames(streamer.source):
            panel = streamer.step(frame, horizon, backend)
            if panel is not None:
                output.write(panel)
            if max_frames is not None and streamer.count >= max_frames:
                return "--max-frames"
    except KeyboardInterrupt:
        return "interrupted"
    return "end of input"


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
        out: ``.mp4`` / ``.avi`` (written frame by frame) or ``.gif``; verified before it replaces an
            earlier file.
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
            channel count than the first one. CheckpointError: a bad checkpoint. OutputError: ``out``
            cannot be written, or the file written does not hold every frame (e.g. a full disk); an
            earlier ``out`` is left as it was.
    """
    out = Path(out)
    _check_arguments(out, horizon, max_frames, backend, resize, fps)
    with _open_output(out, fps) as output:
        dev = resolve_device(device)
        loaded = load_model(ckpt, map_location=dev)
        size, resize = resolve_framing(loaded, size, resize)
        streamer = _Streamer(loaded, dev, size, resize, source)
        stopped = _run(streamer, output, horizon, backend, max_frames)
        if not streamer.latencies:
            raise DataError(
                f"--input {source}: {streamer.count} frame(s), fewer than the model's window of "
                f"{streamer.config.window}; nothing to predict"
            )
    latencies = streamer.latencies
    rate = 1000 * horizon * len(latencies) / sum(latencies)
    return StreamReport(
        streamer.count, len(latencies), tuple(latencies), rate, streamer.summary, stopped, streamer.backend
    )
