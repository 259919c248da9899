"""Streaming inference speed: predicted frames per second and latency per new frame, per backend.

    python benchmarks/inference.py --config configs/quickstart.yaml --batch 1 --threads 2
    python benchmarks/inference.py --config configs/mmnist_crevnet3d.yaml --batch 16 --threads 2 \\
        --backend auto eager torchscript onnxruntime compiled predict

Each of ``--batch`` streams receives random frames one at a time (:class:`crevnet.nn.stream.FrameStream`,
random weights: speed does not depend on them). Per new frame the timed work is what an online user
waits for: push the frame (encode its window, one RPM step) and forecast the next ``--horizon`` frames.
One JSON line per backend with ``config``, ``batch``, ``threads``, ``backend``, ``horizon``,
``frames_per_s`` (predicted frames per second, all streams together: ``batch · horizon`` per new frame),
``p50_ms`` / ``p95_ms`` (latency per new frame), ``push_ms_median`` and ``forecast_ms_median``.

Backends (:mod:`crevnet.deploy.backends`): ``eager`` (PyTorch under inference mode), ``torchscript`` (traced
and frozen graphs), ``onnxruntime`` (the graphs exported to ONNX in memory; needs the ``export`` extra;
CPU only), ``compiled`` (``torch.export`` + ``torch.compile``), ``auto`` (the default path of
``crevnet predict --stream``: a timed probe among eager, torchscript and onnxruntime at ``--threads``,
then the fastest runs; ``picked`` says which), and ``predict``, the non-streaming baseline:
``CrevNet.predict`` on the last ``--context`` frames for every new frame (it re-encodes the whole
context each time). Every backend runs at ``--threads`` (``torch.set_num_threads`` and the ONNX Runtime
sessions' intra-op threads). ``build_s`` is the time to build a backend (trace, export, compile, and
for ``auto`` its probe), never part of the timing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from crevnet.deploy.backends import AUTO, pick_backend
from crevnet.deploy.backends import BACKENDS as STREAM_BACKENDS
from crevnet.nn import CrevNet, load_config
from crevnet.nn.stream import FrameStream

try:
    import record
except ImportError:  # loaded by file path (the tests): benchmarks/ holds the one record helper
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import record

BACKENDS = (AUTO, *STREAM_BACKENDS, "predict")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _stepper(  # type: ignore[no-untyped-def]
    backend: str, model: CrevNet, args: argparse.Namespace, device: torch.device, info: dict
):
    """A function (frame) -> (push seconds, forecast seconds), and the frames it needs before timing.

    ``info`` receives ``build_s`` (building the backend: tracing, exporting, compiling; for ``auto``
    also its timed probe) and ``picked`` (the backend and thread count that run).
    """
    if backend == "predict":
        history: list[torch.Tensor] = []

        def predict_step(frame: torch.Tensor) -> tuple[float, float]:
            history.append(frame)
            del history[: -args.context]
            if len(history) < args.context:
                return 0.0, 0.0
            sync(device)
            t0 = time.perf_counter()
            with torch.inference_mode():
                model.predict(torch.stack(history, 1), args.horizon)
            sync(device)
            return 0.0, time.perf_counter() - t0

        return predict_step, args.context
    t0 = time.perf_counter()
    choice = pick_backend(model, backend, (args.size, args.size), args.batch, args.horizon, (args.threads,))
    info["build_s"] = round(time.perf_counter() - t0, 2)
    info["picked"] = f"{choice.backend}/{choice.threads}"
    stream = FrameStream(choice.graphs)

    def stream_step(frame: torch.Tensor) -> tuple[float, float]:
        sync(device)
        t0 = time.perf_counter()
        stream.push(frame)
        sync(device)
        t1 = time.perf_counter()
        if stream.ready:
            stream.forecast(args.horizon)
        sync(device)
        return t1 - t0, time.perf_counter() - t1

    return stream_step, model.config.window


def bench(backend: str, model: CrevNet, args: argparse.Namespace, device: torch.device) -> dict:
    step: Callable[[torch.Tensor], tuple[float, float]]
    info: dict = {}
    step, first = _stepper(backend, model, args, device, info)
    c = model.config.encoder.in_channels
    gen = torch.Generator().manual_seed(0)
    frames = torch.rand(first + args.warmup + args.frames, args.batch, c, args.size, args.size, generator=gen)
    frames = frames.to(device)
    for t in range(first + args.warmup):
        step(frames[t])
    push, fore = [], []
    for t in range(first + args.warmup, len(frames)):
        p, f = step(frames[t])
        push.append(p)
        fore.append(f)
    total = [p + f for p, f in zip(push, fore, strict=True)]
    ms = sorted(1000 * t for t in total)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return {
        "backend": backend,
        **info,
        "frames_per_s": round(args.batch * args.horizon * len(total) / sum(total), 1),
        "p50_ms": round(statistics.median(ms), 3),
        "p95_ms": round(p95, 3),
        "push_ms_median": round(1000 * statistics.median(push), 3),
        "forecast_ms_median": round(1000 * statistics.median(fore), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--batch", type=int, default=1, help="streams advanced together")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch and ONNX Runtime)")
    parser.add_argument("--backend", nargs="+", choices=BACKENDS, default=[AUTO])
    parser.add_argument("--horizon", type=int, default=1, help="frames forecast after every new frame")
    parser.add_argument("--size", type=int, default=64, help="frame height and width")
    parser.add_argument("--frames", type=int, default=100, help="timed new frames")
    parser.add_argument("--warmup", type=int, default=10, help="untimed new frames first")
    parser.add_argument("--context", type=int, default=10, help="frames the 'predict' baseline re-encodes")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (onnxruntime: cpu only)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = CrevNet(load_config(args.config)).to(device).eval()
    for backend in args.backend:
        sitting = record.start(__file__, argv)
        row = {
            "config": args.config,
            "batch": args.batch,
            "threads": args.threads,
            "horizon": args.horizon,
            "size": args.size,
            "frames": args.frames,
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            **bench(backend, model, args, device),
        }
        print(json.dumps(sitting.stamp(row)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
