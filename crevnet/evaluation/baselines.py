"""The one registry of baselines: the trivial predictors a model's scores are set beside.

Each baseline maps the observed frames to ``horizon`` predicted frames without learning anything:

- ``zeros``: black frames, the baseline every model must beat on Moving MNIST;
- ``copy_last``: the last observed frame, repeated (nothing moves);
- ``mean_context``: the average observed frame, repeated (a static background; strong on real video).

:data:`BASELINES` maps the key ``metrics.json`` uses to a :class:`Baseline` (the name a report prints
and the function). A test set lists the keys it is scored against
(:attr:`crevnet.data.testset.TestSet.baselines`: :data:`crevnet.data.testset.STANDARD_BASELINES`, or
:data:`crevnet.data.video_folder.FOLDER_BASELINES` for a folder of clips); those lists live in the
data layer, which may not import this module, and a test checks that every key they name is here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from torch import Tensor

from crevnet.evaluation.metrics import check_video
from crevnet.nn.model import check_horizon

__all__ = [
    "BASELINES",
    "Baseline",
    "baseline_label",
    "copy_last_baseline",
    "mean_context_baseline",
    "zeros_baseline",
]


def _check_baseline_args(context: object, horizon: object) -> Tensor:
    context = check_video(context, "context")
    check_horizon(horizon)
    return context


def zeros_baseline(context: Tensor, horizon: int) -> Tensor:
    """Predict black frames: the trivial baseline every model must beat on Moving MNIST.

    Args:
        context: the observed frames; only their shape, dtype and device are used.
        horizon: number of frames to predict.

    Returns:
        Zeros with the dtype and device of ``context``.

    Raises:
        ValueError: for a context that is not a finite float (B, T, C, H, W) tensor, or a
            non-positive horizon.

    Shape:
        context: (B, T, C, H, W) -> (B, horizon, C, H, W)
    """
    context = _check_baseline_args(context, horizon)
    b, _, c, h, w = context.shape
    return context.new_zeros(b, horizon, c, h, w)


def copy_last_baseline(context: Tensor, horizon: int) -> Tensor:
    """Predict that nothing moves: the last observed frame repeated ``horizon`` times.

    Args:
        context: the observed frames.
        horizon: number of frames to predict.

    Returns:
        A new (contiguous) tensor with the dtype and device of ``context``.

    Raises:
        ValueError: as :func:`zeros_baseline`.

    Shape:
        context: (B, T, C, H, W) -> (B, horizon, C, H, W)
    """
    context = _check_baseline_args(context, horizon)
    return context[:, -1:].repeat(1, horizon, 1, 1, 1)  # (B, horizon, C, H, W)


def mean_context_baseline(context: Tensor, horizon: int) -> Tensor:
    """Predict the average of the observed frames, repeated ``horizon`` times (static background).

    Args:
        context: the observed frames.
        horizon: number of frames to predict.

    Returns:
        A new tensor with the dtype and device of ``context``.

    Raises:
        ValueError: as :func:`zeros_baseline`.

    Shape:
        context: (B, T, C, H, W) -> (B, horizon, C, H, W)
    """
    context = _check_baseline_args(context, horizon)
    return context.mean(dim=1, keepdim=True).repeat(1, horizon, 1, 1, 1)  # (B, horizon, C, H, W)


@dataclass(frozen=True)
class Baseline:
    """One entry of :data:`BASELINES`.

    Attributes:
        label: the name a report prints (e.g. ``"copy last frame"``).
        predict: ``(context, horizon) -> prediction``, shape (B, T, C, H, W) -> (B, horizon, C, H, W).
    """

    label: str
    predict: Callable[[Tensor, int], Tensor]


BASELINES: Mapping[str, Baseline] = MappingProxyType(
    {
        "zeros": Baseline("zeros", zeros_baseline),
        "copy_last": Baseline("copy last frame", copy_last_baseline),
        "mean_context": Baseline("mean of context", mean_context_baseline),
    }
)
"""Baseline key in ``metrics.json`` -> its :class:`Baseline` (read-only)."""


def baseline_label(key: str) -> str:
    """The name a report prints for the baseline ``key`` (the key itself for one not registered)."""
    return BASELINES[key].label if key in BASELINES else key
