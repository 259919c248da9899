"""Memory of a CrevNet training step per memory-saving mode: saved bytes, peak memory, step time.

One run (one JSON line; it runs in a fresh subprocess, so that its peak RSS is its own)::

    python benchmarks/memory.py --config configs/mmnist_crevnet3d.yaml --mode full --batch 8 --frames 20

The sweep (batch 1/8/16 × frames 10/20/40 per mode, then the depth of the encoder and of the RPM at
batch 8 and 20 frames), with a plot::

    python benchmarks/memory.py --config configs/mmnist_crevnet3d.yaml --sweep --threads 2 \\
        --plot benchmarks/results/memory/MACHINE/modes_paper3d.png \\
        > benchmarks/results/memory/MACHINE/modes_paper3d.jsonl

Fields: ``saved_mb_per_sample`` is what autograd keeps for backward over the training loss
(``crevnet.nn.SavedTensorCounter``, each storage once, the parameters left out), divided by the batch;
it does not depend on the machine or its load. On the CPU ``peak_rss_mb`` is the peak resident memory
(VmHWM) of the fresh process that builds the model, runs one counted step and ``--steps`` timed steps
(forward, backward, Adam), runtime and weights included; ``rss_before_mb`` is its resident memory
just before the first step. On CUDA ``cuda_max_allocated_mb`` is ``torch.cuda.max_memory_allocated``
over the timed steps (weights, gradients and Adam state included). ``step_s`` is the median of the
timed steps (null with ``--steps 0``). ``--note`` adds a ``note`` field, e.g. to say that the step time
was taken on a loaded machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import torch

from crevnet.nn import CrevNet, CrevNetConfig, MemorySaving, SavedTensorCounter, load_config

try:
    import record
except ImportError:  # loaded by file path (the tests): benchmarks/ holds the one record helper
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import record

MODES = [m.value for m in MemorySaving]
SWEEP_BATCHES = (1, 8, 16)
SWEEP_FRAMES = (10, 20, 40)
SWEEP_LAYERS = (4, 8, 16)  # RPM depth, at --ref-batch and --ref-frames
SWEEP_STAGE_SCALES = (1, 2)  # encoder depth (blocks per stage ×), at --ref-batch and --ref-frames


def model_config(path: str, layers: int | None, stage_scale: int) -> CrevNetConfig:
    """The config's model, with ``layers`` RPM layers and ``stage_scale`` × the encoder's blocks."""
    cfg = load_config(path)
    if layers is not None:
        cfg = dataclasses.replace(cfg, predictor=dataclasses.replace(cfg.predictor, layers=layers))
    stages = tuple(stage_scale * n for n in cfg.encoder.stages)
    return dataclasses.replace(cfg, encoder=dataclasses.replace(cfg.encoder, stages=stages))


def proc_status_mb(key: str) -> float | None:
    """A memory figure of this process from /proc/self/status, in MB (None where /proc is absent)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run_here(args: argparse.Namespace) -> dict[str, object]:
    """Measure one (mode, batch, frames, depth) in this process."""
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cfg = model_config(args.config, args.layers, args.stage_scale)
    torch.manual_seed(0)
    model = CrevNet(cfg).to(device).train()
    video = torch.rand(args.batch, args.frames, cfg.encoder.in_channels, args.size, args.size, device=device)
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def step(count: bool = False) -> tuple[float, int]:
        sync()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        counter = SavedTensorCounter(exclude=model.parameters())
        if count:
            with counter:
                loss = model.loss(video, memory_saving=args.mode, bf16=args.bf16)
        else:
            loss = model.loss(video, memory_saving=args.mode, bf16=args.bf16)
        loss.backward()
        opt.step()
        sync()
        return time.perf_counter() - t0, counter.bytes

    rss_before = proc_status_mb("VmRSS")
    _, saved = step(count=True)  # also the warm-up; creates Adam's state
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = [step()[0] for _ in range(args.steps)]
    row: dict[str, object] = {
        "config": args.config,
        "mode": args.mode,
        "batch": args.batch,
        "frames": args.frames,
        "size": args.size,
        "encoder_blocks": sum(cfg.encoder.stages),
        "predictor_layers": cfg.predictor.layers,
        "bf16": args.bf16,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": args.threads,
        "saved_mb_per_sample": round(saved / 2**20 / args.batch, 3),
        "step_s": round(statistics.median(times), 3) if times else None,
    }
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) if times else None
        row["cuda_max_allocated_mb"] = round(peak / 2**20, 1) if peak is not None else None
    else:
        row["rss_before_mb"] = None if rss_before is None else round(rss_before, 1)
        peak_rss = proc_status_mb("VmHWM")
        row["peak_rss_mb"] = None if peak_rss is None else round(peak_rss, 1)
    if args.note:
        row["note"] = args.note
    return row


def child_argv(args: argparse.Namespace, **override: object) -> list[str]:
    """The command line of one measuring subprocess."""
    values = {**vars(args), **override}
    argv = [sys.executable, str(Path(__file__).resolve()), "--child"]
    for key in ("config", "mode", "batch", "frames", "size", "threads", "device", "steps", "stage_scale"):
        argv += [f"--{key.replace('_', '-')}", str(values[key])]
    if values["layers"] is not None:
        argv += ["--layers", str(values["layers"])]
    if values["bf16"]:
        argv.append("--bf16")
    if values["note"]:
        argv += ["--note", str(values["note"])]
    return argv


