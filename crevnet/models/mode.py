"""Running a model for inference: eval mode and no autograd, then the module's mode as it was."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["evaluating"]


@contextlib.contextmanager
def evaluating(module: nn.Module) -> Iterator[nn.Module]:
    """Put ``module`` in eval mode under ``torch.no_grad()`` for the block; restore its mode after.

    Used by every caller that predicts outside training (``evaluate``, the report samples,
    ``predict``, the training sample pictures), so none of them leaves a model in the wrong mode.

    Yields:
        ``module``.
    """
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield module
    finally:
        module.train(was_training)
