"""The bijective two-way autoencoder of CrevNet: reversible coupling blocks stacked in stages.

``Encoder.forward`` maps frames to features and ``Encoder.inverse`` maps features back to frames with
the same weights: the inverse *is* the decoder, and nothing is lost (CrevNet, sec. 3.1). The blocks are
i-RevNet blocks by default; ``EncoderConfig.coupling`` and ``EncoderConfig.mixing`` choose another
reversible form (:mod:`crevnet.nn.forms`), and :meth:`Encoder.log_abs_det_jacobian` sums the blocks'
log-determinants.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from crevnet.nn.block import NormKind
from crevnet.nn.coupling import BlockSpec, PairBijection, merge_halves, split_halves
from crevnet.nn.forms import COUPLINGS, MIXINGS
from crevnet.nn.memory import ReversibleStep, reversible_chain
from crevnet.nn.reshape import check_divisible, depth_to_space, space_to_depth

__all__ = ["MAX_CLAMP", "Encoder", "EncoderConfig"]

MAX_CLAMP = 2.0
"""Largest soft-clamp bound ``EncoderConfig.clamp`` accepts (FrEIA's default bound). A scaled block
multiplies a number by up to ``e^clamp`` and its inverse amplifies the float32 rounding of the shift by
as much, block after block. With every scale saturated (sub-networks at 8× the default initialisation,
a 3-block 2-D affine encoder on 64×64 frames) the float32 round trip was 2.3e-4 at clamp 1, 8.0e-4 at 2,
1.3e-2 at 4, 0.92 at 6 and 23 at 8, against 2.4e-4 for the RevNet form at the same initialisation; so
larger bounds are refused (``docs/reversible-forms.md``)."""


def _full_precision(device: torch.device) -> AbstractContextManager[object]:
    """Turn autocast off on ``device`` (a no-op where autocast does not exist, e.g. ``meta``)."""
    if torch.amp.is_autocast_available(device.type):
        return torch.autocast(device.type, enabled=False)
    return nullcontext()


@dataclass(frozen=True)
class EncoderConfig:
    """Shape of the bijective encoder. Defaults: the paper's 3-D Moving MNIST encoder (104,516 params).

    Attributes:
        in_channels: channels of a frame (1 for Moving MNIST).
        dims: 3 for Conv3d over a window of frames, 2 for Conv2d over single frames.
        init_downsample: space-to-depth applied before the first block (1, 2, 4, ...).
        stages: number of blocks per stage.
        strides: stride of the first block of each stage (1 or 2).
        channels: channels per half after each stage.
        mult: bottleneck divisor of each residual function (width = channels // mult).
        kernel_size: odd kernel size of every conv.
        norm: "group" (GroupNorm(1, C), default), "batch" (paper fidelity) or "none".
        init_scale: scale of the last conv of every residual function at initialisation. PyTorch's
            default (1.0) gives a float32 round-trip error of ~1.5e-5 on the paper encoder; 0.25 gives
            ~5e-7 (measured by ``benchmarks/reversibility.py``) and leaves the parameter count alone.
        coupling: the reversible form of every block, a key of :data:`crevnet.nn.forms.COUPLINGS`:
            "irevnet" (CrevNet's i-RevNet block, default), "additive" (NICE), "revnet", "affine"
            (RealNVP/Glow) or "irn" (Invertible Image Rescaling).
        mixing: what mixes the channels between blocks, a key of :data:`crevnet.nn.forms.MIXINGS`:
            "fixed" (the swap of halves inside every block, default) or "invconv" (also Glow's learned
            invertible 1×1 convolution before every block).
        clamp: bound ``c`` of the soft-clamped log-scale ``c·tanh(raw / c)`` of "affine" and "irn", in
            (0, :data:`MAX_CLAMP`]; a larger one would make the float32 inverse lossy.
        kind: "reversible" (default, this bijective encoder; its inverse is the decoder) or
            "conventional" (the paper's ablation: a lossy strided-conv encoder and transposed-conv
            decoder with the same latent shape and about the same parameters and MACs,
            :mod:`crevnet.nn.conventional`). The other fields describe the reversible encoder either
            way: the conventional pair is sized from it.

    Memory saving is not a field: it is a run option, the ``memory_saving`` argument of
    :meth:`Encoder.forward` and :meth:`Encoder.inverse`.
    """

    in_channels: int = 1  # frame channels
    dims: int = 3  # 3: Conv3d on (C, T, H, W) windows; 2: Conv2d on (C, H, W) frames
    init_downsample: int = 2  # space-to-depth factor before the first block
    stages: tuple[int, ...] = (4, 5, 3)  # blocks per stage
    strides: tuple[int, ...] = (1, 2, 2)  # stride of each stage's first block
    channels: tuple[int, ...] = field(default=(2, 8, 32))  # channels per half after each stage
    mult: int = 2  # bottleneck width = channels // mult
    kernel_size: int = 3  # odd
    norm: NormKind = "group"  # "group" | "batch" | "none"
    init_scale: float = 0.25  # last conv of each F scaled at init: keeps the fp32 inverse tight
    coupling: str = "irevnet"  # "irevnet" | "additive" | "revnet" | "affine" | "irn"
    mixing: str = "fixed"  # "fixed" (swap of halves) | "invconv" (Glow's learned 1x1 conv)
    clamp: float = 2.0  # bound of the affine / irn log-scale, c·tanh(raw / c); at most MAX_CLAMP
    kind: Literal["reversible", "conventional"] = "reversible"  # bijective | lossy ablation

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(self.stages))
        object.__setattr__(self, "strides", tuple(self.strides))
        object.__setattr__(self, "channels", tuple(self.channels))
        if self.dims not in (2, 3):
            raise ValueError(f"EncoderConfig.dims must be 2 or 3, got {self.dims}")
        if self.in_channels < 1:
            raise ValueError(f"EncoderConfig.in_channels must be >= 1, got {self.in_channels}")
        d = self.init_downsample
        if d < 1 or d & (d - 1):
            raise ValueError(f"EncoderConfig.init_downsample must be a power of 2, got {d}")
        if not (len(self.stages) == len(self.strides) == len(self.channels)) or not self.stages:
            raise ValueError(
                "EncoderConfig.stages, strides and channels must be non-empty and of equal length, "
                f"got {self.stages}, {self.strides}, {self.channels}"
            )
        if any(n < 1 for n in self.stages):
            raise ValueError(f"EncoderConfig.stages must all be >= 1, got {self.stages}")
        if not self.init_scale > 0:
            raise ValueError(f"EncoderConfig.init_scale must be > 0, got {self.init_scale}")
        if self.kind not in ("reversible", "conventional"):
            raise ValueError(f"EncoderConfig.kind must be reversible or conventional, got {self.kind!r}")
        if self.norm not in ("group", "batch", "none"):
            raise ValueError(f"EncoderConfig.norm must be group, batch or none, got {self.norm!r}")
        if self.coupling not in COUPLINGS:
            raise ValueError(
                f"EncoderConfig.coupling must be one of {', '.join(COUPLINGS)}, got {self.coupling!r}"
            )
        if self.mixing not in MIXINGS:
            raise ValueError(f"EncoderConfig.mixing must be one of {', '.join(MIXINGS)}, got {self.mixing!r}")
        if not 0 < self.clamp <= MAX_CLAMP:  # also refuses nan and inf
            raise ValueError(
                f"EncoderConfig.clamp must be in (0, {MAX_CLAMP:g}], got {self.clamp!r}: the affine and irn "
                f"forms multiply by up to exp(clamp) per block, and beyond exp({MAX_CLAMP:g}) their float32 "
                "inverse is no longer exact (docs/reversible-forms.md)"
            )
        total = self.in_channels * d * d
        if total % 2:
            raise ValueError(f"in_channels·init_downsample² = {total} must be even to split into two halves")
        c = total // 2
        for i, (s, c_out) in enumerate(zip(self.strides, self.channels, strict=True)):
            if s not in (1, 2):
                raise ValueError(f"EncoderConfig.strides[{i}] must be 1 or 2, got {s}")
            c_expected = c * (4 if s == 2 else 1)
            if c_out != c_expected:
                raise ValueError(
                    f"EncoderConfig.channels[{i}] must be {c_expected} (a bijection keeps every "
                    f"number: stride {s} after {c} channels per half), got {c_out}"
                )
            if c_out // self.mult < 1:
                raise ValueError(f"channels[{i}] // mult must be >= 1, got {c_out} // {self.mult}")
            c = c_out

    @property
    def downsample(self) -> int:
        """Total spatial downsampling factor: H and W must be multiples of it."""
        return self.init_downsample * 2 ** sum(1 for s in self.strides if s == 2)

    @property
    def latent_channels(self) -> int:
        """Channels of the encoder output (both halves)."""
        return 2 * self.channels[-1]


class Encoder(nn.Module):
    """Bijective encoder of reversible blocks; ``inverse`` is the decoder (CrevNet eq. 1–2).

    ``blocks`` holds the invertible steps in order: with ``mixing="fixed"`` one coupling block per
    stage entry (parameter names ``blocks.{i}.*`` as in every earlier checkpoint), with
    ``mixing="invconv"`` an :class:`~crevnet.nn.invconv.InvertibleConv1x1` before each of them.

    Args:
        config: the encoder's shape; see :class:`EncoderConfig`.

    Shape:
        forward: (B, C, [T,] H, W) -> (B, 2·c_last, [T,] H/D, W/D) where ``D`` is
        ``config.downsample``; the two halves of the latent are its first and last ``c_last``
        channels. inverse: the reverse. ``T`` is present when ``config.dims == 3``.
    """

    def __init__(self, config: EncoderConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or EncoderConfig()
        form = COUPLINGS[config.coupling]
        mixing = MIXINGS[config.mixing]
        blocks: list[PairBijection] = []
        c = config.in_channels * config.init_downsample**2 // 2
        for n, stride, c_out in zip(config.stages, config.strides, config.channels, strict=True):
            for j in range(n):
                spec = BlockSpec(
                    config.dims,
                    c,
                    c_out if j == 0 else c,
                    stride if j == 0 else 1,
                    config.mult,
                    config.kernel_size,
                    config.norm,
                    first=not blocks,
                    init_scale=config.init_scale,
                    clamp=config.clamp,
                )
                blocks += mixing(2 * c, config.dims)
                blocks.append(form.from_spec(spec))
                c = c_out
        self.blocks = nn.ModuleList(blocks)

    # -- validation -------------------------------------------------------------------------------
    def _check_input(self, x: torch.Tensor) -> None:
        cfg = self.config
        rank = cfg.dims + 2
        layout = "(B, C, T, H, W)" if cfg.dims == 3 else "(B, C, H, W)"
        if x.dim() != rank:
            raise ValueError(
                f"Encoder input must be {layout} ({rank}-D) for a {cfg.dims}-D encoder, "
                f"got shape {tuple(x.shape)}"
            )
        if x.shape[1] != cfg.in_channels:
            raise ValueError(
                f"Encoder input must have {cfg.in_channels} channel(s) on axis 1, got shape {tuple(x.shape)}"
            )
        check_divisible(x.shape[-2], x.shape[-1], cfg.downsample, "Encoder input")

    def _check_latent(self, z: torch.Tensor) -> None:
        cfg = self.config
        if z.dim() != cfg.dims + 2 or z.shape[1] != cfg.latent_channels:
            raise ValueError(
                f"Encoder.inverse expects a latent with {cfg.latent_channels} channels and "
                f"{cfg.dims + 2} axes, got shape {tuple(z.shape)}"
            )

    # -- steps ------------------------------------------------------------------------------------
    def _steps(self) -> list[ReversibleStep]:
        return [ReversibleStep(b.forward, b.inverse, b, b.replay_forward) for b in self._blocks()]

    def _inverse_steps(self) -> list[ReversibleStep]:
        return [ReversibleStep(b.inverse, b.forward, b, b.replay_inverse) for b in reversed(self._blocks())]

    def _blocks(self) -> list[PairBijection]:
        return list(self.blocks)  # type: ignore[arg-type]

    def _compute_dtype(self, x: torch.Tensor) -> torch.dtype:
        # Couplings stay in full precision: a bf16/fp16 round trip is far from lossless.
        return x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32

    # -- public API -------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, *, memory_saving: bool = False) -> torch.Tensor:
        """Encode frames into the latent (two halves concatenated on the channel axis).

        Args:
            x: frames (windows of frames in 3-D).
            memory_saving: store no activations, only the latent, and recompute them in backward
                with the blocks' inverses (:func:`~crevnet.nn.memory.reversible_chain`); same
                gradients up to round-off.
        """
        self._check_input(x)
        with _full_precision(x.device):
            h = x.to(self._compute_dtype(x))
            for _ in range(self.config.init_downsample.bit_length() - 1):
                h = space_to_depth(h)  # (B, 4C, [T,] H/2, W/2)
            if memory_saving:
                return reversible_chain(h, self._steps())
            x1, x2 = split_halves(h)
            for block in self._blocks():
                x1, x2 = block.forward_pair(x1, x2)
            return merge_halves(x1, x2)

    def inverse(self, z: torch.Tensor, *, memory_saving: bool = False) -> torch.Tensor:
        """Decode a latent back into frames: the exact inverse of :meth:`forward`.

        Args:
            z: the latent.
            memory_saving: store only the decoded frames and recompute the rest in backward, as in
                :meth:`forward`.
        """
        self._check_latent(z)
        with _full_precision(z.device):
            h = z.to(self._compute_dtype(z))
            if memory_saving:
                h = reversible_chain(h, self._inverse_steps())
            else:
                y1, y2 = split_halves(h)
                for block in reversed(self._blocks()):
                    y1, y2 = block.inverse_pair(y1, y2)
                h = merge_halves(y1, y2)
            for _ in range(self.config.init_downsample.bit_length() - 1):
                h = depth_to_space(h)  # (B, C, [T,] 2H, 2W)
            return h

    def log_abs_det_jacobian(self, x: torch.Tensor) -> torch.Tensor:
        """``log|det ∂forward(x)/∂x|`` of each sample: the sum of the blocks' log-determinants.

        Space-to-depth and the swaps are permutations and add 0; the volume-preserving forms
        (irevnet, additive, revnet) add 0 too, so with ``mixing="fixed"`` only "affine" and "irn"
        give a non-zero value. Runs the forward once more than :meth:`forward` (each block's
        log-det is computed from its input), with a graph when gradients are enabled.

        Args:
            x: frames, as for :meth:`forward`.

        Returns:
            Shape (B,), in the encoder's compute dtype (float32 for half-precision input).
        """
        self._check_input(x)
        with _full_precision(x.device):
            h = x.to(self._compute_dtype(x))
            for _ in range(self.config.init_downsample.bit_length() - 1):
                h = space_to_depth(h)  # (B, 4C, [T,] H/2, W/2): a permutation, log-det 0
            total = h.new_zeros(h.shape[0])
            for block in self._blocks():
                total = total + block.log_abs_det_jacobian(h)
                h = block(h)
            return total
