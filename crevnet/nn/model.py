"""CrevNet: bijective encoder -> reversible predictive module -> the encoder run in inverse.

With ``encoder.kind: conventional`` (the paper's ablation) a lossy encoder/decoder pair of the same
latent shape replaces the bijective one (:mod:`crevnet.nn.conventional`); the RPM is the same.

Video is ``(B, T, C, H, W)`` in [0, 1] at every public boundary. The model advances one step at a time
over *windows* of ``window`` consecutive frames (stride 1): the 3-D paper model sees 3-frame windows
encoded with Conv3d, the 2-D model single frames (``window = 1``). Step ``s`` reads window ``s``
(frames ``s .. s+window-1``) and predicts window ``s+1``; the newest slot of a predicted window is the
next new frame.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from crevnet.nn.conventional import ConventionalDecoder, ConventionalEncoder
from crevnet.nn.encoder import Encoder, EncoderConfig
from crevnet.nn.memory import MemorySaving
from crevnet.nn.predictor import PredictorConfig, PredictorState, ReversiblePredictor
from crevnet.nn.reshape import check_divisible

__all__ = [
    "DEFAULT_CONTEXT",
    "DEFAULT_HORIZON",
    "CrevNet",
    "CrevNetConfig",
    "MemorySaving",
    "PredictorConfig",
    "check_horizon",
    "check_memory_saving",
    "load_config",
    "sliding_windows",
    "without_run_options",
]

DEFAULT_CONTEXT = 10
"""Frames observed before predicting, unless a run or a checkpoint says otherwise (Moving MNIST's 10)."""

DEFAULT_HORIZON = 10
"""Frames predicted, unless a command is told otherwise (Moving MNIST's 10 + 10 frames)."""


def check_horizon(horizon: object, name: str = "horizon") -> int:
    """The one check of a number of frames to predict: returns ``horizon`` if it is an int >= 1.

    Args:
        horizon: the value to check.
        name: what the caller calls it in messages (``"--horizon"`` for a command line).

    Raises:
        ValueError: ``"<name> <value>: expected a positive number of frames to predict"``.
    """
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        raise ValueError(f"{name} {horizon!r}: expected a positive number of frames to predict (an int >= 1)")
    return horizon


@dataclass(frozen=True)
class CrevNetConfig:
    """The whole model. Defaults: the paper's 3-D Moving MNIST CrevNet (4,997,444 parameters).

    Attributes:
        encoder: the bijective encoder; its last stage's channels set the RPM width.
        predictor: the reversible predictive module.
        window: frames per step: 3 for the 3-D model's sliding window, 1 for a 2-D encoder.
    """

    encoder: EncoderConfig = field(default_factory=EncoderConfig)  # bijective autoencoder
    predictor: PredictorConfig = field(default_factory=PredictorConfig)  # RPM
    window: int = 3  # frames per step (3-D: the encoder's T axis; 2-D: must be 1)

    def __post_init__(self) -> None:
        if not isinstance(self.encoder, EncoderConfig):
            raise TypeError(f"CrevNetConfig.encoder must be an EncoderConfig, got {self.encoder!r}")
        if not isinstance(self.predictor, PredictorConfig):
            raise TypeError(f"CrevNetConfig.predictor must be a PredictorConfig, got {self.predictor!r}")
        if self.window < 1:
            raise ValueError(f"CrevNetConfig.window must be >= 1, got {self.window}")
        if self.encoder.dims == 2 and self.window != 1:
            raise ValueError(
                f"CrevNetConfig.window must be 1 for a 2-D encoder (one frame per step), got {self.window}"
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "config") -> CrevNetConfig:
        """Build from the nested mapping of a YAML ``model: net:`` section.

        Args:
            data: ``{"encoder": {...}, "predictor": {...}, "window": int}``; missing keys take
                their defaults. The run options that older versions stored here
                (``encoder.memory_saving``, ``predictor.bf16``) are dropped (see
                :func:`without_run_options`).
            source: name of the file (or other origin) used in error messages.

        Raises:
            ValueError: naming ``source`` and the key, for an unknown key or an invalid value.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"{source}: 'model: net:' must be a mapping, got {data!r}")
        data = without_run_options(data)
        _check_keys(data, cls, f"{source}: model.net")
        kwargs: dict[str, Any] = dict(data)
        try:
            for key, sub in (("encoder", EncoderConfig), ("predictor", PredictorConfig)):
                if key in kwargs:
                    value = kwargs[key]
                    if not isinstance(value, Mapping):
                        raise ValueError(f"model.net.{key} must be a mapping, got {value!r}")
                    _check_keys(value, sub, f"{source}: model.net.{key}")
                    kwargs[key] = sub(**value)
            return cls(**kwargs)
        except (TypeError, ValueError) as err:
            if str(err).startswith(source):
                raise
            raise ValueError(f"{source}: {err}") from err


# Run options that configs and checkpoints of older versions recorded inside the architecture.
_FORMER_RUN_OPTIONS = {"encoder": ("memory_saving",), "predictor": ("bf16",)}


def without_run_options(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a ``model: net:`` mapping without the run options older versions stored in it.

    ``encoder.memory_saving`` and ``predictor.bf16`` were config fields; they are now arguments of
    the run (:meth:`CrevNet.loss`, ``CrevNetModule(memory_saving=..., bf16=...)``), so a checkpoint
    that recorded them describes the same network as one that did not.
    """
    out = dict(data)
    for section, keys in _FORMER_RUN_OPTIONS.items():
        sub = out.get(section)
        if isinstance(sub, Mapping):
            out[section] = {k: v for k, v in sub.items() if k not in keys}
    return out


def _check_keys(data: Mapping[str, Any], cls: type, where: str) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; expected some of {sorted(known)}")


def load_config(source: str | os.PathLike[str] | Mapping[str, Any]) -> CrevNetConfig:
    """Read the model configuration from a YAML file (or its parsed mapping).

    The file has the training CLI's layout, ``model: {net: {encoder: ..., predictor: ...,
    window: ...}, ...}``; ``model: {class_path: ..., init_args: {net: ...}}`` is accepted too.

    Raises:
        FileNotFoundError: when the path does not exist.
        ValueError: naming the file when ``model: net:`` is missing or holds an unknown key.
    """
    if isinstance(source, Mapping):
        data: Any = source
        name = "config mapping"
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"model config not found: {path}")
        import yaml  # only needed here; keeps `import crevnet.nn` light

        with path.open() as fh:
            data = yaml.safe_load(fh)
        name = str(path)
    model = data.get("model") if isinstance(data, Mapping) else None
    if isinstance(model, Mapping) and isinstance(model.get("init_args"), Mapping):
        model = model["init_args"]
    if not isinstance(model, Mapping) or "net" not in model:
        raise ValueError(
            f"{name}: no 'model: net:' section (expected model: {{net: {{encoder: ..., "
            f"predictor: ..., window: ...}}}})"
        )
    return CrevNetConfig.from_dict(model["net"], source=name)


