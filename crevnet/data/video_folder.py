"""A folder of your own clips as windows: usable clips, a split by file, windows and test sets.

A folder (searched recursively) of video files and/or folders of frame images
(:mod:`crevnet.data.clips`) becomes training windows of ``num_frames`` frames (context + horizon):

- **Windows** are indexed by (clip, start frame); frames inside a window are ``step`` frames apart
  (``frame_stride``, or per clip ``round(clip fps / fps)`` when ``fps`` is given, so clips recorded at
  different rates are sampled at one rate). Training windows start every ``window_stride`` frames and
  are visited in a seeded random order, a new permutation per pass; validation and test windows do
  not overlap. Only the frames of the window being read are decoded.
- **Split by file** (:func:`split_by_file`): the clips (sorted by path) are shuffled with a seed and
  cut into train / val / test, so no test frame is ever seen in training
  (:class:`~crevnet.data.folder_datamodule.VideoFolderDataModule` records it).
- **Split by time** (:func:`split_by_time`): every clip is cut in three consecutive parts, train
  first, then val, then the last part for test; windows are made inside one part only (a window's
  frame range, :class:`ClipWindows` ``ranges``), so none crosses a cut and a few long videos can all
  be trained on.
- **Frames** are brought to ``size`` with ``resize``, ``center_crop`` or ``random_crop`` (training only;
  validation and test use the centre) and to ``channels`` (:class:`~crevnet.data.framing.Framing`).

Bad input never ends in a traceback: an empty folder or one without a readable clip is a
:class:`~crevnet.errors.DataError`; an unreadable clip is skipped with one warning naming it; clips
shorter than a window are skipped; mixed sizes, frame rates and grey/colour clips are converted. All of
it is counted in one summary, logged (``logging``, this module's logger) by :func:`folder_test_set`;
the commands show it on stderr.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from crevnet.data.cache import open_cached
from crevnet.data.clips import ClipInfo, ScanResult, read_frames, scan_clips
from crevnet.data.frames import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from crevnet.data.framing import Framing
from crevnet.data.generator import sequence_rng
from crevnet.data.sampler import unit_float
from crevnet.data.testset import STANDARD_BASELINES, TestSet
from crevnet.errors import DataError
from crevnet.nn.model import DEFAULT_HORIZON

__all__ = [
    "FOLDER_BASELINES",
    "SPLITS",
    "SPLIT_BY",
    "ClipWindows",
    "FolderClips",
    "clip_step",
    "folder_eval_settings",
    "folder_test_set",
    "load_folder_clips",
    "span",
    "split_by_file",
    "split_by_time",
    "spread",
    "time_parts",
    "windows_test_set",
]

SPLITS = ("train", "val", "test")
SPLIT_BY = ("file", "time")
FOLDER_BASELINES: tuple[str, ...] = (*STANDARD_BASELINES, "mean_context")
"""Keys of the baselines (:data:`crevnet.evaluation.baselines.BASELINES`) a folder of real clips is
scored against: the standard ones and the mean of the context (a strong one there)."""
_CROP_STREAM = 3  # sequence_rng stream of the random crops (1, 2: Moving MNIST train / val)
_log = logging.getLogger(__name__)


def clip_step(clip: ClipInfo, frame_stride: int, fps: float | None) -> int:
    """Frames between two frames of a window: ``round(clip.fps / fps)`` (>= 1) or ``frame_stride``."""
    if fps is not None and clip.fps:
        return max(1, round(clip.fps / fps))
    return frame_stride


def split_by_file(
    names: Sequence[str], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[str]]:
    """Shuffle ``names`` (sorted first) with ``seed`` and cut them into train / val / test.

    Each of val and test gets ``round(n × fraction)`` names, at least one; train keeps the rest.

    Raises:
        DataError: fewer names than the three parts need.
    """
    ordered = sorted(names)
    n = len(ordered)
    n_val = max(1, round(n * val_fraction))
    n_test = max(1, round(n * test_fraction))
    if n < n_val + n_test + 1:
        raise DataError(
            f"{n} usable clip(s); a split by file needs at least {n_val + n_test + 1} (train, val "
            f"{n_val}, test {n_test}): add clips, or put train/, val/ and test/ sub-folders in the root"
        )
    order = np.random.default_rng(seed).permutation(n)
    shuffled = [ordered[i] for i in order]
    parts = {
        "test": sorted(shuffled[:n_test]),
        "val": sorted(shuffled[n_test : n_test + n_val]),
        "train": sorted(shuffled[n_test + n_val :]),
    }
    return {key: parts[key] for key in SPLITS}


def time_parts(frames: int, need: int, val_fraction: float, test_fraction: float) -> tuple[int, int] | None:
    """Where a clip of ``frames`` frames is cut for a split by time: (val start, test start), or None.

    The last ``round(frames × test_fraction)`` frames are the test part, the
    ``round(frames × val_fraction)`` before them the val part, the rest (the beginning) the train part;
    val and test get at least ``need`` frames (one window), and None means the train part would be
    shorter than ``need``.
    """
    n_test = max(need, round(frames * test_fraction))
    n_val = max(need, round(frames * val_fraction))
    if frames - n_val - n_test < need:
        return None
    return frames - n_test - n_val, frames - n_test


def _time_split_needs(need: int, val_fraction: float, test_fraction: float) -> int:
    # The fewest frames time_parts can cut in three (one window each).
    frames = 3 * need
    while time_parts(frames, need, val_fraction, test_fraction) is None:
        frames += 1
    return frames


def split_by_time(
    frames: Mapping[str, int],
    needs: Mapping[str, int],
    val_fraction: float,
    test_fraction: float,
    num_frames: int | None = None,
) -> dict[str, list[int]]:
    """Cut every clip in time: name -> [val start, test start, frames] (see :func:`time_parts`).

    Frames ``0 .. val start - 1`` train, ``val start .. test start - 1`` validate, ``test start ..
    frames - 1`` test; windows are made inside one part only.

    Args:
        frames: frame count of each clip, by name.
        needs: frames one window spans in each clip (:func:`span`).
        val_fraction: share of each clip's frames held out for validation (before the test part).
        test_fraction: share of each clip's frames held out for testing (its end).
        num_frames: frames per window, for the error message.

    Raises:
        DataError: a clip too short for three parts of one window each; one message names the clips,
            the frames each has and needs, and what to change.
    """
    cuts: dict[str, list[int]] = {}
    short: list[str] = []
    for name in sorted(frames):
        parts = time_parts(frames[name], needs[name], val_fraction, test_fraction)
        if parts is None:
            need = _time_split_needs(needs[name], val_fraction, test_fraction)
            short.append(f"{name} ({frames[name]} frames, needs {need})")
        else:
            cuts[name] = [*parts, frames[name]]
    if short:
        window = f"{num_frames}-frame " if num_frames is not None else ""
        listed = ", ".join(short[:5]) + (f" and {len(short) - 5} more" if len(short) > 5 else "")
        raise DataError(
            f"{len(short)} clip(s) too short for a split by time into train, val "
            f"({val_fraction:g}) and test ({test_fraction:g}) parts of at least one {window}window each: "
            f"{listed}; pass a lower data.val_fraction / data.test_fraction, data.num_frames or "
            "data.frame_stride, remove those clips, or use data.split_by file"
        )
    return cuts


@dataclass(frozen=True)
class FolderClips:
    """The usable clips of a folder, what was left out, and the notes printed about them.

    Attributes:
        scan: what :func:`crevnet.data.clips.scan_clips` found.
        clips: clips long enough for one window, by path.
        too_short: (clip, frames a window needs) of the clips left out.
        notes: one line per conversion or oddity (grey/colour, mixed sizes, mixed frame rates).
    """

    scan: ScanResult
    clips: tuple[ClipInfo, ...]
    too_short: tuple[tuple[ClipInfo, int], ...]
    notes: tuple[str, ...]

    def name(self, clip: ClipInfo) -> str:
        """The clip's path relative to the root (how splits record it)."""
        return clip.path.relative_to(self.scan.root).as_posix()

    def summary(self) -> str:
        """``"N clips used; skipped: ..."``."""
        skipped = []
        if self.scan.unreadable:
            skipped.append(f"{len(self.scan.unreadable)} unreadable")
        if self.too_short:
            need = self.too_short[0][1]
            skipped.append(f"{len(self.too_short)} shorter than a window ({need} frames)")
        tail = f"; skipped: {', '.join(skipped)}" if skipped else ""
        return f"{len(self.clips)} clip(s) used{tail}"


