"""Write a trained checkpoint as a bundled model: fp32 weights and the model config only.

Reads a ``crevnet fit`` checkpoint (full: optimizer and loop state included), keeps what
``crevnet.checkpoint.load_model`` needs (the config, the context, the frame size and the weights in
float32) and writes it atomically to ``crevnet/weights/<file>`` for the name in
``crevnet.bundled.BUNDLED``; then loads it back by name and checks that it predicts the same frames
as the checkpoint. Prints one JSON line.

Usage::

    python benchmarks/bundle_model.py --name mmnist-cpu \
        --ckpt runs/learning_curve_cpu185/checkpoints/last.ckpt
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from crevnet.bundled import BUNDLED, bundled_path
from crevnet.checkpoint import load_model, save_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True, help="checkpoint written by crevnet fit")
    parser.add_argument("--name", required=True, choices=sorted(BUNDLED), help="bundled model name")
    args = parser.parse_args(argv)

    source = load_model(args.ckpt)
    model = source.model.float()
    target = bundled_path(args.name)
    assert target is not None
    meta = source.meta
    save_model(
        model,
        target,
        context=meta["context"],
        frame_size=meta["frame_size"],
        global_step=meta["global_step"],
        train_seconds=meta["train_seconds"],
    )
    back = load_model(args.name)
    h, w = source.meta["frame_size"]
    clip = torch.rand(
        2,
        source.meta["context"],
        source.config.encoder.in_channels,
        h,
        w,
        generator=torch.Generator().manual_seed(0),
    )
    with torch.no_grad():
        diff = (back.model.predict(clip, 5) - model.predict(clip, 5)).abs().max().item()
    if diff != 0.0:
        print(
            f"bundle_model: {target} predicts differently from {args.ckpt} (max diff {diff})", file=sys.stderr
        )
        return 1
    row = {
        "name": args.name,
        "file": str(target),
        "bytes": target.stat().st_size,
        "params": sum(p.numel() for p in model.parameters()),
        "source": str(args.ckpt),
        "global_step": source.meta["global_step"],
        "train_seconds": source.meta["train_seconds"],
    }
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
