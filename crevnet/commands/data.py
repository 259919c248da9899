"""``crevnet data``: fetch/check MNIST, write a surrogate test set, check the standard file.

Usage::

    crevnet data mnist [--data-dir DIR] [--no-download] [--images fashion_mnist]
    crevnet data surrogate --out FILE [--num N] [--seed S] [--data-dir DIR] [--no-download] [--images ...]
    crevnet data standard [--data-dir DIR] [--md5]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from crevnet.commands.common import CommandParser, non_negative_int, positive_int
from crevnet.data.fashion_mnist import IMAGE_SETS, image_set
from crevnet.data.mnist import check_mnist
from crevnet.data.paths import DATA_DIR_ENV
from crevnet.data.testset import STANDARD_FILE, SURROGATE_NUM, SURROGATE_SEED, load_test_set, write_surrogate

__all__ = ["build_parser", "main"]


def _mnist(args: argparse.Namespace) -> int:
    print("\n".join(check_mnist(args.data_dir, not args.no_download, image_set(args.images))))
    return 0


def _surrogate(args: argparse.Namespace) -> int:
    written = write_surrogate(args.out, args.num, args.seed, args.data_dir, not args.no_download, args.images)
    print(
        f"wrote {written.path}: surrogate test set (seed {args.seed}, N={args.num}), "
        f"shape {written.shape} (T, N, H, W) uint8, md5 {written.md5}"
    )
    return 0


def _standard(args: argparse.Namespace) -> int:
    test_set = load_test_set("standard", args.data_dir, verify_md5=args.md5)
    md5 = "md5 ok" if args.md5 else "md5 not checked (use --md5)"
    print(f"{test_set.path}: {test_set.name}, shape ok, {md5}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``crevnet data``."""
    parser = CommandParser(prog="crevnet data", description="Fetch and check Moving MNIST data.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{mnist,surrogate,standard}")
    data_help = f"data directory (default: ${DATA_DIR_ENV}, else the project's data/)"
    images_help = "mnist (default) or fashion_mnist (Moving Fashion-MNIST)"

    mnist = sub.add_parser("mnist", help="fetch or check the four MNIST files")
    mnist.add_argument("--data-dir", default=None, help=data_help)
    mnist.add_argument("--no-download", action="store_true", help="fail instead of downloading")
    mnist.add_argument("--images", choices=list(IMAGE_SETS), default="mnist", help=images_help)
    mnist.set_defaults(func=_mnist)

    surrogate = sub.add_parser("surrogate", help="write a seeded surrogate test set (T, N, H, W) uint8 .npy")
    surrogate.add_argument("--out", required=True, help="output .npy file")
    surrogate.add_argument(
        "--num", type=positive_int, default=SURROGATE_NUM, help=f"sequences (default {SURROGATE_NUM})"
    )
    surrogate.add_argument(
        "--seed", type=non_negative_int, default=SURROGATE_SEED, help=f"seed (default {SURROGATE_SEED})"
    )
    surrogate.add_argument("--data-dir", default=None, help=data_help)
    surrogate.add_argument("--no-download", action="store_true", help="fail if MNIST is missing")
    surrogate.add_argument("--images", choices=list(IMAGE_SETS), default="mnist", help=images_help)
    surrogate.set_defaults(func=_surrogate)

    standard = sub.add_parser("standard", help=f"check {STANDARD_FILE} in the data directory")
    standard.add_argument("--data-dir", default=None, help=data_help)
    standard.add_argument("--md5", action="store_true", help="also check its MD5 (reads 800 MB)")
    standard.set_defaults(func=_standard)
    return parser


def main(argv: Sequence[str]) -> int:
    """Run ``crevnet data`` with ``argv`` (without the program name); return the exit status."""
    args = build_parser().parse_args(list(argv))
    return args.func(args)
