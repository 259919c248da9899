"""crevnet.evaluation.metrics against independent computations: numpy formulas and scikit-image."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from crevnet.data.testset import STANDARD_BASELINES
from crevnet.data.video_folder import FOLDER_BASELINES
from crevnet.evaluation.baselines import (
    BASELINES,
    baseline_label,
    copy_last_baseline,
    mean_context_baseline,
    zeros_baseline,
)
from crevnet.evaluation.metrics import (
    METRIC_NAMES,
    METRICS,
    PSNR_MAX_DB,
    SCORE_KEYS,
    MetricAccumulator,
    frame_mae,
    frame_mse,
    frame_psnr,
    frame_ssim,
    frame_ssim_openstl,
)
from crevnet.evaluation.result import Scores

skimage_metrics = pytest.importorskip("skimage.metrics", reason="scikit-image is a dev dependency")

FRAME_FUNCS = (frame_mse, frame_mae, frame_psnr, frame_ssim, frame_ssim_openstl)


def _fixture(b: int = 2, t: int = 3, c: int = 1, size: int = 24, seed: int = 0):
    """A target on [0, 1] and a noisy prediction that overshoots [0, 1] in places."""
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(b, t, c, size, size, generator=g)
    noise = 0.3 * torch.randn(b, t, c, size, size, generator=g)
    pred = (target + noise).clamp(-0.2, 1.2)
    return pred, target


def _sk_ssim_gauss(p: np.ndarray, t: np.ndarray) -> float:
    return skimage_metrics.structural_similarity(
        p,
        t,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1.0,
        channel_axis=0,
    )


def _sk_ssim_openstl(p: np.ndarray, t: np.ndarray) -> float:
    return skimage_metrics.structural_similarity(p, t, win_size=7, data_range=2.0, channel_axis=0)


def _per_frame_numpy(fn, pred: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    p, t = pred.double().numpy(), target.double().numpy()
    return np.array([[fn(p[i, j], t[i, j]) for j in range(p.shape[1])] for i in range(p.shape[0])])


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize("channels", [1, 3])
def test_mse_mae_psnr_match_numpy_formulas(channels):
    pred, target = _fixture(c=channels)
    assert (pred < 0).any() and (pred > 1).any()  # the fixture exercises the clipping rule
    p, t = pred.double().numpy(), target.double().numpy()
    ref_mse = ((p - t) ** 2).sum(axis=(2, 3, 4))  # unclipped, summed over C·H·W
    ref_mae = np.abs(p - t).sum(axis=(2, 3, 4))
    ref_psnr = 10 * np.log10(1.0 / ((np.clip(p, 0, 1) - t) ** 2).mean(axis=(2, 3, 4)))
    np.testing.assert_allclose(frame_mse(pred, target).numpy(), ref_mse, rtol=1e-6)
    np.testing.assert_allclose(frame_mae(pred, target).numpy(), ref_mae, rtol=1e-6)
    np.testing.assert_allclose(frame_psnr(pred, target).numpy(), ref_psnr, rtol=1e-6)
    assert frame_mse(pred, target).shape == (2, 3)
    assert frame_mse(pred, target).dtype == torch.float64


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_matches_skimage_gaussian(channels):
    pred, target = _fixture(c=channels, size=20)
    ref = _per_frame_numpy(_sk_ssim_gauss, pred.clamp(0, 1), target)
    np.testing.assert_allclose(frame_ssim(pred, target).numpy(), ref, atol=1e-6)


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_openstl_matches_skimage_uniform_range2(channels):
    pred, target = _fixture(c=channels, size=20, seed=1)
    ref = _per_frame_numpy(_sk_ssim_openstl, pred.clamp(0, 1), target)
    np.testing.assert_allclose(frame_ssim_openstl(pred, target).numpy(), ref, atol=1e-6)


def test_ssim_on_non_square_frames_matches_skimage():
    g = torch.Generator().manual_seed(7)
    target = torch.rand(1, 2, 2, 13, 22, generator=g)
    pred = (target + 0.2 * torch.randn(1, 2, 2, 13, 22, generator=g)).clamp(0, 1)
    np.testing.assert_allclose(
        frame_ssim(pred, target).numpy(), _per_frame_numpy(_sk_ssim_gauss, pred, target), atol=1e-6
    )
    np.testing.assert_allclose(
        frame_ssim_openstl(pred, target).numpy(),
        _per_frame_numpy(_sk_ssim_openstl, pred, target),
        atol=1e-6,
    )


@pytest.mark.parametrize("fn", [frame_ssim, frame_ssim_openstl])
def test_ssim_of_a_large_batch_equals_frame_by_frame(fn):
    # 2·3·12 = 72 images of 64×64: more than one internal chunk (64 images at 64×64).
    pred, target = _fixture(b=2, t=3, c=12, size=64, seed=8)
    batched = fn(pred, target)
    singles = torch.stack(
        [
            torch.cat([fn(pred[i : i + 1, j : j + 1], target[i : i + 1, j : j + 1]) for j in range(3)])
            for i in range(2)
        ]
    ).reshape(2, 3)
    torch.testing.assert_close(batched, singles, rtol=0, atol=1e-12)
    ref = _sk_ssim_gauss if fn is frame_ssim else _sk_ssim_openstl
    last = ref(pred[1, 2].clamp(0, 1).double().numpy(), target[1, 2].double().numpy())
    assert float(batched[1, 2]) == pytest.approx(last, abs=1e-6)


def test_ssim_on_structured_frames_matches_skimage():
    # Moving-MNIST-like frames: mostly black with a bright blob, the prediction shifted and blurred.
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    blob = lambda cy, cx: torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 20.0)  # noqa: E731
    target = torch.stack([blob(10 + k, 12) for k in range(4)]).view(1, 4, 1, 32, 32)
    pred = torch.stack([0.8 * blob(11 + k, 13) for k in range(4)]).view(1, 4, 1, 32, 32)
    np.testing.assert_allclose(
        frame_ssim(pred, target).numpy(), _per_frame_numpy(_sk_ssim_gauss, pred, target), atol=1e-6
    )
    np.testing.assert_allclose(
        frame_ssim_openstl(pred, target).numpy(),
        _per_frame_numpy(_sk_ssim_openstl, pred, target),
        atol=1e-6,
    )


def test_ssim_agrees_with_torchmetrics_on_the_valid_region():
    tm = pytest.importorskip("torchmetrics.functional.image")
    pred, target = _fixture(b=2, t=2, c=2, size=24, seed=2)
    x = pred.clamp(0, 1).double().reshape(4, 2, 24, 24)
    y = target.double().reshape(4, 2, 24, 24)
    _, s_map = tm.structural_similarity_index_measure(
        x, y, data_range=1.0, reduction="none", return_full_image=True
    )
    ours = frame_ssim(pred, target).reshape(4)
    # Same map on the interior (torchmetrics 1.9's own mean also counts the reflect-padded border).
    torch.testing.assert_close(ours, s_map[..., 5:-5, 5:-5].mean(dim=(1, 2, 3)), atol=1e-6, rtol=0)


def test_identical_frames():
    _, target = _fixture(c=3)
    assert torch.equal(frame_mse(target, target), torch.zeros(2, 3, dtype=torch.float64))
    assert torch.equal(frame_mae(target, target), torch.zeros(2, 3, dtype=torch.float64))
    assert torch.allclose(frame_psnr(target, target), torch.full((2, 3), 100.0, dtype=torch.float64))
    assert pytest.approx(100.0) == PSNR_MAX_DB
    torch.testing.assert_close(frame_ssim(target, target), torch.ones(2, 3, dtype=torch.float64))
    torch.testing.assert_close(frame_ssim_openstl(target, target), torch.ones(2, 3, dtype=torch.float64))


@pytest.mark.parametrize(("a", "b"), [(0.3, 0.7), (0.0, 0.0), (0.0, 1.0), (1.0, 1.0)])
def test_constant_frames_follow_the_luminance_term(a, b):
    # Zero variance: SSIM reduces to (2ab + C1) / (a² + b² + C1) with C1 = (0.01 · range)².
    pred = torch.full((1, 2, 1, 16, 16), a)
    target = torch.full((1, 2, 1, 16, 16), b)
    for fn, rng in ((frame_ssim, 1.0), (frame_ssim_openstl, 2.0)):
        c1 = (0.01 * rng) ** 2
        expected = (2 * a * b + c1) / (a * a + b * b + c1)
        torch.testing.assert_close(fn(pred, target), torch.full((1, 2), expected, dtype=torch.float64))
    ref = _sk_ssim_gauss(pred[0, 0].double().numpy(), target[0, 0].double().numpy())
    assert float(frame_ssim(pred, target)[0, 0]) == pytest.approx(ref, abs=1e-9)
    assert float(frame_mse(pred, target)[0, 0]) == pytest.approx((a - b) ** 2 * 256, rel=1e-6, abs=1e-9)


def test_known_offset_gives_analytic_values():
    # pred = target + 0.1 everywhere (target ≤ 0.9, so clipping changes nothing).
    c, h, w = 2, 16, 16
    target = 0.9 * torch.rand(3, 4, c, h, w, generator=torch.Generator().manual_seed(3))
    target = target.double()
    pred = target + 0.1
    torch.testing.assert_close(frame_mse(pred, target), torch.full((3, 4), 0.01 * c * h * w).double())
    torch.testing.assert_close(frame_mae(pred, target), torch.full((3, 4), 0.1 * c * h * w).double())
    torch.testing.assert_close(frame_psnr(pred, target), torch.full((3, 4), 20.0).double())


def test_psnr_and_ssim_clip_the_prediction_but_mse_does_not():
    target = torch.full((1, 1, 1, 16, 16), 0.8)
    pred = target + 0.5  # 1.3, clipped to 1.0 for PSNR and SSIM
    assert float(frame_mse(pred, target)) == pytest.approx(0.25 * 256, rel=1e-6)
    assert float(frame_mae(pred, target)) == pytest.approx(0.5 * 256, rel=1e-6)
    assert float(frame_psnr(pred, target)) == pytest.approx(-10 * math.log10(0.04), rel=1e-6)
    torch.testing.assert_close(frame_ssim(pred, target), frame_ssim(torch.ones_like(pred), target))


# --------------------------------------------------------------------------- accumulator


def test_accumulator_matches_per_frame_functions_and_per_pixel_mse():
    pred, target = _fixture(b=4, t=3, c=2, size=16)
    acc = MetricAccumulator()
    acc.update(pred, target)
    out = acc.compute()
    assert out["num_sequences"] == 4 == acc.num_sequences
    assert set(out["per_horizon"]) == set(METRIC_NAMES)
    for name, fn in zip(METRIC_NAMES, FRAME_FUNCS, strict=True):
        frames = fn(pred, target)
        assert out[name] == pytest.approx(float(frames.mean()), rel=1e-9)
        assert out["per_horizon"][name] == pytest.approx(frames.mean(dim=0).tolist(), rel=1e-9)
        assert len(out["per_horizon"][name]) == 3
    assert out["mse_per_pixel"] == pytest.approx(out["mse"] / (2 * 16 * 16), rel=1e-12)
    json.dumps(out, allow_nan=False)  # plain floats, no inf


def test_accumulator_is_invariant_to_batching():
    pred, target = _fixture(b=5, t=2, c=1, size=16, seed=4)
    whole, split = MetricAccumulator(), MetricAccumulator()
    whole.update(pred, target)
    split.update(pred[:3], target[:3])
    split.update(pred[3:], target[3:])
    a, b = whole.compute(), split.compute()
    assert a["num_sequences"] == b["num_sequences"] == 5
    for name in (*METRIC_NAMES, "mse_per_pixel"):
        assert a[name] == pytest.approx(b[name], rel=1e-12)
    for name in METRIC_NAMES:
        assert a["per_horizon"][name] == pytest.approx(b["per_horizon"][name], rel=1e-12)


def test_accumulator_reset_and_errors():
    acc = MetricAccumulator()
    with pytest.raises(ValueError, match="no batch"):
        acc.compute()
    pred, target = _fixture(b=1, t=2, size=16)
    acc.update(pred, target)
    with pytest.raises(ValueError, match=r"\(T, C, H, W\)"):
        acc.update(pred[:, :1], target[:, :1])
    acc.reset()
    with pytest.raises(ValueError, match="no batch"):
        acc.compute()
    acc.update(pred[:, :1], target[:, :1])
    assert acc.compute()["num_sequences"] == 1


# --------------------------------------------------------------------------- input errors


@pytest.mark.parametrize("fn", FRAME_FUNCS)
def test_nan_and_inf_inputs_are_rejected(fn):
    pred, target = _fixture(size=16)
    bad = pred.clone()
    bad[0, 1, 0, 2, 3] = float("nan")
    with pytest.raises(ValueError, match=r"pred: .*NaN"):
        fn(bad, target)
    bad = target.clone()
    bad[1, 0, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"target: .*Inf"):
        fn(pred, bad)
    with pytest.raises(ValueError, match="pred"):
        MetricAccumulator().update(pred.fill_(float("nan")), target)


def test_bad_shapes_dtypes_and_ranges_are_rejected():
    pred, target = _fixture(size=16)
    with pytest.raises(ValueError, match=r"target: expected the same shape as pred"):
        frame_mse(pred, target[:, :2])
    with pytest.raises(ValueError, match=r"pred: expected a video tensor of shape \(B, T, C, H, W\)"):
        frame_mse(pred[0], target[0])
    with pytest.raises(ValueError, match="floating-point"):
        frame_mae((pred * 255).to(torch.uint8), target)
    with pytest.raises(ValueError, match=r"target: expected values on the \[0, 1\] scale"):
        frame_psnr(pred, target * 255)
    with pytest.raises(ValueError, match="11×11"):
        frame_ssim(pred[..., :8, :8], target[..., :8, :8])
    with pytest.raises(ValueError, match="7×7"):
        frame_ssim_openstl(pred[..., :6, :6], target[..., :6, :6])
    with pytest.raises(ValueError, match=r"pred: expected a torch\.Tensor"):
        frame_mse(pred.numpy(), target)


# --------------------------------------------------------------------------- baselines


def test_baselines_shapes_and_values():
    context = torch.rand(3, 5, 2, 8, 8, generator=torch.Generator().manual_seed(5))
    zeros = zeros_baseline(context, 4)
    assert zeros.shape == (3, 4, 2, 8, 8)
    assert zeros.dtype == context.dtype and zeros.device == context.device
    assert not zeros.any()
    last = copy_last_baseline(context, 4)
    assert last.shape == (3, 4, 2, 8, 8)
    assert last.is_contiguous()
    for k in range(4):
        assert torch.equal(last[:, k], context[:, 4])
    last[0, 0].zero_()  # a new tensor, not a view of the context
    assert context[0, 4].any()


def test_baseline_metrics_against_formulas():
    g = torch.Generator().manual_seed(6)
    context = torch.rand(2, 3, 1, 16, 16, generator=g)
    future = torch.rand(2, 4, 1, 16, 16, generator=g)
    # Predicting zeros: the per-frame MSE is the target's energy.
    torch.testing.assert_close(
        frame_mse(zeros_baseline(context, 4), future), future.double().square().sum(dim=(2, 3, 4))
    )
    expected = (future.double() - context[:, -1:].double()).abs().sum(dim=(2, 3, 4))
    torch.testing.assert_close(frame_mae(copy_last_baseline(context, 4), future), expected)
    # Predicting the mean observed frame: every step is the average of the context, per pixel.
    mean = mean_context_baseline(context, 4)
    assert mean.shape == (2, 4, 1, 16, 16)
    torch.testing.assert_close(mean[:, 2], (context[:, 0] + context[:, 1] + context[:, 2]) / 3)


def test_every_baseline_a_test_set_names_is_registered():
    assert set(STANDARD_BASELINES) <= set(FOLDER_BASELINES) <= set(BASELINES)
    assert BASELINES["copy_last"].predict is copy_last_baseline
    assert [baseline_label(k) for k in FOLDER_BASELINES] == ["zeros", "copy last frame", "mean of context"]
    assert baseline_label("unknown") == "unknown"  # a metrics.json from elsewhere still renders


def test_metric_registry_and_score_keys():
    assert METRIC_NAMES == tuple(m.key for m in METRICS) == ("mse", "mae", "psnr", "ssim", "ssim_openstl")
    assert set(SCORE_KEYS) == {*METRIC_NAMES, "mse_per_pixel"}
    assert [f for f in Scores.__dataclass_fields__ if f != "per_horizon"] == list(SCORE_KEYS)
    pred, target = _fixture(b=2, t=2, c=1, size=16)
    acc = MetricAccumulator()
    acc.update(pred, target)
    out = acc.compute()
    assert list(out)[: len(SCORE_KEYS)] == list(SCORE_KEYS)  # the order of metrics.json
    assert Scores.from_json(out).to_json() == {k: out[k] for k in (*SCORE_KEYS, "per_horizon")}


@pytest.mark.parametrize("horizon", [0, -1, 2.0, True])
def test_baselines_reject_bad_horizon(horizon):
    context = torch.rand(1, 2, 1, 8, 8)
    for fn in (zeros_baseline, copy_last_baseline, mean_context_baseline):
        with pytest.raises(ValueError, match=r"horizon .*: expected a positive number of frames"):
            fn(context, horizon)


def test_baselines_reject_bad_context():
    with pytest.raises(ValueError, match=r"context: expected a video tensor"):
        copy_last_baseline(torch.rand(2, 1, 8, 8), 3)


# --------------------------------------------------------------------------- imports


def test_import_loads_no_training_stack():
    code = (
        "import sys, crevnet.evaluation.metrics\n"
        "heavy = {'lightning', 'pytorch_lightning', 'lightning_utilities', 'wandb', 'cv2',"
        " 'torchmetrics', 'skimage'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"
