"""Write a trained checkpoint as a bundled model: fp32 weights and the model config only.

Reads a ``crevnet fit`` checkpoint (full: optimizer and loop state included), keeps what
``crevnet.models.checkpoint.load_model`` needs (the config, the context, the frame size and the weights in
float32) and writes it atomically to ``crevnet/weights/<file>`` for the name in
``crevnet.weights.BUNDLED``; then loads it back by name and checks that it predicts the same frames
as the checkpoint. Prints one JSON line.

Usage::

    python benchmarks/bundle_model.py --name mmnist-cpu \
        --ckpt runs/learning_curve_cpu185/checkpoints/last.ckpt
    # weights fine-tuned from the bundled model (crevnet fit ... --model.init_from mmnist-cpu): the
    # recorded steps and training seconds are the totals of both
    python benchmarks/bundle_model.py --name mmnist-cpu --after mmnist-cpu \
        --ckpt runs/learning_curve_ft140/checkpoints/last.ckpt
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from crevnet.models.checkpoint import config_to_dict, load_model, save_model
from crevnet.weights import BUNDLED, bundled_path

try:
    import record
except ImportError:  # loaded by file path (the tests): benchmarks/ holds the one record helper
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True, help="checkpoint written by crevnet fit")
    parser.add_argument("--name", required=True, choices=sorted(BUNDLED), help="bundled model name")
    parser.add_argument(
        "--after",
        help="the checkpoint or bundled name the weights were fine-tuned from (--model.init_from): "
        "its steps and training seconds are added to the recorded totals",
    )
    args = parser.parse_args(argv)
    sitting = record.start(__file__, argv)

    source = load_model(args.ckpt)
    model = source.model.float()
    target = bundled_path(args.name)
    assert target is not None
    meta = source.meta
    steps, seconds = meta.global_step, meta.train_seconds
    if args.after is not None:
        before = load_model(args.after)  # read before the bundled file may be replaced
        if config_to_dict(before.config) != config_to_dict(source.config):
            print(
                f"bundle_model: --after {args.after} is another model config than {args.ckpt}",
                file=sys.stderr,
            )
            return 2
        if None in (steps, seconds, before.meta.global_step, before.meta.train_seconds):
            print(
                f"bundle_model: {args.ckpt} or {args.after} does not record its steps and seconds",
                file=sys.stderr,
            )
            return 2
        steps += before.meta.global_step
        seconds += before.meta.train_seconds
    save_model(
        model,
        target,
        context=meta.context,
        frame_size=meta.frame_size,
        global_step=steps,
        train_seconds=seconds,
        framing=source.meta.framing,
    )
    back = load_model(args.name)
    h, w = source.meta.frame_size
    clip = torch.rand(
        2,
        source.meta.context,
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
        "after": args.after,
        "global_step": steps,
        "train_seconds": seconds,
    }
    print(json.dumps(sitting.stamp(row)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
