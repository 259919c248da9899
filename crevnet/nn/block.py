"""The i-RevNet block (Jacobsen et al. 2018), the unit CrevNet's encoder stacks.

Input halves ``(x1, x2)``; ``y1 = S(x1) + F(x2)`` with ``S`` = space-to-depth when the block
downsamples (``F``'s first conv then has stride 2) and the identity otherwise; ``x2' = S(x2)``;
output ``(x2', y1)``: the halves swap so that the next block updates the other half.
Inverse: ``x2 = S⁻¹(x2')``, ``x1 = S⁻¹(y1 - F(x2))``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import nn

from crevnet.nn.conv import conv_class
from crevnet.nn.coupling import BlockSpec, PairBijection, check_block_channels, merge_halves, split_halves
from crevnet.nn.reshape import depth_to_space, space_to_depth

__all__ = ["IRevNetBlock", "NormKind", "ResidualFunction", "make_norm"]

NormKind = Literal["group", "batch", "none"]

_BATCHNORM = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}


def make_norm(kind: NormKind, channels: int, dims: int) -> nn.Module:
    """Build the normalisation layer used inside residual functions.

    ``"group"`` is GroupNorm(1, C): per-sample, so encode and decode see the same statistics whatever
    the batch (the default). ``"batch"`` is BatchNorm, the paper's choice, kept for fidelity: in train
    mode its output depends on the batch, so only use it when encode and decode see the same batch.
    """
    if kind == "group":
        return nn.GroupNorm(1, channels)
    if kind == "batch":
        return _BATCHNORM[dims](channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be 'group', 'batch' or 'none', got {kind!r}")


class ResidualFunction(nn.Sequential):
    """The bottleneck ``F`` of an i-RevNet block (bias-free convolutions).

    ``[norm -> ReLU] -> conv(c_in -> w, stride) -> norm -> ReLU -> conv(w -> w) -> norm -> ReLU
    -> conv(w -> c_out)`` with ``w = c_out // mult``; the bracketed pre-activation is left out in the
    encoder's very first block, whose input is raw pixels.

    Args:
        dims: 2 for Conv2d, 3 for Conv3d (time is never strided).
        in_channels: channels of the half it reads.
        out_channels: channels of the half it writes.
        stride: 1 or 2 (spatial).
        mult: bottleneck divisor, ``w = out_channels // mult``.
        kernel_size: odd kernel size (same in every axis).
        norm: normalisation kind, see :func:`make_norm`.
        pre_activation: whether to start with norm -> ReLU.
        init_scale: factor applied to the last conv's default initialisation. Below 1 it keeps the
            Lipschitz constant of ``F`` small at the start, which keeps the float32 inverse accurate
            through a deep stack (errors of one block are amplified by the ``F`` of the next).

    Shape:
        (B, c_in, [T,] H, W) -> (B, c_out, [T,] H/stride, W/stride)
    """

    def __init__(
        self,
        dims: int,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        mult: int = 2,
        kernel_size: int = 3,
        norm: NormKind = "group",
        pre_activation: bool = True,
        init_scale: float = 1.0,
    ) -> None:
        conv = conv_class(dims)  # ValueError unless dims is 2 or 3
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        width = out_channels // mult
        if width < 1:
            raise ValueError(f"out_channels // mult must be >= 1, got {out_channels} // {mult}")
        pad = kernel_size // 2
        spatial_stride = stride if dims == 2 else (1, stride, stride)
        layers: list[nn.Module] = []
        if pre_activation:
            layers += [make_norm(norm, in_channels, dims), nn.ReLU()]
        layers += [
            conv(in_channels, width, kernel_size, spatial_stride, pad, bias=False),
            make_norm(norm, width, dims),
            nn.ReLU(),
            conv(width, width, kernel_size, 1, pad, bias=False),
            make_norm(norm, width, dims),
            nn.ReLU(),
            conv(width, out_channels, kernel_size, 1, pad, bias=False),
        ]
        super().__init__(*layers)
        with torch.no_grad():
            layers[-1].weight.mul_(init_scale)


class IRevNetBlock(PairBijection):
    """One i-RevNet block, optionally downsampling by 2 with space-to-depth (the ``irevnet`` form).

    An additive coupling (NICE) whose residual function reads the passive half at full resolution
    with a strided conv, followed by the swap of the halves; ``log|det J| = 0`` (psi and the swap are
    permutations, the coupling is unit triangular).

    Args:
        dims: 2 or 3 (convolution rank).
        in_channels: channels per half on input.
        out_channels: channels per half on output; ``in_channels`` when ``stride == 1`` and
            ``4 * in_channels`` when ``stride == 2`` (space-to-depth keeps every number).
        stride: 1 or 2.
        mult: bottleneck divisor of ``F``.
        kernel_size: odd kernel size.
        norm: normalisation kind of ``F``.
        first: True for the encoder's very first block (no pre-activation in ``F``).
        init_scale: scale of the last conv of ``F`` at initialisation (see :class:`ResidualFunction`).

    Shape:
        forward: (B, 2·c_in, [T,] H, W) -> (B, 2·c_out, [T,] H/stride, W/stride); inverse: reverse.
    """

    def __init__(
        self,
        dims: int,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        mult: int = 2,
        kernel_size: int = 3,
        norm: NormKind = "group",
        first: bool = False,
        init_scale: float = 1.0,
    ) -> None:
        super().__init__()
        check_block_channels(in_channels, out_channels, stride, "an i-RevNet block")
        self.stride = stride
        self.f = ResidualFunction(
            dims, in_channels, out_channels, stride, mult, kernel_size, norm, not first, init_scale
        )

    volume_preserving: ClassVar[bool] = True

    @classmethod
    def from_spec(cls, spec: BlockSpec) -> IRevNetBlock:
        """Build from a :class:`~crevnet.nn.coupling.BlockSpec` (``spec.clamp`` is not used)."""
        return cls(
            spec.dims,
            spec.in_channels,
            spec.out_channels,
            spec.stride,
            spec.mult,
            spec.kernel_size,
            spec.norm,  # type: ignore[arg-type]
            spec.first,
            spec.init_scale,
        )

    def log_abs_det_jacobian(self, x: torch.Tensor) -> torch.Tensor:
        """0 for every sample: the block is volume-preserving (shape (B,))."""
        return x.new_zeros(x.shape[0])

    def forward_pair(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward on halves: returns ``(S(x2), S(x1) + F(x2))``."""
        fx2 = self.f(x2)
        if self.stride == 2:
            x1, x2 = space_to_depth(x1), space_to_depth(x2)
        return x2, x1 + fx2

    def inverse_pair(self, y1: torch.Tensor, y2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inverse on halves: ``(y1, y2) = (S(x2), S(x1) + F(x2))`` -> ``(x1, x2)``."""
        x2 = depth_to_space(y1) if self.stride == 2 else y1
        x1 = y2 - self.f(x2)
        if self.stride == 2:
            x1 = depth_to_space(x1)
        return x1, x2

    def replay_forward(self, y: torch.Tensor) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        """Recover the input halves from the output ``y`` and recompute ``y`` from them with a graph.

        One evaluation of ``F`` serves both the inverse and the recomputation (the memory-saving
        backward would otherwise run ``F`` twice): ``x2 = S⁻¹(y1)`` is exact, ``F(x2)`` is built with
        autograd on, and ``x1 = S⁻¹(y2 − F(x2))`` uses its value.

        Returns:
            ``((x1, x2), y_re)`` with ``x1``, ``x2`` leaves requiring grad.
        """
        y1, y2 = split_halves(y)
        down = self.stride == 2
        x2 = (depth_to_space(y1) if down else y1).detach().requires_grad_(True)
        # F gets a view, not the leaf itself: module hooks (FlopCounterMode's tracker) cannot
        # register on a leaf while autograd.grad runs.
        fx2 = self.f(x2.view_as(x2))
        x1 = y2 - fx2.detach()
        x1 = (depth_to_space(x1) if down else x1).detach().requires_grad_(True)
        s1, s2 = (space_to_depth(x1), space_to_depth(x2)) if down else (x1, x2)
        return (x1, x2), merge_halves(s2, s1 + fx2)

    def replay_inverse(self, x: torch.Tensor) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        """For the decoder: from the inverse's output ``x``, recover its input ``y`` and recompute ``x``.

        Returns:
            ``((y1, y2), x_re)`` with ``y1``, ``y2`` leaves requiring grad and ``x_re`` the inverse
            recomputed from them with one evaluation of ``F``.
        """
        x1, x2 = split_halves(x)
        down = self.stride == 2
        y1 = (space_to_depth(x2) if down else x2).detach().requires_grad_(True)
        x2_re = depth_to_space(y1) if down else y1.view_as(y1)  # a view, as in replay_forward
        fx2 = self.f(x2_re)
        y2 = ((space_to_depth(x1) if down else x1) + fx2.detach()).detach().requires_grad_(True)
        x1_re = y2 - fx2
        return (y1, y2), merge_halves(depth_to_space(x1_re) if down else x1_re, x2_re)
