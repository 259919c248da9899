"""The end-of-training evaluation report: metrics of a model next to the trivial baselines, plus pictures.

:func:`write_report` scores a :class:`~crevnet.nn.CrevNet` and the "zeros" and "copy last frame"
baselines on a Moving MNIST test set with :func:`crevnet.evaluate.evaluate_model` (the same numbers as
``crevnet evaluate``) and writes ``metrics.json``, a prediction GIF and a contact sheet. ``crevnet fit``
calls it at the end of training (callback :class:`crevnet.train.callbacks.FitReport`); other tools may
call it on any model.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import torch

from crevnet.data.atomic import atomic_write_bytes
from crevnet.data.testset import SURROGATE_SEED, TestSet, load_test_set
from crevnet.nn.model import CrevNet

__all__ = ["prediction_grid", "write_report"]


def prediction_grid(truth: torch.Tensor, pred: torch.Tensor, context: int, gap: int = 2) -> torch.Tensor:
    """Frames of a GIF: for each clip a column pair (ground truth | prediction), clips side by side.

    During the context the prediction column shows the observed frames; afterwards the model's
    frames, clipped to [0, 1].

    Shape:
        truth: (N, T, 1, H, W), pred: (N, T - context, 1, H, W) -> (T, 1, 2H + gap, N·(W + gap))
    """
    n, t, c, h, w = truth.shape
    shown = torch.cat((truth[:, :context], pred.clamp(0.0, 1.0)), 1)  # (N, T, C, H, W)
    canvas = truth.new_ones(t, c, 2 * h + gap, n * (w + gap))
    for i in range(n):
        left = i * (w + gap)
        canvas[:, :, :h, left : left + w] = truth[i]
        canvas[:, :, h + gap :, left : left + w] = shown[i]
    return canvas


def write_report(
    net: CrevNet,
    out_dir: str | os.PathLike[str],
    test_set: str | TestSet = "surrogate",
    num_sequences: int | None = 500,
    data_dir: str | os.PathLike[str] | None = None,
    context: int = 10,
    batch_size: int = 50,
    seed: int = SURROGATE_SEED,
    num_clips: int = 4,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate ``net`` and the baselines; write ``metrics.json``, ``prediction.gif``, ``prediction.png``.

    Args:
        net: the model.
        out_dir: folder for the three files (created).
        test_set: "surrogate", "standard", a path to a (T, N, H, W) uint8 ``.npy``, or a loaded
            :class:`~crevnet.data.testset.TestSet` (e.g. a data module's ``test_data``).
        num_sequences: first N sequences of the test set (None: all).
        data_dir: data directory (MNIST for the surrogate; see ``crevnet.data.paths``).
        context: observed frames; the rest are predicted.
        batch_size: clips per forward pass.
        seed: seed of the surrogate test set.
        num_clips: clips drawn in the GIF and the contact sheet.
        extra: more entries for ``metrics.json`` (e.g. training wall time, steps).

    Returns:
        The report written to ``metrics.json``: :func:`crevnet.evaluate.evaluate_model`'s dict
        (``test_set``, whose name says "surrogate" when it is one, ``model``, ``baselines``
        {``zeros``, ``copy_last``}, ...), plus ``mse_vs_zeros`` and ``mse_vs_copy_last`` (the model's
        MSE over each baseline's) and ``extra``'s entries.
    """
    from crevnet.data.video import write_contact_sheet, write_gif
    from crevnet.evaluate import collect_samples, evaluate_model

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    test = (
        test_set if isinstance(test_set, TestSet) else load_test_set(test_set, data_dir, num_sequences, seed)
    )
    horizon = int(test.videos.shape[1]) - context
    metrics = evaluate_model(net, test, context, horizon, batch_size, device=None, progress=False)
    baselines = metrics["baselines"]
    report: dict[str, Any] = {
        **metrics,
        "mse_vs_zeros": metrics["model"]["mse"] / baselines["zeros"]["mse"],
        "mse_vs_copy_last": metrics["model"]["mse"] / baselines["copy_last"]["mse"],
        "report_seconds": round(time.monotonic() - start, 2),
        **(extra or {}),
    }
    atomic_write_bytes(out / "metrics.json", (json.dumps(report, indent=2) + "\n").encode())
    samples = collect_samples(net, test, context, horizon, num_clips)
    truth = torch.cat((samples.context, samples.truth), dim=1)  # (k, T, 1, H, W)
    write_gif(prediction_grid(truth, samples.prediction, context), out / "prediction.gif", fps=4)
    rows: list[tuple[str, torch.Tensor]] = []
    for i in range(len(samples.indices)):
        rows.append((f"clip {i} truth", samples.truth[i]))
        rows.append((f"clip {i} pred", samples.prediction[i]))
    write_contact_sheet(rows, out / "prediction.png")
    return report
