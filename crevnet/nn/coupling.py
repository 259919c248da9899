"""Channel halves of a coupling: :func:`split_halves` and its inverse :func:`merge_halves`.

CrevNet's one coupling form is the i-RevNet block (:class:`crevnet.nn.block.IRevNetBlock`:
``y1 = psi(x2)``, ``y2 = psi(x1) + F(x2)``), which splits and merges with these two functions. The
seed's standalone additive (NICE) and RevNet coupling modules were used by no model and have gone.
"""

from __future__ import annotations

import torch

__all__ = ["merge_halves", "split_halves"]


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
