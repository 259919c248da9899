"""How exact is "exact": every reversible form of the encoder, measured side by side.

For each coupling form (``irevnet``, ``additive``, ``revnet``, ``affine``, ``irn``) with the fixed
mixing, and each form with ``invconv`` mixing (``--invconv``), at ``--depths`` multiples of the
config's encoder stages (×1, ×2, ×4 by default) and in float32 and float64, one JSON line per
measurement:

* ``round_trip_init`` / ``round_trip_trained``: ``max|f⁻¹(f(x)) − x|`` and ``max|f(f⁻¹(y)) − y|``
  (``crevnet.testing.round_trip_errors``) of the encoder on a test batch, at initialisation and after
  ``--steps`` training steps of the config's recipe (its model, lr, loss weights; Adam, teacher
  forcing, gradient clipping at 1.0 as ``crevnet fit`` does with the quickstart config) on Moving MNIST
  (``--digits mnist``, the standard generator; ``synthetic`` draws random glyphs instead, for tests);
* ``log_det_mean`` / ``log_det_std`` / ``log_det_min`` / ``log_det_max``: ``Encoder.log_abs_det_jacobian``
  over the test batch, trained;
* ``params`` (encoder) and ``params_model``;
* ``step_s``: median wall time of the training steps after the first, memory saving off;
* ``saved_bytes_per_sample_off`` / ``_encoder``: what autograd keeps for backward over one training
  loss (``crevnet.nn.SavedTensorCounter``, parameters excluded), divided by the batch, with memory
  saving ``off`` and ``encoder``.

Usage (the lead runs it alone, on an idle machine)::

    python benchmarks/forms.py --config configs/quickstart.yaml --steps 50 --invconv \\
        > benchmarks/results/forms/<machine>/forms.jsonl

With ``--checkpoints`` it trains nothing: for each trained model given (a ``.ckpt``, e.g. ``last.ckpt`` of
the 30-minute runs of ``benchmarks/peers.py --set model.net.encoder.coupling=FORM``) and each of
``--dtypes`` it prints one ``forms_trained`` row: the round trips and the log-det spread of the
checkpoint's encoder on ``--test-batch`` Moving MNIST clips of its frame size, with its ``global_step``
(no timing; any machine)::

    python benchmarks/forms.py --checkpoints runs/quickstart+coupling=*_seed0/checkpoints/last.ckpt

Each row also carries ``config``, ``coupling``, ``mixing``, ``depth``, ``dtype``, ``steps``, ``batch``,
``frames``, ``size``, ``threads`` and the fields of ``benchmarks/record.py`` (machine, torch, commit,
date, load, command).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from crevnet.nn import COUPLINGS, CrevNet, CrevNetConfig, SavedTensorCounter, load_config
from crevnet.testing import round_trip_errors
from crevnet.train.loss import LossWeights, prediction_loss

try:
    import record
except ImportError:  # loaded by file path (the tests): benchmarks/ holds the one record helper
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import record

DEPTHS = (1, 2, 4)
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def recipe(path: str) -> dict[str, Any]:
    """The config's lr, loss weights, batch size and frame count (what ``crevnet fit`` trains with)."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    model = data.get("model") or {}
    model = model.get("init_args", model)
    return {
        "lr": float(model.get("lr", 5e-4)),
        "loss": LossWeights(**(model.get("loss") or {})),
        "batch": int((data.get("data") or {}).get("batch_size", 8)),
        "frames": int((data.get("data") or {}).get("num_frames", 20)),
    }


def form_config(base: CrevNetConfig, coupling: str, mixing: str, depth: int) -> CrevNetConfig:
    enc = dataclasses.replace(
        base.encoder,
        coupling=coupling,
        mixing=mixing,
        stages=tuple(depth * n for n in base.encoder.stages),
    )
    return dataclasses.replace(base, encoder=enc)


