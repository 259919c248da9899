"""Is the data pipeline of a folder of clips as fast as the model? Loader clips/s beside step samples/s.

For a ``crevnet fit`` config whose data section is a ``VideoFolderDataModule`` and a folder of clips
(``--root``), in one process, one phase after the other (nothing else running):

1. **Build** the data module as ``crevnet fit --config CONFIG --data.root ROOT`` builds it (the same
   parser, :class:`crevnet.train.cli.CrevNetCLI`, without running anything), with the frame cache on
   (``--no-cache``: off), scan and split the folder (``scan_s``) and build or find every clip's cache
   file (``cache_build_s``; ``cache_hit`` is true when every file was already there, whole and current).
2. **Loader**: iterate the training dataloader alone, ``--warmup`` batches (3) and then ``--batches``
   (100) timed ones, epoch after epoch as the fit would: ``loader_batches_per_s``, ``loader_clips_per_s``.
3. **Step**: the model's training step on synthetic tensors of the same shape (batch, frames, channels,
   size of the data module), timed by ``benchmarks/train_step.py``'s :func:`measure` with
   ``--threads adaptive`` (the probe ``AdaptiveThreads`` runs), ``--steps`` (20) timed steps:
   ``step_samples_per_s`` (batch / median step).
4. With ``--fit-minutes M``: ``crevnet fit`` on the same config and root for M minutes of wall time
   (``trainer.max_time``; without ``FitReport``, by ``benchmarks/fit_ratio.py``'s own code), in a
   temporary run folder: ``fit_samples_per_s`` (steps × batch / the fit's train seconds).

and prints ONE JSON row (through ``benchmarks/record.py``: machine, commit, load, command) with
``ratio = loader_clips_per_s / step_samples_per_s`` (≥ 1: the loader keeps up with the step) and, with
a fit, ``fit_ratio = fit_samples_per_s / step_samples_per_s`` (the issue's target: ≥ 0.9). Memory and
disk: ``peak_rss_mb`` (this process), ``fit_peak_rss_mb`` (the fit's process), ``cache_mb`` (the
files of this framing), ``cache_bytes`` (per clip, by name), ``cache_bytes_per_clip`` and
``cache_bytes_per_frame`` (means). ``clips`` and ``frames``: every clip of the folder, all parts.

Arguments after ``--`` go to the data module's build and to the fit (e.g. ``-- --data.split_by time``
or ``-- --data.prefetch_batches 2``); the step reads the model from the config file.

Example (the opencv-doc clips, split by time)::

    python benchmarks/folder_pipeline.py --root /tmp/opencv_raw --batches 100 --fit-minutes 5 \\
        -- --data.split_by time
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import yaml

from crevnet.data.folder_datamodule import VideoFolderDataModule
from crevnet.train.cli import CrevNetCLI

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:  # loaded by file path (the tests): the other benchmarks are imported
    sys.path.insert(0, str(BENCH))
import fit_ratio  # noqa: E402
import record  # noqa: E402
import train_step  # noqa: E402

DEFAULT_CONFIG = BENCH.parent / "configs" / "video_folder.yaml"


def build_datamodule(config: Path, root: Path, cache: bool, extra: list[str], runs: Path) -> Any:
    """The data module ``crevnet fit --config config --data.root root [extra]`` would train on."""
    args = ["--config", str(config), "--data.root", str(root), f"--data.cache={str(cache).lower()}"]
    cli = CrevNetCLI([*args, *extra, "--trainer.default_root_dir", str(runs)], run=False)
    return cli.datamodule


def _mtimes(folder: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in folder.glob("*.npy")} if folder.is_dir() else {}


def batches_forever(loader: Any) -> Iterator[torch.Tensor]:
    """The training loader's batches, epoch after epoch (``set_epoch`` as Lightning calls it)."""
    epoch = 0
    while True:
        loader.sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def time_loader(loader: Any, batches: int, warmup: int) -> dict[str, Any]:
    """Seconds of ``batches`` training batches after ``warmup`` ones: batches/s and clips/s."""
    stream = batches_forever(loader)
    for _ in range(warmup):
        next(stream)
    clips = 0
    t0 = time.perf_counter()
    for _ in range(batches):
        clips += int(next(stream).shape[0])
    seconds = time.perf_counter() - t0
    stream.close()
    return {
        "loader_s": round(seconds, 3),
        "loader_batches_per_s": round(batches / seconds, 2),
        "loader_clips_per_s": round(clips / seconds, 2),
    }


