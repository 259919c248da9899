"""Time one CrevNet training step (forward + backward + Adam) and compare it with an fp32 matmul.

Prints ONE JSON object. ``achieved_gflops = 6 · gmac_per_sample · batch / step_s_median``: a training
step is counted as 3× the forward FLOPs (backward ≈ 2× forward) and a MAC as 2 FLOPs, where
``gmac_per_sample`` is counted by ``torch.utils.flop_counter.FlopCounterMode`` over one training
forward (all transitions: encode + RPM + decode) of a batch of 1. The recomputation done by the
memory-saving backward is not counted (it is work on top of the useful FLOPs). ``matmul_peak_gflops``
is the best fp32 ``n×n`` matmul rate (n = 1024 and 2048) in the same process with the same thread
count, measured once before and once after the timed steps (both kept in ``matmul_peak_runs``): on a
shared VM a single reading before the steps was seen anywhere between 92 and 177 GFLOP/s.

``top_conv`` bounds what the step can reach: every convolution of one training forward at the run's
batch is grouped by shape (``conv_census``: the largest shapes by MACs, calls per step, share of the
step's conv MACs); the shape with the most MACs is then timed alone, forward + both gradients, at the
same thread count (PyTorch's own conv and backward). ``bound_over_peak = over_peak / flop_share`` is
what the whole step would reach if everything else (the other convs, gates, norms, Adam, Python) took
no time at all: ``achieved_over_peak`` cannot exceed it unless that conv runs faster inside the step.

``--conv-backward native`` runs PyTorch's own Conv3d backward instead of crevnet's faster one
(``crevnet.nn.conv``), to measure what it is worth.

``--compile rpm`` times the step with the predictor wrapped in ``torch.compile`` (inductor, static
shapes, one whole graph per time step: fused gate non-linearities, AOT-autograd backward);
``--compile rollout`` compiles the whole rollout (encode, every RPM step, decode) as one graph. The
warm-up step, which pays for the compile, is reported as ``warmup_s``. FLOPs and the conv census are
counted on the eager model.

The step is the one ``crevnet fit`` takes with the same config: the batch size (``data.batch_size``),
the thread count (``torch_threads``; ``--threads adaptive`` picks it by timing as the
``AdaptiveThreads`` callback does), the loss weights (``model.loss``) and the scheduled-sampling
rollout (``model.sampling`` at progress ``--progress``, 0.5 by default: once the probability is above
zero every step takes the step-by-step rollout path). ``samples_per_s = batch / step_s_median``.
``--busy-neighbour`` then starts one busy-loop process (``python -c "while True: pass"``), times the
same steps beside it (after an adaptive probe when ``--threads adaptive``), stops it, and adds
``busy_samples_per_s`` and ``busy_threads``. ``--thread-neighbour torch|numpy`` times the steps beside a
thread of the same process that stacks one batch of clips every 250 ms with torch or with NumPy (what a
data prefetch thread does) and adds ``thread_neighbour_samples_per_s``: a torch op on a second thread
starts a second OpenMP team beside the step's.

Other benchmarks time the same step by importing this file: :class:`StepBench` (the model, batch and
step of a config) and :func:`measure` (its timed steps alone, e.g. ``benchmarks/folder_pipeline.py``).

Example::

    python benchmarks/train_step.py --config configs/mmnist_crevnet3d.yaml --batch 8 --threads 2 \
        --memory-saving encoder --steps 3
    python benchmarks/train_step.py --config configs/quickstart.yaml --threads adaptive --busy-neighbour
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from crevnet.nn import CrevNet, MemorySaving, load_config
from crevnet.nn.conv import native_backward
from crevnet.train.loss import LossWeights, prediction_loss
from crevnet.train.schedule import SamplingCurriculum
from crevnet.train.threads import ThreadTuner, usable_cores

try:
    import record
except ImportError:  # loaded by file path (the tests): benchmarks/ holds the one record helper
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import record


def matmul_peak_gflops(sizes: tuple[int, ...] = (1024, 2048), reps: int = 8) -> float:
    """Best fp32 GFLOP/s over ``reps`` n×n matmuls (2·n³ FLOPs each) for each n in ``sizes``."""
    best_rate = 0.0
    for n in sizes:
        a = torch.randn(n, n)
        b = torch.randn(n, n)
        torch.mm(a, b)
        best = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - t0)
        best_rate = max(best_rate, 2 * n**3 / best / 1e9)
    return best_rate


def conv_peak_gflops(reps: int = 8) -> float:
    """Best GFLOP/s of a large oneDNN 3×3 Conv2d forward (256 -> 256 channels, 8×256×16×16).

    On CPUs where MKL's sgemm is slow (AMD without AVX-512) oneDNN's own kernels are the better
    yardstick of what a conv network can reach; reported next to the matmul figure.
    """
    x = torch.randn(8, 256, 16, 16)
    conv = torch.nn.Conv2d(256, 256, 3, padding=1, bias=False)
    flops = 2 * 8 * 256 * 256 * 9 * 16 * 16
    best = float("inf")
    with torch.no_grad():
        conv(x)
        for _ in range(reps):
            t0 = time.perf_counter()
            conv(x)
            best = min(best, time.perf_counter() - t0)
    return flops / best / 1e9


def count_gmac(model: CrevNet, frames: int, size: int) -> float:
    """MACs of one training forward of one sample, in units of 1e9."""
    c = model.config.encoder.in_channels
    video = torch.rand(1, frames, c, size, size)
    with FlopCounterMode(display=False) as counter:
        model.loss(video)
    return counter.get_total_flops() / 2 / 1e9


def conv_census(model: CrevNet, video: torch.Tensor, **forward: Any) -> list[dict[str, Any]]:
    """The convolutions of one training forward of ``video``, grouped by shape, most MACs first.

    Each row: ``input``, ``weight``, ``stride``, ``padding``, ``dilation``, ``groups``, ``bias``,
    ``calls`` and ``gmac`` (all calls of that shape together, 1e9 multiply-adds).
    """
    from torch.utils._python_dispatch import TorchDispatchMode

    rows: dict[tuple[Any, ...], dict[str, Any]] = {}

    class Census(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if func is torch.ops.aten.convolution.default and not args[6]:  # not transposed
                x, w, b, stride, padding, dilation = args[:6]
                key = (*(tuple(a) for a in (x.shape, w.shape, stride, padding, dilation)), args[8])
                row = rows.setdefault(key, {"calls": 0, "gmac": 0.0, "bias": b is not None})
                row["calls"] += 1
                row["gmac"] += out.numel() * w[0].numel() / 1e9
            return out

    with torch.no_grad(), Census():
        model(video, **forward)
    out = [
        {
            "input": list(k[0]),
            "weight": list(k[1]),
            "stride": list(k[2]),
            "padding": list(k[3]),
            "dilation": list(k[4]),
            "groups": k[5],
            **v,
        }
        for k, v in rows.items()
    ]
    return sorted(out, key=lambda r: -r["gmac"])


def time_conv(row: dict[str, Any], reps: int = 20) -> float:
    """Median seconds of one forward + input and weight gradients of the conv ``row`` describes."""
    x = torch.randn(row["input"], requires_grad=True)
    w = (torch.randn(row["weight"]) * 0.1).requires_grad_()
    b = torch.zeros(row["weight"][0], requires_grad=True) if row["bias"] else None
    n = len(row["stride"])
    args = (row["stride"], row["padding"], row["dilation"], False, [0] * n, row["groups"])
    y = torch.convolution(x, w, b, *args)
    gy = torch.randn_like(y)
    times = []
    for i in range(reps + 3):
        t0 = time.perf_counter()
        torch.convolution(x, w, b, *args).backward(gy)
        if i >= 3:  # after warm-up: oneDNN primitive caches
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _fit_settings(path: str) -> dict[str, Any]:
    """What ``crevnet fit --config path`` trains with, besides the model: batch, threads, loss, sampling."""
    with Path(path).open() as fh:
        data = yaml.safe_load(fh) or {}
    model = data.get("model") or {}
    model = model.get("init_args", model)
    return {
        "batch": (data.get("data") or {}).get("batch_size"),
        "threads": data.get("torch_threads"),
        "loss": LossWeights(**(model.get("loss") or {})),
        "sampling": SamplingCurriculum(**(model.get("sampling") or {})),
        "context": model.get("context", 10),
        "memory_saving": MemorySaving.parse(model.get("memory_saving", "off")).value,
        "bf16": bool(model.get("bf16", False)),
    }


class StepBench:
    """The training step ``crevnet fit --config config`` takes, on one fixed synthetic batch.

    The batch size (``data.batch_size`` unless ``batch``), the thread count (``torch_threads`` unless
    ``threads``: a count or ``"adaptive"``, probed by timing as ``AdaptiveThreads`` does), the loss
    weights, the scheduled-sampling probability at ``progress``, the memory-saving mode and bf16 are the
    config's (``memory_saving`` / ``bf16`` override them). ``size`` is the frame side, or (H, W).

    Raises:
        ValueError: ``threads`` is neither a positive count nor ``"adaptive"``.
    """

    def __init__(
        self,
        config: str | Path,
        *,
        batch: int | None = None,
        frames: int = 20,
        size: int | tuple[int, int] = 64,
        threads: int | str | None = None,
        progress: float = 0.5,
        memory_saving: str | None = None,
        bf16: bool | None = None,
    ) -> None:
        fit = _fit_settings(str(config))
        self.memory_saving = memory_saving or fit["memory_saving"]
        self.bf16 = bool(fit["bf16"] if bf16 is None else bf16)
        self.batch = int(batch or fit["batch"] or 8)
        self.threads_arg = str(threads or fit["threads"] or 2)
        self.adaptive = self.threads_arg == "adaptive"
        if not self.adaptive and not self.threads_arg.isdigit():
            raise ValueError(f"--threads {self.threads_arg}: expected a positive count or 'adaptive'")
        self.threads = usable_cores() if self.adaptive else int(self.threads_arg)
        self.sampling_prob = fit["sampling"].probability(progress)
        self.loss_weights = fit["loss"]

        torch.set_num_threads(self.threads)
        torch.manual_seed(0)
        self.config = load_config(str(config))
        self.model = CrevNet(self.config)
        height, width = (size, size) if isinstance(size, int) else size
        channels = self.config.encoder.in_channels
        self.video = torch.rand(self.batch, frames, channels, height, width)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=5e-4)
        self.context = min(int(fit["context"]), frames - 1)
        self.gen = torch.Generator().manual_seed(0)
        self.warmups: list[float] = []  # the warm-up step of each timed_steps() call

    def step(self) -> float:
        """One forward + backward + Adam step; its seconds."""
        t0 = time.perf_counter()
        self.opt.zero_grad(set_to_none=True)
        pred, target = self.model(
            self.video,
            sampling_prob=self.sampling_prob,
            context=self.context,
            generator=self.gen,
            memory_saving=self.memory_saving,
            bf16=self.bf16,
        )
        loss = prediction_loss(pred, target, self.loss_weights)
        loss.backward()
        self.opt.step()
        return time.perf_counter() - t0

    def timed_steps(self, steps: int) -> tuple[list[float], int]:
        """The adaptive probe as ``AdaptiveThreads`` runs it (when adaptive), one warm-up step, then
        ``steps`` timed steps at the chosen count: their seconds and the thread count used."""
        if self.adaptive and self.threads > 1:
            tuner = ThreadTuner(tuple(range(1, self.threads + 1)), reprobe_seconds=float("inf"))
            while len(tuner.history) < 1:
                torch.set_num_threads(tuner.threads)
                tuner.step_done(self.step())
            torch.set_num_threads(tuner.chosen)
        self.warmups.append(self.step())  # warm-up: allocator, oneDNN primitive caches, the compile
        return [self.step() for _ in range(steps)], torch.get_num_threads()


def measure(
    config: str | Path,
    *,
    batch: int | None = None,
    frames: int = 20,
    size: int | tuple[int, int] = 64,
    threads: int | str | None = "adaptive",
    steps: int = 3,
) -> dict[str, Any]:
    """Time ``steps`` training steps of ``config``'s model (see :class:`StepBench`; no FLOP counts,
    no peaks): ``batch``, ``threads`` (as given), ``threads_used``, ``step_s``, ``step_s_median``,
    ``samples_per_s`` (batch / median step) and ``warmup_s``."""
    bench = StepBench(config, batch=batch, frames=frames, size=size, threads=threads)
    times, used = bench.timed_steps(steps)
    med = statistics.median(times)
    return {
        "batch": bench.batch,
        "threads": bench.threads_arg if bench.adaptive else bench.threads,
        "threads_used": used,
        "step_s": [round(t, 3) for t in times],
        "step_s_median": round(med, 3),
        "samples_per_s": round(bench.batch / med, 2),
        "warmup_s": [round(t, 3) for t in bench.warmups],
    }


@contextmanager
def compiled(model: CrevNet, what: str) -> Iterator[None]:
    """Inside the block, ``model`` runs its predictor (``"rpm"``) or its whole rollout (``"rollout"``)
    through ``torch.compile`` (static shapes, one graph: a graph break is an error); ``"off"``: as is."""
    if what == "off":
        yield
        return
    if what == "rpm":
        eager = model.predictor
        model.predictor = torch.compile(eager, dynamic=False, fullgraph=True)  # type: ignore[assignment]
        try:
            yield
        finally:
            model.predictor = eager
        return
    model._rollout = torch.compile(model._rollout, dynamic=False, fullgraph=True)  # type: ignore[method-assign]
    try:
        yield
    finally:
        del model._rollout  # the class's method again


def _busy_neighbour() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


@contextmanager
def thread_neighbour(kind: str, batch: int, frames: int, size: int, every_s: float = 0.25) -> Iterator[None]:
    """A Python thread of this process that builds one uint8 batch of clips every ``every_s`` seconds
    and stacks it as float32, with torch (``kind="torch"``) or NumPy (``"numpy"``): what a data
    prefetch thread does beside the step."""
    stop = threading.Event()
    rng = np.random.default_rng(0)

    def work() -> None:
        while not stop.is_set():
            clips = [rng.integers(0, 256, (frames, 1, size, size), dtype=np.uint8) for _ in range(batch)]
            if kind == "torch":
                torch.stack([torch.from_numpy(c).to(torch.float32) / 255.0 for c in clips])
            else:
                np.stack(clips).astype(np.float32) / 255.0
            stop.wait(every_s)

    thread = threading.Thread(target=work, name="thread-neighbour", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML with a model: net: section")
    parser.add_argument(
        "--batch", type=int, default=None, help="default: the config's data.batch_size, else 8"
    )
    parser.add_argument(
        "--threads",
        default=None,
        help="a count, or 'adaptive' (timed probe as AdaptiveThreads); default: the config's "
        "torch_threads, else 2",
    )
    parser.add_argument(
        "--progress", type=float, default=0.5, help="training progress at which model.sampling is read"
    )
    parser.add_argument("--busy-neighbour", action="store_true", help="also time beside a busy-loop process")
    parser.add_argument(
        "--thread-neighbour",
        choices=("torch", "numpy"),
        default=None,
        help="also time beside a thread of this process that stacks a batch every 250 ms with torch or NumPy",
    )
    parser.add_argument("--steps", type=int, default=3, help="timed steps (after one warm-up)")
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--size", type=int, default=64, help="frame height = width")
    parser.add_argument(
        "--memory-saving",
        choices=[m.value for m in MemorySaving],
        default=None,
        help="what backward recomputes: off, encoder (reversible encoder/decoder), full (also the RPM); "
        "default: the config's model.memory_saving, else off",
    )
    parser.add_argument(
        "--bf16",
        action="store_true",
        default=None,
        help="bf16 autocast for the predictor (default: config's)",
    )
    parser.add_argument("--profile", action="store_true", help="print a torch.profiler table")
    parser.add_argument(
        "--conv-backward",
        choices=("fast", "native"),
        default="fast",
        help="crevnet's Conv3d backward (fast, default) or PyTorch's own (native)",
    )
    parser.add_argument(
        "--compile",
        choices=("off", "rpm", "rollout"),
        default="off",
        help="torch.compile (inductor) the predictor, or the whole rollout, for the timed steps",
    )
    args = parser.parse_args(argv)
    if args.compile != "off" and args.conv_backward == "native":
        parser.error("--compile runs PyTorch's own conv backward already; drop --conv-backward native")
    try:
        bench = StepBench(
            args.config,
            batch=args.batch,
            frames=args.frames,
            size=args.size,
            threads=args.threads,
            progress=args.progress,
            memory_saving=args.memory_saving,
            bf16=args.bf16,
        )
    except ValueError as err:
        parser.error(str(err))
    args.memory_saving, args.bf16, args.batch, args.threads = (
        bench.memory_saving,
        bench.bf16,
        bench.batch,
        bench.threads,
    )
    threads_arg, adaptive, sampling_prob = bench.threads_arg, bench.adaptive, bench.sampling_prob
    model, video, context, step = bench.model, bench.video, bench.context, bench.step
    params = sum(p.numel() for p in model.parameters())
    # FLOPs do not depend on the backward mode: count them in plain mode (FlopCounterMode's module
    # tracker cannot follow the memory-saving autograd.Functions).
    gmac = count_gmac(model, args.frames, args.size)
    peaks = [matmul_peak_gflops()]
    conv_peak = conv_peak_gflops()
    sitting = record.start(__file__, argv)
    warmups = bench.warmups  # the warm-up step of each timed_steps() call

    def timed_steps() -> tuple[list[float], int]:
        return bench.timed_steps(args.steps)

    busy: dict[str, Any] = {}
    with (
        native_backward() if args.conv_backward == "native" else nullcontext(),
        compiled(model, args.compile),
    ):
        times, used_threads = timed_steps()
        if args.profile:
            with torch.profiler.profile() as prof:
                step()
            table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)
            print(table, file=sys.stderr)
        if args.busy_neighbour:
            torch.set_num_threads(args.threads)
            neighbour = _busy_neighbour()
            try:
                busy_times, busy_threads = timed_steps()
            finally:
                neighbour.kill()
                neighbour.wait()
            busy = {
                "busy_step_s": [round(t, 3) for t in busy_times],
                "busy_samples_per_s": round(args.batch / statistics.median(busy_times), 2),
                "busy_threads": busy_threads,
            }
        if args.thread_neighbour:
            torch.set_num_threads(used_threads)
            with thread_neighbour(args.thread_neighbour, args.batch, args.frames, args.size):
                near_times, _ = timed_steps()
            busy.update(
                thread_neighbour=args.thread_neighbour,
                thread_neighbour_step_s=[round(t, 3) for t in near_times],
                thread_neighbour_samples_per_s=round(args.batch / statistics.median(near_times), 2),
            )
    peaks.append(matmul_peak_gflops())
    peak = max(peaks)
    med = statistics.median(times)
    achieved = 6 * gmac * args.batch / med
    census = conv_census(model, video, sampling_prob=sampling_prob, context=context)
    torch.set_num_threads(used_threads)
    top = dict(census[0])
    top_s = time_conv(top)
    top_gflops = 6 * top["gmac"] / top["calls"] / top_s
    share = top["gmac"] / (gmac * args.batch)
    top.update(
        fwd_bwd_ms=round(top_s * 1e3, 3),
        gflops=float(f"{top_gflops:.3g}"),  # 3 significant digits: a tiny conv runs at ~1 GFLOP/s
        over_peak=round(top_gflops / peak, 3),
        flop_share=round(share, 3),
        bound_over_peak=round(top_gflops / peak / share, 3),
        gmac=float(f"{top['gmac']:.4g}"),
    )
    for row in census:
        row["gmac"] = float(f"{row['gmac']:.4g}")
    result = {
        "config": args.config,
        "batch": args.batch,
        "threads": threads_arg if adaptive else args.threads,
        "threads_used": used_threads,
        "frames": args.frames,
        "size": args.size,
        "params": params,
        "gmac_per_sample": float(f"{gmac:.6g}"),
        "step_s": [round(t, 3) for t in times],
        "step_s_median": round(med, 3),
        "samples_per_s": round(args.batch / med, 2),
        **busy,
        "sampling_prob": round(sampling_prob, 3),
        "loss": dataclasses.asdict(bench.loss_weights),
        "achieved_gflops": round(achieved, 1),
        "achieved_gflops_definition": "6 * gmac_per_sample * batch / step_s_median "
        "(training step = 3x forward FLOPs, 1 MAC = 2 FLOPs)",
        "matmul_peak_gflops": round(peak, 1),
        "matmul_peak_runs": [round(p, 1) for p in peaks],
        "achieved_over_peak": round(achieved / peak, 3),
        "top_conv": top,
        "conv_census": census[:5],
        "conv_peak_gflops": round(conv_peak, 1),
        "achieved_over_conv_peak": round(achieved / conv_peak, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "memory_saving": args.memory_saving,
        "bf16": args.bf16,
        "conv_backward": args.conv_backward,
        "compile": args.compile,
        "warmup_s": [round(t, 3) for t in warmups],
    }
    print(json.dumps(sitting.stamp(result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