def run_fresh(args: argparse.Namespace, **override: object) -> dict[str, object]:
    """Measure one run in a fresh Python process and return its JSON row."""
    out = subprocess.run(child_argv(args, **override), capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"measuring run {override} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def sweep_runs(args: argparse.Namespace) -> list[dict[str, object]]:
    """The (mode, batch, frames, layers, stage_scale) grid of ``--sweep``."""
    runs: list[dict[str, object]] = []
    for mode in args.modes:
        for batch in args.batches:
            for frames in args.frames_list:
                runs.append({"mode": mode, "batch": batch, "frames": frames})
        ref = {"mode": mode, "batch": args.ref_batch, "frames": args.ref_frames}
        runs += [{**ref, "layers": layers} for layers in args.layers_list]
        runs += [{**ref, "stage_scale": scale} for scale in args.stage_scales if scale != 1]
    return runs


def plot(rows: list[dict], path: str | os.PathLike[str], ref_batch: int = 8, ref_frames: int = 20) -> None:
    """Saved MB per sample against frames and RPM layers, and peak memory against batch, per mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from crevnet.io.atomic import atomic_path

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    peak_key = "cuda_max_allocated_mb" if any("cuda_max_allocated_mb" in r for r in rows) else "peak_rss_mb"
    base_blocks = min((int(r["encoder_blocks"]) for r in rows), default=0)
    for mode in MODES:
        mine = [r for r in rows if r["mode"] == mode and r["encoder_blocks"] == base_blocks]
        # the config's own depth: the one most rows (the batch × frames grid) have
        depth0 = Counter(r["predictor_layers"] for r in mine).most_common(1)[0][0] if mine else 0
        by_frames = sorted(
            (r["frames"], r["saved_mb_per_sample"])
            for r in mine
            if r["batch"] == ref_batch and r["predictor_layers"] == depth0
        )
        by_layers = sorted(
            (r["predictor_layers"], r["saved_mb_per_sample"])
            for r in mine
            if r["batch"] == ref_batch and r["frames"] == ref_frames
        )
        by_batch = sorted(
            (r["batch"], r[peak_key])
            for r in mine
            if r["frames"] == ref_frames and r["predictor_layers"] == depth0 and r.get(peak_key) is not None
        )
        for ax, points in zip(axes, (by_frames, by_layers, by_batch), strict=True):
            if points:
                xs, ys = zip(*dict(points).items(), strict=True)
                ax.plot(xs, ys, marker="o", label=mode)
    titles = (
        f"saved for backward vs frames (batch {ref_batch})",
        f"saved for backward vs RPM layers (batch {ref_batch}, {ref_frames} frames)",
        f"{peak_key} vs batch ({ref_frames} frames)",
    )
    labels = (("frames", "MB per sample"), ("RPM layers", "MB per sample"), ("batch", "MB"))
    for ax, title, (xl, yl) in zip(axes, titles, labels, strict=True):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML with a model: net: section")
    parser.add_argument("--mode", choices=MODES, default="full", help="memory saving of a single run")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--size", type=int, default=64, help="frame height = width")
    parser.add_argument("--layers", type=int, default=None, help="RPM layers (default: the config's)")
    parser.add_argument("--stage-scale", type=int, default=1, help="multiply the encoder's blocks per stage")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=2, help="timed steps after the counted one (0: none)")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast for the RPM")
    parser.add_argument("--note", default="", help="a note added to every row")
    parser.add_argument("--sweep", action="store_true", help="run the grid below instead of one run")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=MODES)
    parser.add_argument("--batches", nargs="+", type=int, default=list(SWEEP_BATCHES))
    parser.add_argument("--frames-list", nargs="+", type=int, default=list(SWEEP_FRAMES))
    parser.add_argument("--layers-list", nargs="*", type=int, default=list(SWEEP_LAYERS))
    parser.add_argument("--stage-scales", nargs="*", type=int, default=list(SWEEP_STAGE_SCALES))
    parser.add_argument("--ref-batch", type=int, default=8, help="batch of the sweep's depth runs")
    parser.add_argument("--ref-frames", type=int, default=20, help="frames of the sweep's depth runs")
    parser.add_argument(
        "--same-process",
        action="store_true",
        help="measure every run in this process (quick, for tests; peak RSS is then the process's)",
    )
    parser.add_argument("--plot", default=None, help="write a PNG of the sweep's rows here")
    parser.add_argument("--plot-from", default=None, help="plot the rows of this JSONL file (no runs)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("batch", "frames", "size", "threads", "stage_scale"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.steps < 0:
        parser.error(f"--steps must be >= 0, got {args.steps}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(run_here(args)), flush=True)
        return 0
    if args.plot_from:
        rows = [json.loads(line) for line in Path(args.plot_from).read_text().splitlines() if line.strip()]
        plot(rows, args.plot or Path(args.plot_from).with_suffix(".png"), args.ref_batch, args.ref_frames)
        return 0
    runs = sweep_runs(args) if args.sweep else [{}]
    rows = []
    sitting = record.start(__file__, argv)
    for override in runs:
        if args.same_process:
            row = run_here(argparse.Namespace(**{**vars(args), **override}))
        else:
            row = run_fresh(args, **override)
        row = sitting.stamp(row)
        sitting = sitting.again()
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.plot:
        plot(rows, args.plot, args.ref_batch, args.ref_frames)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
