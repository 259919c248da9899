"""The memory-saving run modes of the whole CrevNet (off | encoder | full): same loss, same gradients,
BatchNorm statistics and random numbers as plain autograd, and far fewer saved bytes."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from crevnet.nn import (
    CrevNet,
    CrevNetConfig,
    EncoderConfig,
    MemorySaving,
    PredictorConfig,
    ReversiblePredictor,
    SavedTensorCounter,
    without_run_options,
)
from crevnet.testing import tiny_config

MODES = ["off", "encoder", "full"]
TINY = {3: tiny_config(3), 2: tiny_config(2)}


def _video(dtype: torch.dtype = torch.float64, b: int = 2, t: int = 7, size: int = 8) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(b, t, 1, size, size, generator=g).to(dtype)


def _grads(model: CrevNet, video: torch.Tensor, mode: str, sampling_prob: float, **kw) -> dict:
    model.zero_grad()
    v = video.clone().requires_grad_(True)
    loss = model.loss(
        v, sampling_prob, context=4, generator=torch.Generator().manual_seed(1), memory_saving=mode, **kw
    )
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    grads["video"] = v.grad.detach().clone()
    grads["loss"] = loss.detach()
    return grads


def _max_rel(a: dict, b: dict) -> float:
    """max over tensors of max|a − b| / max|b| (each tensor against its own scale)."""
    return max(((a[k] - b[k]).abs().max() / b[k].abs().max()).item() for k in b)


def _max_rel_global(a: dict, b: dict) -> float:
    """max|a − b| over every parameter, relative to the model's largest gradient."""
    keys = [k for k in b if k != "loss"]
    scale = max(b[k].abs().max().item() for k in keys)
    return max((a[k] - b[k]).abs().max().item() for k in keys) / scale


@pytest.mark.parametrize("sampling_prob", [0.0, 0.5])
@pytest.mark.parametrize("dims", [2, 3])
def test_every_mode_gives_plain_gradients_in_float64(dims: int, sampling_prob: float) -> None:
    torch.manual_seed(0)
    model = CrevNet(TINY[dims]).double()
    video = _video()
    ref = _grads(model, video, "off", sampling_prob)
    assert all(g.abs().max() > 0 for k, g in ref.items() if k != "loss")  # every weight is reached
    for mode in ("encoder", "full"):
        got = _grads(model, video, mode, sampling_prob)
        assert got.keys() == ref.keys()
        assert _max_rel(got, ref) <= 1e-10, mode


@pytest.mark.parametrize("dims", [2, 3])
def test_every_mode_gives_plain_gradients_with_cells_wider_than_a_half(dims: int) -> None:
    # PredictorConfig.hidden: the 1×1 projections are recomputed in full mode like the cells.
    torch.manual_seed(0)
    model = CrevNet(tiny_config(dims, hidden=11)).double()
    video = _video()
    ref = _grads(model, video, "off", 0.5)
    assert any(k.startswith("predictor.outs.") for k in ref)
    assert all(g.abs().max() > 0 for k, g in ref.items() if k != "loss")
    for mode in ("encoder", "full"):
        assert _max_rel(_grads(model, video, mode, 0.5), ref) <= 1e-10, mode


@pytest.mark.parametrize("sampling_prob", [0.0, 0.5])
@pytest.mark.parametrize("dims", [2, 3])
def test_float32_difference_is_within_plain_float32_noise(dims: int, sampling_prob: float) -> None:
    # As benchmarks/reversibility.py reports it: the float32 difference between modes, relative to the
    # model's largest gradient, next to the same measure between plain float32 and plain float64.
    torch.manual_seed(0)
    model64 = CrevNet(TINY[dims]).double()
    ref64 = _grads(model64, _video(), "off", sampling_prob)
    model = model64.float()
    plain = _grads(model, _video(torch.float32), "off", sampling_prob)
    noise = _max_rel_global(plain, ref64)
    assert 0 < noise < 1e-5
    for mode in ("encoder", "full"):
        got = _grads(model, _video(torch.float32), mode, sampling_prob)
        torch.testing.assert_close(got["loss"], plain["loss"], rtol=0, atol=0)  # same forward ops
        assert _max_rel_global(got, plain) <= 10 * noise, mode


