"""``crevnet predict``: the next frames of any clip, written as a GIF, an MP4, a contact sheet or an array.

The clip (anything :func:`crevnet.data.video.read_clip` reads, or a (T, C, H, W) tensor) is brought
to what the model was trained on before it is fed:

- **channels**: colour -> grey with the ITU-R BT.601 weights for a 1-channel model; grey -> three
  equal channels for a 3-channel model.
- **size** (``size="train"``, the default for checkpoints): every frame is resized to the training
  frame size the checkpoint records, 64×64 (Moving MNIST) when it records none. A CrevNet is fully
  convolutional and accepts any H×W that divides by its encoder's total downsampling, but it only
  predicts well at the scale it was trained on, so resizing to the training size is the default.
  ``size="keep"`` keeps the clip's size, rounded to the nearest multiple of the downsampling
  factor; ``size=(H, W)`` asks for a size. Shrinking uses area averaging, enlarging bilinear.
- **framing** (``resize="train"``, the default): a clip of another aspect ratio is framed as the
  checkpoint's training frames were (:attr:`~crevnet.models.checkpoint.CheckpointMeta.framing`), so a model
  trained on centre crops of a video folder is not fed stretched frames: ``"center_crop"`` scales the
  frame, aspect ratio kept, until it covers the size and cuts the centre; ``"resize"`` stretches it.
  A checkpoint that records none (Moving MNIST, square frames) gets the centre cut: digits keep their
  shape.
- **context**: the last ``context`` frames of the clip are observed (default: the context the model
  was trained with); a shorter clip is an error.

:func:`predict_file` is the whole of ``crevnet predict`` (its command line:
:mod:`crevnet.commands.predict`), which tells the user what was changed in one line on stderr, e.g.
``crevnet predict: clip.mp4: 30 frames 96×128 RGB -> resized 96×128 -> 64×85 and cut the centre
64×64 (H×W), converted RGB -> grey; context = last 10 frames``. The output holds the ``horizon``
predicted frames, clipped to [0, 1] (``--with-context`` puts the observed frames first in
``.gif``/``.mp4``/``.npy``; a ``.png`` contact sheet always shows a context row and a prediction row).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from crevnet.errors import CheckpointError, DataError
from crevnet.models.checkpoint import FRAMINGS, CheckpointMeta, LoadedModel, load_model
from crevnet.models.device import resolve_device
from crevnet.models.mode import evaluating
from crevnet.nn.model import DEFAULT_HORIZON, CrevNet, check_horizon

__all__ = [
    "OUTPUT_SUFFIXES",
    "RESIZE_CHOICES",
    "PreparedClip",
    "WrittenPrediction",
    "check_prediction_arguments",
    "check_resize",
    "predict_clip",
    "predict_file",
    "prepare_clip",
    "resolve_framing",
    "write_prediction",
]

OUTPUT_SUFFIXES = (".gif", ".mp4", ".png", ".npy")
"""Formats ``crevnet predict --out`` writes."""

_CHANNEL_NAMES = {1: "grey", 3: "RGB"}

Size = str | tuple[int, int]

RESIZE_CHOICES = ("train", *FRAMINGS)
"""``resize`` values: the checkpoint's training framing, or one of :data:`FRAMINGS`."""


@dataclass(frozen=True)
class PreparedClip:
    """The frames fed to the model, and what was done to the input to get them.

    Attributes:
        context: the observed frames, float32 in [0, 1].
        notes: human-readable changes, e.g. ``("resized 96×128 -> 64×64 (H×W)",)``.
        summary: one line describing the input and every change.

    Shape:
        context: (K, C, H, W) with C and H×W as the model expects.
    """

    context: torch.Tensor
    notes: tuple[str, ...]
    summary: str


def _channels_name(c: int) -> str:
    return _CHANNEL_NAMES.get(c, f"{c}-channel")


def _target_size(size: Size, height: int, width: int, factor: int) -> tuple[int, int]:
    if size == "keep":
        return max(factor, factor * round(height / factor)), max(factor, factor * round(width / factor))
    if isinstance(size, tuple) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size):
        if size[0] % factor or size[1] % factor:
            raise DataError(
                f"--size {size[0]}x{size[1]}: height and width must be multiples of {factor} (the "
                "encoder's total downsampling)"
            )
        return size
    raise DataError(f"--size {size!r}: expected 'train', 'keep' or HxW (e.g. 64x64)")


def check_resize(resize: str, choices: Sequence[str] = RESIZE_CHOICES) -> None:
    """Refuse a ``resize`` that is none of ``choices`` (:class:`DataError`).

    ``choices`` is :data:`RESIZE_CHOICES` for what a user asks; :data:`~crevnet.models.checkpoint.FRAMINGS`
    once "train" has been resolved (:func:`prepare_clip`).
    """
    if resize not in choices:
        raise DataError(f"--resize {resize!r}: expected one of {', '.join(choices)}")


