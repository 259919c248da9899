"""The memory-saving backward gives plain autograd's loss and gradients and stores far less."""

from dataclasses import replace

import pytest
import torch
from torch import nn

from crevnet.nn import Encoder, EncoderConfig, SavedTensorCounter, recomputed

TINY3D = EncoderConfig(stages=(1, 2, 1))
TINY2D = EncoderConfig(dims=2, stages=(2, 2, 1))


def objective(
    enc: Encoder, x: torch.Tensor, head: nn.Module | None = None, memory_saving: bool = False
) -> torch.Tensor:
    z = enc(x, memory_saving=memory_saving)
    c = z.shape[1] // 2
    y = enc.inverse(torch.cat((z[:, :c], 0.9 * z[:, c:]), dim=1), memory_saving=memory_saving)
    loss = (y - x.roll(1, dims=-1)).square().mean() + z[:, :c].square().mean()
    if head is not None:  # the latent also feeds another module
        loss = loss + head(z).square().mean()
    return loss


def run(enc, x, memory_saving, head=None):
    enc.zero_grad()
    if head is not None:
        head.zero_grad()
    xg = x.clone().requires_grad_(True)
    loss = objective(enc, xg, head, memory_saving)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in enc.named_parameters()}
    if head is not None:
        grads.update({"head." + n: p.grad.clone() for n, p in head.named_parameters()})
    return loss.detach(), grads, xg.grad.clone()


def shape_of(cfg, batch=2):
    return (batch, 1, 3, 16, 16) if cfg.dims == 3 else (batch, 1, 16, 16)


@pytest.mark.parametrize("cfg", [TINY3D, TINY2D], ids=["3d", "2d"])
def test_same_loss_and_gradients_fp64(cfg):
    torch.manual_seed(0)
    enc = Encoder(cfg).double()
    head = (nn.Conv3d if cfg.dims == 3 else nn.Conv2d)(64, 3, 1).double()
    x = torch.rand(shape_of(cfg), dtype=torch.float64)
    loss_a, grads_a, gx_a = run(enc, x, False, head)
    loss_b, grads_b, gx_b = run(enc, x, True, head)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) == len(list(enc.parameters())) + 2
    torch.testing.assert_close(loss_b, loss_a, rtol=1e-12, atol=0)
    for name in grads_a:
        torch.testing.assert_close(grads_b[name], grads_a[name], rtol=1e-4, atol=0, msg=name)
    torch.testing.assert_close(gx_b, gx_a, rtol=1e-4, atol=1e-14)


@pytest.mark.parametrize("cfg", [TINY3D, TINY2D], ids=["3d", "2d"])
def test_same_loss_and_gradients_fp32(cfg):
    # In float32 the plain gradients themselves are only accurate to round-off relative to the largest
    # gradient of the model (a parameter whose gradient cancels to 1e-6 carries relative noise of
    # 1e-3 in either mode; see benchmarks/reversibility.py, grad_fp32_noise). So the tolerance is
    # rtol 1e-4 per element plus an absolute 1e-4 of the model's largest gradient.
    torch.manual_seed(0)
    enc = Encoder(cfg)
    x = torch.rand(shape_of(cfg))
    loss_a, grads_a, gx_a = run(enc, x, False)
    loss_b, grads_b, gx_b = run(enc, x, True)
    torch.testing.assert_close(loss_b, loss_a, rtol=1e-6, atol=0)
    scale = max(g.abs().max().item() for g in grads_a.values())
    for name in grads_a:
        torch.testing.assert_close(grads_b[name], grads_a[name], rtol=1e-4, atol=1e-4 * scale, msg=name)
    torch.testing.assert_close(gx_b, gx_a, rtol=1e-4, atol=1e-4 * gx_a.abs().max().item())


