"""Public helpers to check the invertibility of any module with ``forward`` and ``inverse``.

Use them in your own tests when you build new invertible layers::

    from crevnet.testing import assert_invertible, assert_log_det
    assert_invertible(my_layer, torch.rand(2, 4, 8, 8, dtype=torch.float64))
    assert_log_det(my_layer, torch.rand(2, 4, 4, 4))  # log|det J| against the numerical Jacobian
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from crevnet.nn import CrevNetConfig

__all__ = [
    "DEFAULT_ATOL",
    "LogDetCheck",
    "assert_invertible",
    "assert_log_det",
    "check_log_det",
    "round_trip_errors",
    "tiny_config",
]

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


@dataclass(frozen=True)
class LogDetCheck:
    """What :func:`check_log_det` measured (every figure in float64).

    Attributes:
        reported: the module's ``log_abs_det_jacobian(x)``, one value per sample.
        numerical: ``log|det J|`` of the Jacobian computed with ``torch.func.jacrev``, per sample.
        sign: the sign of each numerical determinant (a bijection's is never 0).
        log_det_error: ``max |reported − numerical|``.
        inverse_error: ``max|f⁻¹(f(x)) − x|``.
        forward_error: ``max|f(f⁻¹(y)) − y|`` at a perturbed output ``y`` (see :func:`round_trip_errors`).
    """

    reported: tuple[float, ...]
    numerical: tuple[float, ...]
    sign: tuple[float, ...]
    log_det_error: float
    inverse_error: float
    forward_error: float


def check_log_det(module: nn.Module, x: torch.Tensor) -> LogDetCheck:
    """Compare a module's ``log_abs_det_jacobian`` with the determinant of its numerical Jacobian.

    A float64 copy of ``module`` (the module itself is left as it is) is differentiated with
    ``torch.func.jacrev`` one sample at a time, so ``x`` must be small (the Jacobian of a sample with
    ``n`` numbers is n×n: keep n in the hundreds) and the module must treat samples independently
    (GroupNorm, or BatchNorm in eval mode); ``torch.linalg.slogdet`` gives its ``log|det|``. crevnet's
    fast conv backward is switched off inside (an ``autograd.Function`` that ``torch.func`` cannot
    transform). Both round trips of the copy are measured too (:func:`round_trip_errors`).

    Args:
        module: an invertible module with ``forward``, ``inverse`` and ``log_abs_det_jacobian(x)``
            returning one value per sample, shape (B,).
        x: an input batch; converted to float64.

    Returns:
        A :class:`LogDetCheck`.

    Raises:
        ValueError: when ``log_abs_det_jacobian`` does not return one value per sample.
    """
    from crevnet.nn.conv import native_backward

    module = copy.deepcopy(module).double()
    x = x.detach().double()
    with native_backward():
        with torch.no_grad():
            reported = module.log_abs_det_jacobian(x).double()  # type: ignore[operator]
        if reported.shape != (x.shape[0],):
            raise ValueError(
                f"log_abs_det_jacobian must return shape ({x.shape[0]},), one value per sample, "
                f"got {tuple(reported.shape)}"
            )
        numerical, signs = [], []
        for sample in x:

            def flat(v: torch.Tensor, shape: torch.Size = sample.shape) -> torch.Tensor:
                return module(v.reshape(1, *shape)).reshape(-1)

            jac = torch.func.jacrev(flat)(sample.reshape(-1))  # (n, n)
            sign, logabs = torch.linalg.slogdet(jac)
            numerical.append(logabs.item())
            signs.append(sign.item())
        gen = torch.Generator(device=x.device).manual_seed(0)
        err_x, err_y = round_trip_errors(module, x, generator=gen)
    num = torch.tensor(numerical, dtype=torch.float64)
    return LogDetCheck(
        reported=tuple(reported.tolist()),
        numerical=tuple(numerical),
        sign=tuple(signs),
        log_det_error=(reported.cpu() - num).abs().max().item(),
        inverse_error=err_x,
        forward_error=err_y,
    )


def assert_log_det(
    module: nn.Module, x: torch.Tensor, atol: float = 1e-8, round_trip_atol: float = 1e-10
) -> LogDetCheck:
    """Assert that :func:`check_log_det` finds the reported log-det and both round trips exact.

    Args:
        module, x: as for :func:`check_log_det`.
        atol: largest accepted ``|reported − numerical|``.
        round_trip_atol: largest accepted round-trip error (float64).

    Returns:
        The :class:`LogDetCheck`, for further assertions.

    Raises:
        AssertionError: naming every figure when one is out of tolerance or a determinant is 0.
    """
    check = check_log_det(module, x)
    ok = (
        check.log_det_error <= atol
        and check.inverse_error <= round_trip_atol
        and check.forward_error <= round_trip_atol
        and all(s != 0 for s in check.sign)
    )
    if not ok:
        raise AssertionError(
            f"{type(module).__name__}: |reported − numerical log|det J|| = {check.log_det_error:.3e} "
            f"(atol {atol:g}; reported {check.reported}, numerical {check.numerical}, sign {check.sign}); "
            f"max|f⁻¹(f(x)) − x| = {check.inverse_error:.3e}, max|f(f⁻¹(y)) − y| = "
            f"{check.forward_error:.3e} (atol {round_trip_atol:g})"
        )
    return check


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
