"""Recurrent cells: the released ST-LSTM equations, ConvLSTM, shapes, explicit state, parameter count."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from crevnet.nn.cells import ConvLSTMCell, LSTMState, SpatioTemporalLSTMCell

CONV = {2: F.conv2d, 3: F.conv3d}


def _grid(dims: int) -> tuple[int, ...]:
    return (3, 4, 4) if dims == 3 else (5, 6)


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def _gate(conv: torch.nn.Module, k: int, hid: int, inputs: list[torch.Tensor], dims: int):
    # One gate as its own conv: rows k·hid .. (k+1)·hid of the fused weight, applied to the
    # concatenation written out by hand.
    w = conv.weight[k * hid : (k + 1) * hid]
    b = conv.bias[k * hid : (k + 1) * hid]
    pad = conv.weight.shape[-1] // 2
    return CONV[dims](torch.cat(inputs, 1), w, b, padding=pad)


@pytest.mark.parametrize("dims", [2, 3])
def test_st_lstm_matches_released_equations(dims: int) -> None:
    cx, hid = 3, 4
    cell = SpatioTemporalLSTMCell(dims, cx, hid, kernel_size=3).double()
    x = _rand(2, cx, *_grid(dims), seed=1)
    h, c, m = (_rand(2, hid, *_grid(dims), seed=s) for s in (2, 3, 4))
    (h_new, c_new), m_new = cell(x, LSTMState(h, c), m)

    i = torch.sigmoid(_gate(cell.conv_a, 0, hid, [x, h, c], dims))
    f = torch.sigmoid(_gate(cell.conv_a, 1, hid, [x, h, c], dims))
    g = torch.tanh(_gate(cell.conv_a, 2, hid, [x, h, c], dims))
    c_ref = f * c + i * g
    i2 = torch.sigmoid(_gate(cell.conv_b, 0, hid, [x, m, c_ref], dims))
    f2 = torch.sigmoid(_gate(cell.conv_b, 1, hid, [x, m, c_ref], dims))
    g2 = torch.tanh(_gate(cell.conv_b, 2, hid, [x, m, c_ref], dims))
    m_ref = f2 * m + i2 * g2
    o = torch.sigmoid(_gate(cell.conv_o, 0, hid, [x, h, c_ref, m_ref], dims))
    h_ref = o * torch.tanh(_gate(cell.conv_h, 0, hid, [c_ref, m_ref], dims))

    torch.testing.assert_close(c_new, c_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(m_new, m_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(h_new, h_ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dims", [2, 3])
def test_conv_lstm_matches_equations(dims: int) -> None:
    cx, hid = 2, 3
    cell = ConvLSTMCell(dims, cx, hid, kernel_size=3).double()
    x = _rand(2, cx, *_grid(dims), seed=1)
    h, c = _rand(2, hid, *_grid(dims), seed=2), _rand(2, hid, *_grid(dims), seed=3)
    memory = _rand(2, hid, *_grid(dims), seed=4)
    (h_new, c_new), m_out = cell(x, LSTMState(h, c), memory)
    i, f, g, o = (_gate(cell.gates, k, hid, [x, h], dims) for k in range(4))
    c_ref = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    torch.testing.assert_close(c_new, c_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(h_new, torch.sigmoid(o) * torch.tanh(c_ref), rtol=0, atol=1e-12)
    assert m_out is memory  # no memory of its own: passed through untouched


@pytest.mark.parametrize("cls", [ConvLSTMCell, SpatioTemporalLSTMCell])
@pytest.mark.parametrize("dims", [2, 3])
def test_missing_state_is_zeros_and_no_state_is_kept(cls: type, dims: int) -> None:
    cell = cls(dims, 2, 3).double()
    x = _rand(2, 2, *_grid(dims))
    zeros = torch.zeros(2, 3, *_grid(dims), dtype=torch.float64)
    (h0, c0), _ = cell(x)
    (h1, c1), _ = cell(x, LSTMState(zeros, zeros), zeros)
    torch.testing.assert_close(h0, h1)
    torch.testing.assert_close(c0, c1)
    assert h0.shape == c0.shape == (2, 3, *_grid(dims))
    # calling again gives the same answer: nothing was remembered on the module
    (h2, _), _ = cell(x)
    torch.testing.assert_close(h0, h2)
    assert not [b for b in cell.buffers()]


def test_st_lstm_paper_parameter_count() -> None:
    # x1 = hidden = memory = 32, 3×3×3 convs with bias: 248,928·2 + 110,624 + 2,080
    cell = SpatioTemporalLSTMCell(3, 32, 32, kernel_size=3)
    assert sum(p.numel() for p in cell.parameters()) == 248_928 * 2 + 110_624 + 2_080


def test_cells_reject_wrong_input() -> None:
    cell = SpatioTemporalLSTMCell(3, 4, 4)
    with pytest.raises(ValueError, match=r"\(B, C, T, H, W\) with C = 4"):
        cell(torch.zeros(1, 4, 8, 8))
    with pytest.raises(ValueError, match="C = 4"):
        ConvLSTMCell(2, 4, 4)(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="odd"):
        ConvLSTMCell(2, 4, 4, kernel_size=2)
    with pytest.raises(ValueError, match="dims"):
        SpatioTemporalLSTMCell(1, 4, 4)
