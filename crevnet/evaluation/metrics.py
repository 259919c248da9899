"""Video-prediction metrics on the [0, 1] scale, defined so that numbers compare with OpenSTL.

Every function takes a prediction and a target video of shape ``(B, T, C, H, W)`` with values on
the [0, 1] scale and returns one value per frame, shape ``(B, T)``, in float64. The definitions
(also on the documentation site's metrics page, ``docs/metrics.md``):

* **MSE / MAE**: per frame, the *sum* over C·H·W of the squared / absolute error, on the raw
  (unclipped) prediction. This is how OpenSTL and most Moving MNIST papers report them, so the
  numbers are of order 10-100 at 64×64, not 0.01. The per-pixel MSE is MSE / (C·H·W).
* **PSNR**: per frame, peak 1, on the prediction clipped to [0, 1] (as OpenSTL does):
  ``10·log10(1 / mean((clip(pred) - target)²))``. A frame predicted exactly has an infinite PSNR;
  the per-pixel error is floored at ``1e-10`` so such a frame counts as 100 dB, which keeps the
  average finite and the JSON report valid.
* **SSIM** (the primary column): Wang et al. (2004), Gaussian window 11×11 with σ = 1.5, data
  range 1, K1 = 0.01, K2 = 0.03, population covariance, averaged over the *valid* region (pixels at
  least 5 from the border, as in the authors' MATLAB code and scikit-image) and over channels, on
  the prediction clipped to [0, 1]. Equal to ``skimage.metrics.structural_similarity(...,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)``. torchmetrics
  1.9 computes the same map but also averages the reflect-padded border, so it reads slightly
  differently; on the interior the two agree (a test checks it).
* **SSIM, OpenSTL column**: 7×7 uniform window, data range 2 (what scikit-image ≤ 0.19 assumed for
  float images and hence what OpenSTL's tables use), sample covariance, valid region, averaged over
  channels, on the clipped prediction. Equal to ``structural_similarity(..., win_size=7,
  data_range=2.0)``. Data range 2 makes C1 and C2 four times larger, so this column usually reads higher.

Both SSIMs are vectorised over every frame and channel of a batch (the separable window is applied
as two batched matrix products on the valid region), fast enough for 10,000 sequences × 10 frames.

:data:`METRICS` is the one registry of these metrics (key, label, direction, kernel) and
:data:`SCORE_KEYS` the one list of the keys a score reports (the metrics plus ``mse_per_pixel``), in
the order of ``metrics.json``; :class:`MetricAccumulator` averages them over batches, overall and per
horizon step. The trivial predictors a model must beat live in :mod:`crevnet.evaluation.baselines`.

Inputs are checked: a non-finite value, a shape mismatch, a non-float dtype or a target outside
[0, 1] (e.g. 0..255 frames) raises a ValueError naming the argument. This module uses only torch
(no lightning, wandb, torchmetrics or OpenCV).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "METRICS",
    "METRIC_NAMES",
    "PSNR_MAX_DB",
    "SCORE_KEYS",
    "Metric",
    "MetricAccumulator",
    "check_video",
    "frame_mae",
    "frame_mse",
    "frame_psnr",
    "frame_ssim",
    "frame_ssim_openstl",
]

_MSE_FLOOR = 1e-10  # per-pixel error floor: an exact frame counts as PSNR_MAX_DB, not +inf
PSNR_MAX_DB: float = -10.0 * math.log10(_MSE_FLOOR)
"""PSNR given to a frame whose clipped prediction equals the target exactly (100 dB)."""

_K1, _K2 = 0.01, 0.03  # SSIM stabilising constants (Wang et al. 2004)
_GAUSS_SIGMA = 1.5
_GAUSS_RADIUS = int(3.5 * _GAUSS_SIGMA + 0.5)  # 5: scipy / scikit-image truncate the kernel at 3.5σ
_GAUSS_SIZE = 2 * _GAUSS_RADIUS + 1  # 11
_OPENSTL_WIN = 7
_OPENSTL_RANGE = 2.0
_SSIM_CHUNK_PIXELS = 1 << 18  # frames per SSIM chunk = this / (H·W): 64 at 64×64


# --------------------------------------------------------------------------- input checks


def check_video(x: object, name: str) -> Tensor:
    """Check that ``x`` is a non-empty, finite, floating-point video tensor; return it.

    Args:
        x: the value to check.
        name: the argument's name, for the message.

    Returns:
        ``x`` itself.

    Raises:
        ValueError: ``x`` is not a tensor, not 5-D, not floating point, empty or not finite.

    Shape:
        x: (B, T, C, H, W)
    """
    if not isinstance(x, Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor of shape (B, T, C, H, W), got {type(x)}")
    if x.dim() != 5:
        raise ValueError(
            f"{name}: expected a video tensor of shape (B, T, C, H, W), got shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise ValueError(
            f"{name}: expected a floating-point tensor on the [0, 1] scale, got dtype {x.dtype} "
            "(convert uint8 frames with x.float() / 255)"
        )
    if x.numel() == 0:
        raise ValueError(f"{name}: expected a non-empty tensor, got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: expected finite values, found NaN or Inf")
    return x


def _check_pair(pred: object, target: object) -> tuple[Tensor, Tensor]:
    pred = check_video(pred, "pred")
    target = check_video(target, "target")
    if pred.shape != target.shape:
        raise ValueError(
            f"target: expected the same shape as pred {tuple(pred.shape)}, got {tuple(target.shape)}"
        )
    lo, hi = float(target.min()), float(target.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"target: expected values on the [0, 1] scale, got range [{lo:.4g}, {hi:.4g}] "
            "(divide 0..255 frames by 255)"
        )
    return pred, target


def _check_window(x: Tensor, window: int, what: str) -> None:
    h, w = x.shape[-2:]
    if h < window or w < window:
        raise ValueError(f"pred: {what} needs frames of at least {window}×{window} pixels, got {h}×{w}")


# --------------------------------------------------------------------------- unchecked kernels


def _mse(pred: Tensor, target: Tensor) -> Tensor:
    return (pred.double() - target.double()).square().sum(dim=(2, 3, 4))  # (B, T)


def _mae(pred: Tensor, target: Tensor) -> Tensor:
    return (pred.double() - target.double()).abs().sum(dim=(2, 3, 4))  # (B, T)


def _psnr(pred: Tensor, target: Tensor) -> Tensor:
    err = (pred.double().clamp(0.0, 1.0) - target.double()).square().mean(dim=(2, 3, 4))
    return -10.0 * torch.log10(err.clamp_min(_MSE_FLOOR))  # (B, T)


def _gaussian_taps(device: torch.device) -> Tensor:
    offsets = torch.arange(-_GAUSS_RADIUS, _GAUSS_RADIUS + 1, dtype=torch.float64, device=device)
    taps = torch.exp(-0.5 * (offsets / _GAUSS_SIGMA) ** 2)
    return taps / taps.sum()  # (11,)


def _uniform_taps(device: torch.device) -> Tensor:
    return torch.full((_OPENSTL_WIN,), 1.0 / _OPENSTL_WIN, dtype=torch.float64, device=device)


def _window_matrix(taps: Tensor, n: int) -> Tensor:
    """Unpadded ("valid") 1-D correlation with ``taps`` written as a banded matrix.

    ``M @ v`` equals ``numpy.correlate(v, taps, "valid")``. Filtering a frame as ``M_h @ X @ M_w.T``
    is a separable 2-D window on the valid region, and a batched matmul is an order of magnitude
    faster on the CPU than a single-channel ``conv2d`` in float64.

    Shape:
        taps: (k,) -> (n - k + 1, n)
    """
    k = taps.numel()
    rows = torch.arange(n - k + 1, device=taps.device).unsqueeze(1)
    cols = torch.arange(n, device=taps.device).unsqueeze(0)
    offset = cols - rows  # (n - k + 1, n)
    inside = (offset >= 0) & (offset < k)
    return torch.where(inside, taps[offset.clamp(0, k - 1)], taps.new_zeros(()))


def _ssim_frames(
    pred: Tensor, target: Tensor, *, taps: Tensor, data_range: float, sample_cov: bool
) -> Tensor:
    """SSIM of every frame, mean over the valid region and the channels (Wang et al. 2004, eq. 13).

    Args:
        pred: prediction, clipped to [0, 1] here.
        target: ground truth on [0, 1].
        taps: the 1-D float64 window; the 2-D window is its outer product with itself.
        data_range: L in C1 = (K1·L)², C2 = (K2·L)².
        sample_cov: scale the moments by NP / (NP - 1), NP = window pixels, as scikit-image does
            with ``use_sample_covariance=True``.

    Shape:
        pred, target: (B, T, C, H, W) -> (B, T)
    """
    b, t, c, h, w = pred.shape
    x_all = pred.reshape(b * t * c, h, w)  # (N, H, W)
    y_all = target.reshape(b * t * c, h, w)
    # Filtering only the valid region = scikit-image's filter-then-crop; border padding never counts.
    m_h = _window_matrix(taps, h)  # (H', H)
    m_w = _window_matrix(taps, w).T.contiguous()  # (W, W')
    n_taps = taps.numel() ** 2
    cov_norm = n_taps / (n_taps - 1) if sample_cov else 1.0
    c1 = (_K1 * data_range) ** 2
    c2 = (_K2 * data_range) ** 2
    # Small chunks keep the float64 temporaries in cache: about 3× faster on a CPU than one pass.
    chunk = max(1, _SSIM_CHUNK_PIXELS // (h * w))
    per_image = []
    for start in range(0, x_all.shape[0], chunk):
        x = x_all[start : start + chunk].double().clamp(0.0, 1.0)
        y = y_all[start : start + chunk].double()
        mu_x = m_h @ x @ m_w  # (n, H', W')
        mu_y = m_h @ y @ m_w
        mu_xy = mu_x * mu_y
        mu_xx = mu_x.square()
        mu_yy = mu_y.square()
        var_sum = (m_h @ (x * x) @ m_w - mu_xx).add_(m_h @ (y * y) @ m_w - mu_yy).mul_(cov_norm)
        cov_xy = (m_h @ (x * y) @ m_w - mu_xy).mul_(cov_norm)
        s_map = ((2 * mu_xy + c1) * (2 * cov_xy + c2)) / ((mu_xx + mu_yy + c1) * (var_sum + c2))
        per_image.append(s_map.mean(dim=(1, 2)))  # (n,)
    # Every channel has the same valid size, so the mean over channels of the image means is the
    # mean over (C, H', W').
    return torch.cat(per_image).reshape(b, t, c).mean(dim=2)  # (B, T)


def _ssim(pred: Tensor, target: Tensor) -> Tensor:
    taps = _gaussian_taps(target.device)
    return _ssim_frames(pred, target, taps=taps, data_range=1.0, sample_cov=False)


def _ssim_openstl(pred: Tensor, target: Tensor) -> Tensor:
    taps = _uniform_taps(target.device)
    return _ssim_frames(pred, target, taps=taps, data_range=_OPENSTL_RANGE, sample_cov=True)


# --------------------------------------------------------------------------- per-frame metrics


def frame_mse(pred: Tensor, target: Tensor) -> Tensor:
    """Squared error summed over C·H·W, per frame, on the unclipped prediction.

    Args:
        pred: predicted video on the [0, 1] scale (values outside are allowed and count as they are).
        target: ground-truth video on the [0, 1] scale.

    Returns:
        Float64 tensor of per-frame errors; divide by C·H·W for the per-pixel MSE.

    Raises:
        ValueError: for a non-5-D, non-float, empty or non-finite input, a shape mismatch, or a
            target outside [0, 1].

    Shape:
        pred, target: (B, T, C, H, W) -> (B, T)
    """
    pred, target = _check_pair(pred, target)
    return _mse(pred, target)


def frame_mae(pred: Tensor, target: Tensor) -> Tensor:
    """Absolute error summed over C·H·W, per frame, on the unclipped prediction.

    Args:
        pred: predicted video on the [0, 1] scale.
        target: ground-truth video on the [0, 1] scale.

    Returns:
        Float64 tensor of per-frame errors.

    Raises:
        ValueError: as :func:`frame_mse`.

    Shape:
        pred, target: (B, T, C, H, W) -> (B, T)
    """
    pred, target = _check_pair(pred, target)
    return _mae(pred, target)


def frame_psnr(pred: Tensor, target: Tensor) -> Tensor:
    """Peak signal-to-noise ratio in dB, peak 1, per frame, on the prediction clipped to [0, 1].

    ``PSNR = -10·log10(max(mean((clip(pred) - target)²), 1e-10))``: an exact frame gives
    :data:`PSNR_MAX_DB` (100 dB) instead of +inf.

    Args:
        pred: predicted video on the [0, 1] scale.
        target: ground-truth video on the [0, 1] scale.

    Returns:
        Float64 tensor of per-frame PSNR values in dB.

    Raises:
        ValueError: as :func:`frame_mse`.

    Shape:
        pred, target: (B, T, C, H, W) -> (B, T)
    """
    pred, target = _check_pair(pred, target)
    return _psnr(pred, target)


def frame_ssim(pred: Tensor, target: Tensor) -> Tensor:
    """Gaussian-window SSIM per frame (11×11, σ 1.5, data range 1), the primary SSIM column.

    Wang et al. (2004), eq. 13, with population covariance, averaged over the valid region and the
    channels, on the prediction clipped to [0, 1]; equal to scikit-image's
    ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    data_range=1.0)``.

    Args:
        pred: predicted video on the [0, 1] scale.
        target: ground-truth video on the [0, 1] scale.

    Returns:
        Float64 tensor of per-frame SSIM values (1 for an exact prediction).

    Raises:
        ValueError: as :func:`frame_mse`, or for frames smaller than 11×11.

    Shape:
        pred, target: (B, T, C, H, W) -> (B, T)
    """
    pred, target = _check_pair(pred, target)
    _check_window(pred, _GAUSS_SIZE, "the Gaussian SSIM")
    return _ssim(pred, target)


def frame_ssim_openstl(pred: Tensor, target: Tensor) -> Tensor:
    """OpenSTL-compatible SSIM per frame: 7×7 uniform window, data range 2, sample covariance.

    Averaged over the valid region and the channels, on the prediction clipped to [0, 1]; equal to
    scikit-image's ``structural_similarity(win_size=7, data_range=2.0)``, which is what
    scikit-image ≤ 0.19 computed for float images by default and OpenSTL reports.

    Args:
        pred: predicted video on the [0, 1] scale.
        target: ground-truth video on the [0, 1] scale.

    Returns:
        Float64 tensor of per-frame SSIM values (1 for an exact prediction).

    Raises:
        ValueError: as :func:`frame_mse`, or for frames smaller than 7×7.

    Shape:
        pred, target: (B, T, C, H, W) -> (B, T)
    """
    pred, target = _check_pair(pred, target)
    _check_window(pred, _OPENSTL_WIN, "the OpenSTL SSIM")
    return _ssim_openstl(pred, target)


@dataclass(frozen=True)
class Metric:
    """One per-frame metric of the registry :data:`METRICS`.

    Attributes:
        key: its key in ``metrics.json`` and in :meth:`MetricAccumulator.compute`.
        label: the name a report prints (e.g. ``"PSNR (dB)"``).
        higher_is_better: the direction in which a predictor is better.
        decimals: decimals a report prints.
        kernel: the unchecked per-frame function, ``(B, T, C, H, W)`` x2 -> ``(B, T)`` float64.
    """

    key: str
    label: str
    higher_is_better: bool
    decimals: int
    kernel: Callable[[Tensor, Tensor], Tensor]


METRICS: tuple[Metric, ...] = (
    Metric("mse", "MSE", False, 2, _mse),
    Metric("mae", "MAE", False, 2, _mae),
    Metric("psnr", "PSNR (dB)", True, 2, _psnr),
    Metric("ssim", "SSIM", True, 4, _ssim),
    Metric("ssim_openstl", "SSIM (OpenSTL)", True, 4, _ssim_openstl),
)
"""The one registry of per-frame metrics, in the order a report's table shows them."""