def span(num_frames: int, step: int) -> int:
    """Frames a window of ``num_frames`` frames ``step`` apart covers in its clip."""
    return (num_frames - 1) * step + 1


def _describe_sizes(clips: Sequence[ClipInfo]) -> str:
    sizes = sorted({(c.height, c.width) for c in clips}, key=lambda s: s[0] * s[1])
    return f"{len(sizes)} frame sizes from {sizes[0][0]}×{sizes[0][1]} to {sizes[-1][0]}×{sizes[-1][1]}"


def load_folder_clips(
    root: str | os.PathLike[str],
    num_frames: int,
    framing: Framing,
    frame_stride: int = 1,
    fps: float | None = None,
    index_file: str | os.PathLike[str] | None = None,
    warn: Callable[[str], None] = _log.warning,
) -> FolderClips:
    """Scan ``root`` and keep the clips that hold at least one window.

    Unreadable clips are reported through ``warn`` one by one as they are met; the notes (returned)
    say what will be converted.

    Raises:
        DataError: no clip at all, none readable, or none long enough; the message names the folder.
    """
    root = Path(root)
    scan = scan_clips(root, index_file, warn=lambda m: warn(f"warning: {m}"))
    if not scan.clips and not scan.unreadable:
        loose = root.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in root.iterdir())
        hint = (
            f"; the images directly in {root} are not a clip: put each clip's frames in its own sub-folder"
            if loose
            else ""
        )
        raise DataError(
            f"{root}: no clips found; expected video files ({' '.join(VIDEO_SUFFIXES)}) or "
            f"folders of frame images (.png .jpg ...) anywhere below it{hint}"
        )
    if not scan.clips:
        first, reason = scan.unreadable[0]
        raise DataError(
            f"{root}: none of the {len(scan.unreadable)} clip(s) could be read (e.g. {first}: {reason}); "
            "OpenCV reads the codecs of its FFmpeg build (H.264, MPEG-4, MJPEG, VP8/VP9 ...), Pillow GIFs"
        )
    usable, short = [], []
    for clip in scan.clips:
        need = span(num_frames, clip_step(clip, frame_stride, fps))
        (usable if clip.frames >= need else short).append((clip, need))
    if not usable:
        longest = max(scan.clips, key=lambda c: c.frames)
        raise DataError(
            f"{root}: every clip is shorter than a window of {num_frames} frames "
            f"(longest: {longest.path}, {longest.frames} frames, needs {short[0][1]}); "
            "use longer clips, or lower num_frames / frame_stride"
        )
    clips = tuple(c for c, _ in usable)
    notes = []
    converted = [c for c in clips if c.channels != framing.channels]
    if converted:
        src, dst = ("grey", "RGB") if framing.channels == 3 else ("RGB", "grey")
        names = ", ".join(c.path.name for c in converted[:3]) + (" ..." if len(converted) > 3 else "")
        notes.append(f"{len(converted)} {src} clip(s) converted {src} -> {dst} ({names})")
    if len({(c.height, c.width) for c in clips}) > 1:
        notes.append(
            f"{_describe_sizes(clips)}: every frame is {framing.mode} to {framing.size[0]}×{framing.size[1]}"
        )
    rates = sorted({round(c.fps, 2) for c in clips if c.fps})
    if len(rates) > 1 and fps is None:
        notes.append(
            f"clips have frame rates {', '.join(f'{r:g}' for r in rates)} fps; windows take every "
            f"{frame_stride} frame(s) of each, so they span different durations (set data.fps to sample "
            "all clips at one rate)"
        )
    return FolderClips(scan, clips, tuple((c, n) for c, n in short), tuple(notes))


