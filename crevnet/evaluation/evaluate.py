"""``crevnet evaluate``: a checkpoint's metrics beside the trivial baselines, and a report to read.

For every test sequence the first ``context`` frames are observed and the next ``horizon`` frames
are predicted by the model, by "zeros" (black frames) and by "copy last frame" (a folder of clips
adds "mean of context": the test set's ``baselines``); all are scored with
:class:`crevnet.evaluation.metrics.MetricAccumulator` (MSE and MAE summed per frame as OpenSTL
reports them, PSNR, Gaussian SSIM, OpenSTL SSIM; overall and per horizon step). The report's files
(``metrics.json``, ``report.md``, ``per_horizon.png``, ``contact_sheet.png``, ``prediction.gif``,
``samples/``) are written by :func:`crevnet.evaluation.report.write_report` (re-exported here), as
one folder that appears whole or not at all. The Python API (:func:`evaluate_model`, :func:`collect_samples`,
:func:`write_report`) takes any :class:`~crevnet.nn.CrevNet`, so training code can call it too;
:func:`evaluate_checkpoint` is the whole of ``crevnet evaluate`` (its command line is
:mod:`crevnet.commands.evaluate`).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from crevnet.data.framing import Framing
from crevnet.data.paths import resolve_data_dir
from crevnet.data.testset import (
    STANDARD_FILE,
    SURROGATE_SEED,
    TestSet,
    find_standard_file,
    load_test_set,
)
from crevnet.data.video_folder import folder_eval_settings, folder_test_set
from crevnet.errors import DataError
from crevnet.evaluation.metrics import (
    MetricAccumulator,
    copy_last_baseline,
    mean_context_baseline,
    zeros_baseline,
)
from crevnet.evaluation.report import (
    BASELINES,
    EvaluationSamples,
    is_report_folder,
    render_markdown,
    verdict,
    write_report,
)
from crevnet.models.checkpoint import LoadedModel, load_model, resolve_checkpoint
from crevnet.models.device import resolve_device
from crevnet.models.mode import evaluating
from crevnet.nn.model import DEFAULT_CONTEXT, DEFAULT_HORIZON, CrevNet, check_horizon
from crevnet.weights import WEIGHTS_DIR

__all__ = [
    "BASELINES",
    "CheckpointEvaluation",
    "EvaluationSamples",
    "collect_samples",
    "evaluate_checkpoint",
    "evaluate_model",
    "folder_windows",
    "render_markdown",
    "resolve_device",
    "write_report",
]

# every key of crevnet.evaluation.report.BASELINES; a test set lists the ones it is scored against
_BASELINE_FNS = {
    "zeros": zeros_baseline,
    "copy_last": copy_last_baseline,
    "mean_context": mean_context_baseline,
}
_REPORTED = ("mse", "mae", "mse_per_pixel", "psnr", "ssim", "ssim_openstl", "per_horizon")


def _model_device(model: CrevNet) -> torch.device:
    return next(model.parameters()).device


def _check_lengths(model: CrevNet, frames: int, context: int, horizon: int, source: str) -> None:
    window = model.config.window
    if context < window:
        raise DataError(
            f"context={context}: the model needs at least {window} observed frame(s) (its window)"
        )
    check_horizon(horizon)
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
    context: int = DEFAULT_CONTEXT,
    horizon: int = DEFAULT_HORIZON,
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
        ``baselines`` {``zeros``, ``copy_last`` and, for a folder of clips, ``mean_context``}; each
        of the last holds ``mse``, ``mae``, ``mse_per_pixel``, ``psnr``, ``ssim``, ``ssim_openstl``
        and ``per_horizon`` (a list of ``horizon`` values per metric), as
        :meth:`MetricAccumulator.compute` defines them.

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
    baselines = test_set.baselines
    accumulators = {name: MetricAccumulator() for name in ("model", *baselines)}
    model.to(dev)
    start = time.monotonic()
    bar = tqdm(
        total=len(videos), desc="evaluate", unit="seq", file=sys.stderr, disable=None if progress else True
    )
    try:
        with evaluating(model):
            for first in range(0, len(videos), batch_size):
                clip = videos[first : first + batch_size].to(dev).float() / 255.0  # (B, T, C, H, W)
                past = clip[:, :context]
                future = clip[:, context : context + horizon]
                accumulators["model"].update(model.predict(past, horizon), future)
                for name in baselines:
                    accumulators[name].update(_BASELINE_FNS[name](past, horizon), future)
                bar.update(len(clip))
    finally:
        bar.close()
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
        "baselines": {name: _metric_dict(accumulators[name].compute()) for name in baselines},
    }


def collect_samples(
    model: CrevNet,
    test_set: TestSet,
    context: int = DEFAULT_CONTEXT,
    horizon: int = DEFAULT_HORIZON,
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
    with evaluating(model.to(dev)):
        pred = model.predict(clip[:, :context].to(dev), horizon).cpu().clamp(0.0, 1.0)
    return EvaluationSamples(clip[:, :context], clip[:, context : context + horizon], pred, tuple(range(num)))


@dataclass(frozen=True)
class CheckpointEvaluation:
    """What :func:`evaluate_checkpoint` scored and wrote.

    Attributes:
        results: the JSON-ready results of :func:`evaluate_model`, with ``checkpoint`` first.
        out: the report folder.
        written: name -> path of every file of the report (see
            :func:`crevnet.evaluation.report.write_report`).
    """

    results: dict[str, Any]
    out: Path
    written: dict[str, Path]

    def summary(self) -> list[str]:
        """Three lines for a terminal: the model's and the baselines' MSE, the verdict, the files."""
        model = self.results["model"]
        baselines = " | ".join(
            f"{BASELINES.get(key, key)} MSE {m['mse']:.2f}" for key, m in self.results["baselines"].items()
        )
        scores = f"model MSE {model['mse']:.2f} SSIM {model['ssim']:.4f}"
        return [
            f"{self.results['test_set']}: {scores} | {baselines}",
            " ".join(verdict(self.results)),
            f"wrote {self.written['report']} (and metrics.json, per_horizon.png, samples) in {self.out}",
        ]


def folder_windows(
    loaded: LoadedModel,
    folder: str | os.PathLike[str],
    context: int,
    horizon: int | None = None,
    limit: int | None = None,
    all_files: bool = False,
) -> tuple[TestSet, int]:
    """The windows of a folder of clips that ``loaded`` is scored on, made as its training windows were.

    The frame stride, frame rate and split come from the checkpoint's recorded data settings; frames
    take the model's channels, training frame size and framing (random crops are scored centred).
    See :func:`crevnet.data.video_folder.folder_test_set` for the arguments and the split.

    Returns:
        The test set and the horizon.
    """
    meta = loaded.meta
    settings = folder_eval_settings(meta.data_hyper_parameters, meta.data_state)
    framing = Framing(meta.frame_size, meta.framing or "center_crop", loaded.config.encoder.in_channels)
    return folder_test_set(folder, settings, framing, context, horizon, limit, all_files)


def evaluate_checkpoint(
    ckpt: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    test_set: str = "auto",
    all_files: bool = False,
    limit: int | None = None,
    batch_size: int = 16,
    device: str | torch.device = "auto",
    context: int | None = None,
    horizon: int | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    seed: int = SURROGATE_SEED,
    images: str | None = None,
    samples: int = 4,
    progress: bool = True,
) -> CheckpointEvaluation:
    """``crevnet evaluate`` as a function: score a checkpoint beside the baselines and write its report.

    Every argument is checked before any work (loading, generating, scoring).

    Args:
        ckpt: a ``.ckpt`` file, a run folder or a bundled model's name.
        out: the report folder (default: ``<ckpt folder>/eval_<ckpt name>``; for a bundled model the
            working folder). It must be new, empty or an earlier report.
        test_set: "standard", "surrogate", a (T, N, H, W) ``.npy``, a folder of clips, or "auto"
            (standard where the file is found, else surrogate).
        all_files: with a folder of clips that the checkpoint was trained on, score every clip, not
            only the held-out test clips.
        limit: score only the first ``limit`` sequences (None: all).
        batch_size: sequences per forward pass.
        device: "auto", "cpu", "cuda", "cuda:N".
        context: observed frames (None: what the model was trained with).
        horizon: predicted frames (None: the rest of each sequence).
        data_dir: data folder (MNIST digits, ``mnist_test_seq.npy``).
        seed: seed of the surrogate test set.
        images: "mnist" or "fashion_mnist" for the surrogate test set (None: what the checkpoint was
            trained on, else mnist).
        samples: sequences drawn as GIFs and in the contact sheet (0: none).
        progress: show a progress bar on stderr.

    Returns:
        The :class:`CheckpointEvaluation`.

    Raises:
        DataError: a bad argument, test set or folder. CheckpointError: a bad checkpoint.
        OutputError: the report could not be written.
    """
    for flag, value, low in (("--limit", limit, 1), ("--batch-size", batch_size, 1),
                             ("--context", context, 1), ("--samples", samples, 0)):  # fmt: skip
        if value is not None and value < low:
            raise DataError(f"{flag} {value}: expected {'a positive number' if low else '0 or more'}")
    if horizon is not None:
        check_horizon(horizon, "--horizon")
    dev = resolve_device(device)
    path = resolve_checkpoint(ckpt)
    # a bundled model lives inside the package: its report goes to the working folder
    default_dir = Path.cwd() if path.parent == WEIGHTS_DIR else path.parent
    folder = Path(out) if out else default_dir / f"eval_{path.stem}"
    if folder.exists() and not folder.is_dir():
        raise DataError(f"--out {folder}: a file of that name exists; give a folder for the report")
    if folder.is_dir() and any(folder.iterdir()) and not is_report_folder(folder):
        raise DataError(
            f"--out {folder}: the folder holds files that are not an earlier report; give a new or empty "
            "folder"
        )
    loaded = load_model(path, map_location=dev)
    if images is None:  # what the checkpoint's Moving MNIST data module drew its digits from
        images = loaded.meta.data_hyper_parameters.get("images") or "mnist"
    spec = test_set
    if spec == "auto" and images != "mnist":
        spec = "surrogate"  # only Moving MNIST has a standard test file
    if spec == "auto":
        spec = "standard" if find_standard_file(data_dir) is not None else "surrogate"
        if spec == "surrogate":
            print(
                f"crevnet evaluate: {STANDARD_FILE} not found in {resolve_data_dir(data_dir)}; "
                "using the surrogate test set",
                file=sys.stderr,
            )
    context = loaded.meta.context if context is None else context
    if Path(spec).is_dir():  # a folder of clips (crevnet.data.video_folder)
        test, horizon = folder_windows(loaded, spec, context, horizon, limit, all_files)
    else:
        test = load_test_set(spec, data_dir, limit, seed, images=images)
        horizon = int(test.videos.shape[1]) - context if horizon is None else horizon
    results = evaluate_model(loaded.model, test, context, horizon, batch_size, dev, None, progress)
    results = {"checkpoint": str(path.resolve()), **results}
    drawn = collect_samples(loaded.model, test, context, horizon, samples, dev) if samples else None
    written = write_report(results, folder, drawn)
    return CheckpointEvaluation(results, folder, written)
