"""``crevnet evaluate``: parse the arguments of
:func:`crevnet.evaluation.evaluate.evaluate_checkpoint`, call it, print.

Usage::

    crevnet evaluate --ckpt CKPT [--test-set auto|standard|surrogate|FILE|DIR] [--limit N] [--out DIR]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from crevnet.commands.common import CommandParser, add_model_run, apply_threads, log_to_stderr
from crevnet.data.testset import SURROGATE_SEED
from crevnet.evaluation.evaluate import evaluate_checkpoint

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``crevnet evaluate`` argument parser."""
    parser = CommandParser(
        prog="crevnet evaluate",
        description="Metrics of a checkpoint beside the 'zeros' and 'copy last frame' baselines, with a "
        "Markdown report, a per-horizon plot, sample GIFs and a contact sheet.",
    )
    add_model_run(parser, None, "predicted frames (default: the rest of each sequence)")
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


def main(argv: Sequence[str]) -> int:
    """Run ``crevnet evaluate``; returns the exit status (errors are raised for the dispatcher).

    The library's notes (e.g. the surrogate test set standing in for a missing standard file, a folder's
    summary) are logged; they are shown on stderr as ``crevnet: ...`` lines.
    """
    args = build_parser().parse_args(list(argv))
    log_to_stderr()
    apply_threads(args.threads)
    evaluation = evaluate_checkpoint(
        args.ckpt,
        out=args.out,
        test_set=args.test_set,
        all_files=args.all_files,
        limit=args.limit,
        batch_size=args.batch_size,
        device=args.device,
        context=args.context,
        horizon=args.horizon,
        data_dir=args.data_dir,
        seed=args.seed,
        images=args.images,
        samples=args.samples,
        progress=not args.no_progress,
    )
    print("\n".join(evaluation.summary()))
    return 0
