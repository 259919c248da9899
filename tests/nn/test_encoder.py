from dataclasses import replace

import pytest
import torch

from crevnet.nn import Encoder, EncoderConfig, IRevNetBlock
from crevnet.testing import assert_invertible, round_trip_errors

TINY3D = EncoderConfig(stages=(1, 2, 1))  # same shape rules as the paper encoder, fewer blocks
TINY2D = EncoderConfig(dims=2, stages=(1, 1, 1))


def test_paper_encoder_parameters_and_latent_shape():
    enc = Encoder(EncoderConfig())
    assert sum(p.numel() for p in enc.parameters()) == 104_516
    assert len(enc.blocks) == 12
    z = enc(torch.rand(1, 1, 3, 64, 64))
    assert z.shape == (1, 64, 3, 8, 8)  # two halves of (32, 3, 8, 8)
    assert z.numel() == 1 * 3 * 64 * 64  # a bijection keeps every number


def test_paper_encoder_round_trip_fp32():
    torch.manual_seed(0)
    enc = Encoder()
    x = torch.rand(2, 1, 3, 64, 64)
    err_x, err_y = round_trip_errors(enc, x)
    assert err_x <= 1e-5 and err_y <= 1e-5


@pytest.mark.parametrize("cfg", [TINY3D, TINY2D], ids=["3d", "2d"])
@pytest.mark.parametrize("norm", ["group", "batch"])
def test_invertible_train_eval_and_after_optimizer_steps(cfg, norm):
    torch.manual_seed(0)
    cfg = replace(cfg, norm=norm)
    shape = (4, 1, 3, 16, 16) if cfg.dims == 3 else (4, 1, 16, 16)
    for dtype, atol in [(torch.float64, 1e-10), (torch.float32, 1e-5)]:
        enc = Encoder(cfg).to(dtype)
        x = torch.rand(shape, dtype=dtype)
        opt = torch.optim.Adam(enc.parameters(), lr=1e-2)
        for step in range(3):
            for train in (True, False):
                enc.train(train)
                assert_invertible(enc, x, atol=atol)
            enc.train()
            opt.zero_grad()
            z = enc(torch.rand(shape, dtype=dtype))
            (enc.inverse(z * 0.5) - x).square().mean().backward()
            opt.step()
            assert step < 1 or any(p.grad.abs().sum() > 0 for p in enc.parameters())


def test_block_downsamples_and_swaps_halves():
    torch.manual_seed(0)
    block = IRevNetBlock(dims=2, in_channels=2, out_channels=8, stride=2)
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    block.double()
    y = block(x)
    assert y.shape == (2, 16, 4, 4)
    from crevnet.nn.reshape import space_to_depth

    x1, x2 = x[:, :2], x[:, 2:]
    torch.testing.assert_close(y[:, :8], space_to_depth(x2))  # x2' = S(x2) comes first
    torch.testing.assert_close(y[:, 8:], space_to_depth(x1) + block.f(x2))
    assert_invertible(block, x)


def test_first_block_has_no_pre_activation_and_others_do():
    enc = Encoder(TINY2D)
    assert isinstance(enc.blocks[0].f[0], torch.nn.Conv2d)
    assert isinstance(enc.blocks[1].f[0], torch.nn.GroupNorm)


def test_batchnorm_option_and_groupnorm_default():
    assert isinstance(Encoder(TINY2D).blocks[1].f[0], torch.nn.GroupNorm)
    assert isinstance(Encoder(replace(TINY2D, norm="batch")).blocks[1].f[0], torch.nn.BatchNorm2d)


def test_input_errors_are_clear():
    enc = Encoder(TINY3D)
    with pytest.raises(ValueError, match=r"\(B, C, T, H, W\)"):
        enc(torch.zeros(1, 1, 16, 16))
    with pytest.raises(ValueError, match="1 channel"):
        enc(torch.zeros(1, 2, 3, 16, 16))
    with pytest.raises(ValueError, match="multiples of 8"):
        enc(torch.zeros(1, 1, 3, 20, 16))
    with pytest.raises(ValueError, match="64 channels"):
        enc.inverse(torch.zeros(1, 32, 3, 2, 2))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"channels": (2, 8, 16)}, r"channels\[2\] must be 32"),
        ({"strides": (1, 3, 2)}, r"strides\[1\] must be 1 or 2"),
        ({"stages": (4, 5)}, "equal length"),
        ({"init_downsample": 3}, "power of 2"),
        ({"dims": 4}, "dims must be 2 or 3"),
        ({"norm": "layer"}, "norm must be"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EncoderConfig(**kwargs)


def test_half_precision_input_is_computed_in_fp32():
    torch.manual_seed(0)
    enc = Encoder(TINY2D)
    x = torch.rand(2, 1, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = enc(x)
        back = enc.inverse(z)
    assert z.dtype == torch.float32 and back.dtype == torch.float32
    assert (back - x).abs().max() < 1e-5


def test_runs_on_the_meta_device():
    # Shape inference and FLOP counting without memory: autocast does not exist on `meta`.
    enc = Encoder(TINY3D).to("meta")
    z = enc(torch.empty(2, 1, 3, 16, 16, device="meta"))
    assert z.shape == (2, 64, 3, 2, 2) and z.device.type == "meta"
    assert enc.inverse(z).shape == (2, 1, 3, 16, 16)
