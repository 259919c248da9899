"""Conv3d (and Conv2d) with faster CPU paths for the small "same" convolutions CrevNet is made of.

On the CPU, PyTorch's oneDNN backward of a small stride-1 convolution is several times slower than its
forward: at the paper's shapes (batch 8, 96 -> 96 channels, 3×8×8 grid, 3×3×3 kernel) the weight
gradient alone took 9 ms against 4 ms for the forward, and for the encoder's one- and two-channel convs
on 3×32×32 windows the input gradient took 26 ms against 3 ms. Both gradients are convolutions
themselves, so this module computes them with oneDNN's fast *forward* kernel:

- input gradient: ``gx = conv(gy, flip(W)ᵀ, padding = k − 1 − p)`` (the adjoint of a stride-1 conv is
  the correlation with the spatially flipped, in/out-transposed kernel);
- weight gradient: ``gW[o, i, κ] = Σ_{b, q} gy[b, o, q] · x_pad[b, i, q + κ]``, which is a convolution of
  ``x`` with batch and channel axes swapped, by the kernel ``gy`` (batch and channel swapped too):
  ``gW = conv(xᵀ, gyᵀ, padding = p)ᵀ`` with ``ᵀ`` swapping axes 0 and 1;
- bias gradient: ``gb = Σ gy`` over every axis but the channel.

This is the same arithmetic in another order (equal to the native backward to rounding; tested in
float64 against ``torch.autograd.gradcheck`` and against PyTorch's own backward). The fast path is
taken only where it is valid and was measured to pay off (``benchmarks/conv_backward.py``,
``benchmarks/results/conv_backward/epyc_avx2/``): CPU tensors, float32/float64, no autocast, 3-D, kernel
> 1, stride 1, dilation 1, one group, symmetric zero padding. On the paper model's 3×3×3 convs
forward + backward was 1.3-3.1× faster on 2 threads of an AVX2-only AMD EPYC; on an AVX-512 Intel
Xeon, where oneDNN has fast backward kernels, only the narrow ones gained (in · out <= 64: 2.3-2.9×)
and the RPM's wide ones were 0.7× (``conv_backward/xeon/``), so on AVX-512 CPUs the wide 3-D
convs keep oneDNN's backward. Its 1×1×1 convs (0.8×) were slower, so they keep PyTorch's own
backward, as do CUDA (cuDNN's backward is fast), strided convs and autocast. Of the 2-D model's
convs only the full-resolution ones with one or two channels in and out gain (the first
encoder stage on 32×32 frames: 1.5-2.6×, where oneDNN's backward took 6-9 ms against ~2 ms for the
forward); wider 2-D convs were 0.6-1.0× and keep PyTorch's backward (:class:`Conv2d`). Parameters
and their names are those of ``nn.Conv2d`` / ``nn.Conv3d``, so checkpoints and parameter counts do
not change.

Time folded into channels (:func:`conv_time_folded`): on a 3-frame window, a 3-D conv is one 2-D conv
over ``C·T`` channels whose kernel holds the 3-D kernel's time slices in a banded block pattern. On
AVX-512 CPUs oneDNN's 2-D kernels run the encoder's narrow convs (``in · out <= 64``, on 32×32 and
16×16 grids) 1.25-2.4× faster that way, forward and backward, than crevnet's 3-D path and 2.4-6× faster
than oneDNN's 3-D one; on its 8×8 stage (``in · out`` 256-512) oneDNN's own 3-D conv was faster
(``benchmarks/results/conv_backward/xeon/``). Traced, exported and compiled graphs keep the
plain ``Conv3d``; compiled graphs also skip :func:`conv_same`'s backward (one graph, no break).

:func:`native_backward` switches the fast paths off inside a ``with`` block (for comparisons and
benchmarks). :func:`conv_class` is the one place the encoder and the predictor get their conv layer.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "Conv2d",
    "Conv3d",
    "conv_class",
    "conv_same",
    "conv_time_folded",
    "fold_time_kernel",
    "native_backward",
    "same_padding",
]

_FAST = ContextVar("crevnet_fast_conv_backward", default=True)
_CONV_FN = {4: F.conv2d, 5: F.conv3d}


@contextmanager
def native_backward() -> Iterator[None]:
    """Inside this block, convs built here use PyTorch's own backward (the reference path)."""
    token = _FAST.set(False)
    try:
        yield
    finally:
        _FAST.reset(token)


def _fast_paths_on() -> bool:
    """crevnet's conv paths are switched on (not inside :func:`native_backward`) and this is eager code:
    compiled graphs keep the plain conv, since dynamo cannot trace the switch's ContextVar (a graph break)."""
    return not torch.compiler.is_compiling() and _FAST.get()


