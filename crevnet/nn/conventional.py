"""A conventional (lossy, not invertible) encoder/decoder pair: the ablation of CrevNet's bijective one.

CrevNet's central claim is that a *bijective* two-way autoencoder beats a conventional one under the
same predictor (Yu et al., ICLR 2020: the ablation that swaps in a regular autoencoder). This module
builds that conventional pair for an :class:`~crevnet.nn.encoder.EncoderConfig` with
``kind: conventional``:

- **Encoder**: ``n = max(L, 1)`` levels, ``L = log2(config.downsample)``. Level ``i`` is a strided
  conv ``c_{i-1} -> c_i`` (stride 2 in H and W; stride 1 when ``L = 0``) and a stride-1 conv
  ``c_i -> c_i``, each followed by norm and ReLU; then a 1×1 conv with bias to the latent's
  ``2·channels[-1]`` channels (linear, so the latent takes any sign, like the reversible one's).
- **Decoder**: the mirror image. A 1×1 conv from the latent to ``c_n``, then per level (from the
  coarsest) a stride-1 conv and a transposed conv (stride 2) up to ``c_{i-1}``, each followed by norm
  and ReLU, except the last, which outputs the frame linearly (with bias).

Time is never strided (3-D convs have stride ``(1, 2, 2)``), kernels are ``config.kernel_size`` and
norms ``config.norm``, as in the reversible encoder. The latent has the reversible encoder's shape,
``(B, 2·channels[-1], [T,] H/D, W/D)``, so the same RPM runs on it.

**Width rule.** The hidden widths ``c_1 .. c_n`` are geometric between ``c_1`` and ``c_n``
(``c_i = round(c_1·(c_n/c_1)^((i-1)/(n-1)))``), and ``(c_1, c_n)`` is the integer pair in
``[1, 512]²`` that minimises the larger of the two relative errors

- parameters of encoder + decoder against the reversible encoder's (which is also its own decoder),
- MACs per sample of the encoder against the reversible encoder's forward (the decoder costs the same
  as the encoder, and the reversible inverse the same as its forward),

with ties broken towards the narrower pair. Both counts are exact for a given config: the reversible
encoder's from its conv layers (:func:`reversible_cost`), the conventional pair's from the formula of
:func:`conventional_cost` (both tested against ``torch.utils.flop_counter.FlopCounterMode``). Every
conv's cost is proportional to ``H·W`` (and ``T``), so the match holds at any frame size. On the
shipped configs both errors are within 10% (tested); the fields ``stages``, ``mult`` and ``init_scale``
enter only through the reversible encoder's counts.

The pair is not invertible: ``decoder(encoder(x))`` only approximates ``x``, and nothing here claims
otherwise. Memory saving (``memory_saving: encoder | full``) recomputes activations through the
reversible encoder's inverse, so it is not available for this kind.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn

from crevnet.nn.block import make_norm
from crevnet.nn.conv import conv_class
from crevnet.nn.encoder import Encoder, EncoderConfig
from crevnet.nn.reshape import check_divisible

__all__ = [
    "ConventionalDecoder",
    "ConventionalEncoder",
    "conventional_cost",
    "conventional_widths",
    "reversible_cost",
]

_MAX_WIDTH = 512  # largest hidden width the rule considers
_TRANSPOSED = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}


def _levels(config: EncoderConfig) -> int:
    """``L = log2(config.downsample)``: the number of factor-2 spatial downsamplings."""
    return config.downsample.bit_length() - 1


@functools.lru_cache(maxsize=64)
def reversible_cost(config: EncoderConfig) -> tuple[int, int]:
    """Parameters and forward MACs of the reversible encoder of ``config``.

    MACs are per sample for one latent pixel, i.e. an input of ``D×D`` frames (``D =
    config.downsample``) and, in 3-D, one time step; every conv is "same" padded, so the MACs of an
    ``H×W`` (``T``-step) input are these times ``T·H·W/D²``. Counted from the conv layers of the
    encoder built and run once on a ``2D×2D`` input: output elements × input channels × kernel volume
    (the global random state is left as it was).

    Returns:
        ``(parameters, macs)``.
    """
    with torch.random.fork_rng(devices=[]):
        encoder = Encoder(config)  # the reversible encoder whatever config.kind says
        side = 2 * config.downsample  # a 2×2 latent: a 1×1 grid would trip GroupNorm(1, 1)
        shape = (1, config.in_channels, *((1,) if config.dims == 3 else ()), side, side)
        macs = 0

        def count(module: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            nonlocal macs
            assert isinstance(module, (nn.Conv2d, nn.Conv3d))
            kernel = math.prod(module.kernel_size)
            macs += out.numel() * (module.in_channels // module.groups) * kernel

        hooks = [
            m.register_forward_hook(count) for m in encoder.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))
        ]
        with torch.no_grad():
            encoder(torch.zeros(shape))
        for hook in hooks:
            hook.remove()
    return sum(p.numel() for p in encoder.parameters()), macs // 4


def conventional_cost(config: EncoderConfig, widths: tuple[int, ...]) -> tuple[int, int, int]:
    """Parameters of the conventional encoder and decoder, and the encoder's MACs, for ``widths``.

    MACs are per sample for one latent pixel, as in :func:`reversible_cost`; the decoder's MACs equal
    the encoder's (each transposed conv is the adjoint of a strided conv of the same size).

    Args:
        config: the encoder config (its ``kind`` is ignored).
        widths: hidden widths ``c_1 .. c_n``, ``n = max(log2(downsample), 1)``.

    Returns:
        ``(encoder parameters, decoder parameters, encoder MACs)``.
    """
    n = max(_levels(config), 1)
    if len(widths) != n:
        raise ValueError(f"conventional_cost: expected {n} widths, got {len(widths)}")
    k = config.kernel_size**config.dims
    norm = 0 if config.norm == "none" else 2  # affine weight and bias per channel
    lat = config.latent_channels
    c = (config.in_channels, *widths)
    scale = 1 if _levels(config) else 0  # grid of level i: 2^(L-i) per side, 1 when L = 0
    enc_p = dec_p = macs = 0
    for i in range(1, n + 1):
        area = 4 ** ((n - i) * scale)  # positions of level i's grid per latent pixel
        enc_p += k * c[i - 1] * c[i] + k * c[i] * c[i] + 2 * norm * c[i]
        macs += area * (k * c[i - 1] * c[i] + k * c[i] * c[i])
        out_norm = norm * c[i - 1] if i > 1 else c[0]  # the frame layer has a bias instead of a norm
        dec_p += k * c[i] * c[i] + norm * c[i] + k * c[i] * c[i - 1] + out_norm
    enc_p += c[n] * lat + lat  # 1×1 head with bias
    dec_p += lat * c[n] + norm * c[n]  # 1×1 stem, no bias (a norm follows)
    macs += c[n] * lat
    return enc_p, dec_p, macs


def _geometric(first: int, last: int, n: int) -> tuple[int, ...]:
    if n == 1:
        return (first,)
    return tuple(max(1, round(first * (last / first) ** (i / (n - 1)))) for i in range(n))


@functools.lru_cache(maxsize=64)
def conventional_widths(config: EncoderConfig) -> tuple[int, ...]:
    """The hidden widths ``c_1 .. c_n`` of the conventional pair (the rule in the module docstring).

    Returns:
        ``n = max(log2(config.downsample), 1)`` widths, finest level first.
    """
    n = max(_levels(config), 1)
    params, macs = reversible_cost(config)

    def error(widths: tuple[int, ...]) -> float:
        enc_p, dec_p, m = conventional_cost(config, widths)
        return max(abs((enc_p + dec_p) / params - 1), abs(m / macs - 1))

    best: tuple[float, int, tuple[int, ...]] | None = None
    lasts = range(1, _MAX_WIDTH + 1) if n > 1 else range(1, 2)
    for first in range(1, _MAX_WIDTH + 1):
        # Parameters grow with the last width: bisect for where they cross the target, try both sides.
        lo, hi = 1, lasts[-1]
        while lo < hi:
            mid = (lo + hi) // 2
            enc_p, dec_p, _ = conventional_cost(config, _geometric(first, mid, n))
            lo, hi = (mid + 1, hi) if enc_p + dec_p < params else (lo, mid)
        for last in {max(lo - 1, 1), lo}:
            widths = _geometric(first, last if n > 1 else first, n)
            key = (error(widths), sum(widths), widths)
            if best is None or key < best:
                best = key
    assert best is not None
    return best[2]


def _check_config(config: EncoderConfig, who: str) -> None:
    if not isinstance(config, EncoderConfig):
        raise TypeError(f"{who}: config must be an EncoderConfig, got {config!r}")


class ConventionalEncoder(nn.Module):
    """Strided-conv encoder to the reversible encoder's latent shape (not invertible).

    Args:
        config: the encoder config; the latent shape and the widths (:func:`conventional_widths`)
            follow from it.

    Shape:
        (B, C, [T,] H, W) -> (B, 2·channels[-1], [T,] H/D, W/D), ``D = config.downsample``; ``T`` is
        present when ``config.dims == 3``.
    """

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        _check_config(config, "ConventionalEncoder")
        self.config = config
        self.widths = widths = conventional_widths(config)
        conv = conv_class(config.dims)
        k, p, dims = config.kernel_size, config.kernel_size // 2, config.dims
        down = 2 if _levels(config) else 1
        stride = down if dims == 2 else (1, down, down)
        layers: list[nn.Module] = []
        c_in = config.in_channels
        for c in widths:
            layers += [
                conv(c_in, c, k, stride, p, bias=False),  # (B, c, [T,] H/2, W/2)
                make_norm(config.norm, c, dims),
                nn.ReLU(),
                conv(c, c, k, 1, p, bias=False),
                make_norm(config.norm, c, dims),
                nn.ReLU(),
            ]
            c_in = c
        self.body = nn.Sequential(*layers)
        self.head = conv(c_in, config.latent_channels, 1)  # (B, 2c_last, [T,] H/D, W/D), linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode frames (3-D: windows of frames) into the latent."""
        cfg = self.config
        rank = cfg.dims + 2
        if x.dim() != rank or x.shape[1] != cfg.in_channels:
            layout = "(B, C, T, H, W)" if cfg.dims == 3 else "(B, C, H, W)"
            raise ValueError(
                f"ConventionalEncoder input must be {layout} with {cfg.in_channels} channel(s), "
                f"got shape {tuple(x.shape)}"
            )
        check_divisible(x.shape[-2], x.shape[-1], cfg.downsample, "ConventionalEncoder input")
        return self.head(self.body(x))


