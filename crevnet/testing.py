"""Public helpers to check the invertibility of any module with ``forward`` and ``inverse``.

Use them in your own tests when you build new invertible layers::

    from crevnet.testing import assert_invertible
    assert_invertible(my_layer, torch.rand(2, 4, 8, 8, dtype=torch.float64))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from crevnet.nn import CrevNetConfig

__all__ = ["DEFAULT_ATOL", "assert_invertible", "round_trip_errors", "tiny_config"]

#: Default absolute tolerance of a round trip, by dtype. float32 accumulates a few ulps per block; the
#: paper encoder (12 blocks, values up to ~5) stays under 1e-5, so 1e-4 leaves room for user layers.
DEFAULT_ATOL: dict[torch.dtype, float] = {torch.float64: 1e-10, torch.float32: 1e-4}


def round_trip_errors(
    module: nn.Module,
    x: torch.Tensor,
    inverse: Callable[[torch.Tensor], torch.Tensor] | None = None,
    generator: torch.Generator | None = None,
) -> tuple[float, float]:
    """Measure both round trips of an invertible module, without gradients.

    Args:
        module: a module with ``forward``; its ``inverse`` is used unless ``inverse`` is given.
        x: an input of the module.
        inverse: the inverse map (default ``module.inverse``).
        generator: random generator for the perturbed output used in the second round trip.

    Returns:
        ``(max|f⁻¹(f(x)) − x|, max|f(f⁻¹(y)) − y|)`` where ``y`` is ``f(x)`` plus Gaussian noise of
        a tenth of its standard deviation (a point of the output space that ``f`` did not produce).
    """
    inv = inverse if inverse is not None else module.inverse  # type: ignore[union-attr]
    with torch.no_grad():
        y = module(x)
        err_x = (inv(y) - x).abs().max().item()
        noise = torch.randn(y.shape, generator=generator, dtype=y.dtype, device=y.device)
        y2 = y + 0.1 * y.std() * noise
        err_y = (module(inv(y2)) - y2).abs().max().item()
    return err_x, err_y


def assert_invertible(
    module: nn.Module,
    x: torch.Tensor,
    atol: float | None = None,
    inverse: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> None:
    """Assert that ``inverse(module(x)) == x`` and ``module(inverse(y)) == y`` within ``atol``.

    Checks both directions in the module's current mode (call it in ``train()`` and ``eval()``).

    Args:
        module: the invertible module.
        x: an input; its dtype picks the default tolerance (:data:`DEFAULT_ATOL`).
        atol: absolute tolerance; default by dtype (float64 1e-10, float32 1e-4).
        inverse: the inverse map (default ``module.inverse``).

    Raises:
        AssertionError: with both errors in the message when either exceeds ``atol``.
    """
    if atol is None:
        if x.dtype not in DEFAULT_ATOL:
            raise ValueError(f"no default tolerance for dtype {x.dtype}; pass atol")
        atol = DEFAULT_ATOL[x.dtype]
    gen = torch.Generator(device=x.device).manual_seed(0)
    err_x, err_y = round_trip_errors(module, x, inverse, gen)
    if not (err_x <= atol and err_y <= atol):
        raise AssertionError(
            f"{type(module).__name__} is not invertible within atol={atol:g} ({x.dtype}): "
            f"max|f⁻¹(f(x)) − x| = {err_x:.3e}, max|f(f⁻¹(y)) − y| = {err_y:.3e}"
        )


def tiny_config(dims: int, cell: str = "st_lstm", hidden: int | None = None) -> CrevNetConfig:
    """A CrevNet small enough for tests: two encoder stages (2 and 8 channels per half), a 2-layer RPM.

    Args:
        dims: 3 (3-frame windows, Conv3d) or 2 (single frames, Conv2d).
        cell: the RPM cell, "st_lstm" or "conv_lstm".
        hidden: the RPM cells' hidden width (None: one latent half, 8).
    """
    from crevnet.nn import CrevNetConfig, EncoderConfig, PredictorConfig

    return CrevNetConfig(
        encoder=EncoderConfig(dims=dims, stages=(1, 1), strides=(1, 2), channels=(2, 8)),
        predictor=PredictorConfig(layers=2, cell=cell, hidden=hidden),
        window=3 if dims == 3 else 1,
    )
