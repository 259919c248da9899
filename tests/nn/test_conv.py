"""crevnet's Conv3d / Conv2d compute PyTorch's convolutions and their gradients, each path only where valid.

The paths depend on the CPU kind (``crevnet.nn.conv._avx512_cpu``); tests pin it (AVX2 unless a test
sets it) so that they check the same routing on every machine.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import crevnet.nn.conv as conv_module
from crevnet.nn import CrevNet, CrevNetConfig, EncoderConfig, PredictorConfig
from crevnet.nn.conv import (
    Conv2d,
    Conv3d,
    conv_class,
    conv_same,
    conv_time_folded,
    fold_time_kernel,
    native_backward,
)

_DETECTED_AVX512 = conv_module._avx512_cpu


@pytest.fixture(autouse=True)
def _avx2_cpu(monkeypatch):
    monkeypatch.setattr(conv_module, "_avx512_cpu", lambda: False)


def _uses_fast_path(y: torch.Tensor) -> bool:
    return y.grad_fn is not None and "_SameConv" in type(y.grad_fn).__name__


def _uses_folded_path(y: torch.Tensor) -> bool:
    """A 2-D conv whose output was viewed back to 5-D (conv_time_folded's graph)."""
    fn = y.grad_fn
    if fn is None or type(fn).__name__ != "ViewBackward0":
        return False
    return any(f is not None and type(f).__name__ == "ConvolutionBackward0" for f, _ in fn.next_functions)


def _reference_grads(x, w, b, padding, grad_out):
    """Gradients from PyTorch's own conv3d backward (an independent computation)."""
    x, w = x.detach().requires_grad_(), w.detach().requires_grad_()
    b = None if b is None else b.detach().requires_grad_()
    F.conv3d(x, w, b, padding=padding).backward(grad_out)
    return x.grad, w.grad, None if b is None else b.grad


@pytest.mark.parametrize(
    ("c_in", "c_out", "k", "padding", "bias"),
    [(3, 4, 3, 1, True), (2, 1, 3, 1, False), (1, 2, 5, 2, True), (3, 2, 3, 0, True), (2, 3, 3, 2, False)],
)
def test_gradcheck_float64(c_in, c_out, k, padding, bias):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, c_in, 3, 4, 5, dtype=torch.float64, generator=gen, requires_grad=True)
    w = torch.randn(c_out, c_in, k, k, k, dtype=torch.float64, generator=gen, requires_grad=True)
    b = torch.randn(c_out, dtype=torch.float64, generator=gen, requires_grad=True) if bias else None
    inputs = (x, w) if b is None else (x, w, b)

    def fn(*args):
        return conv_same(args[0], args[1], args[2] if len(args) > 2 else None, padding)

    assert _uses_fast_path(fn(*inputs))
    assert torch.autograd.gradcheck(fn, inputs)
    if padding == 1 and bias:  # its backward is itself differentiable (one case: it is slow)
        assert torch.autograd.gradgradcheck(fn, inputs)


@pytest.mark.parametrize(
    ("batch", "c_in", "c_out", "grid", "bias"),
    [
        (2, 24, 24, (3, 8, 8), True),  # an RPM gate conv (paper: 96 -> 96 on 3×8×8)
        (2, 32, 8, (3, 8, 8), True),  # conv_o
        (5, 1, 2, (3, 16, 16), False),  # the encoder's thin first-stage convs
        (5, 2, 1, (3, 16, 16), False),
    ],
)
def test_float32_equals_native_backward(batch, c_in, c_out, grid, bias):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(batch, c_in, *grid, generator=gen)
    w = torch.randn(c_out, c_in, 3, 3, 3, generator=gen) * 0.2
    b = torch.randn(c_out, generator=gen) if bias else None
    grad_out = torch.randn(batch, c_out, *grid, generator=gen)
    xg, wg = x.clone().requires_grad_(), w.clone().requires_grad_()
    bg = None if b is None else b.clone().requires_grad_()
    y = conv_same(xg, wg, bg, 1)
    assert _uses_fast_path(y)
    torch.testing.assert_close(y, F.conv3d(x, w, b, padding=1), rtol=0, atol=0)
    y.backward(grad_out)
    ref = _reference_grads(x, w, b, 1, grad_out)
    for got, want in zip((xg.grad, wg.grad, None if bg is None else bg.grad), ref, strict=True):
        if want is None:
            assert got is None
        else:
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * want.abs().max().item())


