"""CrevNetModule wraps CrevNet: same loss, plain hyperparameters, config checks on load."""

from __future__ import annotations

import io
import logging

import pytest
import torch

from crevnet.errors import CheckpointError
from crevnet.evaluation.metrics import frame_mse
from crevnet.nn.model import CrevNet, CrevNetConfig
from crevnet.train.module import CrevNetModule, config_to_dict

NET = {
    "encoder": {"dims": 2, "init_downsample": 2, "stages": [1, 1], "strides": [1, 2], "channels": [2, 8]},
    "predictor": {"layers": 1, "cell": "conv_lstm"},
    "window": 1,
}


def _module(**kwargs: object) -> CrevNetModule:
    torch.manual_seed(0)
    return CrevNetModule(CrevNetConfig.from_dict(NET), context=3, **kwargs)


def test_training_loss_is_the_models_loss() -> None:
    module = _module()
    video = torch.rand(2, 5, 1, 16, 16)
    assert module.training_step is not None
    expected = module.net.loss(video, context=3)
    # teacher forcing at progress 0: the module adds nothing to the model's loss
    got = module.net.loss(video, sampling_prob=module.sampling.probability(0.0), context=3)
    assert torch.equal(got, expected)
    assert isinstance(module.net, CrevNet)


def test_predict_future_matches_crevnet_predict_and_metric() -> None:
    module = _module()
    video = torch.rand(3, 6, 1, 16, 16)
    pred, target = module.predict_future(video)
    assert pred.shape == target.shape == (3, 3, 1, 16, 16)
    with torch.no_grad():
        direct = module.net.predict(video[:, :3], 3)
    assert torch.equal(pred, direct)
    assert torch.equal(target, video[:, 3:])
    # the metric is the per-frame sum of squared errors
    assert frame_mse(pred, target)[0, 0].item() == pytest.approx(
        ((pred - target)[0, 0] ** 2).sum().item(), rel=1e-6
    )


def test_reconstruction_error_is_float_rounding() -> None:
    module = _module()
    err = module.reconstruction_error(torch.rand(2, 4, 1, 16, 16))
    assert 0.0 <= err.item() < 1e-5


def test_a_drifting_inverse_is_warned_once_with_the_measured_error(caplog, monkeypatch) -> None:
    module = _module()
    video = torch.rand(2, 4, 1, 16, 16)
    with caplog.at_level(logging.WARNING, logger="crevnet"):
        module.check_round_trip(video)  # exact: nothing to say
        assert caplog.text == ""
        monkeypatch.setattr(module.net, "reconstruct", lambda x: x + 0.02)  # as a saturated scale would
        assert abs(module.check_round_trip(video).item() - 0.02) < 1e-6
        module.check_round_trip(video)
    assert caplog.text.count("the encoder's inverse is off by 0.02") == 1
    assert "lower encoder.clamp" in caplog.text and "coupling 'irevnet'" in caplog.text


def test_hyperparameters_are_plain_and_load_weights_only() -> None:
    module = _module(lr=1e-3)
    buffer = io.BytesIO()
    torch.save({"hyper_parameters": dict(module.hparams)}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)["hyper_parameters"]
    assert loaded["net"] == config_to_dict(CrevNetConfig.from_dict(NET))
    rebuilt = CrevNetModule(**loaded)  # a mapping for net/schedule/sampling is accepted
    assert rebuilt.net.config == module.net.config
    assert rebuilt.hparams.lr == 1e-3


def test_checkpoint_of_another_config_is_refused_with_the_key() -> None:
    module = _module()
    other = dict(NET, predictor={"layers": 2, "cell": "conv_lstm"})
    checkpoint = {"hyper_parameters": {"net": config_to_dict(CrevNetConfig.from_dict(other))}}
    with pytest.raises(CheckpointError, match=r"predictor\.layers: checkpoint 2, config 1"):
        module.on_load_checkpoint(checkpoint)
    with pytest.raises(CheckpointError, match="no 'net'"):
        module.on_load_checkpoint({"state_dict": {}})
    module.on_load_checkpoint({"hyper_parameters": dict(module.hparams), "crevnet": {"train_seconds": 12.5}})
    assert module.train_seconds() == pytest.approx(12.5)


def test_bad_arguments_are_clear() -> None:
    with pytest.raises(ValueError, match="lr"):
        _module(lr=0.0)
    with pytest.raises(ValueError, match="context"):
        CrevNetModule(CrevNetConfig.from_dict(NET), context=0)


def test_progress_is_the_larger_of_the_step_and_time_fractions(monkeypatch: pytest.MonkeyPatch) -> None:
    import lightning as L

    module = _module()
    module.trainer = L.Trainer(max_time="00:00:10:00", max_steps=100, logger=False, enable_progress_bar=False)
    assert module.progress(50) == pytest.approx(0.5)
    monkeypatch.setattr(module, "train_seconds", lambda: 480.0)  # 8 of 10 minutes
    assert module.progress(50) == pytest.approx(0.8)
    assert module.progress(100) == 1.0
    module.trainer = L.Trainer(max_steps=100, logger=False, enable_progress_bar=False)
    assert module.progress(50) == pytest.approx(0.5)  # no max_time: steps only
    timeless = _module(time_progress=False)
    timeless.trainer = L.Trainer(
        max_time="00:00:10:00", max_steps=100, logger=False, enable_progress_bar=False
    )
    monkeypatch.setattr(timeless, "train_seconds", lambda: 480.0)
    assert timeless.progress(50) == pytest.approx(0.5)
