"""Training step time and peak memory of the released CrevNet code next to crevnet's three modes.

The released code's two model files are not part of this repository; fetch them into a folder outside
it (OpenSTL v0.3.0: ``openstl/models/crevnet_model.py`` and ``openstl/modules/crevnet_modules.py``)
and pass that folder::

    python benchmarks/released_compare.py --released /path/to/folder --batch 8 --threads 2 --rounds 2

Each run is a fresh process (so that its peak RSS is its own) doing one warm-up step and ``--steps``
timed steps of the paper's 3-D model on 20-frame clips (17 transitions in both codes: the released
code's ``n_eval = 18`` windows, ``pre_seq_length = 10 − 2`` as OpenSTL's method sets it), Adam
(lr 5e-4; the released method keeps one optimizer for the encoder and one for the predictor). The runs
alternate (released, off, encoder, full, then again ``--rounds`` times) so that a change of load hits
every variant alike. One JSON line per run: ``variant``, ``step_s`` (median), ``step_s_runs``,
``peak_rss_mb`` (CPU) or ``cuda_max_allocated_mb``; then a summary line with each variant's median
step time over the rounds, its ratio to the released code's and the CPU's name. The ratio depends on
the CPU kind, so it is only meaningful with the name: crevnet's gain came from a faster 3-D conv
backward than oneDNN's own (crevnet/nn/conv.py), which the released code uses; that gain was measured
on an AVX2-only AMD EPYC and is small where oneDNN's backward is fast (an AVX-512 Xeon).

``--profile`` adds one more step per run under ``torch.profiler`` and splits its CPU time:
``conv_s`` (self time of every convolution op, forward and backward), ``rpm_conv_s`` (those whose input
lies on the latent grid, batch × (3, size/8, size/8), with more channels than one latent half (32):
the RPM's cell convs, which read ``[x, h, c, M]``, the same arithmetic in both codes) and
``profiled_s`` (all ops). The released code's RPM conv time bounds how far below its step time any
implementation of the same model with the same conv kernels can go.

On the CPU the released code's hard-coded ``.cuda()`` calls are made no-ops for its run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import torch

try:
    import record
except ImportError:  # loaded by file path (the tests): benchmarks/ holds the one record helper
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import record


VARIANTS = ("released", "off", "encoder", "full")
PAPER_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "mmnist_crevnet3d.yaml"


def _peak_rss_mb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def released_model(folder: Path, batch: int, size: int) -> torch.nn.Module:
    """Build the released ``CrevNet_Model`` from its two files, as OpenSTL's method does for 10+10 frames."""
    for name in ("crevnet_model.py", "crevnet_modules.py"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"--released {folder}: no {name} there (see this script's docstring)")
    spec = importlib.util.spec_from_file_location("openstl.modules", folder / "crevnet_modules.py")
    assert spec is not None and spec.loader is not None
    modules = importlib.util.module_from_spec(spec)
    package = types.ModuleType("openstl")
    package.modules = modules  # type: ignore[attr-defined]
    sys.modules["openstl"], sys.modules["openstl.modules"] = package, modules
    spec.loader.exec_module(modules)
    spec = importlib.util.spec_from_file_location("released_crevnet_model", folder / "crevnet_model.py")
    assert spec is not None and spec.loader is not None
    model_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(model_module)
    return model_module.CrevNet_Model(
        in_shape=(20, 1, size, size),
        rnn_size=32,
        batch_size=batch,
        predictor_rnn_layers=8,
        pre_seq_length=8,
        aft_seq_length=10,
        n_eval=18,
    )


_CONV_OPS = {
    "aten::mkldnn_convolution",
    "aten::convolution_backward",
    "aten::_slow_conv2d_forward",
    "aten::_slow_conv2d_backward",
    "aten::slow_conv3d_forward",
}


_HALF = 32  # channels of one latent half of the paper model


