"""Learning curve of a ``crevnet fit`` config: test MSE against wall-clock training minutes.

Runs ``crevnet fit --config CONFIG`` (optionally with another ``--minutes`` budget) exactly as the CLI
does, plus one extra callback that saves a checkpoint every ``--every`` minutes of training. The whole
command is timed (it includes MNIST loading, training and the end-of-fit report). Afterwards every saved
checkpoint, and the final weights, are scored on the first ``--num`` sequences of the surrogate test set
(``--images fashion_mnist``: Moving Fashion-MNIST's) next to the zeros and copy-last baselines, or, with
``--test-set DIR``, on the held-out test clips of a folder the config trained on (the split the
checkpoints record), next to zeros, copy-last and the mean of the context. Writes, under
``--results-dir`` (default ``benchmarks/results/``; a kept run goes to
``benchmarks/results/<experiment>/<machine>/``, see ``docs/results/index.md``):

* ``learning_curve_<name>.json``: the record fields of ``benchmarks/record.py`` (machine, torch, commit,
  date, load before and after the fit, command), then the points (minutes, step, MSE, SSIM), the
  baselines, the fit's wall time and its report;
* ``learning_curve_<name>.png``: test MSE (and the baselines) against training minutes.

Usage (2 CPU cores; the 15-minute quickstart and a 60-minute run of the same config family)::

    python benchmarks/learning_curve.py --config configs/quickstart.yaml --name quickstart
    python benchmarks/learning_curve.py --config configs/quickstart.yaml --name cpu60 --minutes 60 --every 5
    python benchmarks/learning_curve.py --config configs/mfmnist_quickstart.yaml --name mfmnist \
        --images fashion_mnist --data.data_dir DIR
    python benchmarks/learning_curve.py --config configs/video_folder.yaml --name opencv_videos \
        --test-set DIR --data.root DIR --every 5

Checkpoints go to ``runs/learning_curve_<name>/`` (git-ignored; ``--runs-dir``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from datetime import timedelta
from pathlib import Path

import torch

from crevnet.evaluation.result import EvaluationResult

try:
    import record
except ImportError:  # loaded by file path (the tests): benchmarks/ holds the one record helper
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import record

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def _fit(
    config: Path, run_root: Path, minutes: float | None, every: float, extra: list[str]
) -> tuple[float, Path]:
    from lightning.pytorch.callbacks import ModelCheckpoint

    from crevnet.train.cli import CrevNetCLI

    # A previous run's checkpoints would be scored as points of this one.
    shutil.rmtree(run_root, ignore_errors=True)
    curve_dir = run_root / "curve"
    args = ["fit", "--config", str(config), f"--trainer.logger.init_args.save_dir={run_root}"]
    args += [f"--checkpoint.dirpath={run_root / 'checkpoints'}"]
    if minutes is not None:
        seconds = round(minutes * 60)
        args += [f"--trainer.max_time=00:{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"]
    args += extra
    curve = ModelCheckpoint(
        dirpath=curve_dir,
        filename="t-{step}",
        train_time_interval=timedelta(minutes=every),
        save_top_k=-1,
        save_last=False,
    )
    os.environ.setdefault("WANDB_MODE", "offline")
    start = time.monotonic()
    CrevNetCLI(args=args, trainer_defaults={"callbacks": [curve]})
    return time.monotonic() - start, run_root


def _point(result: EvaluationResult, minutes: float, step: int | None) -> dict[str, float]:
    point = {"minutes": minutes, "step": step, "mse": result.model.mse, "ssim": result.model.ssim}
    for key, scores in result.baselines.items():
        point[f"{key}_mse"] = scores.mse
        point[f"{key}_ssim"] = scores.ssim
    return point


def _score(path: Path, test: object, context: int, horizon: int, batch_size: int) -> dict[str, float]:
    from crevnet.evaluation.evaluate import evaluate_model
    from crevnet.models.checkpoint import load_model

    loaded = load_model(path)
    metrics = evaluate_model(loaded.model, test, context, horizon, batch_size, device="cpu", progress=False)
    return _point(metrics, (loaded.meta.train_seconds or 0.0) / 60.0, loaded.meta.global_step)


def _curve_checkpoints(curve_dir: Path, final_step: int | None) -> list[Path]:
    """The timed checkpoints ``t-step=N.ckpt`` by step, less one at ``final_step``.

    The timer can fire on the run's last step; the end-of-fit report already scores those weights, and
    scoring them again would put the final point on the curve twice.
    """
    by_step = {int(p.stem.split("=")[1].split("-")[0]): p for p in curve_dir.glob("t-step=*.ckpt")}
    return [by_step[s] for s in sorted(by_step) if s != final_step]


def _data_dir(extra: list[str]) -> str | None:
    """The ``--data.data_dir`` passed through to ``crevnet fit``, if any: the scoring reads the same data."""
    for i, arg in enumerate(extra):
        if arg.startswith("--data.data_dir="):
            return arg.split("=", 1)[1]
        if arg == "--data.data_dir" and i + 1 < len(extra):
            return extra[i + 1]
    return None


def _test_set(
    spec: str, images: str, num: int, checkpoint: Path, data_dir: str | None = None
) -> tuple[object, int, int]:
    """(test set, context, horizon): a folder is windowed as the checkpoint's training data was."""
    if Path(spec).is_dir():  # the held-out clips of the folder the run trained on
        from crevnet.evaluation.evaluate import folder_windows
        from crevnet.models.checkpoint import load_model

        loaded = load_model(checkpoint)
        context = int(loaded.meta.context)
        test, horizon = folder_windows(loaded, spec, context, None, limit=num)
        return test, context, horizon
    from crevnet.data.testset import load_test_set

    return load_test_set(spec, data_dir, num, images=images), 10, 10


