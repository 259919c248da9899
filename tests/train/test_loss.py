"""The training loss: each term against an independent computation."""

from __future__ import annotations

import pytest
import torch

from crevnet.evaluation.metrics import frame_ssim
from crevnet.nn import CrevNet, CrevNetConfig
from crevnet.nn.encoder import EncoderConfig
from crevnet.nn.predictor import PredictorConfig
from crevnet.train.loss import LossWeights, prediction_loss, ssim_map_loss


def tiny_model() -> CrevNet:
    enc = EncoderConfig(
        in_channels=1, dims=2, init_downsample=2, stages=(1, 1), strides=(1, 2), channels=(2, 8), mult=2
    )
    predictor = PredictorConfig(layers=1, cell="conv_lstm")
    return CrevNet(CrevNetConfig(encoder=enc, predictor=predictor, window=1))


def test_default_weights_are_the_papers_loss():
    torch.manual_seed(0)
    model = tiny_model()
    video = torch.rand(2, 5, 1, 16, 16)
    pred, target = model(video)
    assert torch.allclose(prediction_loss(pred, target, LossWeights()), model.loss(video), rtol=1e-6)


def test_l1_term_is_the_summed_per_transition_mean_absolute_error():
    torch.manual_seed(1)
    pred = torch.rand(2, 3, 1, 1, 16, 16)
    target = torch.rand(2, 3, 1, 1, 16, 16)
    expected = sum((pred[:, s] - target[:, s]).abs().mean() for s in range(3))
    got = prediction_loss(pred, target, LossWeights(mse=0.0, l1=1.0))
    assert torch.allclose(got, expected)
    both = prediction_loss(pred, target, LossWeights(mse=2.0, l1=0.5))
    mse = sum((pred[:, s] - target[:, s]).pow(2).mean() for s in range(3))
    assert torch.allclose(both, 2.0 * mse + 0.5 * expected)


def test_ssim_term_matches_the_ssim_metric():
    # the metric (checked against scikit-image elsewhere) on predictions inside [0, 1]
    torch.manual_seed(2)
    target = torch.rand(3, 1, 1, 24, 24).double()
    pred = (target + 0.2 * torch.randn_like(target)).clamp(0, 1)
    got = ssim_map_loss(pred[:, :, 0], target[:, :, 0])  # (N, C, H, W) -> (N,)
    expected = 1 - frame_ssim(pred.transpose(0, 1), target.transpose(0, 1))[0]
    assert torch.allclose(got, expected, atol=1e-10)
    assert ssim_map_loss(target[:, 0], target[:, 0]).abs().max() < 1e-12


def test_ssim_term_has_gradients_and_weights_validate():
    pred = torch.rand(2, 2, 1, 1, 16, 16, requires_grad=True)
    target = torch.rand(2, 2, 1, 1, 16, 16)
    prediction_loss(pred, target, LossWeights(mse=0.0, ssim=1.0)).backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="l1"):
        LossWeights(l1=-1.0)
    with pytest.raises(ValueError, match="at least one"):
        LossWeights(mse=0.0)


def test_module_trains_with_the_configured_loss_and_records_it():
    from crevnet.train.module import CrevNetModule

    module = CrevNetModule(tiny_model().config, loss={"mse": 1.0, "l1": 1.0}, context=2)
    assert module.hparams.loss == {"mse": 1.0, "l1": 1.0, "ssim": 0.0}
    assert module.loss_weights == LossWeights(l1=1.0)
