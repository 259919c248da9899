"""Channel halves of a coupling and the interface every invertible step of the encoder shares.

:func:`split_halves` and :func:`merge_halves` cut a tensor into the two halves a coupling works on and
join them again. :class:`PairBijection` is the one interface of the encoder's invertible steps (the
coupling blocks of :mod:`crevnet.nn.forms` and :mod:`crevnet.nn.block`, the invertible 1×1 convolution
of :mod:`crevnet.nn.invconv`): ``forward`` / ``inverse`` on whole tensors, the same on halves
(``forward_pair`` / ``inverse_pair``, so that a stack of blocks splits once and merges once), and
``log_abs_det_jacobian``. :class:`BlockSpec` is what every coupling form is built from.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["BlockSpec", "PairBijection", "merge_halves", "split_halves"]


def split_halves(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``x`` into two equal halves along the channel axis (dim 1).

    Shape:
        (B, 2C, ...) -> (B, C, ...), (B, C, ...)
    """
    if x.dim() < 2 or x.shape[1] % 2:
        raise ValueError(
            f"expected a tensor (B, 2C, ...) with an even channel count, got shape {tuple(x.shape)}"
        )
    x1, x2 = x.chunk(2, dim=1)
    return x1, x2


def merge_halves(x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """Concatenate two halves along the channel axis: the inverse of :func:`split_halves`."""
    return torch.cat((x1, x2), dim=1)


@dataclass(frozen=True)
class BlockSpec:
    """The shape of one encoder block, handed to a coupling form's ``from_spec`` constructor.

    Attributes:
        dims: 2 or 3 (convolution rank).
        in_channels: channels per half on input.
        out_channels: channels per half on output (``4 * in_channels`` when ``stride == 2``).
        stride: 1 or 2 (2: the block down-samples with space-to-depth).
        mult: bottleneck divisor of the sub-networks (width = their output channels // mult).
        kernel_size: odd kernel size of every conv.
        norm: normalisation kind of the sub-networks ("group", "batch" or "none").
        first: True for the encoder's first block, whose input is raw pixels (no pre-activation in the
            sub-networks that read it).
        init_scale: scale of the last conv of every sub-network at initialisation.
        clamp: bound ``c`` of the soft-clamped log-scale ``s = c·tanh(raw / c)`` of the forms that scale
            (affine, irn); the volume-preserving forms ignore it.
    """

    dims: int
    in_channels: int
    out_channels: int
    stride: int = 1
    mult: int = 2
    kernel_size: int = 3
    norm: str = "group"
    first: bool = False
    init_scale: float = 1.0
    clamp: float = 2.0


def check_block_channels(in_channels: int, out_channels: int, stride: int, what: str) -> None:
    """Raise a clear error unless a block with ``stride`` maps ``in_channels`` to ``out_channels`` per half
    bijectively (``stride == 2`` multiplies the channels by 4, space-to-depth keeping every number)."""
    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, got {stride}")
    expected = in_channels * (4 if stride == 2 else 1)
    if out_channels != expected:
        raise ValueError(
            f"{what} with stride {stride} and {in_channels} channels per half must "
            f"output {expected} channels per half (the map is a bijection), got {out_channels}"
        )


class PairBijection(nn.Module):
    """An invertible module on a tensor of two channel halves (the encoder's step interface).

    Subclasses implement :meth:`forward_pair`, :meth:`inverse_pair` and :meth:`log_abs_det_jacobian`;
    ``forward`` and ``inverse`` split, apply them and merge. ``replay_forward`` / ``replay_inverse``
    serve the memory-saving backward (:class:`crevnet.nn.memory.ReversibleStep`); the default runs the
    inverse without a graph and the map again with one, and a coupling may fuse the two.

    Shape:
        forward: (B, 2·c_in, [T,] H, W) -> (B, 2·c_out, [T,] H', W') with the same element count;
        inverse: the reverse.
    """

    def forward_pair(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The map on halves: ``(x1, x2) -> (y1, y2)``."""
        raise NotImplementedError

    def inverse_pair(self, y1: torch.Tensor, y2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The inverse on halves: ``(y1, y2) -> (x1, x2)``."""
        raise NotImplementedError

    def log_abs_det_jacobian(self, x: torch.Tensor) -> torch.Tensor:
        """``log|det ∂forward(x)/∂x|`` of each sample, shape (B,), with a graph to the parameters."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return merge_halves(*self.forward_pair(*split_halves(x)))

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return merge_halves(*self.inverse_pair(*split_halves(y)))

    def replay_forward(self, y: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """From the output ``y``, recover the input (a leaf requiring grad) and recompute ``y`` from it.

        Returns:
            ``((x,), y_re)``: the input and the output recomputed with a graph.
        """
        with torch.no_grad():
            x = self.inverse(y)
        x = x.detach().requires_grad_(True)
        # a view, not the leaf itself: module hooks (FlopCounterMode's tracker) cannot register on a
        # leaf while autograd.grad runs
        return (x,), self.forward(x.view_as(x))

    def replay_inverse(self, x: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """For the decoder: from the inverse's output ``x``, recover its input ``y`` and recompute ``x``.

        Returns:
            ``((y,), x_re)``: the inverse's input and its output recomputed with a graph.
        """
        with torch.no_grad():
            y = self.forward(x)
        y = y.detach().requires_grad_(True)
        return (y,), self.inverse(y.view_as(y))
