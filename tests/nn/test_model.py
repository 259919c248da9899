"""CrevNet: configs, paper size and compute, training forward, loss, scheduled sampling, predict."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from crevnet.nn import CrevNet, CrevNetConfig, sliding_windows
from crevnet.testing import tiny_config

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"

TINY = {3: tiny_config(3), 2: tiny_config(2)}


def _model(dims: int, **kw) -> CrevNet:
    torch.manual_seed(0)
    return CrevNet(TINY[dims])


def _video(b: int = 2, t: int = 8, size: int = 8, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, t, 1, size, size, generator=g)


# -- size and compute of the paper model ---------------------------------------------------------
def test_paper_parameter_counts() -> None:
    model = CrevNet.from_config(CONFIGS / "mmnist_crevnet3d.yaml")
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(model) == 4_997_444
    assert count(model.encoder) == 104_516
    assert count(model.predictor) == 4_892_928
    # the defaults are the paper model (memory saving is a run option, not part of the config)
    assert model.config == CrevNetConfig()
    assert count(CrevNet()) == 4_997_444


def _macs(model: CrevNet, frames: int, size: int) -> int:
    with FlopCounterMode(display=False) as counter:
        model.loss(torch.rand(1, frames, 1, size, size))
    return counter.get_total_flops() // 2


def test_paper_gmac_per_20_frame_sample() -> None:
    # Every op the counter sees is a conv whose cost is proportional to H·W, and every transition
    # costs the same: count 1 and 2 transitions at 8×8, check both scalings, extrapolate to
    # 17 transitions at 64×64 (benchmarks/train_step.py counts the full 64×64 rollout directly:
    # 16.894 GMAC).
    model = CrevNet(CrevNetConfig())
    one = _macs(model, 4, 8)
    two = _macs(model, 5, 8)
    assert two == 2 * one
    assert _macs(model, 4, 16) == 4 * one
    gmac = one * 64 * 17 / 1e9
    assert abs(gmac - 16.9) / 16.9 < 0.05
    assert gmac == pytest.approx(16.8936, abs=1e-4)


# -- configs ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["mmnist_crevnet3d.yaml", "mmnist_crevnet2d.yaml"])
def test_from_config_files(name: str) -> None:
    import yaml

    path = CONFIGS / name
    model = CrevNet.from_config(path)
    data = yaml.safe_load(path.read_text())
    assert CrevNet.from_config(data).config == model.config  # parsed mapping works too
    net = data["model"]["net"]
    assert model.config.window == net["window"]
    assert model.config.encoder.dims == net["encoder"]["dims"]
    assert model.config.predictor.layers == net["predictor"]["layers"]


def test_from_config_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nomodel.yaml"
    missing.write_text("trainer: {max_steps: 1}\n")
    with pytest.raises(ValueError, match=r"nomodel\.yaml: no 'model: net:' section"):
        CrevNet.from_config(missing)
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  net:\n    predictor: {layers: 2, width: 16}\n")
    with pytest.raises(ValueError, match=r"bad\.yaml: model\.net\.predictor: unknown key.*width"):
        CrevNet.from_config(bad)
    bad.write_text("model:\n  net:\n    windows: 3\n")
    with pytest.raises(ValueError, match=r"bad\.yaml: model\.net: unknown key.*windows"):
        CrevNet.from_config(bad)
    bad.write_text("model:\n  net:\n    encoder: {dims: 2}\n    window: 3\n")
    with pytest.raises(ValueError, match=r"bad\.yaml: .*window must be 1 for a 2-D encoder"):
        CrevNet.from_config(bad)
    with pytest.raises(FileNotFoundError, match=r"absent\.yaml"):
        CrevNet.from_config(tmp_path / "absent.yaml")
    # LightningCLI's class_path / init_args form
    lit = {"model": {"class_path": "x.Y", "init_args": {"net": {"window": 3}, "lr": 1e-3}}}
    assert CrevNet.from_config(lit).config == CrevNetConfig()


# -- training forward and loss ------------------------------------------------------------------
@pytest.mark.parametrize("dims", [2, 3])
def test_forward_shapes_and_loss(dims: int) -> None:
    model = _model(dims)
    w = model.config.window
    video = _video(t=8)
    pred, target = model(video)
    steps = 8 - w
    assert pred.shape == target.shape == (2, steps, w, 1, 8, 8)
    torch.testing.assert_close(target, sliding_windows(video, w)[:, 1:])
    for s in range(steps):  # window s+1 = frames s+1 .. s+w
        torch.testing.assert_close(target[:, s].flatten(1), video[:, s + 1 : s + 1 + w].flatten(1))
    ref = sum(F.mse_loss(pred[:, s], target[:, s]) for s in range(steps))
    torch.testing.assert_close(model.loss(video), ref)


def test_teacher_forcing_is_causal() -> None:
    # with ground-truth inputs, step s sees frames 0 .. s+w-1 only
    model = _model(3).eval()
    video = _video(t=8)
    changed = video.clone()
    changed[:, 5] = torch.rand(2, 1, 8, 8)
    pred_a, _ = model(video)
    pred_b, _ = model(changed)
    w = 3
    for s in range(pred_a.shape[1]):
        sees_frame_5 = s + w - 1 >= 5
        diff = (pred_a[:, s] - pred_b[:, s]).abs().max().item()
        assert (diff > 1e-6) if sees_frame_5 else (diff == 0.0), (s, diff)


@pytest.mark.parametrize("dims", [2, 3])
def test_gradients_reach_every_parameter(dims: int) -> None:
    model = _model(dims)
    model.loss(_video(t=6)).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_scheduled_sampling() -> None:
    model = _model(3).eval()
    video = _video(t=10)
    plain, _ = model(video)
    # no step is eligible when every frame is context: the step-by-step path equals the batched one
    none_fed, _ = model(video, sampling_prob=1.0, context=10)
    torch.testing.assert_close(none_fed, plain, rtol=0, atol=1e-5)
    # same seed, same draws; a different probability changes the rollout
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    a, _ = model(video, sampling_prob=0.5, context=5, generator=gen())
    b, _ = model(video, sampling_prob=0.5, context=5, generator=gen())
    torch.testing.assert_close(a, b)
    # always feeding back = the inference rollout of predict()
    full, _ = model(video, sampling_prob=1.0, context=5)
    with torch.no_grad():
        rollout = model.predict(video[:, :5], horizon=5)
    torch.testing.assert_close(full[:, 5 - 3 :, -1], rollout, rtol=0, atol=1e-5)
    # steps before the first autoregressive one are teacher-forced
    torch.testing.assert_close(full[:, : 5 - 3 + 1], plain[:, : 5 - 3 + 1], rtol=0, atol=1e-5)
    assert (full[:, -1] - plain[:, -1]).abs().max() > 1e-6
    with pytest.raises(ValueError, match="sampling_prob"):
        model(video, sampling_prob=1.5)


def _reference_rollout(model: CrevNet, video: torch.Tensor, feed_back: torch.Tensor, context: int):
    """The rollout as the paper runs it: every fed-back window is decoded, patched and encoded again."""
    w = model.config.window
    windows = sliding_windows(video, w)
    b, n = windows.shape[:2]
    first_free = max(1, context - w + 1)
    state, prev, preds = None, None, []
    for s in range(n - 1):
        x_in = windows[:, s]
        if prev is not None and s >= first_free:
            known = min(max(context - s, 0), w)
            fed = torch.cat((x_in[:, :known], prev[:, known:]), 1)
            x_in = torch.where(feed_back[:, s].view(b, 1, 1, 1, 1), fed, x_in)
        z, state = model.predictor(model._encode(x_in), state)
        prev = model._decode(z)
        preds.append(prev)
    return torch.stack(preds, 1)


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("sampling_prob", [0.5, 1.0])
def test_latent_feedback_equals_the_decode_encode_round_trip(dims: int, sampling_prob: float) -> None:
    # A fully predicted window re-enters the RPM as its latent (encode(decode(z)) = z): same predictions
    # and same gradients as decoding and re-encoding it, in float64 to round-off.
    model = _model(dims).double()
    video = _video(t=10).double()
    gen = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    pred, _ = model(video, sampling_prob=sampling_prob, context=4, generator=gen())
    steps = 10 - model.config.window
    feed_back = torch.rand((2, steps), generator=gen(), dtype=torch.float32) < sampling_prob
    ref = _reference_rollout(model, video, feed_back, context=4)
    torch.testing.assert_close(pred, ref, rtol=0, atol=1e-10)
    params = [p for p in model.parameters() if p.requires_grad]
    g_new = torch.autograd.grad(pred.square().sum(), params)
    g_ref = torch.autograd.grad(ref.square().sum(), params)
    for a, b in zip(g_new, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)
    with torch.no_grad():
        out = model.predict(video[:, :4], horizon=6)
    torch.testing.assert_close(
        out,
        _reference_rollout(model, video, torch.ones(2, steps, dtype=torch.bool), 4)[
            :, 4 - model.config.window :, -1
        ],
        rtol=0,
        atol=1e-10,
    )


# -- predict -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("dims", [2, 3])
def test_predict_horizons(dims: int) -> None:
    model = _model(dims).eval()
    context = _video(b=3, t=5)
    with torch.no_grad():
        out = {h: model.predict(context, h) for h in (1, 10, 30)}
    for h, y in out.items():
        assert y.shape == (3, h, 1, 8, 8)
        assert torch.isfinite(y).all()
    # a longer rollout starts with the shorter one; nothing is kept between calls
    torch.testing.assert_close(out[30][:, :10], out[10])
    torch.testing.assert_close(out[10][:, :1], out[1])
    # the first predicted frame is the newest slot of the teacher-forced prediction after the context
    w = model.config.window
    with torch.no_grad():
        pred, _ = model(torch.cat((context, context[:, :1]), 1))
    torch.testing.assert_close(out[1][:, 0], pred[:, 5 - w, -1], rtol=0, atol=1e-5)


def test_predict_other_size_and_batch_independence() -> None:
    model = _model(3).eval()
    context = _video(b=4, t=4, size=16)
    with torch.no_grad():
        batch = model.predict(context, 3)
        single = model.predict(context[2:3], 3)
        pred4, _ = model(_video(b=4, t=6))
        pred1, _ = model(_video(b=4, t=6)[2:3])
    assert batch.shape == (4, 3, 1, 16, 16)
    torch.testing.assert_close(batch[2:3], single, rtol=0, atol=1e-5)
    torch.testing.assert_close(pred4[2:3], pred1, rtol=0, atol=1e-5)


def test_input_errors() -> None:
    model = _model(3)
    with pytest.raises(ValueError, match=r"must be \(B, T, C, H, W\) \(5-D\)"):
        model.predict(torch.rand(2, 5, 8, 8), 1)
    with pytest.raises(ValueError, match="must have 1 channel"):
        model.predict(torch.rand(2, 5, 3, 8, 8), 1)
    with pytest.raises(ValueError, match="multiples of 4"):
        model.predict(torch.rand(2, 5, 1, 10, 8), 1)
    with pytest.raises(ValueError, match="at least 3 frames"):
        model.predict(torch.rand(2, 2, 1, 8, 8), 1)
    with pytest.raises(ValueError, match=r"CrevNet\.predict: horizon 0: expected a positive number"):
        model.predict(torch.rand(2, 5, 1, 8, 8), 0)
    with pytest.raises(ValueError, match="at least 4 frames"):
        model(torch.rand(2, 3, 1, 8, 8))
    with pytest.raises(ValueError, match="floating-point"):
        model(torch.zeros(2, 5, 1, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="window must be >= 1"):
        CrevNetConfig(window=0)


def test_lazy_top_level_export() -> None:
    import crevnet

    assert crevnet.CrevNet is CrevNet
    assert crevnet.CrevNetConfig is CrevNetConfig