def test_batchnorm_running_stats_updated_once():
    torch.manual_seed(0)
    cfg = replace(TINY2D, norm="batch")
    x = torch.rand(shape_of(cfg, 4), dtype=torch.float64)
    plain = Encoder(cfg).double()
    memsave = Encoder(cfg).double()
    memsave.load_state_dict(plain.state_dict())
    run(plain, x, False)
    run(memsave, x, True)
    for (name, a), b in zip(plain.named_buffers(), memsave.buffers(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=0, msg=name)
    tracked = [b for n, b in plain.named_buffers() if n.endswith("num_batches_tracked")]
    assert tracked and all(t.item() == 2 for t in tracked)  # one encode + one decode


@pytest.mark.parametrize("cfg", [EncoderConfig(), EncoderConfig(dims=2)], ids=["paper3d", "2d"])
def test_saved_bytes_at_most_ten_percent_and_independent_of_depth(cfg):
    def saved(c: EncoderConfig, memory_saving: bool) -> int:
        torch.manual_seed(0)
        enc = Encoder(c)
        with SavedTensorCounter() as counter:
            loss = objective(enc, torch.rand(shape_of(c, 8)), memory_saving=memory_saving)
        loss.backward()
        return counter.bytes

    deep = replace(cfg, stages=tuple(2 * n for n in cfg.stages))
    plain, memsave = saved(cfg, False), saved(cfg, True)
    plain_deep, memsave_deep = saved(deep, False), saved(deep, True)
    assert memsave <= 0.10 * plain
    assert memsave_deep == memsave  # nothing grows with depth
    assert plain_deep > 1.5 * plain


def test_counter_counts_each_storage_once():
    a = torch.ones(1000, requires_grad=True)
    with SavedTensorCounter() as counter:
        (a * a).sum()  # mul saves `a` twice: one storage
    assert counter.bytes == 4000


def test_no_grad_and_eval_paths_match_plain():
    torch.manual_seed(0)
    enc = Encoder(TINY2D)
    x = torch.rand(shape_of(TINY2D))
    with torch.no_grad():
        z_plain = enc(x)
        z_mem = enc(x, memory_saving=True)
    torch.testing.assert_close(z_mem, z_plain, rtol=0, atol=0)


def test_double_backward_is_refused():
    torch.manual_seed(0)
    enc = Encoder(TINY2D).double()
    x = torch.rand(shape_of(TINY2D), dtype=torch.float64, requires_grad=True)
    (gx,) = torch.autograd.grad(enc(x, memory_saving=True).square().sum(), x, create_graph=True)
    with pytest.raises(RuntimeError):
        gx.sum().backward()


def test_autograd_grad_supported():
    torch.manual_seed(0)
    enc = Encoder(TINY2D).double()
    x = torch.rand(shape_of(TINY2D), dtype=torch.float64)
    params = list(enc.parameters())
    grads = torch.autograd.grad(enc(x, memory_saving=True).square().sum(), params)
    ref = torch.autograd.grad(enc(x).square().sum(), params)
    for g, r in zip(grads, ref, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-6, atol=1e-14)


def test_flop_counter_works_through_the_memory_saving_backward():
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    x = torch.rand(shape_of(TINY2D))

    def flops(memory_saving: bool) -> int:
        enc = Encoder(TINY2D)
        with FlopCounterMode(display=False) as counter:
            z = enc(x, memory_saving=memory_saving) * 0.5
            enc.inverse(z, memory_saving=memory_saving).sum().backward()
        return counter.get_total_flops()

    # The replay costs one extra forward per block and per direction, on top of plain autograd.
    assert flops(True) > flops(False) > 0


def test_replay_evaluates_each_residual_function_once_per_direction():
    torch.manual_seed(0)
    enc = Encoder(TINY2D).double()
    calls = {"n": 0}
    for block in enc.blocks:
        block.f.register_forward_hook(lambda *_: calls.__setitem__("n", calls["n"] + 1))
    x = torch.rand(shape_of(TINY2D), dtype=torch.float64)
    loss = objective(enc, x, memory_saving=True)
    assert calls["n"] == 2 * len(enc.blocks)  # encode + decode
    loss.backward()
    # one more F per block and direction (inverse and recomputation fused), not two
    assert calls["n"] == 4 * len(enc.blocks)


@pytest.mark.parametrize("stride", [1, 2])
def test_block_replays_recover_the_input_and_recompute_the_output(stride):
    from crevnet.nn import IRevNetBlock

    torch.manual_seed(0)
    block = IRevNetBlock(2, 2, 8 if stride == 2 else 2, stride).double()
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    y = block(x)
    parts, y_re = block.replay_forward(y)
    torch.testing.assert_close(torch.cat(parts, dim=1), x, rtol=0, atol=1e-12)
    torch.testing.assert_close(y_re, y, rtol=0, atol=1e-12)
    parts, x_re = block.replay_inverse(x)
    torch.testing.assert_close(torch.cat(parts, dim=1), y, rtol=0, atol=1e-12)
    torch.testing.assert_close(x_re, x, rtol=0, atol=1e-12)
    assert all(p.is_leaf and p.requires_grad for p in parts)


# -- recomputed: one step kept by its inputs only --------------------------------------------------
def test_recomputed_step_updates_batchnorm_once_and_gives_plain_gradients():
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.Tanh()).double()
    saving = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.Tanh()).double()
    saving.load_state_dict(plain.state_dict())
    x = torch.randn(4, 2, 5, 5, dtype=torch.float64)
    h = torch.randn(4, 3, 5, 5, dtype=torch.float64)

    def step(module):
        return lambda x, h, absent: [module(x) * h, None, h]  # h is handed back unchanged

    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ya = step(plain)(xa, h, None)[0]
    with SavedTensorCounter() as counter:
        yb, none_b, hb = recomputed(step(saving), [xb, h, None], saving)
    assert counter.bytes == x.numel() * 8 + h.numel() * 8  # the inputs, nothing else
    assert none_b is None and torch.equal(hb, h) and hb is not h
    ya.sum().backward()
    yb.sum().backward()
    for (name, a), b in zip(plain.named_buffers(), saving.buffers(), strict=True):
        assert torch.equal(a, b), name  # updated by the forward only, not again by the recomputation
    torch.testing.assert_close(xb.grad, xa.grad, rtol=1e-12, atol=0)
    for (name, p), q in zip(plain.named_parameters(), saving.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-12, atol=0, msg=name)


def test_recomputed_runs_plainly_without_grad():
    module = nn.Linear(3, 3)
    with torch.no_grad():
        (y,) = recomputed(lambda x: [module(x)], [torch.randn(2, 3)], module)
    assert y.grad_fn is None


def test_counter_can_leave_parameters_out():
    conv = nn.Conv2d(2, 3, 3)
    x = torch.randn(1, 2, 5, 5, requires_grad=True)
    with SavedTensorCounter() as everything:
        conv(x)
    with SavedTensorCounter(exclude=conv.parameters()) as activations:
        conv(x)
    assert activations.bytes == x.numel() * 4  # the input, not the weight
    assert everything.bytes == activations.bytes + conv.weight.numel() * 4
