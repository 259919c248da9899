"""The training loss: a weighted sum of per-transition MSE, L1 and SSIM terms on decoded windows.

The paper trains with the MSE alone (``CrevNet.loss``). An L2 loss buys blur: where the model is unsure
it predicts the mean, a low grey haze over Moving MNIST's black background, which costs little MSE but
most of the SSIM. An L1 term pushes uncertain background pixels to exactly zero (the median), and a
(1 − SSIM) term punishes lost structure directly. Every term has the paper's form: a mean over the
batch and pixels of each transition, summed over the transitions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["LossWeights", "prediction_loss", "ssim_map_loss"]

_SSIM_TAPS = 11  # Gaussian window of the primary SSIM metric (crevnet.evaluation.metrics.frame_ssim)
_SSIM_SIGMA = 1.5
_C1 = 0.01**2  # (K1 · L)², data range 1
_C2 = 0.03**2  # (K2 · L)²


@dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms. The default is the paper's loss (MSE only).

    Attributes:
        mse: weight of the mean squared error.
        l1: weight of the mean absolute error.
        ssim: weight of ``1 − SSIM`` (Gaussian window 11×11, σ 1.5, data range 1, as the metric) on
            the frames of each predicted window.
    """

    mse: float = 1.0  # squared error (paper)
    l1: float = 0.0  # absolute error: sparse, haze-free backgrounds
    ssim: float = 0.0  # 1 - SSIM: structure

    def __post_init__(self) -> None:
        for name in ("mse", "l1", "ssim"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"LossWeights.{name} must be a finite number >= 0, got {value!r}")
        if self.mse + self.l1 + self.ssim == 0:
            raise ValueError("LossWeights: at least one of mse, l1, ssim must be > 0")


def _gaussian_kernel(device: torch.device, dtype: torch.dtype) -> Tensor:
    x = torch.arange(_SSIM_TAPS, device=device, dtype=dtype) - (_SSIM_TAPS - 1) / 2
    taps = torch.exp(-(x**2) / (2 * _SSIM_SIGMA**2))
    return taps / taps.sum()


def ssim_map_loss(pred: Tensor, target: Tensor) -> Tensor:
    """``1 − SSIM`` per image, differentiable, Gaussian window over the valid region.

    Args:
        pred: predicted images (not clipped: the gradient must reach values outside [0, 1]).
        target: ground-truth images on [0, 1].

    Returns:
        ``1 − mean SSIM`` of each image.

    Shape:
        pred, target: (N, C, H, W) with H, W >= 11 -> (N,)
    """
    c = pred.shape[1]
    taps = _gaussian_kernel(pred.device, pred.dtype)
    m = 5 * c  # the five moments below, each per channel
    kx = taps.view(1, 1, 1, -1).expand(m, 1, 1, -1)
    ky = taps.view(1, 1, -1, 1).expand(m, 1, -1, 1)

    def blur(x: Tensor) -> Tensor:  # separable Gaussian, valid region only: (N, 5C, H', W')
        return F.conv2d(F.conv2d(x, kx, groups=m), ky, groups=m)

    stacked = blur(torch.cat((pred, target, pred * pred, target * target, pred * target), 1))
    mu_x, mu_y, xx, yy, xy = stacked.split(c, 1)
    var_x = xx - mu_x * mu_x
    var_y = yy - mu_y * mu_y
    cov = xy - mu_x * mu_y
    s = ((2 * mu_x * mu_y + _C1) * (2 * cov + _C2)) / (
        (mu_x * mu_x + mu_y * mu_y + _C1) * (var_x + var_y + _C2)
    )
    return 1 - s.mean(dim=(1, 2, 3))


def prediction_loss(pred: Tensor, target: Tensor, weights: LossWeights) -> Tensor:
    """Weighted loss of decoded windows: each term a mean per transition, summed over transitions.

    With ``LossWeights()`` this is ``CrevNet.loss`` (the released code's ``Σ_s MSE(x̂_s, x_s)``).

    Args:
        pred: decoded predictions of ``CrevNet.forward``.
        target: the ground-truth windows.
        weights: the terms' weights.

    Returns:
        A scalar tensor.

    Shape:
        pred, target: (B, S, W, C, H, W) -> ()
    """
    diff = pred - target
    dims = (0, 2, 3, 4, 5)  # everything but the transition axis
    total = pred.new_zeros(())
    if weights.mse:
        total = total + weights.mse * diff.pow(2).mean(dim=dims).sum()
    if weights.l1:
        total = total + weights.l1 * diff.abs().mean(dim=dims).sum()
    if weights.ssim:
        b, s = pred.shape[:2]
        frames = pred.shape[2] * pred.shape[3]
        flat_p = pred.reshape(b * s, frames, *pred.shape[-2:])  # (B·S, W·C, H, W)
        flat_t = target.reshape(b * s, frames, *target.shape[-2:])
        per = ssim_map_loss(flat_p, flat_t).view(b, s)  # (B, S)
        total = total + weights.ssim * per.mean(0).sum()
    return total