def _cpu_autocast_enabled() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4 takes no device argument
        return torch.is_autocast_cpu_enabled()


class _SameConv(torch.autograd.Function):
    """Stride-1 zero-padded convolution whose backward is made of forward convolutions."""

    @staticmethod
    def forward(ctx, x, weight, bias, padding: int):  # type: ignore[override]
        ctx.save_for_backward(x, weight)
        ctx.padding = padding
        ctx.has_bias = bias is not None
        return _CONV_FN[x.dim()](x, weight, bias, padding=padding)

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        conv = _CONV_FN[x.dim()]
        p = ctx.padding
        k = weight.shape[2]
        spatial = tuple(range(2, x.dim()))
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            # (C_in, C_out, k, ...) flipped in space: the adjoint kernel of a stride-1 correlation.
            w_adj = weight.transpose(0, 1).flip(spatial)
            gx = conv(grad_out, w_adj, padding=k - 1 - p)  # (B, C_in, *S)
        if ctx.needs_input_grad[1]:
            # (C_in, B, *S) correlated with (C_out, B, *S_out) -> (C_in, C_out, k, ...)
            gw = conv(x.transpose(0, 1), grad_out.transpose(0, 1), padding=p).transpose(0, 1)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = grad_out.sum((0, *spatial))
        return gx, gw, gb, None


def conv_same(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: int) -> torch.Tensor:
    """Stride-1 convolution with zero padding ``padding`` on every side, fast CPU backward.

    Args:
        x: (B, C_in, [T,] H, W).
        weight: (C_out, C_in, k, [k,] k), a cube kernel.
        bias: (C_out,) or None.
        padding: zero padding on each side of every spatial axis.

    Returns:
        (B, C_out, [T,] H', W') with H' = H + 2·padding − k + 1.
    """
    if (
        _fast_paths_on()
        and x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
        and weight.dtype == x.dtype
        and padding <= weight.shape[2] - 1  # the input gradient's padding k - 1 - p must be >= 0
        and not _cpu_autocast_enabled()
        and torch.is_grad_enabled()
        and (x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad))
    ):
        return _SameConv.apply(x, weight, bias, padding)
    return _CONV_FN[x.dim()](x, weight, bias, padding=padding)


def fold_time_kernel(weight: torch.Tensor, t_in: int, padding: int) -> torch.Tensor:
    """The 2-D kernel that computes a 3-D convolution over ``t_in`` frames with time folded into channels.

    Output frame ``t`` of a stride-1 3-D conv reads input frame ``t' = t + d − padding`` through the
    kernel's time slice ``d``; with ``(C, T)`` flattened to ``C·T`` channels (``c·T + t'``) that is a 2-D
    conv whose kernel holds ``weight[:, :, d]`` in block ``(t, t')`` and zeros where ``d`` falls outside
    the kernel (the time padding). Built from slices of ``weight``, so gradients flow back to it.

    Args:
        weight: (C_out, C_in, k, kh, kw).
        t_in: frames of the input.
        padding: zero padding on each side of the time axis.

    Returns:
        (C_out · T_out, C_in · t_in, kh, kw) with ``T_out = t_in + 2·padding − k + 1``.
    """
    c_out, c_in, k = weight.shape[:3]
    t_out = t_in + 2 * padding - k + 1
    zero = weight.new_zeros((c_out, c_in, *weight.shape[3:]))
    rows = [
        torch.stack([weight[:, :, d] if 0 <= (d := tp - t + padding) < k else zero for tp in range(t_in)], 2)
        for t in range(t_out)
    ]  # each (C_out, C_in, t_in, kh, kw)
    return torch.stack(rows, 1).reshape(c_out * t_out, c_in * t_in, *weight.shape[3:])


def conv_time_folded(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: int
) -> torch.Tensor:
    """Stride-1 zero-padded 3-D convolution computed as one 2-D convolution (time folded into channels).

    Equal to ``F.conv3d(x, weight, bias, padding=padding)`` to rounding; PyTorch's autograd gives its
    gradients (through the 2-D conv and the kernel fold of :func:`fold_time_kernel`). On a short time
    axis (CrevNet's 3-frame windows) oneDNN's 2-D kernels run the encoder's narrow convs faster than its
    3-D ones, forward and backward (``benchmarks/conv_backward.py``, path ``folded``).

    Args:
        x: (B, C_in, T, H, W).
        weight: (C_out, C_in, k, k, k).
        bias: (C_out,) or None.
        padding: zero padding on each side of every axis.

    Returns:
        (B, C_out, T', H', W'), with ``n' = n + 2·padding − k + 1`` on each axis.
    """
    b, c_in, t_in = x.shape[:3]
    kernel = fold_time_kernel(weight, t_in, padding)
    t_out = kernel.shape[0] // weight.shape[0]
    folded_bias = None if bias is None else bias.repeat_interleave(t_out)
    y = F.conv2d(x.reshape(b, c_in * t_in, *x.shape[3:]), kernel, folded_bias, padding=padding)
    return y.view(b, weight.shape[0], t_out, *y.shape[2:])