def test_only_requested_gradients_are_computed():
    conv = Conv3d(2, 3, 3, padding=1)
    conv.weight.requires_grad_(False)
    x = torch.randn(1, 2, 3, 4, 4, requires_grad=True)
    y = conv(x)
    assert _uses_fast_path(y)
    y.sum().backward()
    assert x.grad is not None and conv.weight.grad is None and conv.bias.grad is not None
    conv.weight.requires_grad_(True)
    x = torch.randn(1, 2, 3, 4, 4)  # frozen input: only parameter gradients
    conv(x).sum().backward()
    assert conv.weight.grad is not None


def test_non_contiguous_input():
    x = torch.randn(2, 3, 4, 5, 3).permute(0, 4, 1, 2, 3).requires_grad_()  # (2, 3, 3, 4, 5), strided
    conv = Conv3d(3, 2, 3, padding=1)
    y = conv(x)
    assert _uses_fast_path(y)
    y.square().sum().backward()
    ref_x = x.detach().contiguous().requires_grad_()
    with native_backward():
        conv.zero_grad()
        conv(ref_x).square().sum().backward()
    torch.testing.assert_close(x.grad, ref_x.grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"kernel_size": 1}, "1×1 convs measured slower on the fast path"),
        ({"kernel_size": 3, "padding": 1, "stride": (1, 2, 2)}, "strided"),
        ({"kernel_size": 3, "padding": 2, "dilation": 2}, "dilated"),
        ({"kernel_size": 3, "padding": 1, "groups": 2}, "grouped"),
        ({"kernel_size": 3, "padding": 1, "padding_mode": "replicate"}, "not zero padding"),
        ({"kernel_size": 3, "padding": "same"}, "string padding"),
        ({"kernel_size": (1, 3, 3), "padding": (0, 1, 1)}, "non-cube kernel"),
        ({"kernel_size": 3, "padding": 3}, "padding > k - 1: the adjoint would need negative padding"),
    ],
)
def test_falls_back_to_nn_conv3d(kwargs, why):
    torch.manual_seed(0)
    conv = Conv3d(4, 4, **kwargs)
    ref = nn.Conv3d(4, 4, **kwargs)
    ref.load_state_dict(conv.state_dict())
    x = torch.randn(1, 4, 3, 8, 8, requires_grad=True)
    y = conv(x)
    assert not _uses_fast_path(y), why
    torch.testing.assert_close(y, ref(x), rtol=0, atol=0)


def test_falls_back_without_grad_under_autocast_and_when_switched_off():
    conv = Conv3d(2, 2, 3, padding=1)
    x = torch.randn(1, 2, 3, 4, 4, requires_grad=True)
    with torch.no_grad():
        assert conv(x).grad_fn is None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv(x)
        assert y.dtype == torch.bfloat16 and not _uses_fast_path(y)
    with native_backward():
        assert not _uses_fast_path(conv(x))
    with pytest.raises(RuntimeError), native_backward():
        raise RuntimeError("the switch must be restored on the way out")
    assert _uses_fast_path(conv(x))


def test_parameters_and_state_dict_match_nn_conv3d():
    torch.manual_seed(0)
    ours, theirs = Conv3d(3, 5, 3, padding=1), nn.Conv3d(3, 5, 3, padding=1)
    assert isinstance(ours, nn.Conv3d)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in theirs.state_dict().items()
    }
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(2, 3, 3, 6, 6)
    torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)


@pytest.mark.parametrize("avx512", [False, True])
def test_crevnet_gradients_equal_with_native_backward(monkeypatch, avx512):
    """A whole 3-D CrevNet (full memory saving, ST-LSTM RPM) in float64, crevnet's conv paths (fast
    backward on AVX2; folded narrow and native wide convs on AVX-512) against PyTorch's own."""
    monkeypatch.setattr(conv_module, "_avx512_cpu", lambda: avx512)
    cfg = CrevNetConfig(
        encoder=EncoderConfig(stages=(1, 1, 1), channels=(2, 8, 32)),
        predictor=PredictorConfig(layers=2),
    )
    torch.manual_seed(0)
    model = CrevNet(cfg).double()
    video = torch.rand(2, 6, 1, 16, 16, dtype=torch.float64)

    def grads():
        model.zero_grad()
        model.loss(video, context=3, memory_saving="full").backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    fast = grads()
    with native_backward():
        native = grads()
    assert fast.keys() == native.keys()
    for name in fast:
        scale = native[name].abs().max().clamp_min(1e-30)
        assert (fast[name] - native[name]).abs().max() / scale < 1e-9, name