def profile_split(step: Callable[[], object], batch: int, size: int) -> dict[str, float]:
    """Run ``step()`` once under the profiler; CPU self time of all ops, of convs, of the RPM's convs."""
    from torch.profiler import ProfilerActivity, profile

    grid = (3, size // 8, size // 8)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        step()
    total = conv = rpm = 0.0
    for event in prof.key_averages(group_by_input_shape=True):
        total += event.self_cpu_time_total
        if event.key in _CONV_OPS:
            conv += event.self_cpu_time_total
            shapes = event.input_shapes or []
            # convolution_backward(grad_output, input, weight, ...): the conv's input is the second
            if event.key.endswith("backward"):
                shape = shapes[1] if len(shapes) > 1 else []
            else:
                shape = shapes[0] if shapes else []
            if len(shape) == 5 and shape[0] == batch and tuple(shape[2:]) == grid and shape[1] > _HALF:
                rpm += event.self_cpu_time_total
    return {
        "profiled_s": round(total / 1e6, 6),
        "conv_s": round(conv / 1e6, 6),
        "rpm_conv_s": round(rpm / 1e6, 6),
    }


def run_here(args: argparse.Namespace) -> dict[str, object]:
    """Time one variant in this process."""
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    video = torch.rand(args.batch, 20, 1, args.size, args.size, device=device)
    if args.variant == "released":
        if device.type == "cpu":
            torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
        model = released_model(Path(args.released), args.batch, args.size).to(device).train()
        opts = [
            torch.optim.Adam(model.frame_predictor.parameters(), lr=5e-4),
            torch.optim.Adam(model.encoder.parameters(), lr=5e-4),
        ]

        def loss_fn() -> torch.Tensor:
            return model(video, training=True)
    else:
        from crevnet.nn import CrevNet

        model = CrevNet.from_config(PAPER_CONFIG).to(device).train()
        opts = [torch.optim.Adam(model.parameters(), lr=5e-4)]

        def loss_fn() -> torch.Tensor:
            return model.loss(video, memory_saving=args.variant)

    def step() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        loss_fn().backward()
        for opt in opts:
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - t0

    step()  # warm-up
    times = [step() for _ in range(args.steps)]
    row: dict[str, object] = {
        "variant": args.variant,
        "batch": args.batch,
        "threads": args.threads,
        "params": sum(p.numel() for p in model.parameters()),
        "step_s": round(statistics.median(times), 6),
        "step_s_runs": [round(t, 6) for t in times],
    }
    if device.type == "cuda":
        row["cuda_max_allocated_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    else:
        peak = _peak_rss_mb()
        row["peak_rss_mb"] = None if peak is None else round(peak, 1)
    if args.profile:
        row.update(profile_split(step, args.batch, args.size))
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--released", required=True, help="folder with the released code's two files")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per run, after one warm-up")
    parser.add_argument("--rounds", type=int, default=2, help="how many times every variant runs")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--profile", action="store_true", help="split one more step's CPU time (convs)")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.variant:
        print(json.dumps(run_here(args)), flush=True)
        return 0
    if not Path(args.released).is_dir():
        parser.error(f"--released {args.released}: not a folder (see this script's docstring)")
    medians: dict[str, list[float]] = {v: [] for v in args.variants}
    run = sitting = record.start(__file__, argv)
    for _ in range(args.rounds):
        for variant in args.variants:
            argv_child = [sys.executable, str(Path(__file__).resolve()), "--variant", variant]
            for key in ("released", "batch", "size", "threads", "steps", "device"):
                argv_child += [f"--{key}", str(getattr(args, key))]
            argv_child += ["--profile"] if args.profile else []
            out = subprocess.run(argv_child, capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(f"{variant} run failed:\n{out.stderr[-2000:]}")
            row = json.loads(out.stdout.strip().splitlines()[-1])
            medians[variant].append(float(row["step_s"]))
            print(json.dumps(sitting.stamp(row)), flush=True)
            sitting = sitting.again()
    summary = {v: round(statistics.median(ts), 6) for v, ts in medians.items()}
    line: dict[str, object] = {"summary_step_s": summary}
    if "released" in summary:
        released = summary["released"]
        line["ratio_to_released"] = {
            v: round(t / released, 3) if released > 0 else None for v, t in summary.items()
        }
    print(json.dumps(run.stamp(line)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
