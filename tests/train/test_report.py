"""The end-of-fit report and the sample pictures, on a tiny model and a few surrogate sequences."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from crevnet.data.testset import load_test_set
from crevnet.evaluation.report import prediction_grid
from crevnet.nn.model import CrevNet, CrevNetConfig
from crevnet.train.callbacks import FitReport, SampleLogger
from crevnet.train.cli import CrevNetCLI
from crevnet.train.end_of_fit import report_model

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml"
NET = {
    "encoder": {"dims": 2, "init_downsample": 2, "stages": [1, 1], "strides": [1, 2], "channels": [2, 8]},
    "predictor": {"layers": 1, "cell": "conv_lstm"},
    "window": 1,
}


def test_prediction_grid_places_truth_over_prediction() -> None:
    truth = torch.rand(2, 5, 1, 4, 4)
    pred = torch.rand(2, 3, 1, 4, 4)
    grid = prediction_grid(truth, pred, context=2, gap=1)
    assert grid.shape == (5, 1, 9, 9)  # 2 clips of width 4, one gap between them
    assert torch.equal(grid[:, :, :4, 5:9], truth[1])  # top row: ground truth of clip 1
    assert torch.equal(grid[:2, :, 5:, :4], truth[0, :2])  # bottom row: context frames ...
    assert torch.equal(grid[2:, :, 5:, :4], pred[0])  # ... then the prediction
    assert torch.all(grid[:, :, 4, :] == 1.0)  # white gap


def test_report_scores_model_and_baselines(smoke_env: Path) -> None:
    torch.manual_seed(0)
    net = CrevNet(CrevNetConfig.from_dict(NET))
    report = report_model(net, smoke_env / "rep", num_sequences=6, batch_size=4, extra={"note": 1})
    saved = json.loads((smoke_env / "rep" / "metrics.json").read_text())
    assert saved["note"] == 1 and saved["num_sequences"] == 6 and saved["surrogate"] is True
    assert "surrogate" in saved["test_set"]
    test = load_test_set("surrogate", num=6)
    future = test.videos[:, 10:].double() / 255.0
    zeros = future.pow(2).sum(dim=(2, 3, 4)).mean().item()  # zeros baseline, computed independently
    last = test.videos[:, 9:10].double() / 255.0
    copy_last = (future - last).pow(2).sum(dim=(2, 3, 4)).mean().item()
    assert abs(report.baselines["zeros"].mse - zeros) < 1e-6 * zeros
    assert abs(report.baselines["copy_last"].mse - copy_last) < 1e-6 * copy_last
    with torch.no_grad():
        pred = net.predict(test.videos[:, :10].float() / 255.0, 10)
    model_mse = (pred.double() - future).pow(2).sum(dim=(2, 3, 4)).mean().item()
    assert abs(report.model.mse - model_mse) < 1e-4 * model_mse
    assert report.extra["mse_vs_zeros"] == report.model.mse / report.baselines["zeros"].mse
    assert saved == json.loads(json.dumps(report.to_json()))  # what it returns is what it wrote
    assert (smoke_env / "rep" / "prediction.gif").stat().st_size > 0
    assert (smoke_env / "rep" / "contact_sheet.png").stat().st_size > 0  # the earlier prediction.png
    assert "**Verdict.**" in (smoke_env / "rep" / "report.md").read_text()  # the same report as evaluate's


def test_fit_writes_samples_and_the_report(smoke_env: Path) -> None:
    callbacks = [
        SampleLogger(every_n_steps=2, num_clips=2, max_fraction=None),
        FitReport(num_sequences=4, batch_size=4),
    ]
    args = ["fit", "--config", str(SMOKE), "--trainer.max_steps=4", "--trainer.enable_progress_bar=false"]
    cli = CrevNetCLI(args=args, trainer_defaults={"callbacks": callbacks})
    version = smoke_env / "runs" / "smoke" / "version_0"
    assert sorted(p.name for p in (version / "samples").iterdir()) == [
        "step_0000002.gif",
        "step_0000002.png",
        "step_0000004.gif",
        "step_0000004.png",
    ]
    report = json.loads((version / "report" / "metrics.json").read_text())
    assert report["global_step"] == cli.trainer.global_step == 4
    assert report["train_seconds"] > 0
    assert callbacks[1].report is not None and callbacks[1].report.model.mse == report["model"]["mse"]
