"""Reversible predictive module: gate equations, conditional inverse, state, parameters."""

from __future__ import annotations

import itertools

import pytest
import torch

from crevnet.nn.predictor import PredictorConfig, PredictorState, ReversiblePredictor

VARIANTS = list(itertools.product(["st_lstm", "conv_lstm"], ["conv1x1", "two_conv"], ["convex", "additive"]))


def _latent(dims: int, channels: int, batch: int = 2, seed: int = 0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    grid = (3, 4, 4) if dims == 3 else (4, 4)
    return torch.randn(batch, 2 * channels, *grid, generator=g, dtype=dtype)


def _rpm(dims: int, channels: int = 4, **kw) -> ReversiblePredictor:
    torch.manual_seed(0)
    return ReversiblePredictor(dims, channels, PredictorConfig(layers=3, **kw))


@pytest.mark.parametrize(("cell", "gate", "update"), VARIANTS)
@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize(("dtype", "atol"), [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_conditional_inverse(cell, gate, update, dims, dtype, atol) -> None:
    rpm = _rpm(dims, cell=cell, gate=gate, update=update).to(dtype)
    # a non-trivial incoming state: two earlier steps
    _, state = rpm(_latent(dims, 4, seed=1, dtype=dtype))
    _, state = rpm(_latent(dims, 4, seed=2, dtype=dtype), state)
    z = _latent(dims, 4, seed=3, dtype=dtype)
    with torch.no_grad():
        z_out, new_state = rpm(z, state)
        z_back = rpm.inverse(z_out, new_state)
    assert z_out.shape == z.shape
    assert (z_out - z).abs().max() > 1e-2  # the step really changed the latent
    torch.testing.assert_close(z_back, z, rtol=0, atol=atol)


def test_conditional_inverse_under_bf16_switch() -> None:
    rpm = _rpm(3)
    z = _latent(3, 4)
    with torch.no_grad():
        z_out, state = rpm(z, bf16=True)
        torch.testing.assert_close(rpm.inverse(z_out, state, bf16=True), z, rtol=0, atol=1e-5)
        plain, _ = rpm(z)
    assert z_out.dtype == torch.float32  # the update stays in the latent's dtype
    assert state.cells[0].h.dtype == torch.bfloat16  # the cells did run in bf16
    assert (z_out - plain).abs().max() > 0


@pytest.mark.parametrize("update", ["convex", "additive"])
def test_one_layer_update_equation(update: str) -> None:
    rpm = ReversiblePredictor(2, 3, PredictorConfig(layers=1, update=update)).double()
    z = _latent(2, 3, dtype=torch.float64)
    z_out, state = rpm(z)
    x1, x2 = z[:, :3], z[:, 3:]
    h = state.cells[0].h
    g = torch.sigmoid(rpm.gates[0].conv(h))
    # the cell reads x1 only; with the same state it gives the same h
    (h_ref, _), _ = rpm.cells[0](x1)
    torch.testing.assert_close(h, h_ref)
    x2_new = (1 - g) * x2 + g * h if update == "convex" else x2 + g * h
    torch.testing.assert_close(z_out, torch.cat((x2_new, x1), 1))  # updated half, then swap


def test_memory_zigzags_and_state_is_returned() -> None:
    rpm = _rpm(2)
    z = _latent(2, 4)
    _, s1 = rpm(z)
    assert isinstance(s1, PredictorState) and len(s1.cells) == 3
    assert s1.memory is not None and s1.memory.shape == (2, 4, 4, 4)
    # the incoming memory reaches the first layer: changing it changes the output
    z2a, _ = rpm(z, s1)
    z2b, _ = rpm(z, PredictorState(s1.cells, torch.zeros_like(s1.memory)))
    assert (z2a - z2b).abs().max() > 1e-6
    # no state on the module: the same call twice gives the same result
    torch.testing.assert_close(rpm(z, s1)[0], z2a)
    # a ConvLSTM predictor has no memory
    assert _rpm(2, cell="conv_lstm")(z)[1].memory is None


def test_gradients_reach_every_parameter() -> None:
    for gate in ("conv1x1", "two_conv"):
        rpm = _rpm(3, gate=gate)
        z, state = rpm(_latent(3, 4))
        z, state = rpm(z, state)
        (z.square().mean() + state.memory.mean()).backward()
        for name, p in rpm.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_paper_rpm_parameter_count() -> None:
    rpm = ReversiblePredictor(3, 32, PredictorConfig())
    assert sum(p.numel() for p in rpm.parameters()) == 4_892_928
    per_layer = 248_928 * 2 + 110_624 + 2_080 + 1_056
    assert per_layer * 8 == 4_892_928
    assert sum(p.numel() for p in rpm.cells[0].parameters()) + 1_056 == per_layer


def test_batch_independence() -> None:
    rpm = _rpm(3).eval()
    z = _latent(3, 4, batch=4)
    out4, s4 = rpm(z)
    out1, s1 = rpm(z[1:2])
    torch.testing.assert_close(out4[1:2], out1, rtol=0, atol=1e-6)
    torch.testing.assert_close(s4.memory[1:2], s1.memory, rtol=0, atol=1e-6)


def test_errors() -> None:
    rpm = _rpm(3)
    with pytest.raises(ValueError, match="2C = 8"):
        rpm(torch.zeros(1, 6, 3, 4, 4))
    with pytest.raises(ValueError, match=r"\(B, 2C, T, H, W\)"):
        rpm(torch.zeros(1, 8, 4, 4))
    _, state = rpm(_latent(3, 4))
    with pytest.raises(ValueError, match="3 layer states, the predictor has 2"):
        ReversiblePredictor(3, 4, PredictorConfig(layers=2))(_latent(3, 4), state)
    with pytest.raises(ValueError, match=r"PredictorConfig\.gate must be one of"):
        PredictorConfig(gate="attention")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="layers"):
        PredictorConfig(layers=0)
    with pytest.raises(ValueError, match="kernel_size"):
        PredictorConfig(kernel_size=4)


# -- cells wider than a latent half (PredictorConfig.hidden) ---------------------------------------------
@pytest.mark.parametrize("cell", ["st_lstm", "conv_lstm"])
@pytest.mark.parametrize("dims", [2, 3])
def test_wider_cells_keep_the_conditional_inverse_exact(cell: str, dims: int) -> None:
    rpm = _rpm(dims, cell=cell, hidden=7).double()
    _, state = rpm(_latent(dims, 4, seed=1, dtype=torch.float64))
    z = _latent(dims, 4, seed=2, dtype=torch.float64)
    with torch.no_grad():
        z_out, new_state = rpm(z, state)
        z_back = rpm.inverse(z_out, new_state)
    assert all(s.h.shape[1] == s.c.shape[1] == 7 for s in new_state.cells)
    if cell == "st_lstm":
        assert new_state.memory.shape[1] == 7
    assert z_out.shape == z.shape and (z_out - z).abs().max() > 1e-2
    torch.testing.assert_close(z_back, z, rtol=0, atol=1e-10)


def test_wider_cells_update_through_a_1x1_projection() -> None:
    rpm = ReversiblePredictor(2, 3, PredictorConfig(layers=1, hidden=5)).double()
    z = _latent(2, 3, dtype=torch.float64)
    z_out, state = rpm(z)
    h = state.cells[0].h  # (B, 5, H, W)
    proj = rpm.outs[0]
    h_half = torch.einsum("bchw,oc->bohw", h, proj.weight[:, :, 0, 0]) + proj.bias.view(1, -1, 1, 1)
    g = torch.sigmoid(rpm.gates[0].conv(h_half))
    x1, x2 = z[:, :3], z[:, 3:]
    torch.testing.assert_close(z_out, torch.cat((x2 + g * (h_half - x2), x1), 1))


def test_default_width_has_the_papers_parameters_and_no_projection() -> None:
    for hidden in (None, 4):  # one latent half, by default or by name
        rpm = _rpm(2, hidden=hidden)
        assert not any(name.startswith("outs.") for name, _ in rpm.named_parameters())
    assert (
        sum(p.numel() for p in ReversiblePredictor(3, 32, PredictorConfig(hidden=32)).parameters())
        == 4_892_928
    )
    wide = _rpm(2, hidden=6)
    assert sorted({n.split(".")[2] for n, _ in wide.named_parameters() if n.startswith("outs.")}) == [
        "bias",
        "weight",
    ]
    assert wide.outs[0].weight.shape == (4, 6, 1, 1)


def test_wider_cells_get_gradients_everywhere() -> None:
    rpm = _rpm(3, hidden=6)
    z, state = rpm(_latent(3, 4))
    z, state = rpm(z, state)
    (z.square().mean() + state.memory.mean()).backward()
    for name, p in rpm.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("bad", [0, -3, True, 2.5, "wide"])
def test_bad_hidden_width_is_a_clear_error(bad) -> None:
    with pytest.raises(ValueError, match=r"PredictorConfig\.hidden must be a positive number"):
        PredictorConfig(hidden=bad)


def _rollout(rpm: ReversiblePredictor, latents: list[torch.Tensor]) -> list[torch.Tensor]:
    state, outs = None, []
    for z in latents:
        z, state = rpm(z, state)
        outs.append(z)
    return outs


@pytest.mark.parametrize("gate", ["conv1x1", "two_conv"])
@pytest.mark.parametrize("hidden", [None, 6])
def test_extend_from_keeps_a_memory_free_rpm_and_adds_near_identity_layers(gate, hidden) -> None:
    cfg = {"cell": "conv_lstm", "gate": gate, "hidden": hidden}
    torch.manual_seed(0)
    small = ReversiblePredictor(2, 4, PredictorConfig(layers=2, **cfg)).double()
    torch.manual_seed(1)
    big = ReversiblePredictor(2, 4, PredictorConfig(layers=4, **cfg)).double()
    latents = [_latent(2, 4, seed=s, dtype=torch.float64) for s in range(4)]
    with torch.no_grad():
        before = _rollout(big, latents)
        # independent reference: the shallower RPM run alone over the same 4 steps
        reference = _rollout(small, latents)
        big.extend_from(small, gate_bias=-40.0)  # sigma(-40) ~ 4e-18: the identity in float64
        after = _rollout(big, latents)
    for got, want, old in zip(after, reference, before, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
        assert (old - want).abs().max() > 1e-2  # before the copy it predicted something else
    for name, value in small.state_dict().items():
        assert torch.equal(big.state_dict()[name], value)
    # the default bias leaves the new gates slightly open: close, not equal, and trainable
    big.extend_from(small)
    h = torch.randn(2, 4, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(big.gates[3](h), torch.full_like(h, torch.sigmoid(torch.tensor(-4.0)).item()))
    loss = sum(z.square().sum() for z in _rollout(big, latents))
    loss.backward()
    for gate_module in list(big.gates)[2:]:  # the closed conv learns (a two-conv gate's W1 once W2 moved)
        last = gate_module.conv2 if gate == "two_conv" else gate_module.conv
        assert all(p.grad is not None and p.grad.abs().max() > 0 for p in last.parameters())


def test_extend_from_refuses_what_it_cannot_grow() -> None:
    def rpm(**kw) -> ReversiblePredictor:
        return ReversiblePredictor(2, 4, PredictorConfig(**{"cell": "conv_lstm", **kw}))

    with pytest.raises(ValueError, match=r"even, positive number of layers.*2 -> 3 adds 1"):
        rpm(layers=3).extend_from(rpm(layers=2))
    with pytest.raises(ValueError, match="4 -> 2 adds -2"):
        rpm(layers=2).extend_from(rpm(layers=4))
    with pytest.raises(ValueError, match="differs only in its number of layers"):
        rpm(layers=4).extend_from(rpm(layers=2, kernel_size=5))
    with pytest.raises(ValueError, match="differs only in its number of layers"):
        rpm(layers=4).extend_from(ReversiblePredictor(2, 8, PredictorConfig(layers=2, cell="conv_lstm")))


def test_closed_gates_make_the_untrained_model_copy_the_last_frame() -> None:
    from crevnet.nn import CrevNet, CrevNetConfig

    def net(gate_bias: float | None) -> CrevNet:
        torch.manual_seed(0)
        config = CrevNetConfig.from_dict(
            {
                "encoder": {
                    "in_channels": 3,
                    "init_downsample": 2,
                    "stages": [1],
                    "strides": [1],
                    "channels": [6],
                },
                "predictor": {"layers": 4, "cell": "conv_lstm", "gate_bias": gate_bias},
            }
        )
        return CrevNet(config).eval()

    video = torch.rand(2, 6, 3, 16, 16)
    last = video[:, -1:].expand(-1, 3, -1, -1, -1)
    with torch.no_grad():
        closed = net(-30.0).predict(video, 3)  # g = σ(-30) ≈ 1e-13: the RPM is the identity
        default = net(None).predict(video, 3)
    assert (closed - last).abs().max() < 1e-5  # every predicted frame is the last observed one
    assert (default - last).abs().max() > 1e-2  # the default init is not


def test_gate_bias_needs_an_even_layer_count_and_a_number() -> None:
    with pytest.raises(ValueError, match=r"even number of layers.*layers=3"):
        PredictorConfig(layers=3, gate_bias=-4.0)
    with pytest.raises(ValueError, match="gate_bias must be a finite number"):
        PredictorConfig(layers=4, gate_bias=float("nan"))
    assert PredictorConfig(layers=3).gate_bias is None  # the default needs nothing