@pytest.mark.parametrize(
    ("c_in", "c_out", "fast"), [(1, 1, True), (1, 2, True), (2, 2, True), (2, 4, False), (8, 8, False)]
)
def test_conv2d_takes_the_fast_backward_only_for_narrow_convs(c_in, c_out, fast):
    # measured: full-resolution 1-2 channel convs 1.5-2.6x faster that way, wider 2-D convs slower
    torch.manual_seed(0)
    conv = Conv2d(c_in, c_out, 3, padding=1).double()
    ref = nn.Conv2d(c_in, c_out, 3, padding=1).double()
    ref.load_state_dict(conv.state_dict())
    x = torch.randn(3, c_in, 10, 10, dtype=torch.float64, requires_grad=True)
    y = conv(x)
    assert _uses_fast_path(y) is fast
    torch.testing.assert_close(y, ref(x), rtol=0, atol=0)
    g = torch.randn_like(y)
    got = torch.autograd.grad(y, (x, conv.weight, conv.bias), g)
    want = torch.autograd.grad(ref(x), (x, ref.weight, ref.bias), g)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert conv_class(2) is Conv2d and isinstance(conv, nn.Conv2d)
    assert not _uses_fast_path(Conv2d(1, 1, 3, padding=1, stride=2).double()(x[:, :1]))


@pytest.mark.parametrize("avx512", [True, False])
@pytest.mark.parametrize(("c_in", "c_out"), [(1, 2), (8, 8), (8, 16), (16, 32), (96, 96)])
def test_conv3d_paths_by_cpu_kind(monkeypatch, avx512, c_in, c_out):
    # measured: on an AVX-512 Xeon oneDNN's backward of the RPM's wide convs is faster than crevnet's
    # and its 2-D kernels run the encoder's narrow ones faster time-folded; on AVX2 every cube conv
    # gained from crevnet's fast backward
    monkeypatch.setattr(conv_module, "_avx512_cpu", lambda: avx512)
    conv = Conv3d(c_in, c_out, 3, padding=1)
    y = conv(torch.randn(1, c_in, 3, 4, 4, requires_grad=True))
    narrow = c_in * c_out <= 64
    assert _uses_fast_path(y) is (not avx512)
    assert _uses_folded_path(y) is (avx512 and narrow)


def test_avx512_detection_follows_torch():
    assert _DETECTED_AVX512() is (torch.backends.cpu.get_cpu_capability() == "AVX512")


