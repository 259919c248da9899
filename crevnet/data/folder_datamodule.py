"""``VideoFolderDataModule``: train, validate and test on a folder of your own clips, with Lightning.

The folder is scanned once (:func:`crevnet.data.video_folder.load_folder_clips`), split **by file**
(seeded; or by ``train/``, ``val/``, ``test/`` sub-folders when the root holds all three) or **by
time** (``split_by: time``: the end of every clip held out, :func:`~crevnet.data.video_folder.
split_by_time`) and served as windows of ``num_frames`` frames
(:class:`~crevnet.data.video_folder.ClipWindows`), read from a per-clip frame cache
(:mod:`crevnet.data.cache`, ``cache: true``) decoded once. The split is printed on stderr, stored in
every checkpoint (this module's ``state_dict``, which ``crevnet evaluate`` reads) and written to
``split.json`` in the run folder. With ``prefetch_batches=N`` (and ``num_workers=0``) the training batches
are read by a background thread up to N batches ahead of the training step: the same batches in the same
order (see :class:`~crevnet.data.sampler.ResumableLoader`), off the training thread.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import lightning as L
from torch.utils.data import DataLoader, Dataset, Subset

from crevnet.data.cache import CACHE_DIR_NAME, FrameCache, cache_shape
from crevnet.data.clips import ClipInfo
from crevnet.data.framing import Framing, ResizeMode
from crevnet.data.sampler import EpochSampler, RawItems, ResumableLoader, TrainLoaders, stack_raw, unit_float
from crevnet.data.testset import TestSet
from crevnet.data.video_folder import (
    SPLIT_BY,
    SPLITS,
    ClipWindows,
    FolderClips,
    clip_step,
    load_folder_clips,
    span,
    split_by_file,
    split_by_time,
    spread,
    windows_test_set,
)
from crevnet.errors import DataError
from crevnet.io.atomic import atomic_write_bytes

__all__ = ["VideoFolderDataModule"]

_log = logging.getLogger(__name__)


def _load_split_folders(
    root: Path,
    num_frames: int,
    framing: Framing,
    frame_stride: int,
    fps: float | None,
    index_file: str | None,
) -> dict[str, FolderClips]:
    return {
        key: load_folder_clips(root / key, num_frames, framing, frame_stride, fps, index_file)
        for key in SPLITS
    }


def _listing(names: dict[str, list[str]], shown: int = 4) -> str:
    # "train 5: a.mp4, b.avi, ...; val 1: c.gif; test 1: d.mkv"
    parts = []
    for key in SPLITS:
        more = " ..." if len(names[key]) > shown else ""
        parts.append(f"{key} {len(names[key])}: {', '.join(names[key][:shown])}{more}")
    return "; ".join(parts)


def _cut_listing(cuts: dict[str, list[int]], shown: int = 4) -> str:
    # "a.mp4 train 0-69, val 70-84, test 85-99; b.avi ..."
    items = [
        f"{name} train 0-{v - 1}, val {v}-{t - 1}, test {t}-{n - 1}"
        for name, (v, t, n) in list(cuts.items())[:shown]
    ]
    return "; ".join(items) + (f"; ... ({len(cuts)} clips)" if len(cuts) > shown else "")


def _has_split_folders(root: Path) -> bool:
    return all((root / key).is_dir() for key in SPLITS)


class VideoFolderDataModule(TrainLoaders, L.LightningDataModule):
    """Train / val / test windows from a folder of your own clips (see the module docstring).

    In a config: ``data: {class_path: crevnet.data.VideoFolderDataModule, init_args: {root: DIR}}``
    (``configs/video_folder.yaml``), or ``crevnet fit --config configs/video_folder.yaml --data.root DIR``.

    Args:
        root: the folder of clips (recursive).
        num_frames: frames per window (the model's context + horizon).
        size: (H, W) of the frames fed to the model (must divide by the encoder's downsampling).
        resize: "resize", "center_crop" or "random_crop" (training; val/test use the centre).
        channels: 3 (RGB) or 1 (grey); must equal the encoder's ``in_channels``.
        frame_stride: frames between two frames of a window.
        fps: sample every clip at this rate instead (step ``round(clip fps / fps)``); None: use
            ``frame_stride``.
        window_stride: frames between two training window starts in a clip.
        val_fraction: share of the clips held out for validation (at least one clip); split by time:
            share of every clip's frames (at least one window), just before the test part.
        test_fraction: share of the clips held out for testing (at least one clip); split by time:
            share of every clip's frames (at least one window), its end.
        seed: seed of the split, the training order and the random crops.
        batch_size: windows per batch.
        num_workers: DataLoader worker processes.
        train_size: training windows per epoch (None: all training windows).
        val_size: validation windows, evenly spread over the val clips (None: all).
        test_size: test windows, evenly spread over the test clips (None: all).
        index_file: JSON file caching the clips' frame counts across runs (None: in memory only).
        pin_memory: pin batches in page-locked memory.
        split_by: "file" (whole clips held out) or "time" (the last part of every clip held out;
            ignored when the root has train/ val/ test/ sub-folders).
        cache: read windows from a cache of every clip decoded once at the working size and channels
            (:mod:`crevnet.data.cache`); False: decode every window from the clip.
        cache_dir: the cache folder (None: ``<root>/.crevnet_cache``).
        prefetch_batches: training batches read ahead in a background thread (0: read on the training
            thread when Lightning asks; ignored when ``num_workers > 0``). The batches are identical
            either way, and so is a resumed run.

    Shape:
        batches: (B, num_frames, channels, H, W) float32 in [0, 1].
    """

    def __init__(
        self,
        root: str,
        num_frames: int = 20,
        size: tuple[int, int] = (64, 64),
        resize: ResizeMode = "center_crop",
        channels: int = 3,
        frame_stride: int = 1,
        fps: float | None = None,
        window_stride: int = 1,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        seed: int = 0,
        batch_size: int = 8,
        num_workers: int = 0,
        train_size: int | None = None,
        val_size: int | None = 64,
        test_size: int | None = None,
        index_file: str | None = None,
        pin_memory: bool = False,
        split_by: Literal["file", "time"] = "file",
        cache: bool = True,
        cache_dir: str | None = None,
        prefetch_batches: int = 0,
    ) -> None:
        super().__init__()
        if num_frames < 2 or frame_stride < 1 or window_stride < 1 or batch_size < 1 or num_workers < 0:
            raise ValueError(
                "VideoFolderDataModule: need num_frames >= 2, frame_stride >= 1, window_stride >= 1, "
                f"batch_size >= 1, num_workers >= 0; got {num_frames}, {frame_stride}, {window_stride}, "
                f"{batch_size}, {num_workers}"
            )
        if fps is not None and not fps > 0:
            raise ValueError(f"VideoFolderDataModule: fps must be > 0 or null, got {fps}")
        if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
            raise ValueError(
                "VideoFolderDataModule: val_fraction and test_fraction must be in (0, 1) with a sum < 1; "
                f"got {val_fraction}, {test_fraction}"
            )
        if split_by not in SPLIT_BY:
            raise ValueError(f"VideoFolderDataModule: split_by must be 'file' or 'time', got {split_by!r}")
        if prefetch_batches < 0:
            raise ValueError(f"VideoFolderDataModule: prefetch_batches must be >= 0, got {prefetch_batches}")
        for name, value in (("train_size", train_size), ("val_size", val_size), ("test_size", test_size)):
            if value is not None and value < 1:
                raise ValueError(f"VideoFolderDataModule: {name} must be >= 1 or null, got {value}")
        self.save_hyperparameters(logger=False)  # CrevNetModule logs them under data
        self.root = Path(root)
        self.framing = Framing(tuple(int(v) for v in size), resize, channels)  # type: ignore[arg-type]
        self.eval_framing = Framing(
            self.framing.size, "center_crop" if resize == "random_crop" else resize, channels
        )
        self.num_frames = num_frames
        self.frame_stride = frame_stride
        self.fps = fps
        self.window_stride = window_stride
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.seed = seed
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.train_size = train_size
        self.val_size = val_size
        self.test_size = test_size
        self.index_file = index_file
        self.pin_memory = pin_memory
        self.split_by = split_by
        self.cache = cache
        self.cache_dir = self.root / CACHE_DIR_NAME if cache_dir is None else Path(cache_dir)
        self.parts: dict[str, tuple[ClipInfo, ...]] | None = None
        self.ranges: dict[str, tuple[tuple[int, int], ...]] | None = None  # split by time: frames per part
        self.split: dict[str, list[str]] | None = None
        self.cuts: dict[str, list[int]] | None = (
            None  # split by time: name -> [val start, test start, frames]
        )
        self.test_data: TestSet | None = None
        self._cached: dict[tuple[Path, tuple[int, ...]], Path | None] = {}
        self.prefetch_batches = prefetch_batches

    # -- split --------------------------------------------------------------------------------------
    def _make_split(self) -> None:
        if self.parts is not None:
            return
        args = (self.num_frames, self.framing, self.frame_stride, self.fps)
        if _has_split_folders(self.root):
            found = _load_split_folders(self.root, *args, self.index_file)
            parts = {key: found[key].clips for key in SPLITS}
            split = {key: [found[key].name(c) for c in found[key].clips] for key in SPLITS}
            how = "train/ val/ test/ sub-folders"
            summary = "; ".join(f"{key}: {found[key].summary()}" for key in SPLITS)
            notes = [n for key in SPLITS for n in found[key].notes]
            names = {key: [f"{key}/{n}" for n in split[key]] for key in SPLITS}
            if self.split_by == "time":
                notes.append("split_by time ignored: the train/ val/ test/ sub-folders are the split")
        elif self.split_by == "time":
            folder = load_folder_clips(self.root, *args, index_file=self.index_file)
            by_name = {folder.name(c): c for c in folder.clips}
            needs = {
                folder.name(c): span(self.num_frames, clip_step(c, self.frame_stride, self.fps))
                for c in folder.clips
            }
            self.cuts = split_by_time(
                {n: c.frames for n, c in by_name.items()},
                needs,
                self.val_fraction,
                self.test_fraction,
                self.num_frames,
            )
            ordered = sorted(by_name)
            names = {key: list(ordered) for key in SPLITS}
            parts = {key: tuple(by_name[n] for n in ordered) for key in SPLITS}
            bounds = {"train": (None, 0), "val": (0, 1), "test": (1, 2)}
            self.ranges = {
                key: tuple((0 if a is None else self.cuts[n][a], self.cuts[n][b]) for n in ordered)
                for key, (a, b) in bounds.items()
            }
            share = 1 - self.val_fraction - self.test_fraction
            how = (
                f"split by time: the first ~{share:.0%} of every clip trains, the next ~"
                f"{self.val_fraction:.0%} validates, the last ~{self.test_fraction:.0%} tests"
            )
            summary = folder.summary()
            notes = list(folder.notes)
        else:
            folder = load_folder_clips(self.root, *args, index_file=self.index_file)
            by_name = {folder.name(c): c for c in folder.clips}
            names = split_by_file(list(by_name), self.val_fraction, self.test_fraction, self.seed)
            parts = {key: tuple(by_name[n] for n in names[key]) for key in SPLITS}
            how = f"split by file, seed {self.seed}"
            summary = folder.summary()
            notes = list(folder.notes)
        self.parts = parts
        self.split = names
        listing = _listing(names) if self.cuts is None else _cut_listing(self.cuts)
        _log.info(f"video folder {self.root}: {summary} ({how}): {listing}")
        for note in notes:
            _log.info(f"note: {note}")
        self._write_split_file()

    def _write_split_file(self) -> None:
        trainer = self.trainer
        logger = trainer.logger if trainer is not None else None
        log_dir = getattr(logger, "log_dir", None) if logger is not None else None
        if not log_dir or trainer.global_rank != 0:
            return
        atomic_write_bytes(
            Path(log_dir) / "split.json", (json.dumps(self.state_dict(), indent=2) + "\n").encode()
        )

    def state_dict(self) -> dict[str, Any]:
        """The split (saved in checkpoints): root, seed and the clip names of each part.

        A split by time adds ``"split_by": "time"`` and ``"cuts"``: clip name -> [val start, test start,
        frames] (frames ``test start ..`` are the test part that ``crevnet evaluate`` scores).
        """
        if self.split is None:
            return {}
        state: dict[str, Any] = {"root": str(self.root.resolve()), "seed": self.seed, "split": self.split}
        if self.cuts is not None:
            state["split_by"] = "time"
            state["cuts"] = {name: list(cut) for name, cut in self.cuts.items()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """From a checkpoint: say so, and why, when the folder no longer splits as it recorded."""
        self._make_split()
        assert self.split is not None
        saved = state.get("split") if isinstance(state, dict) else None
        if not saved:
            return
        saved_by = state.get("split_by", "file")
        this_by = "time" if self.cuts is not None else "file"
        if saved_by != this_by:
            _log.info(
                f"note: {self.root}: the checkpoint was split by {saved_by}, this run by {this_by} "
                f"(--data.split_by {saved_by} splits as it did); this run uses the new split"
            )
            return
        if this_by == "time":
            self._compare_cuts(state.get("cuts") or {})
            return
        if saved == self.split:
            return
        reasons = []
        seed = state.get("seed")
        if seed is not None and seed != self.seed and not _has_split_folders(self.root):
            reasons.append(
                f"the checkpoint was split with seed {seed}, this run with seed {self.seed} "
                f"(--data.seed {seed} splits as it did)"
            )
        if {n for part in saved.values() for n in part} != {n for part in self.split.values() for n in part}:
            reasons.append("files were added, removed or renamed")
        why = "; ".join(reasons) or "the val/test fractions differ"
        held_out = set(self.split["val"]) | set(self.split["test"])
        trained = sorted(held_out & set(saved.get("train", ())))
        leak = (
            f"; {len(trained)} of this run's val/test clips were training clips there: {', '.join(trained)}"
            if trained
            else ""
        )
        _log.info(
            f"note: {self.root}: the clips split differently from the checkpoint's recorded split: {why}; "
            f"this run uses the new split{leak}"
        )

    def _compare_cuts(self, saved: dict[str, list[int]]) -> None:
        # Split by time: the same clips cut at the same frames, or a note on what moved.
        assert self.cuts is not None
        if saved == self.cuts:
            return
        moved = sorted(n for n in set(saved) & set(self.cuts) if list(saved[n]) != list(self.cuts[n]))
        changed = set(saved) != set(self.cuts)
        why = "; ".join(
            part
            for part in (
                "files were added, removed or renamed" if changed else "",
                f"{len(moved)} clip(s) are cut at other frames ({', '.join(moved[:4])}"
                f"{' ...' if len(moved) > 4 else ''}: other val/test fractions, num_frames or frame counts)"
                if moved
                else "",
            )
            if part
        )
        # frames this run holds out that the checkpoint trained on: a held-out part starting earlier
        leak = sorted(n for n in moved if self.cuts[n][0] < saved[n][0])
        tail = (
            f"; {len(leak)} clip(s) hold out frames the checkpoint trained on: {', '.join(leak)}"
            if leak
            else ""
        )
        _log.info(
            f"note: {self.root}: the clips split differently from the checkpoint's recorded split by time: "
            f"{why}; this run uses the new split{tail}"
        )

    # -- datasets -----------------------------------------------------------------------------------
    def _steps(self, clips: Sequence[ClipInfo]) -> list[int]:
        return [clip_step(c, self.frame_stride, self.fps) for c in clips]

    def _cache_files(self, clips: Sequence[ClipInfo], framing: Framing) -> list[Path | None] | None:
        # Cache files of ``clips`` at ``framing`` (built once per module and clip; checked on disk once).
        if not self.cache:
            return None
        # One file serves every framing of the same scaled size and channels (random and centre
        # crops); the clips of every part are cached in one go, so the first pass is said once.
        assert self.parts is not None
        every = list({c.path: c for part in self.parts.values() for c in part}.values())
        todo = [(c, k) for c in every if (k := (c.path, cache_shape(c, framing))) not in self._cached]
        if todo:
            names = [self._cache_name(c) for c, _ in todo]
            found = FrameCache(self.cache_dir).ensure([c for c, _ in todo], names, framing)
            self._cached.update({k: p for (_, k), p in zip(todo, found, strict=True)})
        return [self._cached[(c.path, cache_shape(c, framing))] for c in clips]

    def cache_files(self) -> dict[str, Path | None]:
        """Every clip's cache file at the training framing, by clip name (built when missing; None: a
        clip read directly). Empty without the cache (``cache: false``)."""
        self._make_split()
        assert self.parts is not None
        every = list({c.path: c for part in self.parts.values() for c in part}.values())
        files = self._cache_files(every, self.framing)
        if files is None:
            return {}
        return {self._cache_name(c): f for c, f in zip(every, files, strict=True)}

    def _cache_name(self, clip: ClipInfo) -> str:
        try:
            return clip.path.relative_to(self.root).as_posix()
        except ValueError:
            return clip.path.name

    def windows(self, part: str) -> ClipWindows:
        """Windows of ``part``: "train" overlapping, a shuffled stream; "val"/"test" disjoint, in order."""
        self._make_split()
        assert self.parts is not None
        clips = self.parts[part]
        ranges = None if self.ranges is None else self.ranges[part]
        if part == "train":
            return ClipWindows(
                clips,
                self._steps(clips),
                self.num_frames,
                self.window_stride,
                self.framing,
                self.seed,
                ranges=ranges,
                cached=self._cache_files(clips, self.framing),
            )
        spans = [span(self.num_frames, s) for s in self._steps(clips)]
        stride = max(spans) if spans else 1
        return ClipWindows(
            clips,
            self._steps(clips),
            self.num_frames,
            stride,
            self.eval_framing,
            ranges=ranges,
            cached=self._cache_files(clips, self.eval_framing),
        )

    def _check_model(self) -> None:
        # Channels, frame size and window length must suit the model being trained: say so in words
        # here rather than let a conv fail deep inside the first step.
        module = self.trainer.lightning_module if self.trainer is not None else None
        config = getattr(getattr(module, "net", None), "config", None)
        if config is None:
            return
        encoder = config.encoder
        if encoder.in_channels != self.framing.channels:
            raise DataError(
                f"data.channels {self.framing.channels} but the model takes {encoder.in_channels} "
                "(model.net.encoder.in_channels); set them equal (3 = RGB, 1 = grey)"
            )
        factor = encoder.downsample
        if any(v % factor for v in self.framing.size):
            raise DataError(
                f"data.size {list(self.framing.size)}: height and width must be multiples of {factor}, "
                "the encoder's total downsampling"
            )
        context = getattr(module, "context", None)
        if context is not None and self.num_frames <= context:
            raise DataError(
                f"data.num_frames {self.num_frames} leaves nothing to predict after model.context "
                f"{context}; use num_frames = context + horizon"
            )

    def setup(self, stage: str | None = None) -> None:
        """Check the model fits the data, scan and split the folder (once), read the test windows."""
        self._check_model()
        self._make_split()
        if stage in (None, "test") and self.test_data is None:
            self.test_data = windows_test_set(
                self.windows("test"),
                f"held-out test clips of {self.root}",
                self.test_size,
                self.root.resolve(),
            )

    def _position(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 0, 0
        loop = trainer.fit_loop
        return loop.epoch_progress.current.processed, loop.epoch_loop.batch_progress.current.ready

    def train_dataloader(self) -> Any:
        """Shuffled training windows, ``train_size`` per epoch, resumable mid-epoch."""
        windows = self.windows("train")
        size = len(windows) if self.train_size is None else self.train_size
        loader = ResumableLoader(
            RawItems(windows),  # uint8 off the training thread, float32 on it
            sampler=EpochSampler(size),
            position=self._position,
            prefetch=self.prefetch_batches,
            collate_fn=stack_raw,
            finish=unit_float,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory,
        )
        return self.track(loader)

    def _eval_loader(self, dataset: Dataset) -> Any:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
        )

    def val_dataloader(self) -> Any:
        """Validation windows (up to ``val_size``, evenly spread), in order."""
        windows = self.windows("val")
        return self._eval_loader(Subset(windows, spread(len(windows), self.val_size)))

    def test_dataloader(self) -> Any:
        """The test windows, in order."""
        self.setup("test")
        assert self.test_data is not None
        return self._eval_loader(self.test_data.dataset())

    @property
    def test_set_name(self) -> str:
        """Name of the test set (for reports)."""
        self.setup("test")
        assert self.test_data is not None
        return self.test_data.name
