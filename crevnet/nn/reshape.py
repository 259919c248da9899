"""Invertible 2×2 space-to-depth ("psi" in i-RevNet and CrevNet).

Channel order (pinned by ``tests/nn/test_reshape.py``): for an input channel ``c`` and the pixel
offset ``(dy, dx)`` inside each 2×2 cell, the output channel is ``c * 4 + dy * 2 + dx``. This is the
order of :func:`torch.nn.functional.pixel_unshuffle`. When the encoder splits the ``4C`` output
channels into two halves along the channel axis, input channels ``c < C/2`` land in the first half
(all four offsets); for a single-channel input (``C = 1``) the first half holds the even rows
(``dy = 0``) and the second half the odd rows (``dy = 1``).
"""

from __future__ import annotations

import torch

__all__ = ["check_divisible", "depth_to_space", "space_to_depth"]


def check_divisible(height: int, width: int, factor: int, what: str = "input") -> None:
    """Raise a clear error when ``height`` or ``width`` is not a multiple of ``factor``.

    Args:
        height: spatial height.
        width: spatial width.
        factor: the total downsampling factor the size must divide by.
        what: name of the tensor, used in the message.

    Raises:
        ValueError: when either size does not divide by ``factor``.
    """
    if height % factor or width % factor:
        raise ValueError(
            f"{what}: height and width must be multiples of {factor} "
            f"(the encoder's total downsampling), got {height}×{width}"
        )


def space_to_depth(x: torch.Tensor) -> torch.Tensor:
    """2×2 space-to-depth on the last two axes.

    Shape:
        (B, C, *S, H, W) -> (B, 4C, *S, H/2, W/2), where ``*S`` is any number of extra axes (time in
        the 3-D model) that pass through untouched.
    """
    if x.dim() < 4:
        raise ValueError(f"space_to_depth expects (B, C, [T,] H, W), got shape {tuple(x.shape)}")
    b, c, *s, h, w = x.shape
    check_divisible(h, w, 2, "space_to_depth input")
    n = len(s)
    x = x.reshape(b, c, *s, h // 2, 2, w // 2, 2)
    # axes: 0 b, 1 c, 2..2+n-1 s, 2+n h/2, 3+n dy, 4+n w/2, 5+n dx
    perm = (0, 1, 3 + n, 5 + n, *range(2, 2 + n), 2 + n, 4 + n)
    return x.permute(perm).reshape(b, 4 * c, *s, h // 2, w // 2)  # (B, 4C, *S, H/2, W/2)


def depth_to_space(y: torch.Tensor) -> torch.Tensor:
    """Exact inverse of :func:`space_to_depth`.

    Shape:
        (B, 4C, *S, H, W) -> (B, C, *S, 2H, 2W)
    """
    if y.dim() < 4:
        raise ValueError(f"depth_to_space expects (B, 4C, [T,] H, W), got shape {tuple(y.shape)}")
    b, c4, *s, h, w = y.shape
    if c4 % 4:
        raise ValueError(f"depth_to_space needs a channel count divisible by 4, got {c4}")
    n = len(s)
    c = c4 // 4
    y = y.reshape(b, c, 2, 2, *s, h, w)
    # axes: 0 b, 1 c, 2 dy, 3 dx, 4..4+n-1 s, 4+n h, 5+n w
    perm = (0, 1, *range(4, 4 + n), 4 + n, 2, 5 + n, 3)
    return y.permute(perm).reshape(b, c, *s, 2 * h, 2 * w)  # (B, C, *S, 2H, 2W)
