"""Every reversible form: exact inverse, log|det J| equal to the numerical one, memory-saving gradients."""

from __future__ import annotations

import math

import pytest
import torch

from crevnet.nn import (
    COUPLINGS,
    MAX_CLAMP,
    MIXINGS,
    Encoder,
    EncoderConfig,
    InvertibleConv1x1,
    space_to_depth,
)
from crevnet.testing import assert_invertible, assert_log_det, check_log_det

FORMS = sorted(COUPLINGS)
VOLUME_PRESERVING = ["additive", "irevnet", "revnet"]


def tiny(dims: int, coupling: str, mixing: str = "fixed", **kw) -> EncoderConfig:
    # two blocks, the second down-sampling: every code path of a form, tiny Jacobians
    return EncoderConfig(
        dims=dims, stages=(1, 1), strides=(1, 2), channels=(2, 8), coupling=coupling, mixing=mixing, **kw
    )


def frames(dims: int, batch: int = 2, size: int = 8, dtype=torch.float64) -> torch.Tensor:
    shape = (batch, 1, 2, size, size) if dims == 3 else (batch, 1, size, size)
    return torch.rand(shape, dtype=dtype, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("mixing", sorted(MIXINGS))
@pytest.mark.parametrize("coupling", FORMS)
def test_inverse_exact_in_float64_train_eval_and_after_a_step(coupling, mixing, dims):
    torch.manual_seed(0)
    enc = Encoder(tiny(dims, coupling, mixing, init_scale=1.0)).double()
    x = frames(dims, size=16)
    opt = torch.optim.Adam(enc.parameters(), lr=1e-2)
    for _ in range(2):
        for train in (True, False):
            enc.train(train)
            assert_invertible(enc, x, atol=1e-12)
        enc.train()
        opt.zero_grad()
        z = enc(x)
        (enc.inverse(0.5 * z) - x.flip(-1)).square().mean().backward()
        opt.step()


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("mixing", sorted(MIXINGS))
@pytest.mark.parametrize("coupling", FORMS)
def test_log_det_equals_the_numerical_jacobian(coupling, mixing, dims):
    torch.manual_seed(0)
    # init_scale 1 and one optimizer step's worth of perturbation: scales far from 0, a real test
    enc = Encoder(tiny(dims, coupling, mixing, init_scale=1.0))
    with torch.no_grad():
        for p in enc.parameters():
            p.add_(0.05 * torch.randn_like(p))
    check = assert_log_det(enc, frames(dims), atol=1e-8, round_trip_atol=1e-12)
    reported = torch.tensor(check.reported)
    if coupling in VOLUME_PRESERVING and mixing == "fixed":
        assert (reported == 0).all()  # exactly, not to round-off
        assert max(abs(v) for v in check.numerical) <= 1e-10  # numeric |det J| = 1
    else:
        assert reported.abs().min() > 1e-3  # the check compared something non-trivial
    assert all(s != 0 for s in check.sign)


@pytest.mark.parametrize("coupling", VOLUME_PRESERVING)
def test_volume_preserving_forms_report_exactly_zero_per_block(coupling):
    torch.manual_seed(0)
    enc = Encoder(tiny(2, coupling, init_scale=1.0)).double()
    x = frames(2)
    h = space_to_depth(x)
    for block in enc.blocks:
        assert torch.equal(block.log_abs_det_jacobian(h), torch.zeros(2, dtype=torch.float64))
        check = check_log_det(block, h)
        assert max(abs(v) for v in check.numerical) <= 1e-12 and check.sign == (1.0, 1.0)
        h = block(h)


def test_space_to_depth_is_a_permutation_with_log_det_zero():
    class Psi(torch.nn.Module):
        def forward(self, x):
            return space_to_depth(x)

        def inverse(self, y):
            from crevnet.nn import depth_to_space

            return depth_to_space(y)

        def log_abs_det_jacobian(self, x):
            return x.new_zeros(x.shape[0])

    check = assert_log_det(Psi(), torch.rand(2, 1, 4, 4))
    assert check.numerical == (0.0, 0.0) and check.inverse_error == 0.0


@pytest.mark.parametrize("dims", [2, 3])
def test_invconv_inverse_exact_and_log_det_numeric(dims):
    torch.manual_seed(0)
    conv = InvertibleConv1x1(6, dims)
    with torch.no_grad():  # away from the rotation it starts as: a non-zero log-det
        conv.log_s.add_(torch.linspace(-0.5, 0.8, 6))
        conv.lower.add_(0.3 * torch.randn(6, 6))
        conv.upper.add_(0.3 * torch.randn(6, 6))
    x = torch.rand((2, 6, 2, 3, 3) if dims == 3 else (2, 6, 3, 3))
    check = assert_log_det(conv, x, atol=1e-8, round_trip_atol=1e-12)
    positions = x[0, 0].numel()
    assert check.reported[0] == pytest.approx(positions * conv.log_s.sum().item(), rel=1e-6)
    assert abs(check.reported[0]) > 1
    # the LU product is the matrix the conv applies, and the triangular solves give its inverse
    w, w_inv = conv.double().weight(), conv.inverse_weight()
    torch.testing.assert_close(w @ w_inv, torch.eye(6, dtype=torch.float64), atol=1e-13, rtol=0)
    assert torch.linalg.slogdet(w)[1].item() == pytest.approx(conv.log_s.sum().item(), abs=1e-12)


def _run(enc, x, memory_saving):
    enc.zero_grad()
    xg = x.clone().requires_grad_(True)
    z = enc(xg, memory_saving=memory_saving)
    c = z.shape[1] // 2
    y = enc.inverse(torch.cat((z[:, :c], 0.9 * z[:, c:]), 1), memory_saving=memory_saving)
    loss = (y - x.roll(1, dims=-1)).square().mean() + z[:, :c].square().mean()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in enc.named_parameters()}, xg.grad.clone()


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("mixing", sorted(MIXINGS))
@pytest.mark.parametrize("coupling", FORMS)
def test_memory_saving_gradients_equal_plain_autograd(coupling, mixing, dims):
    torch.manual_seed(0)
    enc = Encoder(tiny(dims, coupling, mixing, init_scale=1.0)).double()
    x = frames(dims, size=16)
    loss_a, grads_a, gx_a = _run(enc, x, False)
    loss_b, grads_b, gx_b = _run(enc, x, True)
    torch.testing.assert_close(loss_b, loss_a, rtol=1e-12, atol=0)
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:
        torch.testing.assert_close(grads_b[name], grads_a[name], rtol=1e-8, atol=1e-12, msg=name)
    torch.testing.assert_close(gx_b, gx_a, rtol=1e-8, atol=1e-14)