def check_prediction_arguments(horizon: int, fps: float, resize: str) -> None:
    """The arguments ``crevnet predict`` and ``crevnet predict --stream`` share, checked before any work.

    Raises:
        DataError: ``horizon`` not a positive int, ``fps`` not positive, or an unknown ``resize``;
            the message names the option.
    """
    check_horizon(horizon, "--horizon")
    if not fps > 0:
        raise DataError(f"--fps {fps:g}: expected a positive frame rate")
    check_resize(resize)


def resolve_framing(loaded: LoadedModel, size: Size, resize: str = "train") -> tuple[Size, str]:
    """The frame size and framing a checkpoint's model is fed: ``"train"`` read from its facts.

    Args:
        loaded: the model and its checkpoint's facts.
        size: "train" (the training frame size), "keep" or (H, W).
        resize: "train" (the training framing; "center_crop" when not recorded), "resize" or
            "center_crop".

    Returns:
        (size, framing) for :func:`prepare_clip`.

    Raises:
        DataError: a ``resize`` that is none of :data:`RESIZE_CHOICES`.
    """
    check_resize(resize)
    if size == "train":
        size = (int(loaded.meta.frame_size[0]), int(loaded.meta.frame_size[1]))
    if resize == "train":
        resize = loaded.meta.framing or "center_crop"
    return size, resize


def prepare_clip(
    clip: torch.Tensor,
    in_channels: int,
    factor: int,
    size: tuple[int, int] | str,
    context: int,
    window: int = 1,
    name: str = "clip",
    read_notes: Sequence[str] = (),
    resize: str = "center_crop",
) -> PreparedClip:
    """Convert a clip to the model's channels and frame size and keep its last ``context`` frames.

    Args:
        clip: frames in [0, 1] (a float tensor; uint8 is divided by 255).
        in_channels: channels the model expects (1 or 3).
        factor: the encoder's total downsampling (H and W must divide by it).
        size: target (H, W), or "keep" (the clip's size rounded to a multiple of ``factor``).
        context: observed frames to keep (the clip's last ones).
        window: the model's window: ``context`` must be at least this.
        name: the clip's name in messages.
        read_notes: what reading the file assumed (e.g. the array layout), put first in ``notes``.
        resize: how a frame of another aspect ratio reaches ``size``: "center_crop" (scaled, aspect
            ratio kept, to cover it, then the centre cut) or "resize" (stretched).

    Returns:
        The prepared context frames and a description of the changes.

    Raises:
        DataError: not a (T, C, H, W) tensor with C in {1, 3}, a clip shorter than ``context``,
            ``context`` < ``window``, a size that the encoder cannot take, or an unknown ``resize``.

    Shape:
        clip: (T, C, H, W) -> context (context, in_channels, H', W')
    """
    frames = _context_frames(clip, context, window, name)
    check_resize(resize, FRAMINGS)
    t, c, h, w = clip.shape
    notes: list[str] = list(read_notes)
    frames = _to_size(frames, _target_size(size, h, w, factor), resize, notes)
    frames = _to_channels(frames, in_channels, name, notes)
    described = f"{name}: {t} frames {h}×{w} {_channels_name(c)}"
    changes = ", ".join(notes) if notes else "used as they are"
    summary = f"{described} -> {changes}; context = last {context} frames"
    return PreparedClip(frames.contiguous(), tuple(notes), summary)


def _context_frames(clip: torch.Tensor, context: int, window: int, name: str) -> torch.Tensor:
    # The clip's last ``context`` frames as float in [0, 1], after every check on the clip itself.
    if not isinstance(clip, torch.Tensor) or clip.dim() != 4 or clip.shape[1] not in (1, 3):
        shape = tuple(clip.shape) if isinstance(clip, torch.Tensor) else type(clip).__name__
        raise DataError(f"{name}: got {shape}; expected a (T, C, H, W) tensor with C = 1 or 3")
    if min(clip.shape) == 0:
        raise DataError(f"{name}: empty clip of shape {tuple(clip.shape)}")
    if context < window:
        raise DataError(f"--context {context}: the model needs at least {window} observed frame(s)")
    t = clip.shape[0]
    if t < context:
        raise DataError(
            f"{name}: {t} frame(s), too short: the model observes {context} frames before predicting "
            f"(give a longer clip, or --context K with {window} <= K <= {t})"
        )
    frames = clip[-context:]
    frames = frames.float() / 255.0 if frames.dtype == torch.uint8 else frames.float()
    if not bool(torch.isfinite(frames).all()):
        from crevnet.data.video import describe_nonfinite

        where = describe_nonfinite(frames, f"(frame of the last {context}, C, H, W)")
        raise DataError(f"{name}: {where}; expected finite values in [0, 1] (or uint8 0..255)")
    if frames.min() < 0 or frames.max() > 1:
        low, high = float(frames.min()), float(frames.max())
        raise DataError(f"{name}: values from {low:.4g} to {high:.4g}; expected values in [0, 1] (or uint8)")
    return frames


