"""``crevnet evaluate``: a checkpoint's metrics beside the trivial baselines, and a report to read.

For every test sequence the first ``context`` frames are observed and the next ``horizon`` frames
are predicted by the model, by "zeros" (black frames) and by "copy last frame"; all three are scored
with :class:`crevnet.metrics.MetricAccumulator` (MSE and MAE summed per frame as OpenSTL reports
them, PSNR, Gaussian SSIM, OpenSTL SSIM; overall and per horizon step). :func:`write_report` writes

- ``metrics.json``: ``{"test_set", "surrogate", "num_sequences", "checkpoint", "context",
  "horizon", "model": {...}, "baselines": {"zeros": {...}, "copy_last": {...}}, ...}``,
- ``report.md``: a Markdown table of the model next to both baselines, naming the test set,
- ``per_horizon.png``: MSE and SSIM against the horizon step for the three predictors,
- ``contact_sheet.png`` (context | ground truth | prediction | error rows for a few sequences) and
  ``samples/sample_<i>.gif`` (ground truth | prediction | error, side by side, over time).

Every file is written atomically. The Python API (:func:`evaluate_model`, :func:`collect_samples`,
:func:`write_report`) takes any :class:`~crevnet.nn.CrevNet`, so training code can call it too.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from crevnet.data.atomic import atomic_write_bytes
from crevnet.data.paths import resolve_data_dir
from crevnet.data.testset import (
    STANDARD_FILE,
    SURROGATE_SEED,
    TestSet,
    find_standard_file,
    load_test_set,
)
from crevnet.errors import CrevnetError, DataError
from crevnet.metrics import MetricAccumulator, copy_last_baseline, zeros_baseline
from crevnet.nn.model import CrevNet

__all__ = [
    "BASELINES",
    "EvaluationSamples",
    "collect_samples",
    "evaluate_model",
    "main",
    "render_markdown",
    "resolve_device",
    "write_report",
]

BASELINES: dict[str, str] = {"zeros": "zeros", "copy_last": "copy last frame"}
"""Baseline key in ``metrics.json`` -> the name the report prints."""

_BASELINE_FNS = {"zeros": zeros_baseline, "copy_last": copy_last_baseline}
_REPORTED = ("mse", "mae", "mse_per_pixel", "psnr", "ssim", "ssim_openstl", "per_horizon")
_COLUMNS = (  # (key, header) of the report's table
    ("mse", "MSE ↓"),
    ("mae", "MAE ↓"),
    ("psnr", "PSNR (dB) ↑"),
    ("ssim", "SSIM ↑"),
    ("ssim_openstl", "SSIM (OpenSTL) ↑"),
)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else the CPU; other names are checked.

    Raises:
        CrevnetError: CUDA was asked for and is not available, or the name is not a device.
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise CrevnetError(f"--device {device!r}: not a device; expected cpu, cuda, cuda:N or auto") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise CrevnetError(f"--device {device}: CUDA is not available here; use --device cpu or auto")
    return resolved


def _model_device(model: CrevNet) -> torch.device:
    return next(model.parameters()).device


def _check_lengths(model: CrevNet, frames: int, context: int, horizon: int, source: str) -> None:
    window = model.config.window
    if context < window:
        raise DataError(
            f"context={context}: the model needs at least {window} observed frame(s) (its window)"
        )
    if horizon < 1:
        raise DataError(f"horizon={horizon}: expected at least 1 frame to predict")
    if context + horizon > frames:
        raise DataError(
            f"{source}: sequences have {frames} frames; context {context} + horizon {horizon} needs "
            f"{context + horizon} (lower --context or --horizon)"
        )


def _metric_dict(computed: dict[str, Any]) -> dict[str, Any]:
    return {key: computed[key] for key in _REPORTED}


def evaluate_model(
    model: CrevNet,
    test_set: TestSet,
    context: int = 10,
    horizon: int = 10,
    batch_size: int = 16,
    device: str | torch.device | None = None,
    limit: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Score ``model`` and the two baselines on ``test_set``.

    Each sequence's frames ``0 .. context-1`` are observed and frames ``context .. context+horizon-1``
    predicted. The model runs in eval mode under ``torch.no_grad()`` (its mode is restored after).

    Args:
        model: the network; it is moved to ``device`` when one is given.
        test_set: the sequences (see :func:`crevnet.data.load_test_set`).
        context: observed frames per sequence (>= the model's window).
        horizon: predicted frames per sequence.
        batch_size: sequences per forward pass.
        device: "auto", "cpu", "cuda", ... (see :func:`resolve_device`); None keeps the model where
            it is.
        limit: score only the first ``limit`` sequences (None: all).
        progress: show a tqdm progress bar on stderr (hidden when stderr is not a terminal).

    Returns:
        A JSON-ready dict: ``test_set`` (its name), ``surrogate``, ``num_sequences``, ``context``,
        ``horizon``, ``frame_size`` [H, W], ``device``, ``eval_seconds``, ``model`` and
        ``baselines`` {``zeros``, ``copy_last``}; each of the last holds ``mse``, ``mae``,
        ``mse_per_pixel``, ``psnr``, ``ssim``, ``ssim_openstl`` and ``per_horizon`` (a list of
        ``horizon`` values per metric), as :meth:`MetricAccumulator.compute` defines them.

    Raises:
        DataError: ``context``/``horizon`` do not fit the sequences or the model, bad ``limit``.
        ValueError: ``batch_size`` < 1.
    """
    from tqdm import tqdm

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    total = len(test_set)
    if limit is not None and not 1 <= limit <= total:
        raise DataError(f"--limit {limit}: the test set {test_set.name} holds {total} sequences")
    videos = test_set.videos if limit is None else test_set.videos[:limit]
    frames = int(videos.shape[1])
    _check_lengths(model, frames, context, horizon, test_set.name)
    dev = _model_device(model) if device is None else resolve_device(device)
    accumulators = {name: MetricAccumulator() for name in ("model", *BASELINES)}
    was_training = model.training
    model.to(dev).eval()
    start = time.monotonic()
    bar = tqdm(
        total=len(videos), desc="evaluate", unit="seq", file=sys.stderr, disable=None if progress else True
    )
    try:
        with torch.no_grad():
            for first in range(0, len(videos), batch_size):
                clip = videos[first : first + batch_size].to(dev).float() / 255.0  # (B, T, C, H, W)
                past = clip[:, :context]
                future = clip[:, context : context + horizon]
                accumulators["model"].update(model.predict(past, horizon), future)
                for name, baseline in _BASELINE_FNS.items():
                    accumulators[name].update(baseline(past, horizon), future)
                bar.update(len(clip))
    finally:
        bar.close()
        model.train(was_training)
    return {
        "test_set": test_set.name,
        "surrogate": bool(test_set.is_surrogate),
        "num_sequences": len(videos),
        "context": context,
        "horizon": horizon,
        "frame_size": [int(videos.shape[3]), int(videos.shape[4])],
        "device": str(dev),
        "eval_seconds": round(time.monotonic() - start, 3),
        "model": _metric_dict(accumulators["model"].compute()),
        "baselines": {name: _metric_dict(accumulators[name].compute()) for name in BASELINES},
    }


