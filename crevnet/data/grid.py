"""The one builder of picture grids: every contact sheet, side-by-side GIF and sample grid is made here.

:func:`tile` lays pictures out in rows and columns on a background. A cell is one picture
``(C, H, W)`` or a stack of them with leading axes, e.g. a clip ``(T, C, H, W)``: the grid then has the
same leading axes, so a row of clips becomes a clip of grids (one GIF frame per time step).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["tile"]


def tile(
    rows: Sequence[Sequence[torch.Tensor | None]], gap: int = 2, border: int = 0, fill: float = 1.0
) -> torch.Tensor:
    """Lay out ``rows`` of pictures as one grid, ``gap`` pixels apart, inside a ``border``.

    Rows may hold different numbers of cells (the grid is as wide as the longest row); a None cell,
    like the missing end of a short row, is left as background.

    Args:
        rows: the cells, row by row; all of one shape and dtype.
        gap: background pixels between neighbouring cells (>= 0).
        border: background pixels around the grid (>= 0).
        fill: the background value (1.0: white for frames in [0, 1]; 255 for uint8).

    Returns:
        The grid, with the cells' dtype and device.

    Raises:
        ValueError: no cell, cells of different shapes, or a negative ``gap``/``border``.

    Shape:
        cells (..., C, H, W), R rows, K cells in the longest ->
        (..., C, 2·border + R·H + (R−1)·gap, 2·border + K·W + (K−1)·gap)
    """
    if gap < 0 or border < 0:
        raise ValueError(f"tile: gap and border must be >= 0, got {gap} and {border}")
    cells = [cell for row in rows for cell in row if cell is not None]
    if not cells:
        raise ValueError("tile: no picture to lay out")
    shape = cells[0].shape
    if len(shape) < 3 or any(cell.shape != shape for cell in cells):
        shapes = sorted({tuple(cell.shape) for cell in cells})
        raise ValueError(f"tile: every cell must be one (..., C, H, W) shape, got {shapes}")
    h, w = shape[-2:]
    k = max(len(row) for row in rows)
    height = 2 * border + len(rows) * h + (len(rows) - 1) * gap
    width = 2 * border + k * w + (k - 1) * gap
    grid = cells[0].new_full((*shape[:-2], height, width), fill)
    for r, row in enumerate(rows):
        top = border + r * (h + gap)
        for c, cell in enumerate(row):
            if cell is not None:
                left = border + c * (w + gap)
                grid[..., top : top + h, left : left + w] = cell
    return grid