def check_memory_saving(
    config: CrevNetConfig, memory_saving: MemorySaving | str | bool, who: str = "memory_saving"
) -> MemorySaving:
    """The one check of the memory-saving run option against a model: returns it parsed.

    Memory saving recomputes the encoder's and decoder's activations through the reversible
    encoder's inverse, so it needs ``encoder.kind: reversible``.

    Args:
        config: the model.
        memory_saving: ``off``, ``encoder`` or ``full`` (see :class:`MemorySaving`).
        who: what the caller calls it in messages.

    Raises:
        ValueError: an unknown value, or memory saving asked of a conventional encoder (one line that
            says to pass ``off``).
    """
    mode = MemorySaving.parse(memory_saving, who)
    if mode is not MemorySaving.OFF and config.encoder.kind != "reversible":
        raise ValueError(
            f"{who} {mode.value!r} is not available with encoder.kind 'conventional' (memory saving "
            "recomputes activations through the reversible encoder's inverse, which a conventional "
            "encoder lacks): pass memory_saving off"
        )
    return mode


def sliding_windows(video: torch.Tensor, window: int) -> torch.Tensor:
    """All windows of ``window`` consecutive frames, stride 1 (a view, no copy).

    Shape:
        (B, T, C, H, W) -> (B, T - window + 1, window, C, H, W)
    """
    return video.unfold(1, window, 1).permute(0, 1, 5, 2, 3, 4)  # (B, N, W, C, H, W)