def _plot(points: list[dict[str, float]], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([p["minutes"] for p in points], [p["mse"] for p in points], "o-", label="model")
    ax.axhline(points[-1]["zeros_mse"], color="grey", ls="--", label="predict zeros")
    ax.axhline(0.85 * points[-1]["zeros_mse"], color="grey", ls=":", label="0.85 × zeros")
    ax.axhline(points[-1]["copy_last_mse"], color="tab:red", ls="--", label="copy last frame")
    if "mean_context_mse" in points[-1]:
        ax.axhline(points[-1]["mean_context_mse"], color="tab:green", ls="-.", label="mean of context")
    ax.set_xlabel("training wall-clock minutes (2-core CPU; load average in the JSON)")
    ax.set_ylabel("test MSE per frame (sum over C×H×W)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _title(result: dict) -> str:
    final = result["points"][-1]
    surrogate = "surrogate, " if "surrogate" in result["test_set"] else ""
    return (
        f"{result['config']}: final MSE {final['mse']:.1f} = "
        f"{final['mse'] / final['zeros_mse']:.2f} × zeros, "
        f"{final['mse'] / final['copy_last_mse']:.2f} × copy-last "
        f"({surrogate}N={result.get('num_sequences') or result['report']['num_sequences']})"
    )


def main(argv: list[str] | None = None) -> int:
    """Train, then score the checkpoints; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "quickstart.yaml")
    parser.add_argument("--name", default="quickstart", help="results file suffix")
    parser.add_argument("--minutes", type=float, default=None, help="training budget (default: the config's)")
    parser.add_argument("--every", type=float, default=2.0, help="minutes between curve checkpoints")
    parser.add_argument("--num", type=int, default=500, help="surrogate test sequences (folder: windows)")
    parser.add_argument(
        "--test-set",
        default="surrogate",
        help="'surrogate' (default) or the folder of clips the config trains on",
    )
    parser.add_argument("--images", default="mnist", help="surrogate images: mnist or fashion_mnist")
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="where the JSON and PNG go")
    parser.add_argument("--runs-dir", type=Path, default=REPO / "runs", help="where the checkpoints go")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--eval-only", action="store_true", help="score the checkpoints of an earlier run")
    parser.add_argument("--plot-only", action="store_true", help="redraw the PNG from the results JSON")
    args, extra = parser.parse_known_args(argv)
    results = args.results_dir
    if args.plot_only:
        result = json.loads((results / f"learning_curve_{args.name}.json").read_text())
        _plot(result["points"], _title(result), results / f"learning_curve_{args.name}.png")
        return 0
    sitting = record.start(__file__, argv)
    run_root = args.runs_dir / f"learning_curve_{args.name}"
    fit_seconds = None
    if not args.eval_only:
        fit_seconds, run_root = _fit(args.config, run_root, args.minutes, args.every, extra)
    load_after = record.load_1min()

    test, context, horizon = _test_set(
        args.test_set, args.images, args.num, run_root / "checkpoints" / "last.ckpt", _data_dir(extra)
    )
    reports = sorted(run_root.rglob("report/metrics.json"), key=lambda p: p.stat().st_mtime)
    report = json.loads(reports[-1].read_text()) if reports else None
    same = report is not None and report["num_sequences"] == len(test) and report["horizon"] == horizon
    paths = _curve_checkpoints(run_root / "curve", report["global_step"] if same else None)
    if not same:  # no end-of-fit report on this test set: score the last checkpoint instead
        paths += [run_root / "checkpoints" / "last.ckpt"]
    points = [_score(p, test, context, horizon, args.batch_size) for p in paths if p.is_file()]
    if same:  # the final weights, scored by the report
        points.append(
            _point(EvaluationResult.from_json(report), report["train_seconds"] / 60.0, report["global_step"])
        )
    points.sort(key=lambda p: p["minutes"])
    result = {
        **sitting.stamp({}, load_after=load_after),  # load_after: when the fit ended, before the scoring
        "config": str(args.config.relative_to(REPO) if args.config.is_relative_to(REPO) else args.config),
        "test_set": test.name,
        "num_sequences": len(test),
        "fit_wall_seconds": fit_seconds,
        "threads": torch.get_num_threads(),
        "points": points,
        "report": report,
    }
    results.mkdir(parents=True, exist_ok=True)
    out = results / f"learning_curve_{args.name}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    _plot(points, _title(result), results / f"learning_curve_{args.name}.png")
    for p in points:
        print(f"{p['minutes']:6.2f} min  step {p['step']:>6}  MSE {p['mse']:7.2f}  SSIM {p['ssim']:.3f}")
    print(f"wrote {out} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
