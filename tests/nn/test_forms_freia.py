"""The reversible forms against FrEIA (an independent implementation), with the same sub-network weights.

What is compared, precisely (float64, outputs and per-sample log-dets to 1e-10):

* crevnet's blocks end with the swap of the halves, ``forward(x) = (y2, y1)``; FrEIA's output
  ``(y1, y2)`` is compared after swapping its halves.
* ``revnet`` (``y1 = x1 + F(x2)``, ``y2 = x2 + G(y1)``) is FrEIA's ``NICECouplingBlock`` with our ``F``
  and ``G``; ``additive`` (one-sided NICE) is the same block with ``G ≡ 0``.
* ``affine`` (``y1 = x1``, ``y2 = x2·exp(s(x1)) + t(x1)``, one network giving ``[s_raw, t]``) is
  FrEIA's ``GLOWCouplingBlock`` with ``subnet1`` = our network and ``subnet2 ≡ 0`` (its first
  coupling becomes the identity), and ``RNVPCouplingBlock`` with ``subnet_s1`` / ``subnet_t1`` = the
  first / second half of our network's output and ``subnet_s2 = subnet_t2 ≡ 0``. FrEIA's scale is
  ``clamp · f_clamp(raw)``; with ``clamp = c`` and ``f_clamp(u) = tanh(u / c)`` it is our
  ``c·tanh(raw / c)``.
* Down-sampling: FrEIA's ``IRevNetDownsampling`` (default backend, 2-D only) orders channels as our
  ``space_to_depth`` (``c·4 + dy·2 + dx``) and is compared directly; a stride-2 block of the psi-first
  forms is FrEIA's ``IRevNetDownsampling`` followed by the coupling. The ``irevnet`` stride-2 block,
  whose ``F`` reads the half at full resolution, is FrEIA's down-sampling followed by a NICE block
  whose ``F`` is ours applied to ``depth_to_space`` of its input, and ``G ≡ 0``.
* ``irn`` has no FrEIA counterpart; it is checked against the numerical Jacobian in test_forms.py.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from crevnet.nn import BlockSpec, IRevNetBlock, depth_to_space, merge_halves, space_to_depth, split_halves
from crevnet.nn.forms import AdditiveBlock, AffineBlock, RevNetBlock

Fm = pytest.importorskip("FrEIA.modules")

CLAMP = 1.5
TOL = dict(rtol=0, atol=1e-10)


class Zero(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(x.shape[0], self.channels, *x.shape[2:])


class Slice(nn.Module):
    """Channels ``[start, stop)`` of a shared network's output (FrEIA's RNVP wants separate s and t)."""

    def __init__(self, net: nn.Module, start: int, stop: int) -> None:
        super().__init__()
        self.net, self.start, self.stop = net, start, stop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[:, self.start : self.stop]


class ThroughDepthToSpace(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.net(depth_to_space(u))


def constructor(nets: list[nn.Module]):
    """A FrEIA ``subnet_constructor`` handing out our networks in FrEIA's construction order."""
    queue = list(nets)
    return lambda c_in, c_out: queue.pop(0)