def _to_size(frames: torch.Tensor, target: tuple[int, int], resize: str, notes: list[str]) -> torch.Tensor:
    # (K, C, h, w) -> (K, C, H, W) framed as ``resize`` says; what was done is appended to ``notes``.
    from crevnet.data.framing import Framing

    _, c, h, w = frames.shape
    if target == (h, w):
        return frames
    framing = Framing(target, resize, c)  # type: ignore[arg-type]
    scaled = framing.scaled_size(h, w)
    cut = f" and cut the centre {target[0]}×{target[1]}" if scaled != target else ""
    notes.append(f"resized {h}×{w} -> {scaled[0]}×{scaled[1]}{cut} (H×W)")
    return torch.from_numpy(framing.apply(_channels_last(frames))).to(frames.device)


def _to_channels(frames: torch.Tensor, channels: int, name: str, notes: list[str]) -> torch.Tensor:
    # (K, c, H, W) -> (K, channels, H, W): grey repeated, or RGB to grey (BT.601).
    from crevnet.data.pixels import to_channels

    c = frames.shape[1]
    if c == channels:
        return frames
    if c == 1:
        frames = frames.expand(-1, channels, -1, -1)
    elif channels == 1:
        frames = _channels_first(to_channels(_channels_last(frames), 1), frames.device)
    else:
        raise DataError(f"{name}: {c} channels; the model takes {channels}")
    notes.append(f"converted {_channels_name(c)} -> {_channels_name(channels)}")
    return frames


def _channels_last(frames: torch.Tensor) -> np.ndarray:
    return frames.permute(0, 2, 3, 1).cpu().numpy()


def _channels_first(frames: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).to(device)


def _as_loaded(
    model_or_ckpt: CrevNet | LoadedModel | str | os.PathLike[str], device: torch.device
) -> LoadedModel:
    if isinstance(model_or_ckpt, LoadedModel):
        return model_or_ckpt
    if isinstance(model_or_ckpt, CrevNet):
        return LoadedModel(model_or_ckpt, model_or_ckpt.config, CheckpointMeta())
    return load_model(model_or_ckpt, map_location=device)


def predict_clip(
    model_or_ckpt: CrevNet | LoadedModel | str | os.PathLike[str],
    clip: torch.Tensor | str | os.PathLike[str],
    horizon: int,
    context: int | None = None,
    size: Size | None = None,
    device: str | torch.device = "cpu",
    return_prepared: bool = False,
    resize: str = "train",
) -> torch.Tensor | tuple[torch.Tensor, PreparedClip]:
    """Predict the ``horizon`` frames that follow a clip.

    Args:
        model_or_ckpt: a model, a :class:`~crevnet.models.checkpoint.LoadedModel` or a checkpoint path.
        clip: a (T, C, H, W) tensor in [0, 1] or a path :func:`crevnet.data.video.read_clip` reads.
        horizon: frames to predict (>= 1).
        context: observed frames, the clip's last ones (default: the checkpoint's training context;
            10 for a bare model).
        size: "train" (the checkpoint's training frame size, 64×64 when not recorded; the default
            for checkpoints), "keep" (the clip's size rounded to a multiple of the encoder's
            downsampling; the default for a bare model) or (H, W).
        device: where the model runs ("cpu", "cuda", "auto").
        return_prepared: also return the :class:`PreparedClip` (the frames fed and the changes).
        resize: how frames of another aspect ratio are framed: "train" (as the checkpoint's
            training frames were, see :func:`resolve_framing`; the default), "center_crop" or "resize".

    Returns:
        The predicted frames, float32 in [0, 1] on the CPU, with the model's channels and the
        prepared frame size (and the prepared clip when ``return_prepared``).

    Raises:
        DataError: unreadable clip, too short for the context, bad size or resize.
        ValueError: a horizon that is not a positive int (:func:`~crevnet.nn.model.check_horizon`).
        CheckpointError: a bad checkpoint path.

    Shape:
        clip: (T, C, H, W) -> (horizon, C', H', W')
    """
    check_horizon(horizon, "horizon")
    dev = resolve_device(device)
    loaded = _as_loaded(model_or_ckpt, dev)
    read_notes: list[str] = []
    if isinstance(clip, (str, os.PathLike)):
        from crevnet.data.video import read_clip

        name = str(clip)
        clip = read_clip(clip, notes=read_notes)
    else:
        name = "clip"
    config = loaded.config
    if size is None:
        size = "keep" if isinstance(model_or_ckpt, CrevNet) else "train"
    size, resize = resolve_framing(loaded, size, resize)
    k = loaded.meta.context if context is None else context
    prepared = prepare_clip(
        clip,
        config.encoder.in_channels,
        config.encoder.downsample,
        size,
        k,
        config.window,
        name,
        read_notes,
        resize,
    )
    with evaluating(loaded.model.to(dev)) as model:
        pred = model.predict(prepared.context.unsqueeze(0).to(dev), horizon)[0]
    pred = pred.float().cpu().clamp(0.0, 1.0)
    return (pred, prepared) if return_prepared else pred