# -- time folded into channels (AVX-512 CPUs, the encoder's narrow 3-D convs) ----------------------------
@pytest.mark.parametrize(
    ("c_in", "c_out", "k", "padding", "frames"),
    [(2, 1, 3, 1, 3), (1, 2, 3, 1, 3), (3, 4, 3, 0, 5), (1, 2, 5, 2, 3), (2, 3, 3, 2, 2), (4, 4, 3, 1, 1)],
)
def test_time_folded_conv_equals_conv3d_in_float64(c_in, c_out, k, padding, frames):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, c_in, frames, 5, 6, dtype=torch.float64, generator=gen, requires_grad=True)
    w = torch.randn(c_out, c_in, k, k, k, dtype=torch.float64, generator=gen, requires_grad=True)
    b = torch.randn(c_out, dtype=torch.float64, generator=gen, requires_grad=True)
    y = conv_time_folded(x, w, b, padding)
    ref = F.conv3d(x, w, b, padding=padding)  # an independent computation
    assert y.shape == ref.shape
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(ref)
    got = torch.autograd.grad(y, (x, w, b), g)
    want = torch.autograd.grad(ref, (x, w, b), g)
    for a, e in zip(got, want, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(lambda *t: conv_time_folded(*t, padding), (x, w, b))


def test_folded_kernel_layout():
    # output frame t reads input frame t' through the kernel's time slice t' - t + padding
    w = torch.arange(2 * 1 * 3 * 1 * 1, dtype=torch.float64).view(2, 1, 3, 1, 1) + 1
    kernel = fold_time_kernel(w, 3, 1).view(2, 3, 1, 3)  # (C_out, T_out, C_in, T_in)
    for o in range(2):
        for t in range(3):
            for tp in range(3):
                d = tp - t + 1
                want = w[o, 0, d, 0, 0] if 0 <= d < 3 else 0.0
                assert kernel[o, t, 0, tp] == want


@pytest.mark.parametrize(
    ("c_in", "c_out", "frames", "path"),
    [
        (2, 1, 3, "folded"),  # the encoder's first stage
        (8, 8, 3, "folded"),  # in · out = 64
        (16, 32, 3, "native"),  # the encoder's 8×8 stage: oneDNN's own conv (as the RPM's 96 -> 96)
        (2, 2, 9, "fast"),  # a long time axis is not folded
    ],
)
def test_conv3d_on_avx512_folds_the_narrow_convs(monkeypatch, c_in, c_out, frames, path):
    monkeypatch.setattr(conv_module, "_avx512_cpu", lambda: True)
    torch.manual_seed(0)
    conv = Conv3d(c_in, c_out, 3, padding=1).double()
    ref = nn.Conv3d(c_in, c_out, 3, padding=1).double()
    ref.load_state_dict(conv.state_dict())
    x = torch.randn(2, c_in, frames, 5, 5, dtype=torch.float64, requires_grad=True)
    y = conv(x)
    assert _uses_folded_path(y) is (path == "folded")
    assert _uses_fast_path(y) is (path == "fast")
    torch.testing.assert_close(y, ref(x), rtol=1e-12, atol=1e-12)
    g = torch.randn_like(y)
    got = torch.autograd.grad(y, (x, conv.weight, conv.bias), g)
    want = torch.autograd.grad(ref(x), (x, ref.weight, ref.bias), g)
    for a, e in zip(got, want, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-12)
    with torch.no_grad():  # inference takes the same path: forward and recomputation agree exactly
        assert torch.equal(conv(x), y.detach())
    with native_backward():
        assert not _uses_folded_path(conv(x)) and not _uses_fast_path(conv(x))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not _uses_folded_path(conv.float()(x.float()))


def test_traced_and_exported_graphs_keep_the_plain_conv3d(monkeypatch):
    # ONNX (legacy exporter) cannot export a conv with a computed kernel; traced graphs stay standard
    monkeypatch.setattr(conv_module, "_avx512_cpu", lambda: True)
    conv = Conv3d(2, 1, 3, padding=1).eval()
    x = torch.randn(1, 2, 3, 8, 8)
    with torch.no_grad():
        traced = torch.jit.trace(conv, x, check_trace=False)
    graph = str(traced.graph)
    assert "aten::stack" not in graph and "aten::_convolution" in graph
    torch.testing.assert_close(traced(x), F.conv3d(x, conv.weight, conv.bias, padding=1))
    assert _uses_folded_path(conv(x.requires_grad_()))  # eager training still folds


@pytest.mark.parametrize("avx512", [False, True])
def test_compiled_graphs_keep_the_plain_conv_without_a_graph_break(monkeypatch, avx512):
    # dynamo cannot read the fast-path switch (a ContextVar): a compiled model must not reach it, or
    # every narrow conv breaks the graph (fullgraph=True turns a break into an error)
    monkeypatch.setattr(conv_module, "_avx512_cpu", lambda: avx512)
    conv = Conv3d if avx512 else Conv2d  # narrow 3-D convs time-fold in eager training, 2-D ones
    model = nn.Sequential(conv(1, 2, 3, padding=1), conv(2, 2, 3, padding=1))  # take crevnet's backward
    x = torch.randn(2, 1, 3, 8, 8) if avx512 else torch.randn(2, 1, 8, 8)
    x.requires_grad_()
    assert _uses_fast_path(model[0](x)) or _uses_folded_path(model[0](x))
    torch._dynamo.reset()
    try:
        y = torch.compile(model, backend="eager", fullgraph=True)(x)
    finally:
        torch._dynamo.reset()
    torch.testing.assert_close(y, model(x))


def test_conv_same_takes_the_plain_conv_while_compiling(monkeypatch):
    x = torch.randn(2, 1, 8, 8, requires_grad=True)
    w = torch.randn(2, 1, 3, 3, requires_grad=True)
    assert _uses_fast_path(conv_same(x, w, None, 1))
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    y = conv_same(x, w, None, 1)
    assert not _uses_fast_path(y)
    torch.testing.assert_close(y, F.conv2d(x, w, padding=1))