@dataclass(frozen=True)
class EvaluationSamples:
    """A few test sequences with the model's prediction, for pictures.

    Shape:
        context: (K, context, C, H, W); truth, prediction: (K, horizon, C, H, W); all float in
        [0, 1] on the CPU (the prediction clipped).
    """

    context: torch.Tensor
    truth: torch.Tensor
    prediction: torch.Tensor
    indices: tuple[int, ...]  # positions of the sequences in the test set


def collect_samples(
    model: CrevNet,
    test_set: TestSet,
    context: int = 10,
    horizon: int = 10,
    num: int = 4,
    device: str | torch.device | None = None,
) -> EvaluationSamples:
    """Predict the first ``num`` sequences of ``test_set`` for the report's GIFs and contact sheet.

    ``device`` as in :func:`evaluate_model` (None: where the model is).
    """
    num = max(1, min(num, len(test_set)))
    frames = int(test_set.videos.shape[1])
    _check_lengths(model, frames, context, horizon, test_set.name)
    dev = _model_device(model) if device is None else resolve_device(device)
    clip = test_set.videos[:num].float() / 255.0  # (K, T, C, H, W)
    was_training = model.training
    model.to(dev).eval()
    try:
        with torch.no_grad():
            pred = model.predict(clip[:, :context].to(dev), horizon).cpu().clamp(0.0, 1.0)
    finally:
        model.train(was_training)
    return EvaluationSamples(clip[:, :context], clip[:, context : context + horizon], pred, tuple(range(num)))