class ConventionalDecoder(nn.Module):
    """Transposed-conv decoder from the latent back to frames: the mirror of :class:`ConventionalEncoder`.

    Args:
        config: the encoder config (as for :class:`ConventionalEncoder`).

    Shape:
        (B, 2·channels[-1], [T,] h, w) -> (B, C, [T,] h·D, w·D)
    """

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        _check_config(config, "ConventionalDecoder")
        self.config = config
        self.widths = widths = conventional_widths(config)
        conv = conv_class(config.dims)
        k, p, dims = config.kernel_size, config.kernel_size // 2, config.dims
        self.stem = nn.Sequential(
            conv(config.latent_channels, widths[-1], 1, bias=False),  # (B, c_n, [T,] h, w)
            make_norm(config.norm, widths[-1], dims),
            nn.ReLU(),
        )
        up = _levels(config) > 0
        layers: list[nn.Module] = []
        outs = (config.in_channels, *widths[:-1])
        for i in reversed(range(len(widths))):
            c, c_out, last = widths[i], outs[i], i == 0
            layers += [conv(c, c, k, 1, p, bias=False), make_norm(config.norm, c, dims), nn.ReLU()]
            if up:
                stride, extra = (2, 1) if dims == 2 else ((1, 2, 2), (0, 1, 1))
                # (B, c_out, [T,] 2h, 2w): output_padding makes the size exactly double
                layers.append(_TRANSPOSED[dims](c, c_out, k, stride, p, extra, bias=last))
            else:
                layers.append(conv(c, c_out, k, 1, p, bias=last))
            if not last:
                layers += [make_norm(config.norm, c_out, dims), nn.ReLU()]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Decode a latent into frames (3-D: windows of frames); an approximation, not an inverse."""
        cfg = self.config
        if z.dim() != cfg.dims + 2 or z.shape[1] != cfg.latent_channels:
            raise ValueError(
                f"ConventionalDecoder expects a latent with {cfg.latent_channels} channels and "
                f"{cfg.dims + 2} axes, got shape {tuple(z.shape)}"
            )
        return self.body(self.stem(z))
