"""The one report writer: metrics beside the baselines, a verdict that weighs every metric, pictures.

Used by ``crevnet evaluate`` (:func:`crevnet.evaluation.evaluate.evaluate_checkpoint`) and by
``crevnet fit``'s end-of-run report (:class:`crevnet.train.callbacks.FitReport` through
:func:`crevnet.train.end_of_fit.report_model`).
:func:`write_report` writes, into one folder that appears whole or not at all
(:func:`crevnet.io.atomic.atomic_folder`):

- ``metrics.json``: the :class:`~crevnet.evaluation.result.EvaluationResult`'s
  :meth:`~crevnet.evaluation.result.EvaluationResult.to_json` (with its ``checkpoint`` and ``extra``),
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

import torch

from crevnet.data.grid import tile
from crevnet.evaluation.baselines import baseline_label
from crevnet.evaluation.metrics import METRICS
from crevnet.evaluation.result import EvaluationResult, Scores
from crevnet.io.atomic import atomic_folder, atomic_write_bytes

__all__ = [
    "REPORT_FILES",
    "EvaluationSamples",
    "is_report_folder",
    "prediction_grid",
    "render_markdown",
    "verdict",
    "write_report",
]

REPORT_FILES = (
    "metrics.json",
    "report.md",
    "per_horizon.png",
    "contact_sheet.png",
    "prediction.gif",
    "samples",
)
"""Everything :func:`write_report` puts in its folder; a folder holding only these may be replaced."""

_DEFINITIONS = (
    "MSE and MAE are summed over the C·H·W pixels of a frame on the [0, 1] scale, then averaged over "
    "frames and sequences (OpenSTL's convention); per-pixel MSE = MSE / (C·H·W). PSNR: per frame, "
    "peak 1. SSIM: Gaussian window 11×11, σ 1.5, data range 1. SSIM (OpenSTL): 7×7 uniform window, "
    "data range 2. Colour frames: SSIM is computed on each channel alone and averaged over the "
    "channels (no colour-space conversion); MSE/MAE sum over all three channels."
)
_SAMPLES_TEXT = (
    "\n## Samples\n\nRows per sequence: observed context, ground truth, prediction, absolute "
    "error (bright = wrong). GIFs in `samples/`: ground truth | prediction | error; "
    "`prediction.gif`: ground truth over prediction for every sample.\n\n"
    "![samples](contact_sheet.png)\n"
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


def _header(metric_label: str, higher_is_better: bool) -> str:
    return f"{metric_label} {'↑' if higher_is_better else '↓'}"


def _rows(result: EvaluationResult) -> list[tuple[str, Scores]]:
    return [("model", result.model)] + [(baseline_label(k), s) for k, s in result.baselines.items()]


def _names(keys: list[str]) -> str:
    labels = {metric.key: metric.label for metric in METRICS}
    return ", ".join(labels[k] for k in keys)


def _sentence(label: str, better: list[str], worse: list[str]) -> str:
    if not worse and better:
        return f"The model beats {label} on every metric ({_names(better)})."
    if not better:
        return f"The model does not beat {label} on any metric ({label} wins on {_names(worse)})."
    return (
        f"Mixed against {label}: the model is better on {_names(better)}, but {label} wins on "
        f"{_names(worse)}."
    )


def verdict(result: EvaluationResult) -> list[str]:
    """One sentence per baseline saying on which metrics the model beats it and on which it does not.

    Every metric of the report's table counts (:data:`crevnet.evaluation.metrics.METRICS`: MSE, MAE
    lower is better; PSNR, SSIM, SSIM (OpenSTL) higher is better); the model "beats" a baseline only
    where it is better on all of them.

    Args:
        result: the scores (a saved ``metrics.json`` is read back with
            :meth:`~crevnet.evaluation.result.EvaluationResult.from_json`).

    Returns:
        One sentence per baseline, in the order of ``result.baselines``.
    """
    sentences = []
    for key, base in result.baselines.items():  # the baselines this test set was scored against
        better, worse = [], []
        for metric in METRICS:
            ours, theirs = result.model.value(metric.key), base.value(metric.key)
            if ours == theirs:
                continue
            won = ours > theirs if metric.higher_is_better else ours < theirs
            (better if won else worse).append(metric.key)
        sentences.append(_sentence(baseline_label(key), better, worse))
    return sentences


def _intro_lines(result: EvaluationResult) -> list[str]:
    name = result.test_set
    if result.surrogate:
        lines = [
            f"Test set: **{name}**. This is a surrogate test set, generated from the MNIST test "
            "digits with the standard Moving MNIST generator; its numbers are close to, but not the "
            "same as, numbers on the standard `mnist_test_seq.npy`."
        ]
    else:
        lines = [f"Test set: **{name}**."]
    lines.append("")
    if result.checkpoint:
        lines += [f"Checkpoint: `{result.checkpoint}`", ""]
    h, w = result.frame_size
    lines.append(
        f"{result.num_sequences} sequences; {result.context} frames observed, "
        f"{result.horizon} predicted; frames {h}×{w}."
    )
    return [*lines, ""]


def _table_lines(result: EvaluationResult) -> list[str]:
    lines = [
        "| predictor | " + " | ".join(_header(m.label, m.higher_is_better) for m in METRICS) + " |",
        "|---|" + "---:|" * len(METRICS),
    ]
    for label, scores in _rows(result):
        cells = " | ".join(f"{scores.value(m.key):.{m.decimals}f}" for m in METRICS)
        lines.append(f"| {label} | {cells} |")
    return lines


def _verdict_lines(result: EvaluationResult) -> list[str]:
    lines = [
        "",
        "**Verdict.** " + " ".join(verdict(result)),
        "",
        f"The model's MSE is {result.mse_ratio('zeros'):.3f}× that of the zeros baseline.",
    ]
    others = [k for k, s in result.baselines.items() if k != "zeros" and s.mse > 0]
    if others:
        ratios = ", ".join(f"{result.mse_ratio(k):.3f}× {baseline_label(k)}" for k in others)
        lines.append(f"Against the other baselines, the model's MSE is {ratios}.")
    return lines


def _per_horizon_lines(result: EvaluationResult) -> list[str]:
    rows = _rows(result)
    labels = [label for label, _ in rows]
    mse_heads = " | ".join(f"{label} MSE" for label in labels)
    ssim_heads = " | ".join(f"{label} SSIM" for label in labels)
    lines = ["## Per horizon step", "", f"| step | {mse_heads} | {ssim_heads} |"]
    lines.append("|---:|" + "---:|" * (2 * len(labels)))
    series = [scores.per_horizon for _, scores in rows]
    for k in range(result.horizon):
        mse = " | ".join(f"{s['mse'][k]:.2f}" for s in series)
        ssim = " | ".join(f"{s['ssim'][k]:.4f}" for s in series)
        lines.append(f"| t+{k + 1} | {mse} | {ssim} |")
    return lines


def render_markdown(result: EvaluationResult) -> str:
    """The ``report.md`` text for ``result`` (from :func:`crevnet.evaluation.evaluate.evaluate_model`).

    Args:
        result: the scores.

    Returns:
        The Markdown text: the test set, the table of the model beside the baselines, the verdict,
        the metrics' definitions and the per-horizon table.
    """
    lines = ["# CrevNet evaluation", "", *_intro_lines(result), *_table_lines(result)]
    lines += [*_verdict_lines(result), "", _DEFINITIONS, "", *_per_horizon_lines(result)]
    lines += ["", "![MSE and SSIM per horizon step](per_horizon.png)", ""]
    return "\n".join(lines)


def _plot_per_horizon(result: EvaluationResult, path: Path) -> None:
    # A bare Figure renders with Agg and leaves pyplot's global backend alone.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.4), dpi=100)
    steps = list(range(1, result.horizon + 1))
    styles = ("o-", "s--", "^:", "d-.")
    panels = (("mse", "MSE (sum per frame) ↓"), ("ssim", "SSIM ↑"))
    for ax, (key, title) in zip(fig.subplots(1, 2), panels, strict=True):
        for (label, scores), style in zip(_rows(result), styles, strict=False):
            ax.plot(steps, scores.per_horizon[key], style, label=label, markersize=4)
        ax.set_xlabel("horizon step t+k")
        ax.set_title(title)
        ax.set_xticks(steps)
        ax.grid(alpha=0.3)
    fig.axes[0].legend()
    fig.suptitle(result.test_set, fontsize=9)
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


def _write_samples(samples: EvaluationSamples, folder: Path, fps: float) -> dict[str, str]:
    """Write the sample GIFs and the contact sheet into ``folder``; return name -> relative path."""
    from crevnet.data.video import error_frames, write_contact_sheet, write_gif

    names = {}
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
        write_gif(_sample_gif_frames(samples.context[k], truth, pred), folder / name, fps=fps)
        names[f"sample_{index}"] = name
    write_contact_sheet(rows, folder / "contact_sheet.png")
    names["contact_sheet"] = "contact_sheet.png"
    whole = torch.cat((samples.context, samples.truth), dim=1)  # (K, T, C, H, W)
    context = samples.context.shape[1]
    write_gif(prediction_grid(whole, samples.prediction, context), folder / "prediction.gif", fps=fps)
    names["prediction_gif"] = "prediction.gif"
    return names


def write_report(
    result: EvaluationResult,
    out_dir: str | os.PathLike[str],
    samples: EvaluationSamples | None = None,
    fps: float = 4,
) -> dict[str, Path]:
    """Write the report's files into ``out_dir``, all of them or none (see the module docstring).

    Args:
        result: what :func:`crevnet.evaluation.evaluate.evaluate_model` returned; ``metrics.json``
            is its :meth:`~crevnet.evaluation.result.EvaluationResult.to_json` (``checkpoint`` and
            ``extra`` entries included, e.g. ``global_step``).
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
        text = json.dumps(result.to_json(), indent=2) + "\n"
        atomic_write_bytes(tmp / names["metrics"], text.encode())
        text = render_markdown(result)
        if samples is not None:
            names.update(_write_samples(samples, tmp, fps))
            text += _SAMPLES_TEXT
        _plot_per_horizon(result, tmp / names["per_horizon"])
        atomic_write_bytes(tmp / names["report"], text.encode())
    return {key: out / name for key, name in names.items()}