class ClipWindows(Dataset[torch.Tensor]):
    """Windows of ``num_frames`` frames from a list of clips, read on demand.

    Window ``k`` is (clip, start) in clip order, then start order; its frames are
    ``start, start + step, ...`` of that clip (``step`` per clip), all inside the clip's frame range
    (``ranges``: the whole clip, or one part of a split by time). With ``shuffle_seed`` set the
    dataset is an endless training stream: index ``i`` is window ``perm_p[i mod n]`` of pass
    ``p = i // n``, ``perm_p`` a permutation drawn from (seed, p), so any index can be read alone,
    in any worker, and an :class:`~crevnet.data.sampler.EpochSampler` gives fresh orders every epoch.
    Random crops are drawn from (seed, index).

    Frames come from the clip itself (only the window's frames are decoded) or, when ``cached`` gives
    a clip's cache file (:mod:`crevnet.data.cache`: every frame already at the framing's scaled size and
    channels), from that file, memory-mapped; both give the same bytes. At most ``open_files`` cache
    files are mapped at once per process (least recently used closed first), so a folder of hundreds of
    clips holds neither hundreds of maps nor their file descriptors.

    Args:
        clips: the clips.
        steps: frame step of each clip.
        num_frames: frames per window T.
        window_stride: frames between two window starts in a clip (>= 1).
        framing: size, resize mode and channels of the output.
        shuffle_seed: None: window ``i`` in order (``i < len``); else the shuffled endless stream.
        ranges: (first, stop) frame range of each clip that windows are made in (None: whole clips).
        cached: cache file of each clip (None for a clip read directly; None: no cache at all).
        open_files: cache files kept mapped at once.

    Shape:
        item: (T, C, H, W) float32 in [0, 1].
    """

    def __init__(
        self,
        clips: Sequence[ClipInfo],
        steps: Sequence[int],
        num_frames: int,
        window_stride: int,
        framing: Framing,
        shuffle_seed: int | None = None,
        ranges: Sequence[tuple[int, int]] | None = None,
        cached: Sequence[Path | None] | None = None,
        open_files: int = 32,
    ) -> None:
        if len(clips) != len(steps) or num_frames < 1 or window_stride < 1 or open_files < 1:
            raise ValueError(
                "ClipWindows: one step per clip, num_frames >= 1, window_stride >= 1 and open_files >= 1"
            )
        self.clips = tuple(clips)
        self.steps = tuple(int(s) for s in steps)
        self.ranges = (
            tuple((0, c.frames) for c in self.clips)
            if ranges is None
            else tuple((int(a), min(int(b), c.frames)) for (a, b), c in zip(ranges, self.clips, strict=True))
        )
        self.cached = (None,) * len(self.clips) if cached is None else tuple(cached)
        if len(self.cached) != len(self.clips):
            raise ValueError("ClipWindows: one cache file (or None) per clip")
        self.num_frames = num_frames
        self.window_stride = window_stride
        self.framing = framing
        self.shuffle_seed = shuffle_seed
        self.open_files = open_files
        counts = [
            max(0, (stop - first - span(num_frames, s)) // window_stride + 1)
            for (first, stop), s in zip(self.ranges, self.steps, strict=True)
        ]
        self.ends = np.cumsum(counts, dtype=np.int64)  # windows of clips 0..i
        self._perm: tuple[int, np.ndarray] | None = None  # (pass, permutation): a cache, not state
        self._maps: OrderedDict[int, np.ndarray] = OrderedDict()  # clip -> open memmap, LRU order

    def __getstate__(self) -> dict[str, Any]:
        # Worker processes (spawn) get the paths, never the mapped arrays.
        return {**self.__dict__, "_maps": OrderedDict(), "_perm": None}

    def __len__(self) -> int:
        return int(self.ends[-1]) if len(self.ends) else 0

    def window(self, k: int) -> tuple[int, int]:
        """(clip index, start frame) of window ``k`` (``0 <= k < len``)."""
        if not 0 <= k < len(self):
            raise IndexError(f"ClipWindows: window {k} of {len(self)}")
        clip = int(np.searchsorted(self.ends, k, side="right"))
        before = int(self.ends[clip - 1]) if clip else 0
        return clip, self.ranges[clip][0] + (k - before) * self.window_stride

    def frame_indices(self, k: int) -> tuple[int, list[int]]:
        """(clip index, frame indices) of window ``k``."""
        clip, start = self.window(k)
        step = self.steps[clip]
        return clip, list(range(start, start + span(self.num_frames, step), step))

    def _window_of(self, index: int) -> int:
        if self.shuffle_seed is None:
            return index
        n = len(self)
        epoch, j = divmod(index, n)
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, np.random.default_rng((self.shuffle_seed, epoch)).permutation(n))
        return int(self._perm[1][j])

    def _mapped(self, clip: int, path: Path) -> np.ndarray:
        frames = self._maps.get(clip)
        if frames is None:
            frames = open_cached(path)
            self._maps[clip] = frames
            while len(self._maps) > self.open_files:
                self._maps.popitem(last=False)  # the map (and its descriptor) goes with the last reference
        else:
            self._maps.move_to_end(clip)
        return frames

    def read(self, index: int) -> np.ndarray:
        """Item ``index`` as uint8. Shape: (T, C, H, W)."""
        if index < 0 or (self.shuffle_seed is None and index >= len(self)):
            raise IndexError(f"ClipWindows: index {index} of {len(self)}")
        clip, indices = self.frame_indices(self._window_of(index))
        path = self.cached[clip]
        # A cached clip holds every frame at the framing's scaled size and channels: framing them again
        # only cuts (the same cut, drawn from the same generator), so both ways give the same bytes.
        frames = read_frames(self.clips[clip], indices) if path is None else self._mapped(clip, path)[indices]
        rng = None if self.shuffle_seed is None else sequence_rng(self.shuffle_seed, index, _CROP_STREAM)
        return self.framing.apply(frames, rng)

    def raw(self, index: int) -> np.ndarray:
        """Item ``index`` as uint8 (:meth:`read`). Shape: (T, C, H, W)."""
        return self.read(int(index))

    def __getitem__(self, index: int) -> torch.Tensor:
        """Item ``index`` as float32 in [0, 1]. Shape: (T, C, H, W)."""
        return unit_float(self.raw(index))  # the training loaders' batches are these items, stacked


