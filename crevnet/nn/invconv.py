"""Glow's invertible 1×1 convolution with the LU parametrisation (Kingma & Dhariwal 2018, sec. 3.2).

Every position's channel vector is multiplied by one learned matrix ``W`` (C×C), written as
``W = P · L · (U + diag(sign · exp(log_s)))`` with ``P`` a fixed permutation, ``L`` unit lower
triangular and ``U`` strictly upper triangular (Glow's eq. 10). Then
``log|det J| = N · Σ log_s`` per sample, ``N`` the number of positions (H·W, or T·H·W in 3-D), and the
inverse ``W⁻¹ = (U + diag)⁻¹ · L⁻¹ · Pᵀ`` comes from two triangular solves, exact to round-off.

ONNX has no triangular solve, so inside ``torch.onnx.export`` the two unit-triangular inverses are
written with matrix products in float64 instead: for a nilpotent ``M`` (C×C),
``(I − M)⁻¹ = Π_k (I + M^(2^k))`` over ``2^k < C``, the same inverse in ``⌈log2 C⌉`` squarings
(``tests/test_forms_deploy.py`` checks the exported decoder against PyTorch's).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from crevnet.nn.coupling import PairBijection, merge_halves, split_halves

__all__ = ["InvertibleConv1x1"]


class InvertibleConv1x1(PairBijection):
    """A learned invertible mixing of all channels at every position (``invconv`` in the encoder).

    Initialised, as in Glow, to a random rotation (the Q of a QR decomposition of a Gaussian matrix,
    drawn from torch's global generator), so ``log|det J| = 0`` at the start; ``P`` and ``sign`` are
    buffers, ``lower``, ``upper`` and ``log_s`` parameters (only their strict triangles count).

    Args:
        channels: C, the channels of the whole tensor (both halves).
        dims: 2 or 3 (the positions are (H, W) or (T, H, W)).

    Shape:
        (B, C, [T,] H, W) -> (B, C, [T,] H, W), either way.
    """

    def __init__(self, channels: int, dims: int) -> None:
        super().__init__()
        if dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {dims}")
        if channels < 2:
            raise ValueError(f"an invertible 1×1 convolution needs >= 2 channels, got {channels}")
        self.dims = dims
        q, _ = torch.linalg.qr(torch.randn(channels, channels, dtype=torch.float64))
        p, lower, upper = torch.linalg.lu(q)
        diag = torch.diagonal(upper)
        self.register_buffer("permutation", p.float())
        self.register_buffer("sign", torch.sign(diag).float())
        self.lower = nn.Parameter(torch.tril(lower, -1).float())
        self.upper = nn.Parameter(torch.triu(upper, 1).float())
        self.log_s = nn.Parameter(diag.abs().log().float())

    def _factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        eye = torch.eye(self.log_s.shape[0], dtype=self.log_s.dtype, device=self.log_s.device)
        lower = torch.tril(self.lower, -1) + eye
        upper = torch.triu(self.upper, 1) + torch.diag(self.sign * torch.exp(self.log_s))
        return lower, upper

    def weight(self) -> torch.Tensor:
        """``W = P · L · U'`` (C×C)."""
        lower, upper = self._factors()
        return self.permutation @ lower @ upper

    def inverse_weight(self) -> torch.Tensor:
        """``W⁻¹ = U'⁻¹ · L⁻¹ · Pᵀ`` by two triangular solves (C×C)."""
        lower, upper = self._factors()
        if torch.onnx.is_in_onnx_export():
            # in float64: the products lose more than the solves (2e-4 against 8e-7 in float32 for a
            # 64-channel rotation; 5e-8 in float64)
            lower, upper = lower.double(), upper.double()
            diag = torch.diagonal(upper)
            inv_lower = _unit_triangular_inverse(lower)
            inv_upper = _unit_triangular_inverse(upper / diag[:, None]) / diag[None, :]
            return (inv_upper @ inv_lower @ self.permutation.double().t()).to(self.log_s.dtype)
        a = torch.linalg.solve_triangular(lower, self.permutation.t(), upper=False, unitriangular=True)
        return torch.linalg.solve_triangular(upper, a, upper=True)

    def _mix(self, x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
        kernel = matrix.reshape(*matrix.shape, *([1] * self.dims))  # (C, C, 1, 1[, 1])
        return (F.conv3d if self.dims == 3 else F.conv2d)(x, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._mix(x, self.weight())

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return self._mix(y, self.inverse_weight())

    def forward_pair(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return split_halves(self.forward(merge_halves(x1, x2)))

    def inverse_pair(self, y1: torch.Tensor, y2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return split_halves(self.inverse(merge_halves(y1, y2)))

    def log_abs_det_jacobian(self, x: torch.Tensor) -> torch.Tensor:
        """``N · Σ log_s`` for every sample (B,), ``N`` the positions of ``x``."""
        positions = x[0, 0].numel()
        return (positions * self.log_s.sum()).expand(x.shape[0])


def _unit_triangular_inverse(t: torch.Tensor) -> torch.Tensor:
    """Inverse of a unit triangular ``t = I − M`` (``M`` nilpotent) with products only:
    ``Π_k (I + M^(2^k))`` for ``2^k < C`` (for export formats without a triangular solve)."""
    eye = torch.eye(t.shape[0], dtype=t.dtype, device=t.device)
    power = eye - t  # M
    inv = eye
    for _ in range(max(1, math.ceil(math.log2(t.shape[0])))):
        inv = inv @ (eye + power)
        power = power @ power
    return inv