def _check_output(path: Path) -> None:
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise DataError(
            f"--out {path}: unknown output type {path.suffix or '(none)'!r}; expected one of "
            f"{', '.join(OUTPUT_SUFFIXES)}"
        )


def write_prediction(
    prediction: torch.Tensor,
    path: str | os.PathLike[str],
    context: torch.Tensor | None = None,
    with_context: bool = False,
    fps: float = 4,
) -> Path:
    """Write predicted frames as ``.gif``, ``.mp4``, ``.png`` (contact sheet) or ``.npy``, atomically.

    Args:
        prediction: the predicted frames in [0, 1].
        path: the output file; its suffix picks the format.
        context: the observed frames (needed for ``with_context`` and drawn as a row in ``.png``).
        with_context: put the context frames before the prediction (``.gif``, ``.mp4``, ``.npy``).
        fps: frame rate of ``.gif`` / ``.mp4``.

    Raises:
        DataError: unknown suffix.

    Shape:
        prediction: (horizon, C, H, W); context: (K, C, H, W).
    """
    from crevnet.data.video import write_contact_sheet, write_gif, write_mp4, write_npy

    path = Path(path)
    _check_output(path)
    suffix = path.suffix.lower()
    if suffix == ".png":
        rows = [("prediction", prediction)]
        if context is not None:
            rows.insert(0, ("context", context))
        return write_contact_sheet(rows, path)
    frames = torch.cat((context, prediction)) if with_context and context is not None else prediction
    if suffix == ".npy":
        return write_npy(frames.float().numpy(), path)
    if suffix == ".gif":
        return write_gif(frames, path, fps=fps)
    return write_mp4(frames, path, fps=fps)


@dataclass(frozen=True)
class WrittenPrediction:
    """What :func:`predict_file` wrote.

    Attributes:
        path: the output file.
        prediction: the predicted frames, float32 in [0, 1] on the CPU.
        prepared: the frames fed to the model and the changes made to the input (``summary``).

    Shape:
        prediction: (horizon, C, H, W)
    """

    path: Path
    prediction: torch.Tensor
    prepared: PreparedClip


def predict_file(
    ckpt: str | os.PathLike[str],
    clip: str | os.PathLike[str],
    out: str | os.PathLike[str],
    horizon: int = DEFAULT_HORIZON,
    context: int | None = None,
    size: Size = "train",
    device: str | torch.device = "auto",
    with_context: bool = False,
    fps: float = 4,
    resize: str = "train",
) -> WrittenPrediction:
    """``crevnet predict`` as a function: predict what follows the clip in a file and write it to ``out``.

    Every argument is checked before any work (loading, reading, predicting).

    Args:
        ckpt: a ``.ckpt`` file, a run folder or a bundled model's name.
        clip: a file or folder :func:`crevnet.data.video.read_clip` reads.
        out: ``.gif``, ``.mp4``, ``.png`` (contact sheet) or ``.npy``.
        horizon, context, size, device, resize: as for :func:`predict_clip`.
        with_context, fps: as for :func:`write_prediction`.

    Returns:
        The :class:`WrittenPrediction`.

    Raises:
        DataError: a bad argument or an unreadable clip. CheckpointError: a bad checkpoint.
        OutputError: ``out`` could not be written.
    """
    from crevnet.models.checkpoint import resolve_checkpoint

    path = Path(out)
    _check_output(path)
    if path.is_dir():
        raise DataError(
            f"--out {path}: is a directory; give a file name ending in {', '.join(OUTPUT_SUFFIXES)}"
        )
    check_prediction_arguments(horizon, fps, resize)
    if context is not None and context < 1:
        raise DataError(f"--context {context}: expected a positive number of observed frames")
    if not Path(clip).exists():
        raise DataError(f"--input {clip}: no such file or folder (expected a clip)")
    dev = resolve_device(device)
    resolved = resolve_checkpoint(ckpt)
    if not resolved.is_file():
        raise CheckpointError(f"--ckpt {ckpt}: checkpoint not found")
    loaded = load_model(resolved, map_location=dev)
    pred, prepared = predict_clip(loaded, clip, horizon, context, size, dev, True, resize)
    write_prediction(pred, path, prepared.context, with_context, fps)
    return WrittenPrediction(path, pred, prepared)