def spread(n: int, limit: int | None) -> list[int]:
    """``limit`` indices spread evenly over ``range(n)`` (all of them when ``limit`` is None or >= n)."""
    if limit is None or limit >= n:
        return list(range(n))
    return sorted({int(v) for v in np.linspace(0, n - 1, limit).round()})


def windows_test_set(
    windows: ClipWindows, name: str, limit: int | None = None, path: Path | None = None
) -> TestSet:
    """Read (up to ``limit``, evenly spread) windows into a uint8 :class:`~crevnet.data.testset.TestSet`.

    Only the test windows are held (N·T·C·H·W bytes, e.g. 100 windows of 20 RGB 64×64 frames:
    25 MB), never the videos. The set is scored against :data:`FOLDER_BASELINES`.

    Raises:
        DataError: no window.
    """
    if len(windows) == 0:
        raise DataError(f"{name}: no window of {windows.num_frames} frames fits in these clips")
    picks = spread(len(windows), limit)
    videos = torch.from_numpy(np.stack([windows.read(i) for i in picks]))  # (N, T, C, H, W)
    return TestSet(videos, f"{name} (N={len(picks)} windows)", False, path, baselines=FOLDER_BASELINES)


def folder_eval_settings(hparams: Mapping[str, Any], state: Mapping[str, Any]) -> dict[str, Any]:
    """How a checkpoint's training windows were made (stride, fps, resize, frames, split), if recorded.

    Args:
        hparams: the checkpoint's ``datamodule_hyper_parameters``.
        state: the video-folder data module's recorded state (``{"split": ...}``, and for a split by
            time ``"split_by": "time"`` and ``"cuts"``), or empty.
    """
    keys = ("num_frames", "frame_stride", "fps", "resize", "root")
    settings = {k: hparams[k] for k in keys if k in hparams}
    if state.get("split"):
        settings["split"] = dict(state)
    return settings


