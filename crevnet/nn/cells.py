"""Convolutional recurrent cells with explicit state: ConvLSTM and the spatio-temporal LSTM.

Both cells share one interface, ``forward(x, state, memory) -> (state', memory')``, so the reversible
predictive module can stack either. Nothing is kept on ``self``: a missing state or memory is zeros made
with ``x.new_zeros`` at the input's batch and grid size.

Gate convolutions are fused: the convs that read the same concatenated input are one conv with
``k·hidden`` output channels (one weight tensor, one bias per output channel), which has exactly the
parameters of the separate convs with bias of the released code and runs as one larger GEMM.

Forget-gate bias: the released CrevNet code (``layers_3d.py``, ``STConvLSTMCell``) adds none; every gate
conv keeps PyTorch's default initialisation, and so do these cells.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from crevnet.nn.conv import conv_class

__all__ = ["ConvLSTMCell", "LSTMState", "SpatioTemporalLSTMCell"]


class LSTMState(NamedTuple):
    """Per-layer recurrent state of an LSTM cell.

    Attributes:
        h: hidden state, (B, hidden, [T,] H, W).
        c: cell state, (B, hidden, [T,] H, W).
    """

    h: torch.Tensor
    c: torch.Tensor


def _check_kernel(kernel_size: int) -> None:
    if kernel_size < 1 or kernel_size % 2 != 1:
        raise ValueError(f"kernel_size must be a positive odd number, got {kernel_size}")


def _zeros_like_grid(x: torch.Tensor, channels: int) -> torch.Tensor:
    return x.new_zeros((x.shape[0], channels, *x.shape[2:]))


def _check_input(x: torch.Tensor, dims: int, channels: int, who: str) -> None:
    if x.dim() != dims + 2 or x.shape[1] != channels:
        layout = "(B, C, T, H, W)" if dims == 3 else "(B, C, H, W)"
        raise ValueError(f"{who} expects input {layout} with C = {channels}, got shape {tuple(x.shape)}")


class ConvLSTMCell(nn.Module):
    """Convolutional LSTM (Shi et al. 2015) without peepholes.

    ``i, f, g, o = conv([x, h])`` (one fused conv with bias); ``c' = σ(f)⊙c + σ(i)⊙tanh(g)``;
    ``h' = σ(o)⊙tanh(c')``. It has no spatio-temporal memory: ``memory`` is returned as given so that
    the cell is interchangeable with :class:`SpatioTemporalLSTMCell` inside the predictor.

    Args:
        dims: 2 for Conv2d over (H, W), 3 for Conv3d over (T, H, W).
        in_channels: channels of ``x``.
        hidden_channels: channels of ``h`` and ``c``.
        kernel_size: odd kernel size of the gate conv (same along every axis).

    Shape:
        x: (B, in_channels, [T,] H, W); state tensors: (B, hidden_channels, [T,] H, W).
    """

    uses_memory = False

    def __init__(self, dims: int, in_channels: int, hidden_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        _check_kernel(kernel_size)
        conv = conv_class(dims)
        self.dims = dims
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.gates = conv(
            in_channels + hidden_channels, 4 * hidden_channels, kernel_size, padding=kernel_size // 2
        )

    def forward(
        self,
        x: torch.Tensor,
        state: LSTMState | None = None,
        memory: torch.Tensor | None = None,
    ) -> tuple[LSTMState, torch.Tensor | None]:
        """One step. Returns the new state and ``memory`` unchanged."""
        _check_input(x, self.dims, self.in_channels, "ConvLSTMCell")
        hid = self.hidden_channels
        if state is None:
            state = LSTMState(_zeros_like_grid(x, hid), _zeros_like_grid(x, hid))
        h, c = state
        i, f, g, o = self.gates(torch.cat((x, h.to(x.dtype)), 1)).split(hid, 1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h_new = torch.sigmoid(o) * torch.tanh(c_new)
        return LSTMState(h_new, c_new), memory


class SpatioTemporalLSTMCell(nn.Module):
    """The spatio-temporal LSTM cell of the released CrevNet code (PredRNN-style zig-zag memory M).

    With ``[a, b]`` the channel concatenation and every conv ``k×k(×k)`` with bias::

        i, f, ĝ    = σ, σ, tanh of conv_a([x, h, c])
        c'         = f⊙c + i⊙ĝ
        i', f', ĝ' = σ, σ, tanh of conv_b([x, M, c'])
        M'         = f'⊙M + i'⊙ĝ'
        o          = σ(conv_o([x, h, c', M']))
        h'         = o ⊙ tanh(conv1×1([c', M']))

    ``conv_a`` and ``conv_b`` are each one fused conv for their three gates. Unlike PredRNN, the
    released cell feeds ``c`` (not only ``h``) into the first gates and uses no forget-gate bias.

    Args:
        dims: 2 for Conv2d over (H, W), 3 for Conv3d over (T, H, W).
        in_channels: channels of ``x``.
        hidden_channels: channels of ``h``, ``c`` and the memory ``M``.
        kernel_size: odd kernel size of the gate convs.

    Shape:
        x: (B, in_channels, [T,] H, W); ``h``, ``c``, ``M``: (B, hidden_channels, [T,] H, W).
    """

    uses_memory = True

    def __init__(self, dims: int, in_channels: int, hidden_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        _check_kernel(kernel_size)
        conv = conv_class(dims)
        self.dims = dims
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        hid, pad = hidden_channels, kernel_size // 2
        self.conv_a = conv(in_channels + 2 * hid, 3 * hid, kernel_size, padding=pad)
        self.conv_b = conv(in_channels + 2 * hid, 3 * hid, kernel_size, padding=pad)
        self.conv_o = conv(in_channels + 3 * hid, hid, kernel_size, padding=pad)
        self.conv_h = conv(2 * hid, hid, 1)

    def forward(
        self,
        x: torch.Tensor,
        state: LSTMState | None = None,
        memory: torch.Tensor | None = None,
    ) -> tuple[LSTMState, torch.Tensor]:
        """One step: returns ``((h', c'), M')``."""
        _check_input(x, self.dims, self.in_channels, "SpatioTemporalLSTMCell")
        hid = self.hidden_channels
        if state is None:
            state = LSTMState(_zeros_like_grid(x, hid), _zeros_like_grid(x, hid))
        if memory is None:
            memory = _zeros_like_grid(x, hid)
        h, c = state
        i, f, g = self.conv_a(torch.cat((x, h, c), 1)).split(hid, 1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        i2, f2, g2 = self.conv_b(torch.cat((x, memory, c_new), 1)).split(hid, 1)
        m_new = torch.sigmoid(f2) * memory + torch.sigmoid(i2) * torch.tanh(g2)
        cm = torch.cat((c_new, m_new), 1)  # (B, 2·hid, [T,] H, W)
        o = torch.sigmoid(self.conv_o(torch.cat((x, h, cm), 1)))
        h_new = o * torch.tanh(self.conv_h(cm))
        return LSTMState(h_new, c_new), m_new
