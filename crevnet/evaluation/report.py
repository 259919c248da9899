"""The one report writer: metrics beside the baselines, a verdict that weighs every metric, pictures.

Used by ``crevnet evaluate`` (:func:`crevnet.evaluation.evaluate.evaluate_checkpoint`) and by
``crevnet fit``'s end-of-run report (:class:`crevnet.train.callbacks.FitReport` through
:func:`crevnet.train.end_of_fit.report_model`).
:func:`write_report` writes, into one folder that appears whole or not at all
(:func:`crevnet.io.atomic.atomic_folder`):

- ``metrics.json``: what :func:`crevnet.evaluation.evaluate.evaluate_model` returned (plus any extra keys),
- ``report.md``: a Markdown table of the model next to the baselines the test set was scored against
  (zeros and copy last frame; a folder of clips adds the mean of the context), naming the test set,
  and a verdict per baseline and metric (:func:`verdict`),
- ``per_horizon.png``: MSE and SSIM against the horizon step for the model and each baseline,
- given samples: ``contact_sheet.png`` (context | ground truth | prediction | error rows),
  ``prediction.gif`` (all samples: ground truth over prediction) and ``samples/sample_<i>.gif``
  (ground truth | prediction | error, side by side).
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from crevnet.data.grid import tile
from crevnet.io.atomic import atomic_folder, atomic_write_bytes

__all__ = [
    "BASELINES",
    "REPORT_FILES",
    "EvaluationSamples",
    "is_report_folder",
    "prediction_grid",
    "render_markdown",
    "verdict",
    "write_report",
]

BASELINES: dict[str, str] = {
    "zeros": "zeros",
    "copy_last": "copy last frame",
    "mean_context": "mean of context",
}
"""Baseline key in ``metrics.json`` -> the name the report prints (a test set lists the keys it uses)."""


REPORT_FILES = (
    "metrics.json",
    "report.md",
    "per_horizon.png",
    "contact_sheet.png",
    "prediction.gif",
    "samples",
)
"""Everything :func:`write_report` puts in its folder; a folder holding only these may be replaced."""

_HIGHER_IS_BETTER = {"mse": False, "mae": False, "psnr": True, "ssim": True, "ssim_openstl": True}
_COLUMNS = (  # (key, header) of the report's table
    ("mse", "MSE ↓"),
    ("mae", "MAE ↓"),
    ("psnr", "PSNR (dB) ↑"),
    ("ssim", "SSIM ↑"),
    ("ssim_openstl", "SSIM (OpenSTL) ↑"),
)


# ---------------------------------------------------------------------------------- report files


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


def _fmt(value: float, key: str) -> str:
    return f"{value:.4f}" if key.startswith("ssim") else f"{value:.2f}"


def _rows(results: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [("model", results["model"])] + [
        (BASELINES.get(key, key), metrics) for key, metrics in results["baselines"].items()
    ]


def _names(keys: list[str]) -> str:
    labels = dict(_COLUMNS)
    return ", ".join(labels[k].rstrip(" ↑↓") for k in keys)


def verdict(results: dict[str, Any]) -> list[str]:
    """One sentence per baseline saying on which metrics the model beats it and on which it does not.

    Every metric of the report's table counts (MSE, MAE: lower is better; PSNR, SSIM, SSIM (OpenSTL):
    higher is better); the model "beats" a baseline only where it is better on all of them.
    """
    sentences = []
    for key, base in results["baselines"].items():  # the baselines this test set was scored against
        label = BASELINES.get(key, key)
        better, worse = [], []
        for metric, _ in _COLUMNS:
            ours, theirs = float(results["model"][metric]), float(base[metric])
            if ours == theirs:
                continue
            won = ours > theirs if _HIGHER_IS_BETTER[metric] else ours < theirs
            (better if won else worse).append(metric)
        if not worse and better:
            sentences.append(f"The model beats {label} on every metric ({_names(better)}).")
        elif not better:
            sentences.append(
                f"The model does not beat {label} on any metric ({label} wins on {_names(worse)})."
            )
        else:
            sentences.append(
                f"Mixed against {label}: the model is better on {_names(better)}, but {label} wins on "
                f"{_names(worse)}."
            )
    return sentences


def render_markdown(results: dict[str, Any]) -> str:
    """The ``report.md`` text for ``results`` (from :func:`crevnet.evaluation.evaluate.evaluate_model`)."""
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
    lines += [
        "",
        "**Verdict.** " + " ".join(verdict(results)),
        "",
        f"The model's MSE is {ratio:.3f}× that of the zeros baseline.",
    ]
    others = [(k, m["mse"]) for k, m in results["baselines"].items() if k != "zeros" and m["mse"] > 0]
    if others:
        ratios = ", ".join(f"{results['model']['mse'] / mse:.3f}× {BASELINES.get(k, k)}" for k, mse in others)
        lines.append(f"Against the other baselines, the model's MSE is {ratios}.")
    lines += [
        "",
        "MSE and MAE are summed over the C·H·W pixels of a frame on the [0, 1] scale, then averaged over "
        "frames and sequences (OpenSTL's convention); per-pixel MSE = MSE / (C·H·W). PSNR: per frame, "
        "peak 1. SSIM: Gaussian window 11×11, σ 1.5, data range 1. SSIM (OpenSTL): 7×7 uniform window, "
        "data range 2. Colour frames: SSIM is computed on each channel alone and averaged over the "
        "channels (no colour-space conversion); MSE/MAE sum over all three channels.",
        "",
        "## Per horizon step",
        "",
    ]
    rows = _rows(results)
    labels = [label for label, _ in rows]
    lines += [
        "| step | "
        + " | ".join(f"{label} MSE" for label in labels)
        + " | "
        + " | ".join(f"{label} SSIM" for label in labels)
        + " |",
        "|---:|" + "---:|" * (2 * len(labels)),
    ]
    series = [m["per_horizon"] for _, m in rows]
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
    styles = ("o-", "s--", "^:", "d-.")
    panels = (("mse", "MSE (sum per frame) ↓"), ("ssim", "SSIM ↑"))
    for ax, (key, title) in zip(fig.subplots(1, 2), panels, strict=True):
        for (label, metrics), style in zip(_rows(results), styles, strict=False):
            ax.plot(steps, metrics["per_horizon"][key], style, label=label, markersize=4)
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
    return tile([[shown_truth, shown_pred, error]], gap)


def prediction_grid(truth: torch.Tensor, pred: torch.Tensor, context: int, gap: int = 2) -> torch.Tensor:
    """Frames of a GIF: for each clip a column pair (ground truth | prediction), clips side by side.

    During the context the prediction column shows the observed frames; afterwards the model's
    frames, clipped to [0, 1].

    Shape:
        truth: (N, T, C, H, W), pred: (N, T - context, C, H, W) -> (T, C, 2H + gap, N·W + (N − 1)·gap)
    """
    shown = torch.cat((truth[:, :context], pred.clamp(0.0, 1.0)), 1)  # (N, T, C, H, W)
    return tile([list(truth), list(shown)], gap)


def is_report_folder(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` holds only files :func:`write_report` writes (so it may be replaced)."""
    return all(entry.name in REPORT_FILES for entry in Path(folder).iterdir())


