"""``crevnet evaluate``: a checkpoint's metrics beside the trivial baselines, and a report to read.

For every test sequence the first ``context`` frames are observed and the next ``horizon`` frames
are predicted by the model and by the baselines the test set lists
(:data:`crevnet.evaluation.baselines.BASELINES`: "zeros" and "copy last frame"; a folder of clips adds
"mean of context"); all are scored with :class:`crevnet.evaluation.metrics.MetricAccumulator` (MSE and
MAE summed per frame as OpenSTL reports them, PSNR, Gaussian SSIM, OpenSTL SSIM; overall and per
horizon step) into a typed :class:`~crevnet.evaluation.result.EvaluationResult`. The report's files
(``metrics.json``, ``report.md``, ``per_horizon.png``, ``contact_sheet.png``, ``prediction.gif``,
``samples/``) are written by :func:`crevnet.evaluation.report.write_report` (re-exported here), as
one folder that appears whole or not at all. The Python API (:func:`evaluate_model`, :func:`collect_samples`,
:func:`write_report`) takes any :class:`~crevnet.nn.CrevNet`, so training code can call it too;
:func:`evaluate_checkpoint` is the whole of ``crevnet evaluate`` (its command line is
:mod:`crevnet.commands.evaluate`). Notes for the user (e.g. falling back to the surrogate test set) go
to this module's :mod:`logging` logger; the command shows them on stderr.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, replace
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
from crevnet.evaluation.baselines import BASELINES, baseline_label
from crevnet.evaluation.metrics import MetricAccumulator
from crevnet.evaluation.report import (
    EvaluationSamples,
    is_report_folder,
    render_markdown,
    verdict,
    write_report,
)
from crevnet.evaluation.result import EvaluationResult, Scores
from crevnet.models.checkpoint import LoadedModel, load_model, resolve_checkpoint
from crevnet.models.device import resolve_device
from crevnet.models.mode import evaluating
from crevnet.nn.model import DEFAULT_CONTEXT, DEFAULT_HORIZON, CrevNet, check_horizon
from crevnet.weights import WEIGHTS_DIR

__all__ = [
    "CheckpointEvaluation",
    "EvaluationResult",
    "EvaluationSamples",
    "choose_test_set",
    "collect_samples",
    "evaluate_checkpoint",
    "evaluate_model",
    "folder_windows",
    "render_markdown",
    "resolve_device",
    "write_report",
]

_log = logging.getLogger(__name__)


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


def _score(
    model: CrevNet,
    videos: torch.Tensor,
    baselines: tuple[str, ...],
    lengths: tuple[int, int],
    batch_size: int,
    device: torch.device,
    progress: bool,
) -> dict[str, MetricAccumulator]:
    """Accumulate the metrics of the model (key ``"model"``) and of each baseline over ``videos``.

    Shape:
        videos: (N, T, C, H, W) uint8; ``lengths`` = (context, horizon).
    """
    from tqdm import tqdm

    context, horizon = lengths
    accumulators = {name: MetricAccumulator() for name in ("model", *baselines)}
    disable = None if progress else True  # None: tqdm hides itself when stderr is not a terminal
    bar = tqdm(total=len(videos), desc="evaluate", unit="seq", file=sys.stderr, disable=disable)
    try:
        with evaluating(model):
            for first in range(0, len(videos), batch_size):
                clip = videos[first : first + batch_size].to(device).float() / 255.0  # (B, T, C, H, W)
                past = clip[:, :context]
                future = clip[:, context : context + horizon]
                accumulators["model"].update(model.predict(past, horizon), future)
                for name in baselines:
                    accumulators[name].update(BASELINES[name].predict(past, horizon), future)
                bar.update(len(clip))
    finally:
        bar.close()
    return accumulators


def evaluate_model(
    model: CrevNet,
    test_set: TestSet,
    context: int = DEFAULT_CONTEXT,
    horizon: int = DEFAULT_HORIZON,
    batch_size: int = 16,
    device: str | torch.device | None = None,
    limit: int | None = None,
    progress: bool = True,
) -> EvaluationResult:
    """Score ``model`` and the test set's baselines on ``test_set``.

    Each sequence's frames ``0 .. context-1`` are observed and frames ``context .. context+horizon-1``
    predicted. The model runs in eval mode under ``torch.no_grad()`` (its mode is restored after).

    Args:
        model: the network; it is moved to ``device`` when one is given.
        test_set: the sequences (see :func:`crevnet.data.load_test_set`); scored beside the
            baselines it lists (:data:`crevnet.evaluation.baselines.BASELINES`).
        context: observed frames per sequence (>= the model's window).
        horizon: predicted frames per sequence.
        batch_size: sequences per forward pass.
        device: "auto", "cpu", "cuda", ... (see :func:`resolve_device`); None keeps the model where
            it is.
        limit: score only the first ``limit`` sequences (None: all).
        progress: show a tqdm progress bar on stderr (hidden when stderr is not a terminal).

    Returns:
        The :class:`~crevnet.evaluation.result.EvaluationResult` (device and wall time recorded);
        its ``to_json()`` is the content of ``metrics.json``.

    Raises:
        DataError: ``context``/``horizon`` do not fit the sequences or the model, bad ``limit``.
        ValueError: ``batch_size`` < 1.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    total = len(test_set)
    if limit is not None and not 1 <= limit <= total:
        raise DataError(f"--limit {limit}: the test set {test_set.name} holds {total} sequences")
    videos = test_set.videos if limit is None else test_set.videos[:limit]
    _check_lengths(model, int(videos.shape[1]), context, horizon, test_set.name)
    dev = _model_device(model) if device is None else resolve_device(device)
    model.to(dev)
    start = time.monotonic()
    baselines = tuple(test_set.baselines)
    scored = _score(model, videos, baselines, (context, horizon), batch_size, dev, progress)
    return EvaluationResult(
        test_set=test_set.name,
        surrogate=bool(test_set.is_surrogate),
        num_sequences=len(videos),
        context=context,
        horizon=horizon,
        frame_size=(int(videos.shape[3]), int(videos.shape[4])),
        device=str(dev),
        eval_seconds=round(time.monotonic() - start, 3),
        model=Scores.from_json(scored["model"].compute()),
        baselines={name: Scores.from_json(scored[name].compute()) for name in baselines},
    )


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
        result: the scores (:func:`evaluate_model`'s result with the checkpoint's path).
        out: the report folder.
        written: name -> path of every file of the report (see
            :func:`crevnet.evaluation.report.write_report`).
    """

    result: EvaluationResult
    out: Path
    written: dict[str, Path]

    @property
    def results(self) -> dict[str, Any]:
        """The content of the report's ``metrics.json`` (``result.to_json()``)."""
        return self.result.to_json()

    def summary(self) -> list[str]:
        """Three lines for a terminal: the model's and the baselines' MSE, the verdict, the files."""
        model = self.result.model
        baselines = " | ".join(
            f"{baseline_label(key)} MSE {scores.mse:.2f}" for key, scores in self.result.baselines.items()
        )
        scores = f"model MSE {model.mse:.2f} SSIM {model.ssim:.4f}"
        return [
            f"{self.result.test_set}: {scores} | {baselines}",
            " ".join(verdict(self.result)),
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


def _check_arguments(
    limit: int | None, batch_size: int, context: int | None, samples: int, horizon: int | None
) -> None:
    """Check ``crevnet evaluate``'s numeric arguments before any work; raise DataError naming the flag."""
    for flag, value, low in (("--limit", limit, 1), ("--batch-size", batch_size, 1),
                             ("--context", context, 1), ("--samples", samples, 0)):  # fmt: skip
        if value is not None and value < low:
            raise DataError(f"{flag} {value}: expected {'a positive number' if low else '0 or more'}")
    if horizon is not None:
        check_horizon(horizon, "--horizon")


def _report_folder(ckpt: Path, out: str | os.PathLike[str] | None) -> Path:
    """The report folder (``out``, else ``eval_<name>`` beside ``ckpt``), checked to be writable as one."""
    # a bundled model lives inside the package: its report goes to the working folder
    default_dir = Path.cwd() if ckpt.parent == WEIGHTS_DIR else ckpt.parent
    folder = Path(out) if out else default_dir / f"eval_{ckpt.stem}"
    if folder.exists() and not folder.is_dir():
        raise DataError(f"--out {folder}: a file of that name exists; give a folder for the report")
    if folder.is_dir() and any(folder.iterdir()) and not is_report_folder(folder):
        raise DataError(
            f"--out {folder}: the folder holds files that are not an earlier report; give a new or empty "
            "folder"
        )
    return folder


def _test_set_kind(test_set: str, images: str, data_dir: str | os.PathLike[str] | None) -> str:
    """``test_set`` with "auto" resolved: the standard file where found (Moving MNIST), else surrogate."""
    if test_set != "auto":
        return test_set
    if images == "mnist" and find_standard_file(data_dir) is not None:
        return "standard"
    if images == "mnist":
        _log.info(
            "evaluate: %s not found in %s; using the surrogate test set",
            STANDARD_FILE,
            resolve_data_dir(data_dir),
        )
    return "surrogate"  # only Moving MNIST has a standard test file


def choose_test_set(
    loaded: LoadedModel,
    test_set: str,
    context: int,
    horizon: int | None = None,
    limit: int | None = None,
    all_files: bool = False,
    data_dir: str | os.PathLike[str] | None = None,
    seed: int = SURROGATE_SEED,
    images: str | None = None,
) -> tuple[TestSet, int]:
    """The test set ``loaded`` is scored on, and the horizon; arguments as :func:`evaluate_checkpoint`'s.

    "auto" takes the standard Moving MNIST file where it is found (logging a note when it falls back to
    the surrogate); a folder of clips is cut into windows as the checkpoint's training windows were
    (:func:`folder_windows`).

    Returns:
        The test set and the horizon (given, else the rest of each sequence).

    Raises:
        DataError: a bad test set or folder.
    """
    if images is None:  # what the checkpoint's Moving MNIST data module drew its digits from
        images = loaded.meta.data_hyper_parameters.get("images") or "mnist"
    spec = _test_set_kind(test_set, images, data_dir)
    if Path(spec).is_dir():  # a folder of clips (crevnet.data.video_folder)
        return folder_windows(loaded, spec, context, horizon, limit, all_files)
    test = load_test_set(spec, data_dir, limit, seed, images=images)
    return test, int(test.videos.shape[1]) - context if horizon is None else horizon


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
            (standard where the file is found, else surrogate, with a note logged).
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
    _check_arguments(limit, batch_size, context, samples, horizon)
    dev = resolve_device(device)
    path = resolve_checkpoint(ckpt)
    folder = _report_folder(path, out)
    loaded = load_model(path, map_location=dev)
    context = loaded.meta.context if context is None else context
    test, horizon = choose_test_set(
        loaded, test_set, context, horizon, limit, all_files, data_dir, seed, images
    )
    scored = evaluate_model(loaded.model, test, context, horizon, batch_size, dev, None, progress)
    result = replace(scored, checkpoint=str(path.resolve()))
    drawn = collect_samples(loaded.model, test, context, horizon, samples, dev) if samples else None
    written = write_report(result, folder, drawn)
    return CheckpointEvaluation(result, folder, written)