def main(argv: list[str] | None = None) -> int:
    args_in, extra = fit_ratio.split_passthrough(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="a crevnet fit config (YAML)")
    parser.add_argument("--root", required=True, help="the folder of clips (data.root)")
    parser.add_argument("--no-cache", action="store_true", help="decode every window (data.cache false)")
    parser.add_argument("--batches", type=int, default=100, help="timed training batches")
    parser.add_argument("--warmup", type=int, default=3, help="training batches before the timed ones")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps (after one warm-up)")
    parser.add_argument("--fit-minutes", type=float, default=None, help="also run crevnet fit this long")
    args = parser.parse_args(args_in)
    if args.batches < 1 or args.warmup < 0 or args.steps < 1:
        parser.error("--batches and --steps must be >= 1, --warmup >= 0")
    if args.fit_minutes is not None and args.fit_minutes <= 0:
        parser.error("--fit-minutes must be > 0")
    config, root, cache = Path(args.config), Path(args.root), not args.no_cache

    sitting = record.start(__file__, argv)
    with tempfile.TemporaryDirectory(prefix="folder_pipeline_") as tmp:
        work = Path(tmp)
        dm = build_datamodule(config, root, cache, extra, work / "runs")
        if not isinstance(dm, VideoFolderDataModule):
            raise SystemExit(f"folder_pipeline: {config}'s data is {type(dm).__name__}, not a video folder")
        t0 = time.perf_counter()
        dm.setup("fit")  # scan and split the folder
        scan_s = time.perf_counter() - t0
        before = _mtimes(dm.cache_dir)
        t0 = time.perf_counter()
        files = dm.cache_files()  # every clip's cache file: built once, or found
        build_s = time.perf_counter() - t0
        assert dm.parts is not None
        every = list({c.path: c for part in dm.parts.values() for c in part}.values())
        sizes = {name: path.stat().st_size for name, path in files.items() if path is not None}
        hit = (
            cache
            and bool(files)
            and all(p is not None and before.get(p) == p.stat().st_mtime_ns for p in files.values())
        )

        loader = dm.train_dataloader()
        if len(loader) == 0:
            raise SystemExit(f"folder_pipeline: no training windows in {root}")
        loader_threads = torch.get_num_threads()
        loaded = time_loader(loader, args.batches, args.warmup)
        dm.teardown("fit")  # stop a prefetch thread before the step is timed

        height, width = dm.framing.size
        step = train_step.measure(
            config, batch=dm.batch_size, frames=dm.num_frames, size=(height, width), steps=args.steps
        )
        fit: dict[str, Any] = {}
        if args.fit_minutes is not None:
            loop = work / config.name
            loop.write_text(
                yaml.safe_dump(fit_ratio.loop_config(yaml.safe_load(config.read_text())), sort_keys=False)
            )
            fit_args = ["--data.root", str(root), f"--data.cache={str(cache).lower()}", *extra]
            done = fit_ratio.run_fit(loop, args.fit_minutes * 60.0, work, fit_args)
            rate = done["steps"] * done["batch"] / done["seconds"]
            fit = {
                "fit_minutes": args.fit_minutes,
                "fit_steps": done["steps"],
                "fit_seconds": round(done["seconds"], 2),
                "fit_samples_per_s": round(rate, 2),
                "fit_ratio": round(rate / step["samples_per_s"], 3),
                "fit_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
            }
    frames = sum(c.frames for c in every)
    cache_bytes = sum(sizes.values())
    row = {
        "config": str(config),
        "root": str(root),
        "extra_args": extra,
        "clips": len(every),
        "frames": frames,
        "train_windows": len(dm.windows("train")),
        "batch": dm.batch_size,
        "num_frames": dm.num_frames,
        "size": [height, width],
        "channels": dm.framing.channels,
        "prefetch_batches": dm.prefetch_batches,
        "num_workers": dm.num_workers,
        "cache": cache,
        "cache_hit": hit,
        "scan_s": round(scan_s, 3),
        "cache_build_s": round(build_s, 3) if cache else None,
        "cache_mb": round(cache_bytes / 1e6, 2),
        "cache_bytes": sizes,
        "cache_bytes_per_clip": round(cache_bytes / len(sizes)) if sizes else None,
        "cache_bytes_per_frame": round(cache_bytes / frames) if len(sizes) == len(every) and frames else None,
        "batches": args.batches,
        "loader_threads": loader_threads,
        **loaded,
        "step_threads_used": step["threads_used"],
        "step_s": step["step_s"],
        "step_s_median": step["step_s_median"],
        "step_samples_per_s": step["samples_per_s"],
        "ratio": round(loaded["loader_clips_per_s"] / step["samples_per_s"], 3),
        **fit,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(sitting.stamp(row)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
