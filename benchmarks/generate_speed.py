"""Moving MNIST generation speed on one core; prints one JSON line.

Usage::

    python benchmarks/generate_speed.py [--num 2000] [--frames 20] [--data-dir DIR]

Times ``StandardGenerator`` and ``CrevNetGenerator`` (uint8 sequences, seeding included) and the
``MovingMNIST`` dataset item (float32 (T, 1, 64, 64) tensor), each over ``--num`` sequences, in
one process with one torch thread.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from crevnet.data import (
    CrevNetGenerator,
    MovingMNIST,
    StandardGenerator,
    load_mnist,
    resolve_data_dir,
    sequence_rng,
)

try:
    import record
except ImportError:  # loaded by file path (the tests): benchmarks/ holds the one record helper
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import record


def _rate(function: Callable[[int], object], num: int) -> float:
    function(0)  # warm-up
    start = time.perf_counter()
    for index in range(num):
        function(index)
    return num / (time.perf_counter() - start)


def main() -> None:
    """Run the benchmark and print the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=2000, help="sequences per measurement")
    parser.add_argument("--frames", type=int, default=20, help="frames per sequence")
    parser.add_argument("--data-dir", default=None, help="data directory holding MNIST")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sitting = record.start(__file__)
    digits = load_mnist("train", args.data_dir, download=False).images
    standard, crevnet = StandardGenerator(), CrevNetGenerator()
    dataset = MovingMNIST(digits, length=args.num, seed=0, num_frames=args.frames)
    result = {
        "benchmark": "moving_mnist_generate",
        "frames": args.frames,
        "num": args.num,
        "standard_seq_per_s": round(
            _rate(lambda i: standard.generate(digits, sequence_rng(0, i), args.frames), args.num), 1
        ),
        "crevnet_seq_per_s": round(
            _rate(lambda i: crevnet.generate(digits, sequence_rng(0, i), args.frames), args.num), 1
        ),
        "dataset_float_seq_per_s": round(_rate(dataset.__getitem__, args.num), 1),
        "threads": 1,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "data_dir": str(resolve_data_dir(args.data_dir)),
    }
    print(json.dumps(sitting.stamp(result)))


if __name__ == "__main__":
    main()