METRIC_NAMES: tuple[str, ...] = tuple(metric.key for metric in METRICS)
"""Keys of the per-frame metrics, in the order :meth:`MetricAccumulator.compute` reports them."""

SCORE_KEYS: tuple[str, ...] = ("mse", "mae", "mse_per_pixel", "psnr", "ssim", "ssim_openstl")
"""Keys of one predictor's overall scores in ``metrics.json``: :data:`METRIC_NAMES` plus the per-pixel
MSE (MSE / (C·H·W)) after the MAE."""


# --------------------------------------------------------------------------- accumulator


class MetricAccumulator:
    """Averages every metric over batches of sequences, overall and per horizon step.

    Per-horizon sums are kept in float64 on the CPU, so the result does not depend on how the
    sequences are split into batches (up to float rounding). All updates must share T, C, H and W.

    Example::

        acc = MetricAccumulator()
        for context, target in loader:
            acc.update(model(context), target)
        report = acc.compute()  # {"mse": ..., "per_horizon": {"mse": [...], ...}, ...}
    """

    def __init__(self) -> None:
        """Create an empty accumulator."""
        self.reset()

    def reset(self) -> None:
        """Forget every update."""
        self._sums: dict[str, Tensor] = {}
        self._num_sequences = 0
        self._frame_shape: tuple[int, ...] | None = None

    @property
    def num_sequences(self) -> int:
        """Number of sequences seen since construction or the last :meth:`reset`."""
        return self._num_sequences

    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add a batch of predicted and ground-truth future frames.

        Args:
            pred: predicted frames on the [0, 1] scale.
            target: ground-truth frames on the [0, 1] scale.

        Raises:
            ValueError: as :func:`frame_mse`; for frames smaller than 11×11; or when T, C, H or W
                differ from the earlier updates.

        Shape:
            pred, target: (B, T, C, H, W)
        """
        pred, target = _check_pair(pred, target)
        _check_window(pred, _GAUSS_SIZE, "the Gaussian SSIM")
        frame_shape = tuple(pred.shape[1:])
        if self._frame_shape is not None and frame_shape != self._frame_shape:
            raise ValueError(
                f"pred: expected (B, T, C, H, W) with (T, C, H, W) = {self._frame_shape} as in the "
                f"earlier updates, got {frame_shape}"
            )
        self._frame_shape = frame_shape
        with torch.no_grad():
            for metric in METRICS:
                batch_sum = metric.kernel(pred, target).sum(dim=0).cpu()  # (T,)
                if metric.key in self._sums:
                    self._sums[metric.key] += batch_sum
                else:
                    self._sums[metric.key] = batch_sum
        self._num_sequences += pred.shape[0]

    def compute(self) -> dict[str, Any]:
        """Return the averages as plain Python numbers (ready for ``json.dump``).

        Returns:
            :data:`SCORE_KEYS` as floats averaged over all frames and sequences, ``"per_horizon"``:
            for each metric in :data:`METRIC_NAMES` a list of T floats (mean over sequences at step
            t+1..t+T), and ``"num_sequences"``.

        Raises:
            ValueError: when no batch has been added.
        """
        if self._frame_shape is None:
            raise ValueError("MetricAccumulator.compute: no batch was added; call update() first")
        n = self._num_sequences
        per_horizon = {name: (self._sums[name] / n).tolist() for name in METRIC_NAMES}
        overall = {
            name: float(self._sums[name].sum()) / (n * len(per_horizon[name])) for name in METRIC_NAMES
        }
        _, c, h, w = self._frame_shape
        overall["mse_per_pixel"] = overall["mse"] / (c * h * w)
        return {
            **{key: overall[key] for key in SCORE_KEYS},
            "per_horizon": per_horizon,
            "num_sequences": n,
        }