def test_full_mode_recomputes_the_rpm_exactly() -> None:
    # With the encoder's reversible backward on in both, the only difference is the RPM's
    # recomputation, which repeats the very same float32 ops.
    torch.manual_seed(0)
    model = CrevNet(TINY[3])
    video = _video(torch.float32)
    a = _grads(model, video, "encoder", 0.5)
    b = _grads(model, video, "full", 0.5)
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-6, atol=1e-9, msg=k)


def test_full_mode_keeps_batchnorm_statistics_and_random_numbers_of_plain_mode() -> None:
    cfg = dataclasses.replace(TINY[3], encoder=dataclasses.replace(TINY[3].encoder, norm="batch"))
    torch.manual_seed(0)
    plain = CrevNet(cfg).double()
    states = {}
    for mode in MODES:
        model = CrevNet(cfg).double()
        model.load_state_dict(plain.state_dict())
        torch.manual_seed(7)  # generator=None: the sampling draws come from the global generator
        model.loss(_video(), 0.5, context=4, memory_saving=mode).backward()
        states[mode] = (torch.get_rng_state(), dict(model.named_buffers()))
    rng_off, buffers_off = states["off"]
    for mode in ("encoder", "full"):
        rng, buffers = states[mode]
        assert torch.equal(rng, rng_off), mode  # backward drew no random numbers
        for name, value in buffers_off.items():
            torch.testing.assert_close(buffers[name], value, rtol=1e-10, atol=0, msg=f"{mode} {name}")


def test_recomputation_re_enters_the_callers_autocast() -> None:
    # Backward usually runs after the caller's autocast block has closed: the recomputation must
    # rebuild the step in bf16 as the forward ran it (in float32 it differs by ~1e-2), or it would
    # differentiate another function.
    torch.manual_seed(0)
    rpm = ReversiblePredictor(2, 4, PredictorConfig(layers=2))
    z = torch.randn(2, 8, 4, 4)
    grads = []
    for memory_saving in (False, True):
        rpm.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, _ = rpm(z, memory_saving=memory_saving)
        out.square().sum().backward()
        grads.append([p.grad.clone() for p in rpm.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-9)


def test_full_mode_with_the_bf16_run_option() -> None:
    torch.manual_seed(0)
    model = CrevNet(TINY[2])
    video = _video(torch.float32)
    ref = _grads(model, video, "encoder", 0.0, bf16=True)
    got = _grads(model, video, "full", 0.0, bf16=True)
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], rtol=1e-6, atol=1e-9, msg=k)


def _rpm_step(memory_saving: bool, cell: str = "st_lstm"):
    torch.manual_seed(0)
    rpm = ReversiblePredictor(2, 4, PredictorConfig(layers=2, cell=cell)).double()
    g = torch.Generator().manual_seed(3)
    z0 = torch.randn(2, 8, 4, 4, generator=g, dtype=torch.float64)
    _, state = rpm(z0)  # a non-zero incoming state
    leaves = [t.detach().requires_grad_(True) for s in state.cells for t in s]
    memory = state.memory.detach().requires_grad_(True) if state.memory is not None else None
    cells = tuple(type(state.cells[0])(leaves[i], leaves[i + 1]) for i in range(0, len(leaves), 2))
    state = type(state)(cells, memory)
    z = torch.randn(2, 8, 4, 4, generator=g, dtype=torch.float64, requires_grad=True)
    out, new = rpm(z, state, memory_saving=memory_saving)
    return rpm, z, leaves, memory, out, new