class CrevNet(nn.Module):
    """CrevNet video predictor (Yu et al., ICLR 2020): encoder -> RPM -> ``encoder.inverse``.

    Args:
        config: the model; default the paper's 3-D Moving MNIST model.

    Attributes:
        encoder: :class:`~crevnet.nn.encoder.Encoder`; ``encoder(x)`` / ``encoder.inverse(z)`` on
            its native layout ((B, C, T, H, W) windows in 3-D, (B, C, H, W) frames in 2-D). With
            ``encoder.kind: conventional``, a :class:`~crevnet.nn.conventional.ConventionalEncoder`.
        decoder: with ``encoder.kind: conventional`` only, the
            :class:`~crevnet.nn.conventional.ConventionalDecoder` (the reversible kind decodes with
            ``encoder.inverse`` and has no such attribute, so its checkpoints keep their keys).
        predictor: :class:`~crevnet.nn.predictor.ReversiblePredictor` on the latent.
    """

    def __init__(self, config: CrevNetConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or CrevNetConfig()
        self.encoder: Encoder | ConventionalEncoder
        if config.encoder.kind == "conventional":
            self.encoder = ConventionalEncoder(config.encoder)
            self.decoder = ConventionalDecoder(config.encoder)
        else:
            self.encoder = Encoder(config.encoder)
        self.predictor = ReversiblePredictor(
            config.encoder.dims, config.encoder.channels[-1], config.predictor
        )

    @classmethod
    def from_config(cls, source: str | os.PathLike[str] | Mapping[str, Any]) -> CrevNet:
        """Build the model from the ``model: net:`` section of a YAML config (path or parsed dict).

        Raises:
            FileNotFoundError: when the path does not exist.
            ValueError: naming the file when the section is missing or a key is unknown.
        """
        return cls(load_config(source))

    @property
    def bijective(self) -> bool:
        """Whether ``decode(encode(x)) = x`` (the reversible encoder): then a predicted latent is fed
        back as it is instead of through a decode / encode round trip."""
        return self.config.encoder.kind == "reversible"

    def reconstruct(self, windows: torch.Tensor) -> torch.Tensor:
        """``decode(encode(windows))``: exact up to float rounding for the reversible encoder, lossy
        for the conventional one.

        Shape:
            (M, window, C, H, W) -> (M, window, C, H, W)
        """
        return self._decode(self._encode(windows))

    # -- layout -----------------------------------------------------------------------------------
    def _encode(self, windows: torch.Tensor, memory_saving: bool = False) -> torch.Tensor:
        # (M, W, C, H, W) -> latent (M, 2c, [W,] h, w)
        x = windows.transpose(1, 2) if self.config.encoder.dims == 3 else windows[:, 0]  # (M, C, [W,] H, W)
        if isinstance(self.encoder, Encoder):
            return self.encoder(x, memory_saving=memory_saving)
        return self.encoder(x)  # conventional: memory saving was refused by check_memory_saving

    def _decode(self, z: torch.Tensor, memory_saving: bool = False) -> torch.Tensor:
        # latent (M, 2c, [W,] h, w) -> (M, W, C, H, W)
        if isinstance(self.encoder, Encoder):
            x = self.encoder.inverse(z, memory_saving=memory_saving)
        else:
            x = self.decoder(z)
        if self.config.encoder.dims == 3:
            return x.transpose(1, 2)  # (M, W, C, H, W)
        return x.unsqueeze(1)  # (M, 1, C, H, W)

    def _check_video(self, video: torch.Tensor, who: str, what: str, min_frames: int) -> None:
        cfg = self.config
        if not isinstance(video, torch.Tensor) or not video.is_floating_point():
            raise ValueError(f"{who}: {what} must be a floating-point tensor in [0, 1]")
        if video.dim() != 5:
            raise ValueError(f"{who}: {what} must be (B, T, C, H, W) (5-D), got shape {tuple(video.shape)}")
        if video.shape[2] != cfg.encoder.in_channels:
            raise ValueError(
                f"{who}: {what} must have {cfg.encoder.in_channels} channel(s) on axis 2 "
                f"(B, T, C, H, W), got shape {tuple(video.shape)}"
            )
        check_divisible(video.shape[3], video.shape[4], cfg.encoder.downsample, f"{who}: {what}")
        if video.shape[1] < min_frames:
            raise ValueError(
                f"{who}: {what} needs at least {min_frames} frames (window = {cfg.window}), "
                f"got {video.shape[1]}"
            )

    # -- training ---------------------------------------------------------------------------------
    def forward(
        self,
        video: torch.Tensor,
        sampling_prob: float = 0.0,
        context: int = DEFAULT_CONTEXT,
        generator: torch.Generator | None = None,
        *,
        memory_saving: MemorySaving | str | bool = MemorySaving.OFF,
        bf16: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training rollout over every window transition, with teacher forcing or scheduled sampling.

        Step ``s = 0 .. S-1`` (``S = T - window``) feeds window ``s`` and predicts window ``s+1``.
        With ``sampling_prob = 0`` every input is ground truth (the paper's 100% teacher forcing;
        all windows are encoded and decoded in one batch). Scheduled sampling: for each sample and
        each step whose input window holds a frame ``>= context`` (a step that is autoregressive at
        inference), with probability ``sampling_prob`` the input is the model's own decoded
        prediction of that window, its slots holding frames ``< context`` overwritten with ground
        truth exactly as :meth:`predict` does. Gradients flow through the fed-back predictions.
        With ``sampling_prob = 1`` the rollout equals :meth:`predict` on the first ``context``
        frames. Either way the ground-truth windows are encoded in one batch and the predictions
        decoded in one batch; a fed-back window made only of predicted frames enters the RPM as the
        latent it was decoded from (``encode(decode(z)) = z``, the encoder being a bijection), so
        free running costs about what teacher forcing costs (with ``encoder.kind: conventional``
        every fed-back prediction is decoded and encoded again). With ``norm="batch"`` in the encoder,
        the encoder normalises over all ``B·S`` windows at once (GroupNorm, the default, is per
        sample and unaffected).

        Args:
            video: frames in [0, 1].
            sampling_prob: probability of feeding the model's own prediction, in [0, 1].
            context: number of leading frames that are always ground truth.
            generator: random generator for the sampling draws (its device is used for them).
            memory_saving: run option, what backward recomputes instead of storing: ``"off"``,
                ``"encoder"`` (the encoder and decoder) or ``"full"`` (also each RPM time step);
                see :class:`~crevnet.nn.memory.MemorySaving`. Same loss, same gradients. Only
                ``"off"`` with ``encoder.kind: conventional`` (:func:`check_memory_saving`).
            bf16: run option, bfloat16 autocast for the RPM's cells and gates.

        Returns:
            ``(pred, target)``, both (B, S, window, C, H, W): the decoded prediction of windows
            1..S and the ground-truth windows 1..S. ``pred[:, :, -1]`` are frames
            ``window .. T-1``.

        Shape:
            video: (B, T, C, H, W) with T >= window + 1 -> 2 × (B, T - window, window, C, H, W)
        """
        w = self.config.window
        self._check_video(video, "CrevNet.forward", "video", w + 1)
        if not 0.0 <= sampling_prob <= 1.0:
            raise ValueError(f"CrevNet.forward: sampling_prob must be in [0, 1], got {sampling_prob}")
        if context < 1:
            raise ValueError(f"CrevNet.forward: context must be >= 1, got {context}")
        mode = check_memory_saving(self.config, memory_saving, "CrevNet.forward: memory_saving")
        windows = sliding_windows(video, w)  # (B, N, W, C, H, W)
        b, n = windows.shape[:2]
        steps = n - 1
        target = windows[:, 1:]
        feed_back: torch.Tensor | None = None
        if sampling_prob > 0.0:
            device = generator.device if generator is not None else video.device
            draw = torch.rand((b, steps), generator=generator, device=device).to(video.device)
            feed_back = draw < sampling_prob  # (B, S)
        return self._rollout(windows, steps, feed_back, context, mode, bf16), target

    def _rollout(
        self,
        windows: torch.Tensor,
        steps: int,
        feed_back: torch.Tensor | None,
        context: int,
        mode: MemorySaving,
        bf16: bool,
    ) -> torch.Tensor:
        # Every ground-truth input window is encoded in one batch, every prediction decoded in one batch.
        # A fed-back prediction whose slots are all predicted frames is encode(decode(z_out)) = z_out
        # (the encoder is a bijection), so it enters the RPM as its latent without the round trip; only
        # windows that mix context frames with predicted ones are decoded and encoded again. A
        # conventional encoder is no bijection: every fed-back prediction is decoded and encoded again.
        w = self.config.window
        b = windows.shape[0]
        inputs = windows[:, :steps].transpose(0, 1).flatten(0, 1)  # (S·B, W, C, H, W), step-major
        z_gt = self._encode(inputs, mode.encoder).unflatten(0, (steps, b))  # (S, B, 2c, [W,] h, w)
        first_free = max(1, context - w + 1)  # first step whose input holds a frame >= context
        state: PredictorState | None = None
        outs: list[torch.Tensor] = []
        for s in range(steps):
            z_in = z_gt[s]
            if feed_back is not None and s >= first_free:
                known = min(max(context - s, 0), w)  # leading slots holding frames < context
                if known == 0 and self.bijective:
                    fed = outs[-1]
                else:
                    prev = self._decode(outs[-1], mode.encoder)  # (B, W, C, H, W)
                    mixed = torch.cat((windows[:, s, :known], prev[:, known:]), 1)
                    fed = self._encode(mixed, mode.encoder)
                pick = feed_back[:, s].view(b, *([1] * (z_in.dim() - 1)))
                z_in = torch.where(pick, fed, z_in)
            z_out, state = self.predictor(z_in, state, bf16=bf16, memory_saving=mode.predictor)
            outs.append(z_out)
        pred = self._decode(torch.cat(outs, 0), mode.encoder)  # (S·B, W, C, H, W)
        return pred.unflatten(0, (steps, b)).transpose(0, 1)  # (B, S, W, C, H, W)

    def loss(
        self,
        video: torch.Tensor,
        sampling_prob: float = 0.0,
        context: int = DEFAULT_CONTEXT,
        generator: torch.Generator | None = None,
        *,
        memory_saving: MemorySaving | str | bool = MemorySaving.OFF,
        bf16: bool = False,
    ) -> torch.Tensor:
        """The paper's training loss: MSE of each decoded window, summed over the transitions.

        ``loss = Σ_s mean_{b, slot, c, y, x} (pred[b, s] − target[b, s])²`` over the ``S = T −
        window`` transitions of :meth:`forward` (17 for 20 frames and 3-frame windows; 19 in 2-D):
        the released code's ``Σ_s nn.MSELoss()(x_pred_s, x_s)``. Arguments as in :meth:`forward`.

        Returns:
            A scalar tensor.
        """
        pred, target = self(video, sampling_prob, context, generator, memory_saving=memory_saving, bf16=bf16)
        return (pred - target).pow(2).mean(dim=(0, 2, 3, 4, 5)).sum()

    # -- inference --------------------------------------------------------------------------------
    def predict(self, context: torch.Tensor, horizon: int, *, bf16: bool = False) -> torch.Tensor:
        """Predict ``horizon`` frames after ``context`` (run it under ``torch.no_grad()`` yourself).

        The windows of the context (0 .. Tc − window) warm the recurrent states; the prediction
        after the last one is the window ending at frame Tc. Then the model runs on its own decoded
        windows, whose slots holding context frames are overwritten with ground truth (the paper's
        rollout); the newest slot of each predicted window is the output frame. A predicted window
        with no context slot left is fed back as its latent (the encoder is a bijection: no decode /
        encode round trip; a conventional encoder always takes the round trip), and all outputs are
        decoded in one batch at the end.

        Args:
            context: the observed frames in [0, 1], at least ``window`` of them.
            horizon: number of frames to predict, >= 1 (any length).
            bf16: run option, bfloat16 autocast for the RPM's cells and gates.

        Returns:
            Predicted frames Tc .. Tc + horizon − 1 (not clipped to [0, 1]).

        Shape:
            context: (B, Tc, C, H, W) -> (B, horizon, C, H, W)
        """
        w = self.config.window
        self._check_video(context, "CrevNet.predict", "context", w)
        check_horizon(horizon, "CrevNet.predict: horizon")
        b, tc = context.shape[:2]
        windows = sliding_windows(context, w)  # (B, Nw, W, C, H, W)
        nw = windows.shape[1]
        z = self._encode(windows.transpose(0, 1).flatten(0, 1)).unflatten(0, (nw, b))
        state: PredictorState | None = None
        for j in range(nw):
            z_out, state = self.predictor(z[j], state, bf16=bf16)
        outs = [z_out]
        for k in range(1, horizon):
            known = max(w - k, 0)  # leading slots of the next input that hold context frames
            if known or not self.bijective:
                pred = self._decode(outs[-1])  # frames tc-w+k .. tc+k-1
                z_in = self._encode(torch.cat((context[:, tc - known :], pred[:, known:]), 1))
            else:
                z_in = outs[-1]  # encode(decode(z)) = z: the encoder is a bijection
            z_out, state = self.predictor(z_in, state, bf16=bf16)
            outs.append(z_out)
        frames = self._decode(torch.cat(outs, 0))[:, -1]  # newest slot of each window, (H·B, C, H, W)
        return frames.unflatten(0, (horizon, b)).transpose(0, 1)  # (B, horizon, C, H, W)
