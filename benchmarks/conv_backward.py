"""Forward + backward time of every conv shape in a CrevNet config: crevnet's Conv3d backward vs PyTorch's.

Records the shapes the model's convs see in one training forward (a hook on every ``nn.Conv2d`` /
``nn.Conv3d``), then times ``conv(x).backward(g)`` for each distinct shape with the fast CPU backward of
``crevnet.nn.conv`` and inside ``native_backward()``. Prints one JSON object per shape and a last one
with the totals weighted by how often each shape runs in a step (``calls``); the memory-saving replay
is not counted, so the weighted total is a lower bound on what a step spends in convs.

Example::

    python benchmarks/conv_backward.py --config configs/mmnist_crevnet3d.yaml --batch 8 --threads 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter

import torch
from torch import nn

from crevnet.nn import CrevNet, load_config
from crevnet.nn.conv import native_backward

Shape = tuple[str, tuple[int, ...], int, int, tuple[int, ...], tuple[int, ...], tuple[int, ...], bool]


def conv_shapes(model: CrevNet, video: torch.Tensor) -> Counter[Shape]:
    """Distinct (class, input shape, c_out, groups, kernel, stride, padding, bias) of one loss forward."""
    seen: Counter[Shape] = Counter()

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        assert isinstance(module, nn.Conv2d | nn.Conv3d)
        seen[
            (
                "Conv3d" if isinstance(module, nn.Conv3d) else "Conv2d",
                tuple(inputs[0].shape),
                module.out_channels,
                module.groups,
                tuple(module.kernel_size),
                tuple(module.stride),
                tuple(module.padding),  # type: ignore[arg-type]
                module.bias is not None,
            )
        ] += 1

    handles = [
        m.register_forward_pre_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d | nn.Conv3d)
    ]
    with torch.no_grad():
        model.loss(video)
    for h in handles:
        h.remove()
    return seen


def time_shape(module: nn.Module, x: torch.Tensor, reps: int) -> float:
    """Median seconds of ``module(x).backward(g)`` (weight, bias and input gradients)."""
    x = x.requires_grad_()
    g = torch.randn_like(module(x))

    def once() -> float:
        t0 = time.perf_counter()
        x.grad = None
        module.zero_grad(set_to_none=True)
        module(x).backward(g)
        return time.perf_counter() - t0

    once()
    return statistics.median(once() for _ in range(reps))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML with a model: net: section")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--size", type=int, default=64, help="frame height = width")
    parser.add_argument("--reps", type=int, default=10)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = CrevNet(load_config(args.config))
    c = model.config.encoder.in_channels
    shapes = conv_shapes(model, torch.rand(args.batch, args.frames, c, args.size, args.size))
    total_fast = total_native = 0.0
    for (kind, in_shape, c_out, groups, k, stride, pad, bias), calls in sorted(shapes.items()):
        module = next(
            m
            for m in model.modules()
            if isinstance(m, nn.Conv2d | nn.Conv3d)
            and (m.in_channels, m.out_channels, m.groups, tuple(m.kernel_size), tuple(m.stride))
            == (in_shape[1], c_out, groups, k, stride)
            and tuple(m.padding) == pad  # type: ignore[arg-type]
            and (m.bias is not None) == bias
        )
        x = torch.randn(in_shape)
        fast = time_shape(module, x, args.reps)
        with native_backward():
            native = time_shape(module, x, args.reps)
        total_fast += calls * fast
        total_native += calls * native
        row = {
            "conv": kind,
            "input": list(in_shape),
            "out_channels": c_out,
            "kernel": list(k),
            "stride": list(stride),
            "calls_per_forward": calls,
            "fast_ms": round(fast * 1e3, 3),
            "native_ms": round(native * 1e3, 3),
            "speedup": round(native / fast, 2),
        }
        print(json.dumps(row), flush=True)
    summary = {
        "config": args.config,
        "batch": args.batch,
        "threads": args.threads,
        "weighted_fast_s": round(total_fast, 3),
        "weighted_native_s": round(total_native, 3),
        "speedup": round(total_native / total_fast, 2),
        "torch": torch.__version__,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
