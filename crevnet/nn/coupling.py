"""The two coupling forms of the seed: additive (NICE) and RevNet.

Both split their input in two halves along the channel axis and are exactly invertible whatever the
residual functions ``F`` and ``G`` are, as long as those are deterministic per sample.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["AdditiveCoupling", "RevNetCoupling", "merge_halves", "split_halves"]


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


class AdditiveCoupling(nn.Module):
    """NICE additive coupling (Dinh et al. 2015, eq. 5): ``y1 = x1 + F(x2)``, ``y2 = x2``.

    Inverse: ``x2 = y2``, ``x1 = y1 - F(y2)``; log|det J| = 0.

    Args:
        f: residual function mapping a half to a half of the same shape.

    Shape:
        (B, 2C, ...) -> (B, 2C, ...)
    """

    def __init__(self, f: nn.Module) -> None:
        super().__init__()
        self.f = f

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = split_halves(x)
        return merge_halves(x1 + self.f(x2), x2)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        y1, y2 = split_halves(y)
        return merge_halves(y1 - self.f(y2), y2)


class RevNetCoupling(nn.Module):
    """RevNet coupling (Gomez et al. 2017, eq. 1): ``y1 = x1 + F(x2)``, ``y2 = x2 + G(y1)``.

    Inverse: ``x2 = y2 - G(y1)``, ``x1 = y1 - F(x2)``.

    Args:
        f: first residual function (half -> half).
        g: second residual function (half -> half).

    Shape:
        (B, 2C, ...) -> (B, 2C, ...)
    """

    def __init__(self, f: nn.Module, g: nn.Module) -> None:
        super().__init__()
        self.f = f
        self.g = g

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = split_halves(x)
        y1 = x1 + self.f(x2)
        return merge_halves(y1, x2 + self.g(y1))

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        y1, y2 = split_halves(y)
        x2 = y2 - self.g(y1)
        return merge_halves(y1 - self.f(x2), x2)
