"""``crevnet export``: parse the arguments of :func:`crevnet.deploy.export.export_checkpoint`, call it, print.

Usage::

    crevnet export --ckpt CKPT --format onnx|torchscript --out DIR [--size HxW]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from crevnet.commands.common import CommandParser, add_ckpt, add_size, parse_size
from crevnet.deploy.export import export_checkpoint
from crevnet.deploy.manifest import FORMATS, GRAPHS, MANIFEST

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``crevnet export`` argument parser."""
    parser = CommandParser(
        prog="crevnet export",
        description="Write a checkpoint's encoder, decoder (inverse) and one RPM step as separate ONNX or "
        "TorchScript graphs, with manifest.json and README.md describing their inputs and outputs.",
    )
    add_ckpt(parser)
    parser.add_argument("--format", required=True, choices=sorted(FORMATS), help="onnx or torchscript")
    parser.add_argument("--out", required=True, help="output folder")
    add_size(parser, "frame size HxW the graphs take (default: the training frame size)")
    return parser


def main(argv: Sequence[str]) -> int:
    """Run ``crevnet export``; returns the exit status (errors are raised for the dispatcher)."""
    args = build_parser().parse_args(list(argv))
    manifest = export_checkpoint(args.ckpt, args.out, args.format, parse_size(args.size))
    files = ", ".join(f"{g}{FORMATS[args.format]}" for g in GRAPHS)
    print(f"wrote {manifest.parent}: {files}, {MANIFEST}, README.md")
    return 0