@pytest.mark.parametrize("cell", ["st_lstm", "conv_lstm"])
def test_rpm_step_gradients_reach_the_stored_state(cell: str) -> None:
    grads = []
    for memory_saving in (False, True):
        rpm, z, leaves, memory, out, new = _rpm_step(memory_saving, cell)
        # the loss reads the latent and the new state (the next step would)
        loss = out.square().sum() + sum(t.sin().sum() for s in new.cells for t in s)
        if new.memory is not None:
            loss = loss + new.memory.cos().sum()
        wrt = [z, *leaves, *([memory] if memory is not None else []), *rpm.parameters()]
        grads.append(torch.autograd.grad(loss, wrt))
    for a, b in zip(*grads, strict=True):
        assert a.abs().max() > 0
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-14)


def test_a_stored_state_changed_in_place_is_an_error_not_a_wrong_gradient() -> None:
    _, _, leaves, _, out, _ = _rpm_step(True)
    with torch.no_grad():
        leaves[0].mul_(2.0)  # the step must be recomputed from the state it saw, which is gone
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


@pytest.mark.parametrize("dims", [2, 3])
def test_no_grad_paths_are_identical(dims: int) -> None:
    torch.manual_seed(0)
    model = CrevNet(TINY[dims])
    video = _video(torch.float32)
    with torch.no_grad():
        outs = [model(video, memory_saving=mode)[0] for mode in MODES]
    for out in outs[1:]:
        assert torch.equal(out, outs[0])


def _saved_mb(cfg: CrevNetConfig, mode: str, batch: int = 2, frames: int = 8) -> float:
    torch.manual_seed(0)
    model = CrevNet(cfg)
    video = torch.rand(batch, frames, 1, 16, 16)
    with SavedTensorCounter() as counter:
        loss = model.loss(video, memory_saving=mode)
    loss.backward()
    return counter.bytes


def test_full_mode_saves_a_fraction_flat_in_encoder_depth_and_only_the_state_per_rpm_layer() -> None:
    cfg = CrevNetConfig(
        encoder=EncoderConfig(stages=(1, 1, 1)), predictor=PredictorConfig(layers=2), window=3
    )
    off, enc, full = (_saved_mb(cfg, m) for m in MODES)
    assert full < 0.2 * enc < enc < off
    deep = dataclasses.replace(cfg, encoder=dataclasses.replace(cfg.encoder, stages=(2, 2, 2)))
    assert _saved_mb(deep, "full") == full  # nothing grows with the encoder's depth
    assert _saved_mb(deep, "off") > off
    # one more RPM layer adds its state only: h and c, (B, 32, 3, 2, 2) float32, at each of the 5
    # transitions (8 frames, 3-frame windows) but the first, whose incoming state is None (zeros)
    wider = dataclasses.replace(cfg, predictor=PredictorConfig(layers=3))
    assert _saved_mb(wider, "full") - full == 4 * 2 * (2 * 32 * 3 * 2 * 2) * 4


def test_bad_mode_is_a_clear_error() -> None:
    model = CrevNet(TINY[2])
    with pytest.raises(ValueError, match=r"memory_saving must be one of off, encoder, full, got 'fast'"):
        model.loss(_video(torch.float32), memory_saving="fast")
    assert MemorySaving.parse("full").predictor and MemorySaving.parse("encoder").encoder
    assert not MemorySaving.parse("encoder").predictor and not MemorySaving.OFF.encoder


def test_run_options_stored_by_older_configs_are_dropped() -> None:
    old = {
        "encoder": {
            "dims": 2,
            "stages": [1, 1],
            "strides": [1, 2],
            "channels": [2, 8],
            "memory_saving": True,
        },
        "predictor": {"layers": 2, "bf16": False},
        "window": 1,
    }
    assert CrevNetConfig.from_dict(old) == TINY[2]
    assert "memory_saving" not in without_run_options(old)["encoder"]
    assert old["encoder"]["memory_saving"] is True  # the caller's mapping is left alone
    assert not any(f.name in ("memory_saving", "bf16") for f in dataclasses.fields(EncoderConfig))
    assert not any(f.name == "bf16" for f in dataclasses.fields(PredictorConfig))
