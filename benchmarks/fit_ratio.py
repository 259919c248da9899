"""Samples/s of ``crevnet fit`` over those of its own training step: what the fit loop loses around the step.

Runs, one after the other in fresh processes on the same machine:

1. ``crevnet fit --config CONFIG --trainer.max_time <--minutes>`` (``max_steps`` and ``max_epochs``
   lifted, so the wall time ends it), in a temporary run folder, with the config's callbacks except
   ``FitReport`` (the end-of-fit report scores the model after training; it is not part of the loop).
   ``fit_samples_per_s = global_step * batch / train_seconds``, both read from the run's ``last.ckpt``
   (``train_seconds`` is the module's fit clock: validation, checkpoints, sample pictures, data and
   Lightning's own per-step work all included). ``fit_threads_logged`` counts the logged steps by the
   thread count AdaptiveThreads gave them (``train/threads`` in the run's ``metrics.csv``).
2. ``benchmarks/train_step.py --config CONFIG --threads adaptive --frames <data.num_frames>``: the step
   alone (forward + backward + Adam on one fixed batch), run once before the fit and once after it: a
   shared VM's speed drifts by tens of percent within minutes (the same step measured 0.21 s and 0.34 s
   ten minutes apart on an idle 2-core AMD EPYC), so the fit is compared with both. ``step_samples_per_s``
   is the mean of the two runs' median-based figures (``step_before``/``step_after`` keep each);
   ``step_samples_per_s_mean`` uses the mean of all their timed steps (a fit pays for every slow step,
   the median ignores them; on a machine with a neighbour the two differ).

and prints ONE JSON row (through ``benchmarks/record.py``: machine, commit, load, command) with both
rates and ``ratio = fit_samples_per_s / step_samples_per_s`` (``ratio_vs_mean`` against the mean).

The ratio compares two processes minutes apart, so a VM's drift enters it. The fit's own clock does not:
``AdaptiveThreads`` adds up the time inside the fit's steps (kept in ``last.ckpt``), and the row splits
the ratio into ``fit_in_steps_share`` (the fit's seconds spent inside steps: what the loop costs around
them is the rest) and ``fit_step_vs_bench`` (the fit's own steps, ``fit_step_samples_per_s``, against the
benchmark's): ``ratio ≈ fit_in_steps_share × fit_step_vs_bench``. Absent without that callback.
Arguments after ``--`` go to ``crevnet fit`` (e.g. ``-- --data.prefetch_batches 0`` to compare).

Example (the issue's measurement: 3 minutes, the quickstart)::

    python benchmarks/fit_ratio.py --config configs/quickstart.yaml --minutes 3
    python benchmarks/fit_ratio.py --config configs/quickstart.yaml --minutes 3 -- --data.prefetch_batches 0
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from crevnet.io.checkpoint import read_checkpoint

try:
    import record
except ImportError:  # loaded by file path (the tests): benchmarks/ holds the one record helper
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import record

BENCH = Path(__file__).resolve().parent
FIT = "import sys; from crevnet.cli import main; sys.exit(main(sys.argv[1:]))"
LEFT_OUT = ("FitReport",)  # callbacks that run after training, not in the loop


def max_time(seconds: float) -> str:
    """Lightning's ``DD:HH:MM:SS`` for ``seconds`` (rounded, at least 1 s)."""
    total = max(1, round(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days:02d}:{hours:02d}:{minutes:02d}:{secs:02d}"


def loop_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` without the callbacks that run after training (``LEFT_OUT``)."""
    out = dict(config)
    trainer = dict(out.get("trainer") or {})
    callbacks = trainer.get("callbacks")
    if isinstance(callbacks, list):
        trainer["callbacks"] = [
            cb
            for cb in callbacks
            if not (isinstance(cb, dict) and str(cb.get("class_path", "")).rpartition(".")[2] in LEFT_OUT)
        ]
    out["trainer"] = trainer
    return out


def _run(cmd: list[str], log: Path) -> str:
    with log.open("w") as err:
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, text=True, check=False)
    if done.returncode:
        tail = log.read_text()[-3000:]
        raise SystemExit(f"fit_ratio: {' '.join(cmd[:4])} ... failed ({done.returncode}):\n{tail}")
    return done.stdout


def run_fit(config_path: Path, seconds: float, root: Path, fit_args: list[str]) -> dict[str, Any]:
    """Train for ``seconds`` of wall time; steps, batch and fit seconds from the run's ``last.ckpt``."""
    cmd = [
        sys.executable,
        "-c",
        FIT,
        "fit",
        "--config",
        str(config_path),
        "--trainer.max_time",
        max_time(seconds),
        "--trainer.max_steps=-1",
        "--trainer.max_epochs=-1",
        "--trainer.default_root_dir",
        str(root / "runs"),
        *fit_args,
    ]
    _run(cmd, root / "fit.log")
    last = sorted((root / "runs").glob("*/version_*/checkpoints/last.ckpt"))
    if not last:
        raise SystemExit(f"fit_ratio: the fit wrote no last.ckpt under {root / 'runs'}")
    ckpt = read_checkpoint(last[-1])
    steps = int(ckpt["global_step"])
    threads: dict[str, int] = {}  # thread counts of the logged steps (AdaptiveThreads' train/threads)
    for metrics in sorted((root / "runs").glob("*/version_*/metrics.csv")):
        with metrics.open(newline="") as handle:
            for line in csv.DictReader(handle):
                value = line.get("train/threads")
                if value:
                    key = str(int(float(value)))
                    threads[key] = threads.get(key, 0) + 1
    seconds_fit = float((ckpt.get("crevnet") or {}).get("train_seconds") or 0.0)
    batch = (ckpt.get("datamodule_hyper_parameters") or {}).get("batch_size")
    if not seconds_fit or not batch:
        raise SystemExit(f"fit_ratio: {last[-1]} holds no train_seconds or data batch_size")
    clock = (ckpt.get("callbacks") or {}).get("AdaptiveThreads") or {}  # its in-step sums; None without it
    return {
        "steps": steps,
        "batch": int(batch),
        "seconds": seconds_fit,
        "threads": threads,
        "step_seconds": clock.get("step_seconds"),
        "steps_timed": clock.get("steps_timed"),
    }


def run_step(config: Path, frames: int, steps: int, root: Path) -> dict[str, Any]:
    """``train_step.py --threads adaptive`` on ``config``: its JSON row."""
    cmd = [
        sys.executable,
        str(BENCH / "train_step.py"),
        "--config",
        str(config),
        "--threads",
        "adaptive",
        "--frames",
        str(frames),
        "--steps",
        str(steps),
    ]
    lines = [line for line in _run(cmd, root / "train_step.log").splitlines() if line.startswith("{")]
    return json.loads(lines[-1])


def split_passthrough(argv: list[str] | None) -> tuple[list[str], list[str]]:
    """(this script's arguments, the ones after ``--`` that go to ``crevnet fit``)."""
    args = sys.argv[1:] if argv is None else list(argv)
    if "--" not in args:
        return args, []
    cut = args.index("--")
    return args[:cut], args[cut + 1 :]


def main(argv: list[str] | None = None) -> int:
    args_in, fit_args = split_passthrough(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="a crevnet fit config (YAML)")
    parser.add_argument("--minutes", type=float, default=3.0, help="wall time of the fit (max_time)")
    parser.add_argument("--step-steps", type=int, default=20, help="timed steps of train_step.py")
    args = parser.parse_args(args_in)
    if args.minutes <= 0 or args.step_steps < 1:
        parser.error("--minutes must be > 0 and --step-steps >= 1")
    config_path = Path(args.config)
    config = yaml.safe_load(config_path.read_text()) or {}
    frames = int((config.get("data") or {}).get("num_frames", 20))

    sitting = record.start(__file__, argv)
    with tempfile.TemporaryDirectory(prefix="fit_ratio_") as tmp:
        root = Path(tmp)
        loop = root / config_path.name
        loop.write_text(yaml.safe_dump(loop_config(config), sort_keys=False))
        before = run_step(config_path, frames, args.step_steps, root)
        fit = run_fit(loop, args.minutes * 60.0, root, fit_args)
        after = run_step(config_path, frames, args.step_steps, root)
    fit_rate = fit["steps"] * fit["batch"] / fit["seconds"]
    step_rate = (float(before["samples_per_s"]) + float(after["samples_per_s"])) / 2.0
    step_mean = before["batch"] / statistics.mean(before["step_s"] + after["step_s"])
    row = {
        "config": args.config,
        "minutes": args.minutes,
        "fit_args": fit_args,
        "fit_steps": fit["steps"],
        "fit_batch": fit["batch"],
        "fit_seconds": round(fit["seconds"], 2),
        "fit_samples_per_s": round(fit_rate, 2),
        "fit_threads_logged": fit["threads"],
        "step_batch": before["batch"],
        "step_threads_used": [before["threads_used"], after["threads_used"]],
        "step_s": before["step_s"] + after["step_s"],
        "step_before": before["samples_per_s"],
        "step_after": after["samples_per_s"],
        "step_samples_per_s": round(step_rate, 2),
        "step_samples_per_s_mean": round(step_mean, 2),
        "ratio": round(fit_rate / step_rate, 3),
        "ratio_vs_mean": round(fit_rate / step_mean, 3),
    }
    if fit["step_seconds"] and fit["steps_timed"]:  # the fit's own clock: no second process compared
        in_steps = fit["steps_timed"] * fit["batch"] / fit["step_seconds"]
        row.update(
            fit_step_seconds=round(fit["step_seconds"], 2),
            fit_steps_timed=fit["steps_timed"],
            fit_in_steps_share=round(fit["step_seconds"] / fit["seconds"], 3),
            fit_step_samples_per_s=round(in_steps, 2),
            fit_step_vs_bench=round(in_steps / step_rate, 3),
        )
    print(json.dumps(sitting.stamp(row)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
