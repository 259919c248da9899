"""``crevnet evaluate``: a checkpoint's metrics beside the trivial baselines, and a report to read.

For every test sequence the first ``context`` frames are observed and the next ``horizon`` frames
are predicted by the model, by "zeros" (black frames) and by "copy last frame" (a folder of clips
adds "mean of context": the test set's ``baselines``); all are scored with
:class:`crevnet.metrics.MetricAccumulator` (MSE and MAE summed per frame as OpenSTL reports them, PSNR,
Gaussian SSIM, OpenSTL SSIM; overall and per horizon step). The report's files
(``metrics.json``, ``report.md``, ``per_horizon.png``, ``contact_sheet.png``, ``prediction.gif``,
``samples/``) are written by :func:`crevnet.report.write_report` (re-exported here), as one folder that
appears whole or not at all. The Python API (:func:`evaluate_model`, :func:`collect_samples`,
:func:`write_report`) takes any :class:`~crevnet.nn.CrevNet`, so training code can call it too.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from crevnet.checkpoint import DEFAULT_CONTEXT
from crevnet.data.paths import resolve_data_dir
from crevnet.data.testset import (
    STANDARD_FILE,
    SURROGATE_SEED,
    TestSet,
    find_standard_file,
    load_test_set,
)
from crevnet.device import resolve_device
from crevnet.errors import DataError
from crevnet.inference import evaluating
from crevnet.metrics import MetricAccumulator, copy_last_baseline, mean_context_baseline, zeros_baseline
from crevnet.nn.model import CrevNet
from crevnet.report import BASELINES, is_report_folder, render_markdown, verdict, write_report

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

_BASELINE_FNS = {  # every key of crevnet.report.BASELINES; a test set lists the ones it is scored against
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
    context: int = DEFAULT_CONTEXT,
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
    context: int = DEFAULT_CONTEXT,
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
    with evaluating(model.to(dev)):
        pred = model.predict(clip[:, :context].to(dev), horizon).cpu().clamp(0.0, 1.0)
    return EvaluationSamples(clip[:, :context], clip[:, context : context + horizon], pred, tuple(range(num)))


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
        "MNIST test digits), a (T, N, H, W) uint8 .npy file, a folder of clips (videos and/or frame "
        "folders; scored in windows beside a third baseline, the mean of the context), or 'auto' "
        "(default: standard where the file is found, else surrogate)",
    )
    parser.add_argument(
        "--all-files",
        action="store_true",
        help="with --test-set DIR = the checkpoint's training folder: score every clip, not only the "
        "held-out test clips its recorded split names",
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
    parser.add_argument(
        "--images",
        choices=("mnist", "fashion_mnist"),
        default=None,
        help="images of the surrogate test set: mnist or fashion_mnist (default: what the checkpoint "
        "was trained on, else mnist)",
    )
    parser.add_argument("--samples", type=int, default=4, help="sequences drawn as GIFs / contact sheet")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``crevnet evaluate``; returns the exit status (errors are raised for the dispatcher)."""
    from crevnet.bundled import WEIGHTS_DIR
    from crevnet.checkpoint import load_model
    from crevnet.io.runs import resolve_checkpoint

    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    # Every argument is checked before any work (loading, generating, scoring).
    for flag, value, low in (("--limit", args.limit, 1), ("--batch-size", args.batch_size, 1),
                             ("--context", args.context, 1), ("--horizon", args.horizon, 1),
                             ("--samples", args.samples, 0)):  # fmt: skip
        if value is not None and value < low:
            raise DataError(f"{flag} {value}: expected {'a positive number' if low else '0 or more'}")
    device = resolve_device(args.device)
    ckpt = resolve_checkpoint(args.ckpt)
    # a bundled model lives inside the package: its report goes to the working folder
    default_dir = Path.cwd() if ckpt.parent == WEIGHTS_DIR else ckpt.parent
    out = Path(args.out) if args.out else default_dir / f"eval_{ckpt.stem}"
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out}: a file of that name exists; give a folder for the report")
    if out.is_dir() and any(out.iterdir()) and not is_report_folder(out):
        raise DataError(
            f"--out {out}: the folder holds files that are not an earlier report; give a new or empty folder"
        )
    loaded = load_model(ckpt, map_location=device)
    images = args.images
    if images is None:  # what the checkpoint's Moving MNIST data module drew its digits from
        from crevnet.checkpoint import load_checkpoint_dict

        recorded = load_checkpoint_dict(loaded.meta.path).get("datamodule_hyper_parameters") or {}
        images = recorded.get("images") or "mnist"
    spec = args.test_set
    if spec == "auto" and images != "mnist":
        spec = "surrogate"  # only Moving MNIST has a standard test file
    if spec == "auto":
        spec = "standard" if find_standard_file(args.data_dir) is not None else "surrogate"
        if spec == "surrogate":
            print(
                f"crevnet evaluate: {STANDARD_FILE} not found in {resolve_data_dir(args.data_dir)}; "
                "using the surrogate test set",
                file=sys.stderr,
            )
    context = loaded.meta.context if args.context is None else args.context
    if Path(spec).is_dir():  # a folder of clips (crevnet.data.video_folder)
        from crevnet.data.video_folder import folder_test_set

        test, horizon = folder_test_set(
            spec, loaded.meta.path, loaded, context, args.horizon, args.limit, args.all_files
        )
    else:
        test = load_test_set(spec, args.data_dir, args.limit, args.seed, images=images)
        horizon = int(test.videos.shape[1]) - context if args.horizon is None else args.horizon
    results = evaluate_model(
        loaded.model, test, context, horizon, args.batch_size, device, None, not args.no_progress
    )
    results = {"checkpoint": str(ckpt.resolve()), **results}
    samples = (
        collect_samples(loaded.model, test, context, horizon, args.samples, device) if args.samples else None
    )
    written = write_report(results, out, samples)
    model = results["model"]
    baselines = " | ".join(
        f"{BASELINES.get(key, key)} MSE {m['mse']:.2f}" for key, m in results["baselines"].items()
    )
    print(f"{results['test_set']}: model MSE {model['mse']:.2f} SSIM {model['ssim']:.4f} | {baselines}")
    print(" ".join(verdict(results)))
    print(f"wrote {written['report']} (and metrics.json, per_horizon.png, samples) in {out}")
    return 0