def folder_test_set(
    folder: str | os.PathLike[str],
    settings: Mapping[str, Any],
    framing: Framing,
    context: int,
    horizon: int | None = None,
    limit: int | None = None,
    all_files: bool = False,
) -> tuple[TestSet, int]:
    """The test set ``crevnet evaluate --test-set DIR`` scores: windows of the clips in ``folder``.

    Windows take the frame stride and frame rate the checkpoint was trained with (``settings``), the
    given framing (the model's channels, training frame size and framing; random crops become centre
    crops), and ``context + horizon`` frames (``horizon`` default: the training windows' frames minus
    ``context``, else :data:`~crevnet.nn.model.DEFAULT_HORIZON`); they do not overlap. When ``folder``
    is the root the checkpoint was trained on and the checkpoint records its split, only the held-out
    test clips are used, or, for a split by time, only the test part (the end) of every clip
    (``all_files``: every clip, whole), so the score never includes a training frame.

    Args:
        folder: the clips (recursive).
        settings: the checkpoint's data settings (:func:`folder_eval_settings`).
        framing: how frames are brought to the model's size and channels.
        context: observed frames.
        horizon: predicted frames (None: see above).
        limit: score at most this many windows, evenly spread (None: all).
        all_files: ignore the recorded split.

    Returns:
        The test set (scored against :data:`FOLDER_BASELINES`) and the horizon.

    Raises:
        DataError: no usable clip (see :func:`load_folder_clips`).
    """
    folder = Path(folder)
    if horizon is None:
        horizon = int(settings["num_frames"]) - context if "num_frames" in settings else DEFAULT_HORIZON
        horizon = max(1, horizon)
    stride, fps = int(settings.get("frame_stride", 1)), settings.get("fps")
    found = load_folder_clips(folder, context + horizon, framing, stride, fps, warn=_log.warning)
    clips = found.clips
    name = f"clips in {folder}"
    ranges = None
    split = settings.get("split", {})
    if not all_files and split and Path(split.get("root", "")) == folder.resolve():
        if split.get("split_by") == "time":
            cuts = split.get("cuts", {})
            clips = tuple(c for c in clips if found.name(c) in cuts)
            ranges = [(cuts[found.name(c)][1], cuts[found.name(c)][2]) for c in clips]
            name = f"held-out test parts (the end of every clip) of {folder} (split recorded in checkpoint)"
            _log.info(
                "evaluate: %s is the training folder, split by time; scoring the held-out last part "
                "of its %d clip(s) only",
                folder,
                len(clips),
            )
            if not clips:
                raise DataError(f"{folder}: none of the checkpoint's clips is usable here")
        else:
            held_out = set(split["split"].get("test", []))
            clips = tuple(c for c in clips if found.name(c) in held_out)
            name = f"held-out test clips of {folder} (split recorded in the checkpoint)"
            _log.info(
                "evaluate: %s is the training folder; scoring its %d held-out test clip(s) only",
                folder,
                len(clips),
            )
            if not clips:
                raise DataError(f"{folder}: none of the checkpoint's held-out test clips is usable here")
    _log.info("evaluate: %s: %s", folder, found.summary())
    for note in found.notes:
        _log.info("note: %s", note)
    steps = [clip_step(c, stride, fps) for c in clips]
    stride_windows = max(span(context + horizon, s) for s in steps)
    windows = ClipWindows(clips, steps, context + horizon, stride_windows, framing, ranges=ranges)
    return windows_test_set(windows, name, limit, folder.resolve()), horizon
