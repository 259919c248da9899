"""Training and inference speed and memory of a CrevNet config on one device (CPU or CUDA).

Prints one JSON object per memory-saving mode (off, encoder, full) and one for inference:

    python benchmarks/device_bench.py --config configs/mmnist_crevnet3d.yaml --device cuda --batch 16

Training: Adam step on ``model.loss`` (20-frame sequences, 100% teacher forcing). ``step_s_median``,
``sequences_per_s``; on CUDA ``max_memory_allocated`` after ``reset_peak_memory_stats`` for the whole
step (``peak_mb``), per sample (``peak_mb_per_sample``) and above what weights, gradients and Adam
state hold before the step (``activation_mb_per_sample``, the figure the paper's 224 MB/sample
compares with). Inference: ``model.predict`` of 10 frames from 10 under ``no_grad``:
``frames_per_s`` = predicted frames per second, ``sequences_per_s``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from crevnet.nn import CrevNet, load_config

try:
    import record
except ImportError:  # loaded by file path (the tests): benchmarks/ holds the one record helper
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import record


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_training(cfg, args: argparse.Namespace, device: torch.device, memory_saving: str) -> dict:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = CrevNet(cfg).to(device).train()
    c = cfg.encoder.in_channels
    video = torch.rand(args.batch, args.frames, c, args.size, args.size, device=device)
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)

    def step() -> float:
        sync(device)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            loss = model.loss(video, memory_saving=memory_saving)
        loss.backward()
        opt.step()
        sync(device)
        return time.perf_counter() - t0

    for _ in range(args.warmup):
        step()  # also creates Adam's state, so the baseline below includes it
    row: dict[str, object] = {"mode": "train", "memory_saving": memory_saving}
    if device.type == "cuda":
        opt.zero_grad(set_to_none=False)  # gradients stay allocated, as during a step
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        step()
        peak = torch.cuda.max_memory_allocated(device)
        row.update(
            peak_mb=round(peak / 2**20, 1),
            peak_mb_per_sample=round(peak / 2**20 / args.batch, 1),
            activation_mb_per_sample=round((peak - base) / 2**20 / args.batch, 1),
        )
    times = [step() for _ in range(args.steps)]
    med = statistics.median(times)
    row.update(
        step_s=[round(t, 4) for t in times],
        step_s_median=round(med, 4),
        sequences_per_s=round(args.batch / med, 2),
    )
    return row


@torch.no_grad()
def bench_inference(cfg, args: argparse.Namespace, device: torch.device) -> dict:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = CrevNet(cfg).to(device).eval()
    c = cfg.encoder.in_channels
    context = torch.rand(args.batch, 10, c, args.size, args.size, device=device)
    for _ in range(args.warmup):
        model.predict(context, 10)
    times = []
    for _ in range(args.steps):
        sync(device)
        t0 = time.perf_counter()
        model.predict(context, 10)
        sync(device)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {
        "mode": "inference",
        "predict_s_median": round(med, 4),
        "frames_per_s": round(10 * args.batch / med, 1),
        "sequences_per_s": round(args.batch / med, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast around the loss")
    parser.add_argument(
        "--modes", nargs="+", default=["off", "encoder", "full"], choices=["off", "encoder", "full"]
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cfg = load_config(args.config)
    common = {
        "config": args.config,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "batch": args.batch,
        "frames": args.frames,
        "size": args.size,
        "bf16": args.bf16,
        "params": sum(p.numel() for p in CrevNet(cfg).parameters()),
    }
    for memory_saving in args.modes:
        sitting = record.start(__file__, argv)
        row = {**common, **bench_training(cfg, args, device, memory_saving)}
        print(json.dumps(sitting.stamp(row)), flush=True)
    sitting = record.start(__file__, argv)
    print(json.dumps(sitting.stamp({**common, **bench_inference(cfg, args, device)})), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
