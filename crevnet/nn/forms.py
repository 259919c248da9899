"""The reversible coupling forms the encoder can stack, and the registries that name them.

Every form is a :class:`~crevnet.nn.coupling.PairBijection` built from a
:class:`~crevnet.nn.coupling.BlockSpec`: an exact bijection for any sub-networks (convolutional
:class:`~crevnet.nn.block.ResidualFunction` stacks here), whose ``inverse`` runs the same weights
backwards and whose ``log_abs_det_jacobian`` gives ``log|det J|`` per sample.

Shared layout of the forms below (:class:`CouplingBlock`): a block that down-samples first applies the
2×2 space-to-depth ``S`` to both halves (a permutation, log-det 0), couples the halves at the new
resolution, and outputs them swapped, ``(y2, y1)``, so that the next block updates the other half (the
"fixed" mixing, also a permutation). The ``irevnet`` form (:class:`~crevnet.nn.block.IRevNetBlock`,
CrevNet's own) differs only where it down-samples: its ``F`` reads the passive half at full resolution
with a strided conv; at stride 1 it is the additive form.

=========  ===============================================================  ========================
name       coupling (``x1, x2`` the halves, after ``S``)                      ``log|det J|``
=========  ===============================================================  ========================
irevnet    ``y1 = S(x1) + F(x2)``, ``y2 = S(x2)`` (i-RevNet, Jacobsen 2018)   0
additive   ``y1 = x1 + F(x2)``, ``y2 = x2`` (NICE, Dinh 2015, eq. 6)          0
revnet     ``y1 = x1 + F(x2)``, ``y2 = x2 + G(y1)`` (RevNet, Gomez 2017)      0
affine     ``y1 = x1``, ``y2 = x2 ⊙ exp(s(x1)) + t(x1)`` (RealNVP eq. 4-5)     ``Σ s(x1)``
irn        ``y1 = x1 + φ(x2)``, ``y2 = x2 ⊙ exp(ρ(y1)) + η(y1)`` (IRN eq. 1)   ``Σ ρ(y1)``
=========  ===============================================================  ========================

The scales ``s`` and ``ρ`` are soft-clamped, ``c·tanh(raw / c)`` with ``c = spec.clamp`` (RealNVP's
tanh bound; FrEIA's ``clamp``), so that a block multiplies a number by at most ``e^c``: without the
bound the float32 round trip drifts once a scale grows during training. The RevNet block's determinant
is 1 because it is two additive couplings in a row; the scaled forms' is ``exp(Σ scale) > 0``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import ClassVar

import torch

from crevnet.nn.block import IRevNetBlock, ResidualFunction
from crevnet.nn.coupling import BlockSpec, PairBijection, check_block_channels, split_halves
from crevnet.nn.invconv import InvertibleConv1x1
from crevnet.nn.reshape import depth_to_space, space_to_depth

__all__ = [
    "COUPLINGS",
    "MIXINGS",
    "AdditiveBlock",
    "AffineBlock",
    "CouplingBlock",
    "IRNBlock",
    "RevNetBlock",
    "soft_clamp",
]


def soft_clamp(raw: torch.Tensor, bound: float) -> torch.Tensor:
    """``bound · tanh(raw / bound)``: the identity near 0, never beyond ``±bound`` (a bounded log-scale)."""
    return bound * torch.tanh(raw / bound)


def _per_sample_sum(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).sum(1)  # (B,)


def _net(spec: BlockSpec, c_in: int, c_out: int, reads_input: bool) -> ResidualFunction:
    """A sub-network at the block's output resolution; no pre-activation on the encoder's raw pixels."""
    return ResidualFunction(
        spec.dims,
        c_in,
        c_out,
        1,
        spec.mult,
        spec.kernel_size,
        spec.norm,  # type: ignore[arg-type]
        pre_activation=not (spec.first and reads_input),
        init_scale=spec.init_scale,
    )


class CouplingBlock(PairBijection):
    """Space-to-depth (stride 2), a coupling of the halves, then the swap of the halves.

    Subclasses implement :meth:`couple`, :meth:`uncouple` and :meth:`coupling_log_det` on the halves
    after space-to-depth.

    Args:
        in_channels: channels per half on input.
        out_channels: channels per half on output (``4 * in_channels`` when ``stride == 2``).
        stride: 1 or 2.

    Shape:
        forward: (B, 2·c_in, [T,] H, W) -> (B, 2·c_out, [T,] H/stride, W/stride); inverse: reverse.
    """

    volume_preserving: ClassVar[bool]

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        check_block_channels(in_channels, out_channels, stride, f"a {type(self).__name__}")
        self.stride = stride

    @classmethod
    def from_spec(cls, spec: BlockSpec) -> CouplingBlock:
        """Build the form from a :class:`~crevnet.nn.coupling.BlockSpec`."""
        raise NotImplementedError

    def couple(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The coupling's equations: ``(x1, x2) -> (y1, y2)``."""
        raise NotImplementedError

    def uncouple(self, y1: torch.Tensor, y2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The coupling's inverse: ``(y1, y2) -> (x1, x2)``."""
        raise NotImplementedError

    def coupling_log_det(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """``log|det J|`` of :meth:`couple` at ``(x1, x2)``, shape (B,)."""
        raise NotImplementedError

    def _down(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.stride == 2:
            return space_to_depth(x1), space_to_depth(x2)  # (B, 4c, [T,] H/2, W/2) each
        return x1, x2

    def forward_pair(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y1, y2 = self.couple(*self._down(x1, x2))
        return y2, y1  # the swap: the next block updates the other half

    def inverse_pair(self, y1: torch.Tensor, y2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x1, x2 = self.uncouple(y2, y1)
        if self.stride == 2:
            return depth_to_space(x1), depth_to_space(x2)
        return x1, x2

    def log_abs_det_jacobian(self, x: torch.Tensor) -> torch.Tensor:
        """``log|det J|`` per sample (B,): the coupling's; space-to-depth and the swap add 0."""
        return self.coupling_log_det(*self._down(*split_halves(x)))


class AdditiveBlock(CouplingBlock):
    """NICE's additive coupling (Dinh et al. 2015, eq. 6): ``y1 = x1 + F(x2)``, ``y2 = x2``.

    Inverse ``x1 = y1 − F(y2)``; the Jacobian is unit triangular, ``log|det J| = 0``.
    """

    volume_preserving: ClassVar[bool] = True

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__(spec.in_channels, spec.out_channels, spec.stride)
        c = spec.out_channels
        self.f = _net(spec, c, c, reads_input=True)

    @classmethod
    def from_spec(cls, spec: BlockSpec) -> AdditiveBlock:
        return cls(spec)

    def couple(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x1 + self.f(x2), x2

    def uncouple(self, y1: torch.Tensor, y2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return y1 - self.f(y2), y2

    def coupling_log_det(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        return x1.new_zeros(x1.shape[0])


class RevNetBlock(CouplingBlock):
    """The RevNet block (Gomez et al. 2017, eq. 1): ``y1 = x1 + F(x2)``, ``y2 = x2 + G(y1)``.

    Inverse ``x2 = y2 − G(y1)``, ``x1 = y1 − F(x2)``. Two additive couplings in a row, so
    ``det J = 1 · 1``: ``log|det J| = 0`` exactly (also FrEIA's ``NICECouplingBlock``).
    """

    volume_preserving: ClassVar[bool] = True

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__(spec.in_channels, spec.out_channels, spec.stride)
        c = spec.out_channels
        self.f = _net(spec, c, c, reads_input=True)
        self.g = _net(spec, c, c, reads_input=False)

    @classmethod
    def from_spec(cls, spec: BlockSpec) -> RevNetBlock:
        return cls(spec)

    def couple(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y1 = x1 + self.f(x2)
        return y1, x2 + self.g(y1)

    def uncouple(self, y1: torch.Tensor, y2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x2 = y2 - self.g(y1)
        return y1 - self.f(x2), x2

    def coupling_log_det(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        return x1.new_zeros(x1.shape[0])


class AffineBlock(CouplingBlock):
    """The affine coupling of RealNVP / Glow (Dinh et al. 2017, eq. 4-5; Kingma & Dhariwal 2018).

    ``y1 = x1``, ``y2 = x2 ⊙ exp(s(x1)) + t(x1)`` with ``[s_raw, t] = NN(x1)`` (one network, Glow's
    choice) and the bounded log-scale ``s = c·tanh(s_raw / c)``. Inverse ``x2 = (y2 − t(y1)) ⊙
    exp(−s(y1))``; ``log|det J| = Σ s(x1)`` over channels and positions.
    """

    volume_preserving: ClassVar[bool] = False

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__(spec.in_channels, spec.out_channels, spec.stride)
        c = spec.out_channels
        self.clamp = spec.clamp
        self.st = _net(spec, c, 2 * c, reads_input=True)

    @classmethod
    def from_spec(cls, spec: BlockSpec) -> AffineBlock:
        return cls(spec)

    def scale_shift(self, x1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(s(x1), t(x1))``: the clamped log-scale and the shift."""
        raw, shift = self.st(x1).chunk(2, dim=1)
        return soft_clamp(raw, self.clamp), shift

    def couple(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self.scale_shift(x1)
        return x1, x2 * torch.exp(s) + t

    def uncouple(self, y1: torch.Tensor, y2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self.scale_shift(y1)
        return y1, (y2 - t) * torch.exp(-s)

    def coupling_log_det(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        return _per_sample_sum(self.scale_shift(x1)[0])


class IRNBlock(CouplingBlock):
    """The affine form of Invertible Image Rescaling (Xiao et al. 2020, eq. 1).

    ``y1 = x1 + φ(x2)``, ``y2 = x2 ⊙ exp(ρ(y1)) + η(y1)`` with the bounded ``ρ = c·tanh(ρ_raw / c)``.
    Inverse ``x2 = (y2 − η(y1)) ⊙ exp(−ρ(y1))``, ``x1 = y1 − φ(x2)``; ``log|det J| = Σ ρ(y1)``.
    """

    volume_preserving: ClassVar[bool] = False

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__(spec.in_channels, spec.out_channels, spec.stride)
        c = spec.out_channels
        self.clamp = spec.clamp
        self.phi = _net(spec, c, c, reads_input=True)
        self.rho = _net(spec, c, c, reads_input=False)
        self.eta = _net(spec, c, c, reads_input=False)

    @classmethod
    def from_spec(cls, spec: BlockSpec) -> IRNBlock:
        return cls(spec)

    def log_scale(self, y1: torch.Tensor) -> torch.Tensor:
        """``ρ(y1)``, clamped."""
        return soft_clamp(self.rho(y1), self.clamp)

    def couple(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y1 = x1 + self.phi(x2)
        return y1, x2 * torch.exp(self.log_scale(y1)) + self.eta(y1)

    def uncouple(self, y1: torch.Tensor, y2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x2 = (y2 - self.eta(y1)) * torch.exp(-self.log_scale(y1))
        return y1 - self.phi(x2), x2

    def coupling_log_det(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        return _per_sample_sum(self.log_scale(x1 + self.phi(x2)))


COUPLINGS: Mapping[str, type[IRevNetBlock] | type[CouplingBlock]] = MappingProxyType(
    {
        "irevnet": IRevNetBlock,
        "additive": AdditiveBlock,
        "revnet": RevNetBlock,
        "affine": AffineBlock,
        "irn": IRNBlock,
    }
)
"""``EncoderConfig.coupling`` -> the form's class; each is built with ``cls.from_spec(spec)``."""


def _no_mixing(channels: int, dims: int) -> list[PairBijection]:
    return []  # the halves' swap inside every block is the whole mixing


def _invconv(channels: int, dims: int) -> list[PairBijection]:
    return [InvertibleConv1x1(channels, dims)]


MIXINGS: Mapping[str, Callable[[int, int], list[PairBijection]]] = MappingProxyType(
    {"fixed": _no_mixing, "invconv": _invconv}
)
"""``EncoderConfig.mixing`` -> a constructor ``(channels, dims) -> steps`` placed before every block:
``fixed`` adds none (the swap of halves each block ends with), ``invconv`` one learned invertible 1×1
convolution over all ``channels`` (Glow)."""