def freia_run(modules, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    log_det = x.new_zeros(x.shape[0])
    for m in modules:
        (x,), j = m([x], rev=False, jac=True)
        log_det = log_det + torch.as_tensor(j, dtype=x.dtype)
    y1, y2 = split_halves(x)
    return merge_halves(y2, y1), log_det  # crevnet's blocks end with the swap


def perturbed(block: nn.Module) -> nn.Module:
    torch.manual_seed(1)
    with torch.no_grad():
        for p in block.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return block.double()


def case(dims: int, stride: int) -> tuple[BlockSpec, torch.Tensor]:
    c = 2
    spec = BlockSpec(dims, c, c * (4 if stride == 2 else 1), stride, init_scale=1.0, clamp=CLAMP)
    shape = (3, 2 * c, 2, 8, 8) if dims == 3 else (3, 2 * c, 8, 8)
    return spec, torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


def dims_after(x: torch.Tensor, stride: int) -> list[tuple[int, ...]]:
    c, *rest = x.shape[1:]
    if stride == 2:
        c, rest = 4 * c, [*rest[:-2], rest[-2] // 2, rest[-1] // 2]
    return [(c, *rest)]


def down(x: torch.Tensor, stride: int):
    return [Fm.IRevNetDownsampling([tuple(x.shape[1:])]).double()] if stride == 2 else []


STRIDES = [(2, 1), (3, 1), (2, 2)]  # (dims, stride); FrEIA's down-sampling is 2-D only


def compare(ours: nn.Module, theirs: list, x: torch.Tensor) -> None:
    with torch.no_grad():
        y, ld = ours(x), ours.log_abs_det_jacobian(x)
        y_ref, ld_ref = freia_run(theirs, x)
    torch.testing.assert_close(y, y_ref, **TOL)
    torch.testing.assert_close(ld, ld_ref, **TOL)


@pytest.mark.parametrize("dims,stride", STRIDES)
def test_revnet_is_freia_nice(dims, stride):
    spec, x = case(dims, stride)
    ours = perturbed(RevNetBlock(spec))
    nice = Fm.NICECouplingBlock(dims_after(x, stride), subnet_constructor=constructor([ours.f, ours.g]))
    compare(ours, [*down(x, stride), nice], x)


@pytest.mark.parametrize("dims,stride", STRIDES)
def test_additive_is_freia_nice_with_g_zero(dims, stride):
    spec, x = case(dims, stride)
    ours = perturbed(AdditiveBlock(spec))
    c = spec.out_channels
    nice = Fm.NICECouplingBlock(dims_after(x, stride), subnet_constructor=constructor([ours.f, Zero(c)]))
    compare(ours, [*down(x, stride), nice], x)


def _clamp_like_ours(u: torch.Tensor) -> torch.Tensor:
    return torch.tanh(u / CLAMP)


@pytest.mark.parametrize("dims,stride", STRIDES)
def test_affine_is_freia_glow_and_rnvp(dims, stride):
    spec, x = case(dims, stride)
    ours = perturbed(AffineBlock(spec))
    c = spec.out_channels
    glow = Fm.GLOWCouplingBlock(
        dims_after(x, stride),
        subnet_constructor=constructor([ours.st, Zero(2 * c)]),
        clamp=CLAMP,
        clamp_activation=_clamp_like_ours,
    )
    compare(ours, [*down(x, stride), glow], x)
    rnvp = Fm.RNVPCouplingBlock(
        dims_after(x, stride),
        subnet_constructor=constructor([Slice(ours.st, 0, c), Slice(ours.st, c, 2 * c), Zero(c), Zero(c)]),
        clamp=CLAMP,
        clamp_activation=_clamp_like_ours,
    )
    compare(ours, [*down(x, stride), rnvp], x)
    with torch.no_grad():  # the log-det is not trivially 0
        assert ours.log_abs_det_jacobian(x).abs().min() > 1e-2


def test_space_to_depth_is_freia_irevnet_downsampling():
    x = torch.randn(2, 3, 8, 6, dtype=torch.float64)
    psi = Fm.IRevNetDownsampling([(3, 8, 6)]).double()
    (y,), j = psi([x], jac=True)
    assert torch.equal(y, space_to_depth(x))
    assert float(torch.as_tensor(j).abs().max()) == 0.0
    (back,), _ = psi([y], rev=True, jac=True)
    assert torch.equal(back, x)


def test_irevnet_down_sampling_block_is_freia_downsampling_then_nice():
    spec, x = case(2, 2)
    ours = perturbed(IRevNetBlock.from_spec(spec))
    c = spec.out_channels
    nice = Fm.NICECouplingBlock(
        dims_after(x, 2), subnet_constructor=constructor([ThroughDepthToSpace(ours.f), Zero(c)])
    )
    compare(ours, [*down(x, 2), nice], x)
