"""crevnet.data.grid.tile: the one picture-grid builder, checked pixel by pixel against its layout."""

from __future__ import annotations

import pytest
import torch

from crevnet.data.grid import tile


def test_cells_land_where_the_layout_says() -> None:
    a, b, c = (torch.full((1, 2, 3), v) for v in (0.1, 0.2, 0.3))
    grid = tile([[a, b], [c]], gap=1, border=2, fill=1.0)
    assert grid.shape == (1, 2 * 2 + 2 * 2 + 1, 2 * 2 + 2 * 3 + 1)  # (C, 2·border + R·H + gap, ...)
    assert torch.equal(grid[:, 2:4, 2:5], a) and torch.equal(grid[:, 2:4, 6:9], b)
    assert torch.equal(grid[:, 5:7, 2:5], c)
    background = torch.ones_like(grid, dtype=torch.bool)
    for top, left in ((2, 2), (2, 6), (5, 2)):
        background[:, top : top + 2, left : left + 3] = False
    assert (grid[background] == 1.0).all()  # border, gaps and the short row's missing cell


def test_leading_axes_make_a_clip_of_grids_and_dtype_is_kept() -> None:
    clips = [torch.randint(0, 255, (5, 3, 4, 4), dtype=torch.uint8) for _ in range(3)]
    grid = tile([clips[:2], [None, clips[2]]], gap=2, fill=255)
    assert grid.shape == (5, 3, 10, 10) and grid.dtype == torch.uint8
    assert torch.equal(grid[:, :, 6:, 6:], clips[2]) and (grid[:, :, 6:, :4] == 255).all()


def test_bad_cells_are_refused() -> None:
    with pytest.raises(ValueError, match="no picture"):
        tile([[None]])
    with pytest.raises(ValueError, match=r"one \(\.\.\., C, H, W\) shape"):
        tile([[torch.zeros(1, 2, 2), torch.zeros(1, 2, 3)]])
    with pytest.raises(ValueError, match="gap and border must be >= 0"):
        tile([[torch.zeros(1, 2, 2)]], gap=-1)
