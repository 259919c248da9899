"""The end-of-training report: a model scored next to the trivial baselines, with pictures.

:func:`report_model` scores a :class:`~crevnet.nn.CrevNet` and the test set's baselines
(:mod:`crevnet.evaluation.baselines`) on a Moving MNIST test set or a loaded
:class:`~crevnet.data.testset.TestSet` (a data module's own) with
:func:`crevnet.evaluation.evaluate.evaluate_model` (the same numbers as ``crevnet evaluate``) and
writes them with the one report writer, :func:`crevnet.evaluation.report.write_report` (the same files
as ``crevnet evaluate``).
``crevnet fit`` calls it at the end of training (callback :class:`crevnet.train.callbacks.FitReport`);
other tools may call it on any model.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from crevnet.data.testset import STANDARD_BASELINES, SURROGATE_SEED, TestSet, load_test_set
from crevnet.evaluation.evaluate import collect_samples, evaluate_model
from crevnet.evaluation.report import write_report
from crevnet.evaluation.result import EvaluationResult
from crevnet.nn.model import DEFAULT_CONTEXT, CrevNet

__all__ = ["report_model"]


def report_model(
    net: CrevNet,
    out_dir: str | os.PathLike[str],
    test_set: str | TestSet = "surrogate",
    num_sequences: int | None = 500,
    data_dir: str | os.PathLike[str] | None = None,
    context: int = DEFAULT_CONTEXT,
    batch_size: int = 50,
    seed: int = SURROGATE_SEED,
    num_clips: int = 4,
    extra: dict[str, Any] | None = None,
) -> EvaluationResult:
    """Evaluate ``net`` and the baselines and write the report folder (see :mod:`crevnet.evaluation.report`).

    Args:
        net: the model.
        out_dir: the report folder (it appears whole or not at all).
        test_set: "surrogate", "standard", a path to a (T, N, H, W) uint8 ``.npy``, or a loaded
            :class:`~crevnet.data.testset.TestSet` (e.g. a data module's ``test_data``).
        num_sequences: first N sequences of the test set (None: all).
        data_dir: data directory (MNIST for the surrogate; see ``crevnet.data.paths``).
        context: observed frames; the rest are predicted.
        batch_size: clips per forward pass.
        seed: seed of the surrogate test set.
        num_clips: clips drawn in the GIFs and the contact sheet.
        extra: more entries for ``metrics.json`` (e.g. training wall time, steps).

    Returns:
        The scores written to the report's ``metrics.json`` (its ``to_json()``): an
        :class:`~crevnet.evaluation.result.EvaluationResult` whose ``extra`` holds ``mse_vs_zeros`` and
        ``mse_vs_copy_last`` (the model's MSE over each baseline's), ``report_seconds`` and ``extra``'s
        entries.
    """
    start = time.monotonic()
    test = (
        test_set if isinstance(test_set, TestSet) else load_test_set(test_set, data_dir, num_sequences, seed)
    )
    horizon = int(test.videos.shape[1]) - context
    scored = evaluate_model(net, test, context, horizon, batch_size, device=None, progress=False)
    ratios = {f"mse_vs_{key}": scored.mse_ratio(key) for key in STANDARD_BASELINES}
    seconds = {"report_seconds": round(time.monotonic() - start, 2)}
    result = replace(scored, extra={**ratios, **seconds, **(extra or {})})
    write_report(result, Path(out_dir), collect_samples(net, test, context, horizon, num_clips))
    return result
