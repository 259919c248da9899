"""``crevnet data``: fetch/check MNIST, write a surrogate test set, check the standard file.

Usage::

    crevnet data mnist [--data-dir DIR] [--no-download] [--images fashion_mnist]
    crevnet data surrogate --out FILE [--num N] [--seed S] [--data-dir DIR] [--no-download] [--images ...]
    crevnet data standard [--data-dir DIR] [--md5]
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np

from crevnet.data.fashion_mnist import IMAGE_SETS, image_set
from crevnet.data.mnist import ensure_mnist, load_mnist, verify_mnist_file
from crevnet.data.paths import DATA_DIR_ENV, resolve_data_dir
from crevnet.data.testset import (
    STANDARD_FILE,
    SURROGATE_NUM,
    SURROGATE_SEED,
    generate_surrogate,
    load_test_set,
)
from crevnet.errors import ChecksumError
from crevnet.io.atomic import atomic_write

__all__ = ["build_parser", "main"]


def _mnist(args: argparse.Namespace) -> int:
    root = resolve_data_dir(args.data_dir)
    images = image_set(args.images)
    print(f"data dir: {root}")
    paths = ensure_mnist(root, download=not args.no_download, images=images)
    bad = []
    for split in images.files.values():
        for spec in (split.images, split.labels):
            path = paths[spec.name]
            ok = verify_mnist_file(path, spec)
            print(f"{spec.name}: {path} (md5 {'ok' if ok else 'MISMATCH'})")
            if not ok:
                bad.append(str(path))
    if bad:
        raise ChecksumError(
            f"MD5 mismatch for {', '.join(bad)}; expected the published MNIST files "
            "(delete them to download again)"
        )
    for name in images.files:
        digits = load_mnist(name, root, download=False, images=images)
        counts = np.bincount(digits.labels, minlength=10).tolist()
        print(f"{name}: {len(digits)} digits 28x28, label counts {counts}")
    return 0


def _surrogate(args: argparse.Namespace) -> int:
    videos = generate_surrogate(
        args.num, args.seed, args.data_dir, download=not args.no_download, images=args.images
    )
    with atomic_write(args.out) as handle:
        np.save(handle, videos, allow_pickle=False)
    md5 = hashlib.md5(args.out.read_bytes()).hexdigest()
    print(
        f"wrote {args.out}: surrogate test set (seed {args.seed}, N={args.num}), "
        f"shape {videos.shape} (T, N, H, W) {videos.dtype}, md5 {md5}"
    )
    return 0


def _standard(args: argparse.Namespace) -> int:
    test_set = load_test_set("standard", args.data_dir, verify_md5=args.md5)
    md5 = "md5 ok" if args.md5 else "md5 not checked (use --md5)"
    print(f"{test_set.path}: {test_set.name}, shape ok, {md5}")
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``crevnet data``."""
    parser = argparse.ArgumentParser(prog="crevnet data", description="Fetch and check Moving MNIST data.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{mnist,surrogate,standard}")
    data_help = f"data directory (default: ${DATA_DIR_ENV}, else the project's data/)"
    images_help = "mnist (default) or fashion_mnist (Moving Fashion-MNIST)"

    mnist = sub.add_parser("mnist", help="fetch or check the four MNIST files")
    mnist.add_argument("--data-dir", default=None, help=data_help)
    mnist.add_argument("--no-download", action="store_true", help="fail instead of downloading")
    mnist.add_argument("--images", choices=list(IMAGE_SETS), default="mnist", help=images_help)
    mnist.set_defaults(func=_mnist)

    surrogate = sub.add_parser("surrogate", help="write a seeded surrogate test set (T, N, H, W) uint8 .npy")
    surrogate.add_argument("--out", required=True, type=_npy_path, help="output .npy file")
    surrogate.add_argument(
        "--num", type=_positive, default=SURROGATE_NUM, help=f"sequences (default {SURROGATE_NUM})"
    )
    surrogate.add_argument(
        "--seed", type=_non_negative, default=SURROGATE_SEED, help=f"seed (default {SURROGATE_SEED})"
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


def _npy_path(text: str) -> Path:
    path = Path(text)
    if path.suffix != ".npy":
        raise argparse.ArgumentTypeError(f"expected a path ending in .npy, got {text}")
    return path


def main(argv: list[str]) -> int:
    """Run ``crevnet data`` with ``argv`` (without the program name); return the exit status."""
    args = build_parser().parse_args(argv)
    return args.func(args)