def videos(kind: str, count: int, frames: int, size: int, seed: int) -> torch.Tensor:
    """``count`` Moving MNIST clips (B, T, 1, size, size) in [0, 1] from the standard generator."""
    from crevnet.data.generator import StandardGenerator, sequence_rng

    if kind == "mnist":
        from crevnet.data.mnist import load_mnist

        digits = load_mnist("train").images
    else:  # random glyphs: no files needed
        rng = np.random.default_rng(seed)
        side = min(28, size // 2)
        digits = ((rng.random((64, side, side)) > 0.7) * 255).astype(np.uint8)
    gen = StandardGenerator(canvas_size=size, digit_size=digits.shape[-1])
    clips = [gen.generate(digits, sequence_rng(seed, i), frames) for i in range(count)]
    return torch.from_numpy(np.stack(clips)).float().div(255).unsqueeze(2)  # (B, T, 1, H, W)


def encoder_input(model: CrevNet, clip: torch.Tensor) -> torch.Tensor:
    """The encoder's native input for the first window of each clip."""
    w = model.config.window
    window = clip[:, :w]  # (B, W, C, H, W)
    return window.transpose(1, 2) if model.config.encoder.dims == 3 else window[:, 0]


def saved_bytes(model: CrevNet, video: torch.Tensor, weights: LossWeights, mode: str) -> float:
    with SavedTensorCounter(exclude=model.parameters()) as counter:
        pred, target = model(video, memory_saving=mode)
        loss = prediction_loss(pred, target, weights)
    del loss, pred, target
    return counter.bytes / video.shape[0]


def measure(
    args: argparse.Namespace, coupling: str, mixing: str, depth: int, dtype_name: str
) -> dict[str, Any]:
    dtype = DTYPES[dtype_name]
    fit = recipe(args.config)
    batch, frames = args.batch or fit["batch"], args.frames or fit["frames"]
    torch.manual_seed(args.seed)
    model = CrevNet(form_config(load_config(args.config), coupling, mixing, depth)).to(dtype)
    train = videos(args.digits, batch * max(args.steps, 1), frames, args.size, args.seed).to(dtype)
    test = videos(args.digits, args.test_batch, frames, args.size, args.seed + 1).to(dtype)
    x = encoder_input(model, test)
    gen = torch.Generator().manual_seed(0)
    init = round_trip_errors(model.encoder, x, generator=gen)
    row: dict[str, Any] = {
        "experiment": "forms",
        "config": args.config,
        "coupling": coupling,
        "mixing": mixing,
        "depth": depth,
        "dtype": dtype_name,
        "steps": args.steps,
        "batch": batch,
        "frames": frames,
        "size": args.size,
        "params": sum(p.numel() for p in model.encoder.parameters()),
        "params_model": sum(p.numel() for p in model.parameters()),
        "round_trip_init": list(init),
    }
    sample = train[:batch]
    row["saved_bytes_per_sample_off"] = saved_bytes(model, sample, fit["loss"], "off")
    row["saved_bytes_per_sample_encoder"] = saved_bytes(model, sample, fit["loss"], "encoder")
    opt = torch.optim.Adam(model.parameters(), lr=fit["lr"])
    times = []
    model.train()
    for step in range(args.steps):
        video = train[step * batch : (step + 1) * batch]
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        pred, target = model(video)
        loss = prediction_loss(pred, target, fit["loss"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        times.append(time.perf_counter() - t0)
        if not torch.isfinite(loss):
            row["diverged_at_step"] = step
            break
    row["loss_last"] = float(loss.detach()) if args.steps else None
    row["step_s"] = statistics.median(times[1:]) if len(times) > 1 else (times[0] if times else None)
    model.eval()
    row["round_trip_trained"] = list(round_trip_errors(model.encoder, x, generator=gen))
    row.update(log_det_spread(model.encoder, x))
    return row


def log_det_spread(encoder: torch.nn.Module, x: torch.Tensor) -> dict[str, float]:
    with torch.no_grad():
        log_det = encoder.log_abs_det_jacobian(x).double()
    return {
        "log_det_mean": log_det.mean().item(),
        "log_det_std": log_det.std().item() if len(log_det) > 1 else 0.0,
        "log_det_min": log_det.min().item(),
        "log_det_max": log_det.max().item(),
    }


def measure_checkpoint(args: argparse.Namespace, path: str, dtype_name: str) -> dict[str, Any]:
    """Round trips and log-det spread of a trained checkpoint's encoder (no training, no timing)."""
    from crevnet.models.checkpoint import load_model

    loaded = load_model(path)
    model = loaded.model.to(DTYPES[dtype_name])
    height, width = loaded.meta.frame_size
    if height != width:
        raise ValueError(f"{path}: frames {height}x{width}; --checkpoints measures square frames only")
    frames = max(loaded.config.window, 2)
    test = videos(args.digits, args.test_batch, frames, height, args.seed + 1).to(DTYPES[dtype_name])
    x = encoder_input(model, test)
    enc = loaded.config.encoder
    gen = torch.Generator().manual_seed(0)
    return {
        "experiment": "forms_trained",
        "checkpoint": str(loaded.meta.path),
        "coupling": enc.coupling,
        "mixing": enc.mixing,
        "stages": list(enc.stages),
        "dtype": dtype_name,
        "global_step": loaded.meta.global_step,
        "train_seconds": loaded.meta.train_seconds,
        "size": height,
        "params": sum(p.numel() for p in model.encoder.parameters()),
        "params_model": sum(p.numel() for p in model.parameters()),
        "round_trip_trained": list(round_trip_errors(model.encoder, x, generator=gen)),
        **log_det_spread(model.encoder, x),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/quickstart.yaml", help="model: net: and the recipe")
    parser.add_argument("--forms", nargs="+", default=list(COUPLINGS), choices=list(COUPLINGS))
    parser.add_argument("--invconv", action="store_true", help="also every form with mixing invconv")
    parser.add_argument("--depths", nargs="+", type=int, default=list(DEPTHS), help="encoder stage multiples")
    parser.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=list(DTYPES))
    parser.add_argument("--steps", type=int, default=50, help="training steps before the trained figures")
    parser.add_argument("--batch", type=int, default=None, help="default: the config's data.batch_size")
    parser.add_argument("--frames", type=int, default=None, help="default: the config's data.num_frames")
    parser.add_argument("--size", type=int, default=64, help="frame height = width")
    parser.add_argument("--test-batch", type=int, default=8, help="clips whose first window is measured")
    parser.add_argument("--digits", choices=("mnist", "synthetic"), default="mnist")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--checkpoints", nargs="+", default=None, help="trained models to measure instead (.ckpt files)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.checkpoints:  # trained models: no training, no timing
        rows = (measure_checkpoint(args, path, d) for path in args.checkpoints for d in args.dtypes)
    else:
        mixings = ["fixed", "invconv"] if args.invconv else ["fixed"]
        rows = (
            measure(args, coupling, mixing, depth, d)
            for mixing in mixings
            for coupling in args.forms
            for depth in args.depths
            for d in args.dtypes
        )
    sitting = record.start(__file__, argv)
    for row in rows:  # measured one at a time: each row's record fields (load, date) are its own
        print(json.dumps(sitting.stamp({**row, "threads": torch.get_num_threads()})), flush=True)
        sitting = sitting.again()
    return 0


if __name__ == "__main__":
    sys.exit(main())