def same_padding(conv: nn.Conv2d | nn.Conv3d) -> int | None:
    """The padding with which :func:`conv_same` computes ``conv`` (any kernel size), or None.

    None unless the conv has stride 1, dilation 1, one group, a cube kernel and the same zero
    padding on every side.
    """
    k = conv.kernel_size
    pad = conv.padding
    if (
        isinstance(pad, str)
        or conv.padding_mode != "zeros"
        or conv.groups != 1
        or any(s != 1 for s in conv.stride)
        or any(d != 1 for d in conv.dilation)
        or len(set(k)) != 1
        or len(set(pad)) != 1
    ):
        return None
    return pad[0]


_WIDE_3D = 64  # in_channels · out_channels above which a 3-D conv keeps oneDNN's backward on AVX-512


@functools.cache
def _avx512_cpu() -> bool:
    # oneDNN's own backward of the wide 3-D convs is fast where it has AVX-512 kernels (an Intel Xeon:
    # crevnet's path measured 0.69-0.76x there, benchmarks/results/conv_backward/xeon/) and slow
    # on AVX2-only CPUs (an AMD EPYC: 1.3-1.8x faster with crevnet's path).
    return torch.backends.cpu.get_cpu_capability() == "AVX512"


_FOLD_MAX_FRAMES = 8  # the folded kernel grows with frames²: only short time axes (windows)


def _foldable(x: torch.Tensor) -> bool:
    # Traced, exported and compiled graphs keep the plain Conv3d: one standard op for ONNX, TorchScript
    # and inductor (the legacy ONNX exporter cannot export a conv whose kernel is computed).
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        return False
    return (
        x.device.type == "cpu"
        and x.dim() == 5
        and x.shape[2] <= _FOLD_MAX_FRAMES
        and x.dtype in (torch.float32, torch.float64)
        and not _cpu_autocast_enabled()
    )


class Conv3d(nn.Conv3d):
    """``nn.Conv3d`` with the faster CPU paths measured for CrevNet's stride-1 cube-kernel convs.

    On AVX-512 CPUs the narrow ones (``in · out <= 64``: the encoder's first two stages) on short
    clips are computed as one 2-D conv with time folded into channels (:func:`conv_time_folded`),
    forward and backward, and the wider ones (the RPM's, the encoder's last stage) keep oneDNN's own
    backward, which is fast there. On other CPUs every
    one takes the fast backward of :func:`conv_same`. 1×1×1 convs, strided, dilated or grouped convs
    and CUDA tensors always run ``nn.Conv3d``.

    Shape:
        (B, C_in, T, H, W) -> (B, C_out, T', H', W'), as ``nn.Conv3d``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = same_padding(self)
        if pad is None or self.kernel_size[0] == 1:  # 1×1×1 convs measured faster natively
            return super().forward(x)
        if _avx512_cpu():
            if self.in_channels * self.out_channels > _WIDE_3D:
                return super().forward(x)
            if _fast_paths_on() and _foldable(x):
                return conv_time_folded(x, self.weight, self.bias, pad)
        return conv_same(x, self.weight, self.bias, pad)


_NARROW_2D = 4  # in_channels · out_channels up to which a 2-D conv takes the fast backward


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` that takes :func:`conv_same`'s backward where it measured faster: stride-1 convs
    with at most two channels in and out (``in · out <= 4``); every other conv is ``nn.Conv2d``.

    Shape:
        (B, C_in, H, W) -> (B, C_out, H', W'), as ``nn.Conv2d``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = same_padding(self)
        if pad is None or self.kernel_size[0] == 1 or self.in_channels * self.out_channels > _NARROW_2D:
            return super().forward(x)
        return conv_same(x, self.weight, self.bias, pad)


_CONV_CLASS: dict[int, type[nn.Conv2d | nn.Conv3d]] = {2: Conv2d, 3: Conv3d}


def conv_class(dims: int) -> type[nn.Conv2d | nn.Conv3d]:
    """The conv layer of every crevnet model: :class:`Conv2d` for ``dims == 2``, :class:`Conv3d` for
    ``dims == 3`` (``nn.Conv2d`` / ``nn.Conv3d`` with the fast CPU backward where it pays off);
    ValueError otherwise."""
    if dims not in _CONV_CLASS:
        raise ValueError(f"dims must be 2 or 3, got {dims}")
    return _CONV_CLASS[dims]
