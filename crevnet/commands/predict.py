"""``crevnet predict [--stream]``: parse the arguments, call
:func:`crevnet.inference.predict.predict_file` (or :func:`crevnet.deploy.stream.run_stream` with
``--stream``), print what was done.

Usage::

    crevnet predict --ckpt CKPT --input CLIP --horizon N --out FILE
    crevnet predict --stream --ckpt CKPT --input VIDEO|DIR|CAMERA --horizon K --out OUT
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from crevnet.commands.common import CommandParser, add_model_run, add_size, apply_threads, parse_size
from crevnet.deploy.stream import run_stream
from crevnet.inference.predict import RESIZE_CHOICES, predict_file
from crevnet.nn.model import DEFAULT_HORIZON

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``crevnet predict`` argument parser."""
    parser = CommandParser(
        prog="crevnet predict",
        description="Predict the frames that follow a clip (.npy/.npz, .mp4/.avi/.mov/.mkv, .gif or a "
        "folder of images) and write them as .gif, .mp4, .png (contact sheet) or .npy.",
    )
    add_model_run(parser, DEFAULT_HORIZON, f"number of frames to predict (default {DEFAULT_HORIZON})")
    parser.add_argument("--input", required=True, help="the clip; its last --context frames are observed")
    parser.add_argument("--out", required=True, help="output file: .gif, .mp4, .png or .npy")
    add_size(
        parser,
        "frame size fed to the model: 'train' (the training size, default), 'keep' (the clip's, "
        "rounded to a multiple of the encoder's downsampling) or HxW",
    )
    parser.add_argument(
        "--resize",
        choices=RESIZE_CHOICES,
        default="train",
        help="how a clip of another aspect ratio reaches --size: 'train' (as the checkpoint's training "
        "frames were; the centre cut when it records nothing, default), 'center_crop' (aspect ratio "
        "kept, the centre cut) or 'resize' (stretched)",
    )
    parser.add_argument("--with-context", action="store_true", help="put the observed frames first")
    parser.add_argument("--fps", type=float, default=4, help="frame rate of .gif / .mp4 (default 4)")
    parser.add_argument(
        "--stream",
        action="store_true",
        help="read --input (a video, a folder of images or a camera index) frame by frame and write, as "
        "they come, each frame beside the --horizon frames predicted after it (.mp4, .avi or .gif); "
        "latency on stderr",
    )
    parser.add_argument("--max-frames", type=int, default=None, help="--stream: stop after this many frames")
    parser.add_argument(
        "--backend",
        default="auto",
        help="--stream: what runs the model: auto (default: the fastest in a short timed probe), eager, "
        "torchscript, onnxruntime or compiled",
    )
    return parser


def main(argv: Sequence[str]) -> int:
    """Run ``crevnet predict``; returns the exit status (errors are raised for the dispatcher)."""
    args = build_parser().parse_args(list(argv))
    apply_threads(args.threads)
    return _stream(args) if args.stream else _clip(args)


def _clip(args: argparse.Namespace) -> int:
    written = predict_file(
        args.ckpt,
        args.input,
        args.out,
        args.horizon,
        args.context,
        parse_size(args.size),
        args.device,
        args.with_context,
        args.fps,
        args.resize,
    )
    print(f"crevnet predict: {written.prepared.summary}", file=sys.stderr)  # incl. the layout assumed
    print(f"wrote {written.path} ({len(written.prediction)} predicted frames)")
    return 0


def _stream(args: argparse.Namespace) -> int:
    report = run_stream(
        args.ckpt,
        args.input,
        args.horizon,
        args.out,
        parse_size(args.size),
        args.device,
        args.fps,
        args.max_frames,
        args.backend,
        args.resize,
    )
    print(f"crevnet predict --stream: {report.summary}", file=sys.stderr)
    print(f"crevnet predict --stream: {report.backend}", file=sys.stderr)
    print(report.line(), file=sys.stderr)
    print(
        f"wrote {args.out} ({report.written} frames: the frame received, then the next {args.horizon} "
        "predicted, side by side)"
    )
    return 0