# ---------------------------------------------------------------------------------- report files


def _fmt(value: float, key: str) -> str:
    return f"{value:.4f}" if key.startswith("ssim") else f"{value:.2f}"


def _rows(results: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [("model", results["model"])] + [
        (label, results["baselines"][key]) for key, label in BASELINES.items()
    ]


def render_markdown(results: dict[str, Any]) -> str:
    """The ``report.md`` text for ``results`` (as returned by :func:`evaluate_model`)."""
    name = results["test_set"]
    lines = ["# CrevNet evaluation", ""]
    if results.get("surrogate"):
        lines.append(
            f"Test set: **{name}**. This is a surrogate test set, generated from the MNIST test "
            "digits with the standard Moving MNIST generator; its numbers are close to, but not the "
            "same as, numbers on the standard `mnist_test_seq.npy`."
        )
    else:
        lines.append(f"Test set: **{name}**.")
    lines.append("")
    if results.get("checkpoint"):
        lines.append(f"Checkpoint: `{results['checkpoint']}`")
        lines.append("")
    h, w = results.get("frame_size", ["?", "?"])
    lines += [
        f"{results['num_sequences']} sequences; {results['context']} frames observed, "
        f"{results['horizon']} predicted; frames {h}×{w}.",
        "",
        "| predictor | " + " | ".join(header for _, header in _COLUMNS) + " |",
        "|---|" + "---:|" * len(_COLUMNS),
    ]
    for label, metrics in _rows(results):
        cells = " | ".join(_fmt(metrics[key], key) for key, _ in _COLUMNS)
        lines.append(f"| {label} | {cells} |")
    zeros = results["baselines"]["zeros"]["mse"]
    ratio = results["model"]["mse"] / zeros if zeros > 0 else float("nan")
    verdict = "beats" if ratio < 1 else "does not beat"
    lines += [
        "",
        f"The model's MSE is {ratio:.3f}× that of the zeros baseline: it {verdict} predicting black frames.",
        "",
        "MSE and MAE are summed over the C·H·W pixels of a frame on the [0, 1] scale, then averaged over "
        "frames and sequences (OpenSTL's convention); per-pixel MSE = MSE / (C·H·W). PSNR: per frame, "
        "peak 1. SSIM: Gaussian window 11×11, σ 1.5, data range 1. SSIM (OpenSTL): 7×7 uniform window, "
        "data range 2.",
        "",
        "## Per horizon step",
        "",
        "| step | model MSE | zeros MSE | copy last MSE | model SSIM | zeros SSIM | copy last SSIM |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    series = [m["per_horizon"] for _, m in _rows(results)]
    for k in range(results["horizon"]):
        mse = " | ".join(f"{s['mse'][k]:.2f}" for s in series)
        ssim = " | ".join(f"{s['ssim'][k]:.4f}" for s in series)
        lines.append(f"| t+{k + 1} | {mse} | {ssim} |")
    lines += ["", "![MSE and SSIM per horizon step](per_horizon.png)", ""]
    return "\n".join(lines)


def _plot_per_horizon(results: dict[str, Any], path: Path) -> None:
    # A bare Figure renders with Agg and leaves pyplot's global backend alone.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.4), dpi=100)
    steps = list(range(1, results["horizon"] + 1))
    styles = {"model": "o-", "zeros": "s--", "copy last frame": "^:"}
    panels = (("mse", "MSE (sum per frame) ↓"), ("ssim", "SSIM ↑"))
    for ax, (key, title) in zip(fig.subplots(1, 2), panels, strict=True):
        for label, metrics in _rows(results):
            ax.plot(steps, metrics["per_horizon"][key], styles[label], label=label, markersize=4)
        ax.set_xlabel("horizon step t+k")
        ax.set_title(title)
        ax.set_xticks(steps)
        ax.grid(alpha=0.3)
    fig.axes[0].legend()
    fig.suptitle(results["test_set"], fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    atomic_write_bytes(path, buffer.getvalue())


def _sample_gif_frames(
    context: torch.Tensor, truth: torch.Tensor, pred: torch.Tensor, gap: int = 2
) -> torch.Tensor:
    # (Tc, C, H, W), (Th, C, H, W) x2 -> (Tc + Th, C, H, 3W + 2 gap): truth | prediction | error.
    from crevnet.data.video import error_frames

    shown_truth = torch.cat((context, truth))
    shown_pred = torch.cat((context, pred))
    error = torch.cat((torch.zeros_like(context), error_frames(pred, truth)))
    t, c, h, w = shown_truth.shape
    canvas = shown_truth.new_ones(t, c, h, 3 * w + 2 * gap)
    for i, panel in enumerate((shown_truth, shown_pred, error)):
        left = i * (w + gap)
        canvas[..., left : left + w] = panel
    return canvas


def write_report(
    results: dict[str, Any],
    out_dir: str | os.PathLike[str],
    samples: EvaluationSamples | None = None,
    fps: float = 4,
) -> dict[str, Path]:
    """Write ``metrics.json``, ``report.md``, ``per_horizon.png`` and, given samples, the pictures.

    Args:
        results: what :func:`evaluate_model` returned (extra JSON-ready keys are kept, e.g.
            ``checkpoint``).
        out_dir: folder for the files (created).
        samples: sequences to draw (see :func:`collect_samples`); None draws none.
        fps: frame rate of the sample GIFs.

    Returns:
        Name -> path of every file written (``metrics``, ``report``, ``per_horizon``,
        ``contact_sheet``, ``sample_<i>``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {
        "metrics": out / "metrics.json",
        "report": out / "report.md",
        "per_horizon": out / "per_horizon.png",
    }
    atomic_write_bytes(written["metrics"], (json.dumps(results, indent=2) + "\n").encode())
    text = render_markdown(results)
    if samples is not None:
        from crevnet.data.video import error_frames, write_contact_sheet, write_gif

        rows: list[tuple[str, torch.Tensor]] = []
        for k, index in enumerate(samples.indices):
            truth, pred = samples.truth[k], samples.prediction[k]
            rows += [
                (f"#{index} context", samples.context[k]),
                (f"#{index} truth", truth),
                (f"#{index} prediction", pred),
                (f"#{index} |error|", error_frames(pred, truth)),
            ]
            gif = out / "samples" / f"sample_{index}.gif"
            write_gif(_sample_gif_frames(samples.context[k], truth, pred), gif, fps=fps)
            written[f"sample_{index}"] = gif
        written["contact_sheet"] = write_contact_sheet(rows, out / "contact_sheet.png")
        text += (
            "\n## Samples\n\nRows per sequence: observed context, ground truth, prediction, absolute error "
            "(bright = wrong). GIFs in `samples/`: ground truth | prediction | error.\n\n"
            "![samples](contact_sheet.png)\n"
        )
    _plot_per_horizon(results, written["per_horizon"])
    atomic_write_bytes(written["report"], text.encode())
    return written


# ---------------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    """The ``crevnet evaluate`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="crevnet evaluate",
        description="Metrics of a checkpoint beside the 'zeros' and 'copy last frame' baselines, with a "
        "Markdown report, a per-horizon plot, sample GIFs and a contact sheet.",
    )
    parser.add_argument(
        "--ckpt",
        required=True,
        help="checkpoint written by 'crevnet fit' (.ckpt), a run folder (runs/NAME: its newest run's "
        "last.ckpt; runs/NAME/version_N: that run's) or a bundled model's name (mmnist-cpu)",
    )
    parser.add_argument(
        "--test-set",
        default="auto",
        help="'standard' (mnist_test_seq.npy in the data dir), 'surrogate' (seeded, generated from the "
        "MNIST test digits), a (T, N, H, W) uint8 .npy file, or 'auto' (default: standard where the "
        "file is found, else surrogate)",
    )
    parser.add_argument("--limit", type=int, default=None, help="use only the first N sequences")
    parser.add_argument("--out", default=None, help="output folder (default: <ckpt folder>/eval_<ckpt name>)")
    parser.add_argument("--batch-size", type=int, default=16, help="sequences per forward pass (default 16)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    parser.add_argument(
        "--context", type=int, default=None, help="observed frames (default: what the model was trained with)"
    )
    parser.add_argument(
        "--horizon", type=int, default=None, help="predicted frames (default: the rest of each sequence)"
    )
    parser.add_argument("--data-dir", default=None, help="data folder (MNIST digits, mnist_test_seq.npy)")
    parser.add_argument("--seed", type=int, default=SURROGATE_SEED, help="seed of the surrogate test set")
    parser.add_argument("--samples", type=int, default=4, help="sequences drawn as GIFs / contact sheet")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``crevnet evaluate``; returns the exit status (errors are raised for the dispatcher)."""
    from crevnet.bundled import WEIGHTS_DIR
    from crevnet.checkpoint import load_model
    from crevnet.io.runs import resolve_checkpoint

    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.limit is not None and args.limit < 1:
        raise DataError(f"--limit {args.limit}: expected a positive number of sequences")
    if args.samples < 0:
        raise DataError(f"--samples {args.samples}: expected 0 or more")
    device = resolve_device(args.device)
    ckpt = resolve_checkpoint(args.ckpt)
    loaded = load_model(ckpt, map_location=device)
    spec = args.test_set
    if spec == "auto":
        spec = "standard" if find_standard_file(args.data_dir) is not None else "surrogate"
        if spec == "surrogate":
            print(
                f"crevnet evaluate: {STANDARD_FILE} not found in {resolve_data_dir(args.data_dir)}; "
                "using the surrogate test set",
                file=sys.stderr,
            )
    test = load_test_set(spec, args.data_dir, args.limit, args.seed)
    context = loaded.meta["context"] if args.context is None else args.context
    horizon = int(test.videos.shape[1]) - context if args.horizon is None else args.horizon
    results = evaluate_model(
        loaded.model, test, context, horizon, args.batch_size, device, None, not args.no_progress
    )
    results = {"checkpoint": str(ckpt.resolve()), **results}
    # a bundled model lives inside the package: its report goes to the working folder
    default_dir = Path.cwd() if ckpt.parent == WEIGHTS_DIR else ckpt.parent
    out = Path(args.out) if args.out else default_dir / f"eval_{ckpt.stem}"
    samples = (
        collect_samples(loaded.model, test, context, horizon, args.samples, device) if args.samples else None
    )
    written = write_report(results, out, samples)
    model, zeros, copy = results["model"], results["baselines"]["zeros"], results["baselines"]["copy_last"]
    print(
        f"{results['test_set']}: model MSE {model['mse']:.2f} SSIM {model['ssim']:.4f} | zeros MSE "
        f"{zeros['mse']:.2f} | copy last MSE {copy['mse']:.2f}"
    )
    print(f"wrote {written['report']} (and metrics.json, per_horizon.png, samples) in {out}")
    return 0
