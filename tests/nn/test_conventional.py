"""The conventional encoder/decoder pair (the paper's ablation): shapes, size and compute against the
reversible encoder, gradients, the rollout's feedback, streaming, and the memory-saving refusal.

The pair is lossy and not invertible by design; that is its documented nature, not a property tested here.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from crevnet.nn import CrevNet, CrevNetConfig, Encoder, EncoderConfig, FrameStream, load_config
from crevnet.nn.conventional import (
    ConventionalDecoder,
    ConventionalEncoder,
    conventional_cost,
    conventional_widths,
    reversible_cost,
)
from crevnet.nn.model import check_memory_saving
from crevnet.testing import tiny_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
NO_DOWNSAMPLING = EncoderConfig(  # D = 1: one level, no strided conv
    dims=2, in_channels=2, init_downsample=1, stages=(1,), strides=(1,), channels=(1,), mult=1
)


def _conventional(config: CrevNetConfig) -> CrevNetConfig:
    return replace(config, encoder=replace(config.encoder, kind="conventional"))


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _macs(fn, *args) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn(*args)
    return counter.get_total_flops() // 2


# -- config ---------------------------------------------------------------------------------------------
def test_kind_defaults_to_reversible_and_is_validated() -> None:
    assert EncoderConfig().kind == "reversible"
    assert isinstance(CrevNet(tiny_config(2)).encoder, Encoder)
    with pytest.raises(
        ValueError, match=r"EncoderConfig\.kind must be reversible or conventional, got 'lossy'"
    ):
        EncoderConfig(kind="lossy")
    config = CrevNetConfig.from_dict({"encoder": {"dims": 2, "kind": "conventional"}, "window": 1})
    assert config.encoder.kind == "conventional"


def test_reversible_state_dict_keys_are_unchanged() -> None:
    # the reversible kind has no decoder module: checkpoints written before the option keep their keys
    model = CrevNet(tiny_config(2))
    assert not hasattr(model, "decoder")
    assert all(k.split(".")[0] in ("encoder", "predictor") for k in model.state_dict())


# -- shapes ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("config", "shape"),
    [
        (tiny_config(2).encoder, (2, 1, 16, 16)),
        (tiny_config(3).encoder, (2, 1, 3, 16, 16)),
        (EncoderConfig(dims=2, stages=(1, 1, 1)), (2, 1, 32, 32)),  # the quickstart's shape, D = 8
        (NO_DOWNSAMPLING, (2, 2, 8, 8)),
    ],
    ids=["2d", "3d", "d8", "no-downsampling"],
)
def test_latent_and_frames_have_the_reversible_shapes(config: EncoderConfig, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    x = torch.rand(shape)
    encoder, decoder = ConventionalEncoder(config), ConventionalDecoder(config)
    z = encoder(x)
    assert z.shape == Encoder(config)(x).shape  # (B, 2c, [T,] H/D, W/D)
    assert decoder(z).shape == x.shape


def test_shape_errors_are_clear() -> None:
    config = tiny_config(2).encoder
    with pytest.raises(ValueError, match=r"height and width must be multiples of 4"):
        ConventionalEncoder(config)(torch.rand(1, 1, 10, 16))
    with pytest.raises(ValueError, match=r"ConventionalEncoder input must be \(B, C, H, W\)"):
        ConventionalEncoder(config)(torch.rand(1, 1, 3, 16, 16))
    with pytest.raises(ValueError, match=r"ConventionalDecoder expects a latent with 16 channels"):
        ConventionalDecoder(config)(torch.rand(1, 8, 4, 4))


# -- size and compute -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("quickstart.yaml", (1, 1, 64, 64)),
        ("mmnist_crevnet2d.yaml", (1, 1, 64, 64)),
        ("mmnist_crevnet3d.yaml", (1, 1, 3, 32, 32)),
    ],
)
def test_parameters_and_macs_within_10_percent_of_the_reversible_encoder(name: str, shape) -> None:
    config = load_config(CONFIGS / name).encoder
    rev = Encoder(config)
    enc, dec = ConventionalEncoder(config), ConventionalDecoder(config)
    x = torch.rand(shape)
    z = rev(x).detach()
    rev_params = _count(rev)  # the reversible encoder is its own decoder
    rev_fwd, rev_inv = _macs(rev, x), _macs(rev.inverse, z)
    enc_macs, dec_macs = _macs(enc, x), _macs(dec, enc(x).detach())
    assert abs((_count(enc) + _count(dec)) / rev_params - 1) < 0.10
    assert abs(enc_macs / rev_fwd - 1) < 0.10
    assert abs(dec_macs / rev_inv - 1) < 0.10
    # the counts the width rule uses are exact: FlopCounterMode and the parameters agree with them
    per_pixel = x[0, 0].numel() // config.downsample**2  # latent pixels (times T in 3-D)
    params, macs = reversible_cost(config)
    assert (params, macs * per_pixel) == (rev_params, rev_fwd)
    enc_p, dec_p, conv_macs = conventional_cost(config, conventional_widths(config))
    assert (enc_p, dec_p, conv_macs * per_pixel) == (_count(enc), _count(dec), enc_macs)
    assert dec_macs == enc_macs


def test_whole_model_size_and_compute_match_on_the_quickstart() -> None:
    config = load_config(CONFIGS / "quickstart.yaml")
    rev, conv = CrevNet(config), CrevNet(_conventional(config))
    assert abs(_count(conv) / _count(rev) - 1) < 0.01  # the RPM (identical) holds nearly all of them
    video = torch.rand(1, 4, 1, 64, 64)
    assert abs(_macs(conv.loss, video) / _macs(rev.loss, video) - 1) < 0.02  # teacher forcing


@pytest.mark.parametrize(
    "name", ["quickstart", "mfmnist_quickstart", "mmnist_crevnet2d", "mmnist_crevnet3d", "video_folder"]
)
def test_width_rule_holds_on_the_shipped_configs(name: str) -> None:
    # (smoke.yaml's encoder has 573 parameters: too few for integer widths to land within 10%)
    config = load_config(CONFIGS / f"{name}.yaml").encoder
    params, macs = reversible_cost(config)
    enc_p, dec_p, conv_macs = conventional_cost(config, conventional_widths(config))
    assert abs((enc_p + dec_p) / params - 1) < 0.10
    assert abs(conv_macs / macs - 1) < 0.10


# -- training -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dims", [2, 3])
def test_gradients_reach_every_parameter(dims: int) -> None:
    torch.manual_seed(0)
    model = CrevNet(_conventional(tiny_config(dims)))
    video = torch.rand(2, 6, 1, 16, 16)
    model.loss(video, sampling_prob=0.5, context=3, generator=torch.Generator().manual_seed(0)).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("dims", [2, 3])
def test_free_running_rollout_equals_predict(dims: int) -> None:
    # feedback goes through decode / encode (no bijection) in training and at inference alike
    torch.manual_seed(0)
    model = CrevNet(_conventional(tiny_config(dims))).eval()
    video = torch.rand(2, 7, 1, 16, 16)
    context = 4
    with torch.no_grad():
        pred, _ = model(video, sampling_prob=1.0, context=context)
        expected = model.predict(video[:, :context], video.shape[1] - context)
    w = model.config.window
    torch.testing.assert_close(pred[:, context - w :, -1], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dims", [2, 3])
def test_stream_equals_predict(dims: int) -> None:
    torch.manual_seed(0)
    model = CrevNet(_conventional(tiny_config(dims))).eval()
    video = torch.rand(2, 6, 1, 16, 16)
    stream = FrameStream(model)
    assert not stream.graphs.bijective
    for t in range(video.shape[1]):
        stream.push(video[:, t])
    with torch.no_grad():
        expected = model.predict(video, 4)
    torch.testing.assert_close(stream.forecast(4), expected, rtol=1e-5, atol=1e-6)


# -- memory saving --------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["encoder", "full", True])
def test_memory_saving_is_refused_in_one_line(mode) -> None:
    model = CrevNet(_conventional(tiny_config(2)))
    video = torch.rand(1, 4, 1, 16, 16)
    with pytest.raises(ValueError) as info:
        model.loss(video, context=2, memory_saving=mode)
    message = str(info.value)
    assert "\n" not in message
    assert "not available with encoder.kind 'conventional'" in message
    assert message.endswith("pass memory_saving off")
    model.loss(video, context=2, memory_saving="off")  # what the message says to pass works
    assert check_memory_saving(tiny_config(2), mode).value in ("encoder", "full")  # reversible: allowed
