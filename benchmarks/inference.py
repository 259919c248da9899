"""Streaming inference speed: predicted frames per second and latency per new frame, per backend.

    python benchmarks/inference.py --config configs/quickstart.yaml --batch 1 --threads 2
    python benchmarks/inference.py --config configs/mmnist_crevnet3d.yaml --batch 16 --threads 2 \\
        --backend eager compiled onnxruntime predict

Each of ``--batch`` streams receives random frames one at a time (:class:`crevnet.nn.stream.FrameStream`,
random weights: speed does not depend on them). Per new frame the timed work is what an online user
waits for: push the frame (encode its window, one RPM step) and forecast the next ``--horizon`` frames.
One JSON line per backend with ``config``, ``batch``, ``threads``, ``backend``, ``horizon``,
``frames_per_s`` (predicted frames per second, all streams together: ``batch · horizon`` per new frame),
``p50_ms`` / ``p95_ms`` (latency per new frame), ``push_ms_median`` and ``forecast_ms_median``.

Backends: ``eager`` (PyTorch under inference mode: the default path of ``crevnet predict --stream``),
``compiled`` (the three graphs through ``torch.compile``; compile time is in the warm-up),
``onnxruntime`` (the graphs of ``crevnet export --format onnx``; needs the ``export`` extra; CPU only),
and ``predict``, the non-streaming baseline: ``CrevNet.predict`` on the last ``--context`` frames for
every new frame (it re-encodes the whole context each time).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable

import torch

from crevnet.nn import CrevNet, load_config
from crevnet.nn.stream import FrameStream, StreamGraphs

BACKENDS = ("eager", "compiled", "onnxruntime", "predict")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _compiled(model: CrevNet, batch: int, size: int, device: torch.device) -> StreamGraphs:
    # torch.export first: it traces each graph whole (torch.compile alone breaks the graph at every conv
    # on the context-variable switch of crevnet.nn.conv and recompiles per conv shape).
    graphs = StreamGraphs.from_model(model)
    c, w = model.config.encoder.in_channels, model.config.window
    with torch.no_grad():
        window = torch.rand(batch, w, c, size, size, device=device)
        latent = graphs.encode(window)
        state = tuple(
            latent.new_zeros(batch, latent.shape[1] // 2, *latent.shape[2:]) for _ in range(graphs.state_size)
        )
        compiled = [
            torch.compile(torch.export.export(module, args).module(), dynamic=False)
            for module, args in (
                (graphs.encode, (window,)),
                (graphs.decode, (latent,)),
                (graphs.step, (latent, *state)),
            )
        ]
    return graphs._replace(encode=compiled[0], decode=compiled[1], step=compiled[2])


def _onnxruntime(model: CrevNet, size: int, threads: int, device: torch.device) -> StreamGraphs:
    if device.type != "cpu":
        raise SystemExit("benchmarks/inference.py: the onnxruntime backend runs on the CPU only")
    from crevnet.export import export_model
    from crevnet.exported import load_exported

    folder = tempfile.mkdtemp(prefix="crevnet_onnx_")
    export_model(model, folder, "onnx", (size, size))
    return load_exported(folder, threads=threads)


def _stepper(backend: str, model: CrevNet, args: argparse.Namespace, device: torch.device):  # type: ignore[no-untyped-def]
    """A function (frame) -> (push seconds, forecast seconds), and the frames it needs before timing."""
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
    graphs = {
        "eager": lambda: StreamGraphs.from_model(model),
        "compiled": lambda: _compiled(model, args.batch, args.size, device),
        "onnxruntime": lambda: _onnxruntime(model, args.size, args.threads, device),
    }[backend]()
    stream = FrameStream(graphs)

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
    step, first = _stepper(backend, model, args, device)
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
    parser.add_argument("--backend", nargs="+", choices=BACKENDS, default=["eager"])
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
        row = {
            "config": args.config,
            "batch": args.batch,
            "threads": args.threads,
            "horizon": args.horizon,
            "size": args.size,
            "frames": args.frames,
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "torch": torch.__version__,
            **bench(backend, model, args, device),
        }
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