def test_scaled_forms_keep_the_log_scale_within_the_clamp():
    torch.manual_seed(0)
    enc = Encoder(tiny(2, "affine", clamp=0.5, init_scale=50.0)).double()  # saturating scales
    x = frames(2, size=16)
    h = space_to_depth(x)
    block = enc.blocks[0]
    s, _ = block.scale_shift(h[:, :2])
    assert s.abs().max().item() <= 0.5 and s.abs().max().item() > 0.4
    assert_invertible(enc, x, atol=1e-12)


def test_unknown_coupling_or_mixing_names_the_valid_ones():
    with pytest.raises(ValueError, match="coupling must be one of irevnet, additive, revnet, affine, irn"):
        EncoderConfig(coupling="glow")
    with pytest.raises(ValueError, match="mixing must be one of fixed, invconv"):
        EncoderConfig(mixing="random")


@pytest.mark.parametrize("clamp", [0.0, -1.0, MAX_CLAMP * 2, 50.0, math.inf, math.nan])
def test_a_clamp_that_would_make_float32_lossy_is_refused(clamp):
    with pytest.raises(ValueError, match=r"clamp must be in \(0, 2\].*float32 inverse"):
        EncoderConfig(coupling="affine", clamp=clamp)


def test_default_is_the_irevnet_form_and_the_paper_encoder_is_unchanged():
    cfg = EncoderConfig()
    assert (cfg.coupling, cfg.mixing) == ("irevnet", "fixed")
    enc = Encoder(cfg)
    assert sum(p.numel() for p in enc.parameters()) == 104_516
    assert all(name.startswith("blocks.") and ".f." in name for name, _ in enc.named_parameters())


@pytest.mark.parametrize("channels", [4, 16, 64])
def test_invconv_export_inverse_by_products_equals_the_triangular_solves(channels, monkeypatch):
    # inside torch.onnx.export the inverse is built from matrix products (ONNX has no triangular solve)
    torch.manual_seed(0)
    conv = InvertibleConv1x1(channels, 2)
    solved = conv.inverse_weight()
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)
    by_products = conv.inverse_weight()
    torch.testing.assert_close(by_products, solved, rtol=0, atol=2e-6)
    eye = torch.eye(channels, dtype=torch.float64)
    assert (conv.double().weight() @ conv.inverse_weight() - eye).abs().max() < 1e-12
