"""Forward + backward time of every conv shape in a CrevNet config: crevnet's conv paths vs PyTorch's.

Records the shapes the model's convs see in one training forward (a hook on every ``nn.Conv2d`` /
``nn.Conv3d``), then times forward + backward for each distinct shape: ``fast`` with
``crevnet.nn.conv.conv_same`` (gradients as forward convs), ``native`` with PyTorch's own conv, and for
3-D convs ``folded`` with ``crevnet.nn.conv.conv_time_folded`` (one 2-D conv, time folded into
channels). Every stride-1 cube-kernel conv is timed every way, also the 1×1 and 2-D ones that the model
leaves on PyTorch's backward (``model_path`` says which path the model takes on this CPU), so the
rule in ``crevnet/nn/conv.py`` can be checked on any config. 2-D 3×3 "same" convs on even grids are also
timed as ``winograd``: Winograd's minimal filtering F(2×2, 3×3) (:func:`winograd_3x3`, written in torch
ops so that autograd runs both gradients in the transformed domain too), 16 multiplies per 2×2 output
tile instead of 36; the model never takes this path, the column is there to measure whether it would
pay. Prints one JSON object per shape and a last one with the totals weighted by how often each shape
runs in a forward (``calls_per_forward``), for the path the model takes, for the native path and for
the best path per shape; the memory-saving replay is not counted.

Example::

    python benchmarks/conv_backward.py --config configs/mmnist_crevnet3d.yaml --batch 8 --threads 2
    python benchmarks/conv_backward.py --config configs/quickstart.yaml --batch 8 --threads 2  # + winograd
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from crevnet.nn import CrevNet, load_config
from crevnet.nn.conv import conv_same, conv_time_folded, native_backward, same_padding

try:
    import record
except ImportError:  # loaded by file path (the tests): benchmarks/ holds the one record helper
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import record

# Winograd F(2×2, 3×3) (Lavin & Gray, 2016): Y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A per 4×4 input tile d,
# 2×2 output tile and 3×3 kernel g; the tile matrices act on flattened tiles as Kronecker products.
_BT = torch.tensor([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=torch.float64)
_G = torch.tensor([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=torch.float64)
_AT = torch.tensor([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=torch.float64)
_TILE_IN = torch.kron(_BT, _BT)  # (16, 16): flattened 4×4 input tile -> transformed tile
_KERNEL = torch.kron(_G, _G)  # (16, 9): flattened 3×3 kernel -> transformed kernel
_TILE_OUT = torch.kron(_AT, _AT)  # (4, 16): transformed product -> flattened 2×2 output tile


def winograd_3x3(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, padding=1)`` for a 3×3 kernel and even H, W, by Winograd F(2×2, 3×3).

    Input tiles (4×4, stride 2, from the zero-padded input) and kernels are transformed, multiplied
    as 16 batched GEMMs (tiles × in-channels by in-channels × out-channels) and transformed back.
    """
    n, c, h, w = x.shape
    k = weight.shape[0]
    if weight.shape[1:] != (c, 3, 3) or h % 2 or w % 2:
        raise ValueError(f"winograd_3x3 needs a (K, {c}, 3, 3) kernel and an even grid, got {tuple(x.shape)}")
    th, tw = h // 2, w // 2
    tiles = F.unfold(x, 4, padding=1, stride=2).view(n, c, 16, th * tw)
    v = torch.matmul(_TILE_IN.to(x), tiles).permute(2, 0, 3, 1).reshape(16, n * th * tw, c)
    u = (_KERNEL.to(x) @ weight.reshape(k * c, 9).t()).view(16, k, c).transpose(1, 2)
    m = torch.bmm(v, u)  # (16, tiles, K)
    y = (_TILE_OUT.to(x) @ m.reshape(16, -1)).view(2, 2, n, th, tw, k)  # (row, col, n, tile row, tile col, K)
    y = y.permute(2, 5, 3, 0, 4, 1).reshape(n, k, h, w)
    return y if bias is None else y + bias.view(1, k, 1, 1)


def winograd_ok(module: nn.Conv2d | nn.Conv3d, x: torch.Tensor) -> bool:
    """Whether :func:`winograd_3x3` can compute this conv: a 2-D 3×3 "same" conv (as
    :func:`~crevnet.nn.conv.same_padding` defines it) on an even grid."""
    return (
        isinstance(module, nn.Conv2d)
        and tuple(module.kernel_size) == (3, 3)
        and same_padding(module) == 1
        and x.shape[-1] % 2 == 0
        and x.shape[-2] % 2 == 0
    )


Shape = tuple[str, tuple[int, ...], int, int, tuple[int, ...], tuple[int, ...], tuple[int, ...], bool]


