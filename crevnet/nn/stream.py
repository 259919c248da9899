"""Streaming prediction: frames arrive one at a time, forecasts of the next ``k`` frames go out on request.

A CrevNet advances one window per time step, so online use needs no re-encoding of the past: each new
frame completes one new window (the last ``window`` frames), which is encoded once and fed to the RPM
together with the recurrent state the previous step returned. The stream keeps only

- the last ``window`` real frames (the last frame for a 2-D model; the slots of a 3-D window that a
  forecast overwrites with ground truth, as :meth:`~crevnet.nn.CrevNet.predict` does),
- the RPM's output latent after the newest window (the encoded prediction of the next window), and
- the RPM's state, flattened into a fixed tuple of tensors,

so a new frame costs one encode and one RPM step whatever the length of the stream. A forecast rolls the
model out on its own predictions from that latent and a *copy* of the state (tensors are never changed
in place), so the next real frame continues exactly as if no forecast had been asked for.
Streaming equals :meth:`CrevNet.predict` on the same frames to float round-off (tested in 2-D and 3-D).

The stream runs three computations, :class:`StreamGraphs`: encode one window, decode one latent, and one
RPM step on the flattened state. :meth:`StreamGraphs.from_model` builds them from a model in PyTorch;
the same three graphs exported to ONNX or TorchScript (``crevnet export``) roll out with the very same
:func:`advance` and :func:`forecast`, so every backend shares one rollout.

The functions :func:`advance` and :func:`forecast` take and return the state explicitly;
:class:`FrameStream` is a small convenience object that holds it between calls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from crevnet.nn.cells import LSTMState
from crevnet.nn.model import CrevNet, check_horizon, sliding_windows
from crevnet.nn.predictor import PredictorState, ReversiblePredictor

__all__ = [
    "FrameStream",
    "RPMStep",
    "StreamGraphs",
    "StreamState",
    "WindowDecoder",
    "WindowEncoder",
    "advance",
    "flatten_state",
    "forecast",
    "unflatten_state",
    "zero_state",
]

Graph = Callable[..., torch.Tensor]
StepGraph = Callable[..., tuple[torch.Tensor, ...]]


# -- the RPM state as a fixed list of tensors -----------------------------------------------------------
def flatten_state(state: PredictorState) -> tuple[torch.Tensor, ...]:
    """The RPM state as a flat tuple: ``h_0, c_0, h_1, c_1, ..., [memory]`` (memory for ST-LSTM cells).

    Shape:
        every tensor: (B, hidden, [T,] h, w): the cells' hidden width (one latent half by default).
    """
    flat: list[torch.Tensor] = []
    for cell in state.cells:
        flat += [cell.h, cell.c]
    if state.memory is not None:
        flat.append(state.memory)
    return tuple(flat)


def unflatten_state(flat: tuple[torch.Tensor, ...] | list[torch.Tensor], layers: int) -> PredictorState:
    """Inverse of :func:`flatten_state` for an RPM of ``layers`` layers.

    Raises:
        ValueError: when ``flat`` holds neither ``2·layers`` nor ``2·layers + 1`` tensors.
    """
    if len(flat) not in (2 * layers, 2 * layers + 1):
        raise ValueError(
            f"a flattened RPM state of {layers} layers holds {2 * layers} or {2 * layers + 1} tensors "
            f"(h, c per layer [, memory]), got {len(flat)}"
        )
    cells = tuple(LSTMState(flat[2 * i], flat[2 * i + 1]) for i in range(layers))
    memory = flat[2 * layers] if len(flat) > 2 * layers else None
    return PredictorState(cells, memory)


def state_size(predictor: ReversiblePredictor) -> int:
    """Number of tensors in the flattened state of ``predictor`` (see :func:`flatten_state`)."""
    memory = getattr(predictor.cells[0], "uses_memory", False)
    return 2 * len(predictor.cells) + (1 if memory else 0)


# -- the three graphs as modules (what crevnet export writes) -----------------------------------------
class WindowEncoder(nn.Module):
    """Encode one window of frames: the encoder graph of a stream.

    Shape:
        (B, window, C, H, W) -> latent (B, 2c, [window,] H/D, W/D) (``window`` axis in 3-D only).
    """

    def __init__(self, model: CrevNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        return self.model._encode(window)


class WindowDecoder(nn.Module):
    """Decode one latent into a window of frames (the encoder's inverse, or the conventional decoder).

    Shape:
        latent (B, 2c, [window,] h, w) -> (B, window, C, H, W)
    """

    def __init__(self, model: CrevNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.model._decode(latent)


class RPMStep(nn.Module):
    """One RPM time step on an explicit, flattened state: the step graph of a stream.

    ``forward(latent, *state) -> (latent', *state')`` with ``state`` as :func:`flatten_state` orders
    it; an all-zero state is the RPM's initial state (what ``state=None`` means in
    :meth:`~crevnet.nn.ReversiblePredictor.forward`).

    Shape:
        latent: (B, 2c, [T,] h, w); every state tensor: (B, c, [T,] h, w).
    """

    def __init__(self, predictor: ReversiblePredictor) -> None:
        super().__init__()
        self.predictor = predictor

    def forward(self, latent: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        z, new = self.predictor(latent, unflatten_state(state, len(self.predictor.cells)))
        return (z, *flatten_state(new))


class StreamGraphs(NamedTuple):
    """The three computations of a stream and what a rollout needs to know about them.

    Attributes:
        encode: window (B, window, C, H, W) -> latent.
        decode: latent -> window (B, window, C, H, W).
        step: ``(latent, *state) -> (latent', *state')`` (see :class:`RPMStep`).
        window: frames per window (3 for the paper's 3-D model, 1 in 2-D).
        state_size: number of tensors in the flattened RPM state.
        channels: frame channels the model takes.
        downsample: the encoder's total downsampling (H and W must divide by it).
        frame_size: the only (H, W) the graphs take (exported graphs), or None for any.
        state_channels: channels of each state tensor (the RPM cells' hidden width), or None for
            one latent half (graphs exported before the width was recorded).
        bijective: whether ``decode`` inverts ``encode`` (the reversible encoder): a forecast then
            feeds predicted latents back as they are; False (``encoder.kind: conventional``)
            decodes and encodes every one again, as :meth:`CrevNet.predict` does.
    """

    encode: Graph
    decode: Graph
    step: StepGraph
    window: int
    state_size: int
    channels: int
    downsample: int
    frame_size: tuple[int, int] | None = None
    state_channels: int | None = None
    bijective: bool = True

    @classmethod
    def from_model(cls, model: CrevNet) -> StreamGraphs:
        """The graphs of ``model`` in PyTorch (eager). Put the model in eval mode first."""
        cfg = model.config
        return cls(
            encode=WindowEncoder(model),
            decode=WindowDecoder(model),
            step=RPMStep(model.predictor),
            window=cfg.window,
            state_size=state_size(model.predictor),
            channels=cfg.encoder.in_channels,
            downsample=cfg.encoder.downsample,
            state_channels=model.predictor.hidden,
            bijective=model.bijective,
        )


class StreamState(NamedTuple):
    """Everything a stream carries from one frame to the next (plain tensors, never changed in place).

    Attributes:
        recent: the last ``min(frames seen, window)`` real frames.
        latent: the RPM's output after the newest complete window (the encoded prediction of the next
            window); None until ``window`` frames have arrived.
        rpm: the RPM state after that window, flattened (:func:`flatten_state`); empty before.
        seen: number of frames received.

    Shape:
        recent: (B, n, C, H, W) with n <= window; latent: (B, 2c, [window,] h, w).
    """

    recent: torch.Tensor
    latent: torch.Tensor | None
    rpm: tuple[torch.Tensor, ...]
    seen: int


def _check_frames(graphs: StreamGraphs, state: StreamState | None, frames: torch.Tensor) -> torch.Tensor:
    if not isinstance(frames, torch.Tensor) or not frames.is_floating_point():
        raise ValueError("stream: frames must be a floating-point tensor in [0, 1]")
    if frames.dim() == 4:
        frames = frames.unsqueeze(1)  # one frame per stream: (B, 1, C, H, W)
    if frames.dim() != 5 or frames.shape[1] < 1:
        raise ValueError(
            "stream: expected a frame (B, C, H, W) or frames (B, T, C, H, W), "
            f"got shape {tuple(frames.shape)}"
        )
    b, _, c, h, w = frames.shape
    if state is None:
        if c != graphs.channels:
            raise ValueError(
                f"stream: the model takes {graphs.channels}-channel frames, got {c} channel(s) "
                f"(shape {tuple(frames.shape)}, axis 2 of (B, T, C, H, W))"
            )
        d = graphs.downsample
        if h % d or w % d:
            raise ValueError(
                f"stream: frame height and width must be multiples of {d} (the encoder's total "
                f"downsampling), got {h}×{w}"
            )
        if graphs.frame_size is not None and (h, w) != tuple(graphs.frame_size):
            fh, fw = graphs.frame_size
            raise ValueError(f"stream: these graphs take {fh}×{fw} frames (H×W), got {h}×{w}")
        return frames
    rb, _, rc, rh, rw = state.recent.shape
    if (b, c, h, w) != (rb, rc, rh, rw):
        raise ValueError(
            f"stream: a new frame must match the stream's: {rb} stream(s) of {rc}×{rh}×{rw} (C×H×W), "
            f"got {b} of {c}×{h}×{w}; start a new stream for another size or channel count"
        )
    return frames


def zero_state(graphs: StreamGraphs, latent: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The flattened RPM state before the first window: zeros on the latent's grid.

    Shape:
        latent: (B, 2c, [T,] h, w) -> each tensor (B, state_channels or c, [T,] h, w).
    """
    channels = graphs.state_channels or latent.shape[1] // 2
    shape = (latent.shape[0], channels, *latent.shape[2:])
    return tuple(latent.new_zeros(shape) for _ in range(graphs.state_size))


def advance(graphs: StreamGraphs, state: StreamState | None, frames: torch.Tensor) -> StreamState:
    """Feed new real frames: each completes one window, encoded once and stepped through the RPM.

    Several frames at once are equivalent to feeding them one by one (their new windows are encoded
    in one batch, as :meth:`CrevNet.predict` encodes its context). Work per frame is one encode and
    one RPM step: the frames before the last ``window`` are never touched again.

    Args:
        graphs: the stream's computations.
        state: what the previous call returned; None to start a stream.
        frames: the new frames of every stream, in [0, 1].

    Returns:
        The new state (``state`` itself is left as it was).

    Raises:
        ValueError: frames that are not (B, [T,] C, H, W) floats, or whose batch, channels or size
            differ from the stream's.

    Shape:
        frames: (B, C, H, W) or (B, T, C, H, W).
    """
    frames = _check_frames(graphs, state, frames)
    w = graphs.window
    n_new = frames.shape[1]
    buf = frames if state is None else torch.cat((state.recent, frames), 1)  # (B, n, C, H, W)
    n_windows = min(n_new, buf.shape[1] - w + 1)  # windows that end at a new frame
    latent = None if state is None else state.latent
    rpm = () if state is None else state.rpm
    if n_windows > 0:
        b = buf.shape[0]
        windows = sliding_windows(buf, w)[:, -n_windows:]  # (B, N, W, C, H, W)
        z = graphs.encode(windows.transpose(0, 1).flatten(0, 1))  # (N·B, 2c, [W,] h, w), window-major
        z = z.unflatten(0, (n_windows, b))
        if not rpm:
            rpm = zero_state(graphs, z[0])
        for j in range(n_windows):
            latent, *rest = graphs.step(z[j], *rpm)
            rpm = tuple(rest)
    # A copy: the caller may reuse its frame buffer, and a view would keep all of ``buf`` alive.
    recent = buf[:, -w:].clone()
    return StreamState(recent, latent, rpm, (0 if state is None else state.seen) + n_new)


def forecast(graphs: StreamGraphs, state: StreamState, horizon: int) -> torch.Tensor:
    """Predict the next ``horizon`` frames of every stream without changing ``state``.

    The rollout is :meth:`CrevNet.predict`'s, from the state after the newest real frame: while a
    predicted window still has slots that hold observed frames (3-D windows, the first ``window - 1``
    steps), it is decoded, those slots are overwritten with the observed frames and it is encoded
    again; after that each predicted latent is fed back as it is (the encoder is a bijection; with
    ``graphs.bijective`` False every predicted window is decoded and encoded again). All
    predicted windows are decoded in one batch at the end and their newest slots returned.

    Args:
        graphs: the stream's computations.
        state: the stream after at least ``window`` frames.
        horizon: frames to predict, >= 1.

    Returns:
        The predicted frames (not clipped to [0, 1]).

    Raises:
        ValueError: before ``window`` frames have arrived, or for ``horizon < 1``.

    Shape:
        (B, horizon, C, H, W)
    """
    check_horizon(horizon)
    if state is None or state.latent is None:
        seen = 0 if state is None else state.seen
        raise ValueError(
            f"stream: a forecast needs at least {graphs.window} frame(s) (one window), {seen} received"
        )
    w = graphs.window
    b = state.latent.shape[0]
    rpm = state.rpm
    outs = [state.latent]
    for k in range(1, horizon):
        known = max(w - k, 0)  # leading slots of the next input that hold observed frames
        if known or not graphs.bijective:
            pred = graphs.decode(outs[-1])  # (B, W, C, H, W)
            z_in = graphs.encode(torch.cat((state.recent[:, w - known :], pred[:, known:]), 1))
        else:
            z_in = outs[-1]  # encode(decode(z)) = z: the encoder is a bijection
        latent, *rest = graphs.step(z_in, *rpm)
        rpm = tuple(rest)
        outs.append(latent)
    frames = graphs.decode(torch.cat(outs, 0))[:, -1]  # newest slot of each window, (horizon·B, C, H, W)
    return frames.unflatten(0, (horizon, b)).transpose(0, 1)  # (B, horizon, C, H, W)


class FrameStream:
    """An online predictor that holds its :class:`StreamState`: push frames, ask for forecasts.

    Runs under ``torch.inference_mode`` (no autograd bookkeeping). The model should be in eval mode.

    Example::

        stream = FrameStream(model.eval())
        for frame in camera:                 # frame: (B, C, H, W) in [0, 1]
            stream.push(frame)
            if stream.ready:
                future = stream.forecast(10)  # (B, 10, C, H, W); the stream itself is unchanged

    Args:
        model: a :class:`CrevNet`, or :class:`StreamGraphs` (e.g. exported graphs).
    """

    def __init__(self, model: CrevNet | StreamGraphs) -> None:
        self.graphs = model if isinstance(model, StreamGraphs) else StreamGraphs.from_model(model)
        self.state: StreamState | None = None

    @property
    def ready(self) -> bool:
        """Whether enough frames (one window) have arrived for a forecast."""
        return self.state is not None and self.state.latent is not None

    def push(self, frames: torch.Tensor) -> None:
        """Feed one new frame per stream, (B, C, H, W), or several, (B, T, C, H, W)."""
        with torch.inference_mode():
            self.state = advance(self.graphs, self.state, frames)

    def forecast(self, horizon: int) -> torch.Tensor:
        """The next ``horizon`` frames, (B, horizon, C, H, W); the stream's state is not changed."""
        with torch.inference_mode():
            return forecast(self.graphs, self.state, horizon)  # type: ignore[arg-type]

    def reset(self) -> None:
        """Forget every frame: the next push starts a new stream."""
        self.state = None
