"""The report's verdict weighs every metric it prints and names the baseline that wins on each."""

from __future__ import annotations

from crevnet.evaluation.report import render_markdown, verdict
from crevnet.evaluation.result import EvaluationResult


def _metrics(mse: float, mae: float, psnr: float, ssim: float, ssim_openstl: float) -> dict:
    values = {"mse": mse, "mae": mae, "psnr": psnr, "ssim": ssim, "ssim_openstl": ssim_openstl}
    return {**values, "mse_per_pixel": mse / 4096, "per_horizon": {k: [v] for k, v in values.items()}}


def _results(model: dict, **more_baselines: dict) -> EvaluationResult:
    return EvaluationResult.from_json(
        {
            "test_set": "surrogate test set (seed 1234, N=2)",
            "surrogate": True,
            "num_sequences": 2,
            "context": 10,
            "horizon": 1,
            "frame_size": [64, 64],
            "model": model,
            "baselines": {
                "zeros": _metrics(172.5, 296.0, 14.0, 0.63, 0.70),
                "copy_last": _metrics(283.3, 380.0, 12.0, 0.58, 0.60),
                **more_baselines,
            },
        }
    )


def test_a_lower_mse_alone_is_not_called_a_win() -> None:
    # the report: MSE below zeros, but SSIM (0.19 vs 0.63) and MAE (461 vs 296) worse
    results = _results(_metrics(130.0, 461.0, 15.0, 0.19, 0.25))
    zeros, copy_last = verdict(results)
    assert zeros == (
        "Mixed against zeros: the model is better on MSE, PSNR (dB), but zeros wins on MAE, SSIM, "
        "SSIM (OpenSTL)."
    )
    assert copy_last.startswith("Mixed against copy last frame: the model is better on MSE, PSNR (dB)")
    text = render_markdown(results)
    assert "beats predicting black frames" not in text and "**Verdict.** Mixed against zeros" in text


def test_a_model_better_on_everything_beats_both() -> None:
    results = _results(_metrics(100.0, 200.0, 16.0, 0.7, 0.8))
    assert verdict(results) == [
        "The model beats zeros on every metric (MSE, MAE, PSNR (dB), SSIM, SSIM (OpenSTL)).",
        "The model beats copy last frame on every metric (MSE, MAE, PSNR (dB), SSIM, SSIM (OpenSTL)).",
    ]
    worse = _results(_metrics(300.0, 500.0, 10.0, 0.1, 0.1))
    assert verdict(worse)[0].startswith("The model does not beat zeros on any metric (zeros wins on MSE")


def test_every_baseline_the_test_set_was_scored_against_gets_a_verdict() -> None:
    # a folder of clips adds the mean of the context as a third baseline
    third = _metrics(90.0, 180.0, 17.0, 0.75, 0.85)
    results = _results(_metrics(100.0, 200.0, 16.0, 0.7, 0.8), mean_context=third)
    sentences = verdict(results)
    assert len(sentences) == 3
    assert sentences[2].startswith("The model does not beat mean of context on any metric")
    text = render_markdown(results)
    assert "| mean of context |" in text and "mean of context MSE" in text
    assert "1.111× mean of context" in text  # the model's MSE over the third baseline's


def test_a_saved_metrics_json_read_back_gives_the_same_verdict() -> None:
    results = _results(_metrics(130.0, 461.0, 15.0, 0.19, 0.25))
    assert verdict(EvaluationResult.from_json(results.to_json())) == verdict(results)