def conv_shapes(model: CrevNet, video: torch.Tensor) -> dict[Shape, tuple[nn.Conv2d | nn.Conv3d, int]]:
    """Each distinct (class, input shape, c_out, groups, kernel, stride, padding, bias) of one loss
    forward, with one module that ran it and how many calls had it."""
    calls: Counter[Shape] = Counter()
    example: dict[Shape, nn.Conv2d | nn.Conv3d] = {}

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        assert isinstance(module, nn.Conv2d | nn.Conv3d)
        key = (
            "Conv3d" if isinstance(module, nn.Conv3d) else "Conv2d",
            tuple(inputs[0].shape),
            module.out_channels,
            module.groups,
            tuple(module.kernel_size),
            tuple(module.stride),
            tuple(module.padding),  # type: ignore[arg-type]
            module.bias is not None,
        )
        calls[key] += 1
        example.setdefault(key, module)

    handles = [
        m.register_forward_pre_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d | nn.Conv3d)
    ]
    with torch.no_grad():
        model.loss(video)
    for h in handles:
        h.remove()
    return {key: (example[key], n) for key, n in calls.items()}


def time_shape(module: nn.Conv2d | nn.Conv3d, x: torch.Tensor, path: str, reps: int) -> float:
    """Median seconds of forward + backward (input, weight and bias gradients) on ``path``."""
    x = x.requires_grad_()
    pad = same_padding(module)

    def run() -> torch.Tensor:
        if path == "fast":
            assert pad is not None
            return conv_same(x, module.weight, module.bias, pad)
        if path == "folded":
            assert pad is not None and x.dim() == 5
            return conv_time_folded(x, module.weight, module.bias, pad)
        if path == "winograd":
            return winograd_3x3(x, module.weight, module.bias)
        with native_backward():  # the module's own class may be crevnet's Conv3d
            return module._conv_forward(x, module.weight, module.bias)

    g = torch.randn_like(run())

    def once() -> float:
        t0 = time.perf_counter()
        x.grad = None
        module.zero_grad(set_to_none=True)
        run().backward(g)
        return time.perf_counter() - t0

    once()
    return statistics.median(once() for _ in range(reps))


def model_path(module: nn.Module, x: torch.Tensor) -> str:
    """The path the model's own module takes for this input: ``fast``, ``folded`` or ``native``."""
    y = module(x.detach().requires_grad_())
    name = type(y.grad_fn).__name__ if y.grad_fn is not None else ""
    if "_SameConv" in name:
        return "fast"
    if name == "ViewBackward0" and x.dim() == 5:  # conv_time_folded: a 2-D conv viewed back to 5-D
        return "folded"
    return "native"


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
    run = sitting = record.start(__file__, argv)
    model = CrevNet(load_config(args.config))
    c = model.config.encoder.in_channels
    shapes = conv_shapes(model, torch.rand(args.batch, args.frames, c, args.size, args.size))
    total_model = total_native = total_best = 0.0
    for (kind, in_shape, c_out, _, k, stride, _, _), (module, calls) in sorted(shapes.items()):
        x = torch.randn(in_shape)
        same = same_padding(module) is not None
        times = {"native": time_shape(module, x, "native", args.reps)}
        if same:
            times["fast"] = time_shape(module, x, "fast", args.reps)
        if same and x.dim() == 5:
            times["folded"] = time_shape(module, x, "folded", args.reps)
        if winograd_ok(module, x):
            times["winograd"] = time_shape(module, x, "winograd", args.reps)
        path = model_path(module, x)
        total_model += calls * times[path]
        total_native += calls * times["native"]
        total_best += calls * min(times.values())
        row = {
            "conv": kind,
            "input": list(in_shape),
            "out_channels": c_out,
            "kernel": list(k),
            "stride": list(stride),
            "calls_per_forward": calls,
            "model_path": path,
            "best_path": min(times, key=times.__getitem__),
            "fast_ms": round(times["fast"] * 1e3, 3) if "fast" in times else None,
            "folded_ms": round(times["folded"] * 1e3, 3) if "folded" in times else None,
            "winograd_ms": round(times["winograd"] * 1e3, 3) if "winograd" in times else None,
            "native_ms": round(times["native"] * 1e3, 3),
            "speedup": round(times["native"] / times[path], 2),
        }
        print(json.dumps(sitting.stamp(row)), flush=True)
        sitting = sitting.again()
    summary = {
        "config": args.config,
        "batch": args.batch,
        "threads": args.threads,
        "weighted_model_ms": round(total_model * 1e3, 3),
        "weighted_native_ms": round(total_native * 1e3, 3),
        "weighted_best_ms": round(total_best * 1e3, 3),
        "speedup": round(total_native / total_model, 2),
    }
    print(json.dumps(run.stamp(summary)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