def write_report(
    results: dict[str, Any],
    out_dir: str | os.PathLike[str],
    samples: EvaluationSamples | None = None,
    fps: float = 4,
) -> dict[str, Path]:
    """Write the report's files into ``out_dir``, all of them or none (see the module docstring).

    Args:
        results: what :func:`crevnet.evaluation.evaluate.evaluate_model` returned (extra JSON-ready keys are
            kept, e.g. ``checkpoint``, ``global_step``).
        out_dir: the report folder. If it exists it must be empty or an earlier report (only
            :data:`REPORT_FILES`); it is then replaced as a whole.
        samples: sequences to draw (see :func:`crevnet.evaluation.evaluate.collect_samples`); None draws none.
        fps: frame rate of the GIFs.

    Returns:
        Name -> path of every file written (``metrics``, ``report``, ``per_horizon`` and, with
        samples, ``contact_sheet``, ``prediction_gif``, ``sample_<i>``).

    Raises:
        OutputError: ``out_dir`` is a file or a folder of other files, or a write failed (disk full,
            read-only, ...); then ``out_dir`` is left as it was.
    """
    out = Path(out_dir)
    names = {"metrics": "metrics.json", "report": "report.md", "per_horizon": "per_horizon.png"}
    with atomic_folder(out, is_report_folder) as tmp:
        atomic_write_bytes(tmp / names["metrics"], (json.dumps(results, indent=2) + "\n").encode())
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
                name = f"samples/sample_{index}.gif"
                write_gif(_sample_gif_frames(samples.context[k], truth, pred), tmp / name, fps=fps)
                names[f"sample_{index}"] = name
            write_contact_sheet(rows, tmp / "contact_sheet.png")
            names["contact_sheet"] = "contact_sheet.png"
            whole = torch.cat((samples.context, samples.truth), dim=1)  # (K, T, C, H, W)
            context = samples.context.shape[1]
            write_gif(prediction_grid(whole, samples.prediction, context), tmp / "prediction.gif", fps=fps)
            names["prediction_gif"] = "prediction.gif"
            text += (
                "\n## Samples\n\nRows per sequence: observed context, ground truth, prediction, absolute "
                "error (bright = wrong). GIFs in `samples/`: ground truth | prediction | error; "
                "`prediction.gif`: ground truth over prediction for every sample.\n\n"
                "![samples](contact_sheet.png)\n"
            )
        _plot_per_horizon(results, tmp / names["per_horizon"])
        atomic_write_bytes(tmp / names["report"], text.encode())
    return {key: out / name for key, name in names.items()}
