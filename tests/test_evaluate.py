"""``crevnet evaluate`` end to end on a tiny checkpoint trained here; numbers checked with numpy/skimage."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import structural_similarity

from crevnet.cli import main as cli_main
from crevnet.data.testset import TestSet
from crevnet.data.video import read_clip
from crevnet.evaluation.baselines import BASELINES
from crevnet.evaluation.evaluate import collect_samples, evaluate_model, render_markdown, write_report
from crevnet.evaluation.metrics import MetricAccumulator
from crevnet.evaluation.result import EvaluationResult
from crevnet.models.checkpoint import load_model

RunCli = Callable[..., tuple[int, str, str]]  # the conftest fixture run_cli

pytestmark = [
    pytest.mark.filterwarnings("ignore:You defined a `validation_step`"),
    pytest.mark.filterwarnings("ignore:.*LeafSpec.*is deprecated"),
]

CONTEXT, HORIZON, FRAMES, N, SIZE = 3, 3, 6, 5, 16


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, fit_tiny) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("evaluate")
    fit_tiny(root / "tiny.ckpt", frames=FRAMES, size=SIZE)
    rng = np.random.default_rng(7)
    sequences = rng.integers(0, 256, size=(FRAMES, N, SIZE, SIZE), dtype=np.uint8)  # (T, N, H, W)
    sequences[:, :, :4] = 0  # a dark band, as in Moving MNIST
    np.save(root / "test.npy", sequences)
    return {"ckpt": root / "tiny.ckpt", "test": root / "test.npy", "root": root}


@pytest.fixture(scope="module")
def evaluated(files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    argv = ["evaluate", "--ckpt", str(files["ckpt"]), "--test-set", str(files["test"]), "--out", str(out)]
    argv += ["--batch-size", "2", "--device", "cpu", "--samples", "2", "--no-progress"]
    assert cli_main(argv) == 0
    return out


def _independent(files: dict[str, Path]) -> dict[str, dict[str, np.ndarray]]:
    """Per-frame (N, H) metrics of the model and the baselines with numpy / scikit-image."""
    videos = np.load(files["test"]).transpose(1, 0, 2, 3).astype(np.float64) / 255.0  # (N, T, H, W)
    past, target = videos[:, :CONTEXT], videos[:, CONTEXT : CONTEXT + HORIZON]
    model = load_model(files["ckpt"]).model
    with torch.no_grad():
        pred = model.predict(torch.from_numpy(past).float().unsqueeze(2), HORIZON)[:, :, 0].double().numpy()
    predictions = {
        "model": pred,
        "zeros": np.zeros_like(target),
        "copy_last": np.repeat(past[:, -1:], HORIZON, axis=1),
    }
    out = {}
    for name, p in predictions.items():
        clipped = np.clip(p, 0, 1)
        ssim = np.array(
            [
                [
                    structural_similarity(
                        clipped[i, t],
                        target[i, t],
                        gaussian_weights=True,
                        sigma=1.5,
                        use_sample_covariance=False,
                        data_range=1.0,
                    )
                    for t in range(HORIZON)
                ]
                for i in range(N)
            ]
        )
        out[name] = {
            "mse": ((p - target) ** 2).sum(axis=(2, 3)),
            "mae": np.abs(p - target).sum(axis=(2, 3)),
            "psnr": -10 * np.log10(np.maximum(((clipped - target) ** 2).mean(axis=(2, 3)), 1e-10)),
            "ssim": ssim,
        }
    return out


def test_metrics_json_equals_an_independent_computation(files: dict[str, Path], evaluated: Path) -> None:
    report = json.loads((evaluated / "metrics.json").read_text())
    assert report["test_set"] == f"file {files['test']} (N={N})"
    assert report["surrogate"] is False
    assert report["num_sequences"] == N
    assert (report["context"], report["horizon"]) == (CONTEXT, HORIZON)  # defaults: trained context, rest
    assert report["checkpoint"] == str(files["ckpt"].resolve())
    expected = _independent(files)
    # The zeros baseline's MSE is the mean over frames of sum(target²): pin it with plain numpy.
    videos = np.load(files["test"]).astype(np.float64) / 255.0
    target_energy = (videos[CONTEXT:] ** 2).sum(axis=(2, 3)).mean()
    assert report["baselines"]["zeros"]["mse"] == pytest.approx(target_energy, rel=1e-6)  # frames are float32
    for name, got in [("model", report["model"]), *report["baselines"].items()]:
        for metric, per_frame in expected[name].items():
            assert got[metric] == pytest.approx(per_frame.mean(), rel=1e-5, abs=1e-9), (name, metric)
            assert got["per_horizon"][metric] == pytest.approx(per_frame.mean(axis=0), rel=1e-5), (
                name,
                metric,
            )
        assert got["mse_per_pixel"] == pytest.approx(got["mse"] / SIZE**2)
        assert set(got["per_horizon"]) >= {"mse", "mae", "psnr", "ssim", "ssim_openstl"}
        assert len(got["per_horizon"]["ssim_openstl"]) == HORIZON


def test_report_markdown_plot_and_pictures(files: dict[str, Path], evaluated: Path) -> None:
    report = json.loads((evaluated / "metrics.json").read_text())
    text = (evaluated / "report.md").read_text()
    assert report["test_set"] in text and "surrogate" not in text
    for label, metrics in [("model", report["model"]), ("zeros", report["baselines"]["zeros"])]:
        assert f"| {label} | {metrics['mse']:.2f} | {metrics['mae']:.2f} |" in text
    copy = report["baselines"]["copy_last"]
    assert f"| copy last frame | {copy['mse']:.2f} |" in text
    with Image.open(evaluated / "per_horizon.png") as image:
        assert image.format == "PNG" and image.size == (900, 340)
    # Contact sheet: 4 rows (context, truth, prediction, error) for each of the 2 samples, frames ×2.
    with Image.open(evaluated / "contact_sheet.png") as image:
        assert image.size[1] == 2 + 2 * 4 * (2 * SIZE + 2)
    # Each GIF shows truth | prediction | error; its prediction panel holds the model's frames.
    model = load_model(files["ckpt"]).model
    videos = torch.from_numpy(np.load(files["test"])).permute(1, 0, 2, 3).unsqueeze(2).float() / 255.0
    with torch.no_grad():
        pred = model.predict(videos[:2, :CONTEXT], HORIZON).clamp(0, 1)
    for i in range(2):
        gif = read_clip(evaluated / "samples" / f"sample_{i}.gif", grayscale=True)
        assert gif.shape == (CONTEXT + HORIZON, 1, SIZE, 3 * SIZE + 4)
        panel = gif[CONTEXT:, :, :, SIZE + 2 : 2 * SIZE + 2]
        assert (panel - pred[i]).abs().max() <= 1.01 / 255  # GIF stores 8-bit grey
        truth = gif[:, :, :, :SIZE]
        assert (truth - videos[i]).abs().max() <= 1.01 / 255


def test_python_api_is_batch_invariant_and_limits(files: dict[str, Path], tmp_path: Path) -> None:
    videos = torch.from_numpy(np.load(files["test"])).permute(1, 0, 2, 3).unsqueeze(2)
    test = TestSet(videos, "fixture", False)
    model = load_model(files["ckpt"]).model
    one = evaluate_model(model, test, CONTEXT, HORIZON, batch_size=1, device="cpu", progress=False)
    four = evaluate_model(model, test, CONTEXT, HORIZON, batch_size=4, progress=False)  # stays put
    assert four.device == "cpu"
    for key in ("mse", "psnr", "ssim", "ssim_openstl"):
        assert one.model.value(key) == pytest.approx(four.model.value(key), rel=1e-6)
    limited = evaluate_model(model, test, CONTEXT, 2, batch_size=3, device="cpu", limit=2, progress=False)
    assert limited.num_sequences == 2 and len(limited.model.per_horizon["mse"]) == 2
    future = videos[:2, CONTEXT : CONTEXT + 2].double() / 255.0
    assert limited.baselines["zeros"].mse == pytest.approx(float((future**2).sum((2, 3, 4)).mean()))
    samples = collect_samples(model, test, CONTEXT, HORIZON, num=3, device="cpu")
    assert samples.prediction.shape == (3, HORIZON, 1, SIZE, SIZE) and samples.indices == (0, 1, 2)
    one = replace(one, checkpoint="x.ckpt")
    written = write_report(one, tmp_path / "r", samples)
    assert sorted(written) == sorted(
        [
            "metrics",
            "report",
            "per_horizon",
            "contact_sheet",
            "prediction_gif",
            "sample_0",
            "sample_1",
            "sample_2",
        ]
    )
    assert all(p.is_file() for p in written.values())
    assert not [p for p in (tmp_path / "r").rglob(".*")]  # no temporary files left behind
    assert "Checkpoint: `x.ckpt`" in render_markdown(one)


def _old_metrics_json(model: torch.nn.Module, test: TestSet, device: str, seconds: float) -> dict:
    """metrics.json as the untyped dict evaluate_model returned before the typed result, rebuilt here."""
    videos = test.videos.float() / 255.0
    past, future = videos[:, :CONTEXT], videos[:, CONTEXT : CONTEXT + HORIZON]
    scored = {}
    with torch.no_grad():
        for name, predict in [("model", model.predict), *((k, BASELINES[k].predict) for k in test.baselines)]:
            acc = MetricAccumulator()
            acc.update(predict(past, HORIZON), future)
            computed = acc.compute()
            keys = ("mse", "mae", "mse_per_pixel", "psnr", "ssim", "ssim_openstl", "per_horizon")
            scored[name] = {key: computed[key] for key in keys}
    return {
        "checkpoint": "x.ckpt",
        "test_set": test.name,
        "surrogate": False,
        "num_sequences": len(videos),
        "context": CONTEXT,
        "horizon": HORIZON,
        "frame_size": [SIZE, SIZE],
        "device": device,
        "eval_seconds": seconds,
        "model": scored.pop("model"),
        "baselines": scored,
    }


def test_typed_result_writes_the_metrics_json_of_the_untyped_dict(files: dict[str, Path]) -> None:
    videos = torch.from_numpy(np.load(files["test"])).permute(1, 0, 2, 3).unsqueeze(2)
    test = TestSet(videos, "fixture", False)
    model = load_model(files["ckpt"]).model
    result = evaluate_model(model, test, CONTEXT, HORIZON, batch_size=N, device="cpu", progress=False)
    result = replace(result, checkpoint="x.ckpt", extra={"global_step": 7})
    expected = {**_old_metrics_json(model, test, "cpu", result.eval_seconds), "global_step": 7}
    got = result.to_json()
    assert json.dumps(got, indent=2) == json.dumps(expected, indent=2)  # same keys, order and numbers
    assert EvaluationResult.from_json(got) == result  # metrics.json reads back


def test_surrogate_test_set_is_named_as_such(
    files: dict[str, Path], mnist_dir: Path, tmp_path: Path, run_cli: RunCli
) -> None:
    # No --test-set: "auto" falls back to the surrogate where mnist_test_seq.npy is absent, and says so.
    argv = ["evaluate", "--ckpt", str(files["ckpt"]), "--limit", "2", "--data-dir", str(mnist_dir.parent)]
    argv += ["--out", str(tmp_path), "--horizon", "2", "--samples", "1", "--device", "cpu"]
    code, out, err = run_cli(*argv)
    assert code == 0, err
    assert "mnist_test_seq.npy not found" in err and "using the surrogate test set" in err
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert report["surrogate"] is True and report["num_sequences"] == 2
    assert report["frame_size"] == [64, 64] and report["horizon"] == 2
    assert report["test_set"] == "surrogate test set (seed 1234, N=2)"
    assert "surrogate test set" in (tmp_path / "report.md").read_text()
    assert "surrogate test set" in out


def test_bad_inputs_give_one_line_and_exit_2(
    files: dict[str, Path], tmp_path: Path, run_cli: RunCli, one_error_line: Callable[[str], str]
) -> None:
    base = ["--test-set", str(files["test"]), "--out", str(tmp_path / "o"), "--device", "cpu"]
    code, _, err = run_cli("evaluate", "--ckpt", str(tmp_path / "missing.ckpt"), *base)
    assert code == 2 and "checkpoint not found" in one_error_line(err)

    not_ours = tmp_path / "weights.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "hyper_parameters": {"lr": 0.1}}, not_ours)
    code, _, err = run_cli("evaluate", "--ckpt", str(not_ours), *base)
    assert code == 2 and "no crevnet model config" in one_error_line(err)

    code, _, err = run_cli("evaluate", "--ckpt", str(files["test"]), *base)
    assert code == 2 and "not a torch checkpoint" in one_error_line(err)

    code, _, err = run_cli("evaluate", "--ckpt", str(files["ckpt"]), *base, "--horizon", "9")
    line = one_error_line(err)
    assert code == 2 and "sequences have 6 frames; context 3 + horizon 9 needs 12" in line

    code, _, err = run_cli("evaluate", "--ckpt", str(files["ckpt"]), *base, "--limit", "50")
    assert code == 2 and "asked for 50 sequences; it holds 5" in one_error_line(err)

    bad_file = tmp_path / "broken.npy"
    bad_file.write_bytes(b"not an array")
    code, _, err = run_cli("evaluate", "--ckpt", str(files["ckpt"]), "--test-set", str(bad_file))
    assert code == 2 and "broken.npy: not a readable .npy file" in one_error_line(err)
    assert not (tmp_path / "o").exists()  # nothing written for a failed run
