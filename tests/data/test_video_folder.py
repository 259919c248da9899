"""A folder of real clips: probing, frame order, framing, the split by file, windows and every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from crevnet.data.clips import find_clips, probe_clip, read_frames, scan_clips
from crevnet.data.folder_datamodule import VideoFolderDataModule
from crevnet.data.framing import Framing
from crevnet.data.video_folder import ClipWindows, load_folder_clips, split_by_file
from crevnet.errors import DataError

CONTAINERS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif", "")  # "": a folder of PNG frames


@pytest.fixture
def folder(tmp_path: Path, clip_factory) -> Path:
    """Seven colour clips of several containers and sizes (frames 24..30, 10-25 fps)."""
    root = tmp_path / "clips"
    sizes = [(24, 32), (32, 32), (40, 24), (24, 32), (32, 48), (24, 24), (32, 40)]
    for k, (suffix, (h, w)) in enumerate(zip(CONTAINERS, sizes, strict=True)):
        frames = clip_factory.indexed_frames(24 + k, h, w, hue=30 * k)
        sub = "nested/" if k % 2 else ""
        clip_factory.write_clip(root / f"{sub}clip{k}{suffix or '_frames'}", frames, fps=10)
    return root


def test_every_container_is_found_probed_and_counted(folder: Path) -> None:
    paths = find_clips(folder)
    assert len(paths) == len(CONTAINERS)
    for k, path in enumerate(sorted(paths, key=lambda p: p.name)):
        info = probe_clip(path)
        assert info.frames == 24 + k, path  # counted by decoding, not from the header
        assert info.channels == 3


@pytest.mark.parametrize("suffix", CONTAINERS)
def test_read_frames_returns_the_requested_frames_in_order(tmp_path: Path, clip_factory, suffix: str) -> None:
    frames = clip_factory.indexed_frames(30, 24, 32)
    path = clip_factory.write_clip(tmp_path / f"c{suffix or '_frames'}", frames)
    info = probe_clip(path)
    wanted = [7, 9, 11, 13, 27]
    got = read_frames(info, wanted)
    assert got.shape == (5, 24, 32, 3) and got.dtype == np.uint8
    assert [clip_factory.frame_index(f.transpose(2, 0, 1)) for f in got] == wanted
    with pytest.raises(DataError, match=r"expected increasing indices in 0\.\.29"):
        read_frames(info, [28, 30])


def test_framing_modes_sizes_and_channels() -> None:
    frames = np.zeros((2, 20, 40, 3), dtype=np.uint8)
    frames[:, :, :10] = 255  # white left quarter
    frames[:, :, 30:, 0] = 200  # red right quarter
    resized = Framing((8, 8), "resize", 3).apply(frames)
    assert resized.shape == (2, 3, 8, 8)
    assert resized[0, 1, :, 0].min() == 255 and resized[0, 0, :, -1].min() >= 199  # both quarters kept
    centre = Framing((8, 8), "center_crop", 3).apply(frames)
    assert centre.shape == (2, 3, 8, 8)  # scaled to 8x16, the middle 8 columns: no white, no red
    assert centre.max() == 0
    crops = {
        Framing((8, 8), "random_crop", 3).apply(frames, np.random.default_rng(s))[0].sum() for s in range(20)
    }
    assert len(crops) > 1  # the cut moves
    grey = Framing((8, 8), "resize", 1).apply(frames)
    assert grey.shape == (2, 1, 8, 8)
    assert grey[0, 0, 0, -1] == round(0.299 * 200)  # BT.601 luma of the red quarter
    colour = Framing((8, 8), "resize", 3).apply(grey.transpose(0, 2, 3, 1))
    assert colour.shape == (2, 3, 8, 8) and (colour[:, 0] == colour[:, 2]).all()
    with pytest.raises(ValueError, match="expected one of resize, center_crop, random_crop"):
        Framing((8, 8), "stretch", 3)  # type: ignore[arg-type]


def test_split_is_by_file_deterministic_and_seeded() -> None:
    names = [f"v{i:02d}.mp4" for i in range(20)]
    split = split_by_file(names, 0.15, 0.15, seed=3)
    assert [len(split[k]) for k in ("train", "val", "test")] == [14, 3, 3]
    assert sorted(name for part in split.values() for name in part) == names  # every file in exactly one part
    assert (
        split_by_file(list(reversed(names)), 0.15, 0.15, seed=3) == split
    )  # order of discovery is irrelevant
    assert split_by_file(names, 0.15, 0.15, seed=4) != split
    with pytest.raises(DataError, match="2 usable clip\\(s\\); a split by file needs at least 3"):
        split_by_file(names[:2], 0.15, 0.15, seed=0)


def test_windows_have_the_right_shape_order_and_stride(folder: Path, clip_factory) -> None:
    found = load_folder_clips(
        folder, num_frames=5, framing=Framing((16, 16), "center_crop", 3), frame_stride=2
    )
    windows = ClipWindows(found.clips, [2] * len(found.clips), 5, 3, Framing((16, 16), "center_crop", 3))
    # clip k has 24 + k frames; a window spans 9 frames; starts every 3 frames
    assert len(windows) == sum((24 + k - 9) // 3 + 1 for k in range(7))
    for k in (0, 5, len(windows) - 1):
        _, start = windows.window(k)
        item = windows[k]
        assert item.shape == (5, 3, 16, 16) and item.dtype == torch.float32
        assert item.min() >= 0.0 and item.max() <= 1.0
        assert [clip_factory.frame_index(f.numpy()) for f in item] == list(range(start, start + 9, 2))
    shuffled = ClipWindows(found.clips, [2] * len(found.clips), 5, 3, Framing((16, 16), "random_crop", 3), 7)
    n = len(shuffled)
    first_pass = [shuffled._window_of(i) for i in range(n)]
    second_pass = [shuffled._window_of(n + i) for i in range(n)]
    assert sorted(first_pass) == sorted(second_pass) == list(range(n)) and first_pass != second_pass
    assert torch.equal(shuffled[n + 2], shuffled[n + 2])  # any index reads alone, reproducibly


def test_datamodule_splits_by_file_and_serves_colour_batches(folder: Path, tmp_path: Path, capsys) -> None:
    def make(seed: int = 0) -> VideoFolderDataModule:
        dm = VideoFolderDataModule(str(folder), num_frames=6, size=(16, 16), resize="random_crop", seed=seed)
        dm.setup("fit")
        return dm

    dm = make()
    err = capsys.readouterr().err
    assert f"video folder {folder}: 7 clip(s) used (split by file, seed 0)" in err
    assert "note: 6 frame sizes from 24×24 to 32×48: every frame is random_crop to 16×16" in err
    parts = dm.split
    assert [len(parts[k]) for k in ("train", "val", "test")] == [5, 1, 1]
    assert not set(parts["train"]) & (set(parts["val"]) | set(parts["test"]))
    assert make().split == parts and make(seed=1).split != parts
    batch = next(iter(dm.train_dataloader()))
    assert batch.shape == (8, 6, 3, 16, 16)
    val = next(iter(dm.val_dataloader()))
    assert val.shape[1:] == (6, 3, 16, 16)
    dm.setup("test")
    test_clip = folder / parts["test"][0]
    assert dm.test_data.videos.dtype == torch.uint8 and dm.test_data.videos.shape[1:] == (6, 3, 16, 16)
    assert dm.test_data.baselines == ("zeros", "copy_last", "mean_context")
    assert len(dm.test_data) == probe_clip(test_clip).frames // 6  # disjoint windows
    assert dm.state_dict() == {"root": str(folder.resolve()), "seed": 0, "split": parts}


def test_a_checkpoint_split_differently_is_named_with_the_reason_and_the_clips_it_trained_on(
    folder: Path, capsys
) -> None:
    def make(seed: int) -> VideoFolderDataModule:
        dm = VideoFolderDataModule(str(folder), num_frames=6, size=(16, 16), seed=seed)
        dm.setup("fit")
        return dm

    saved = make(1).state_dict()  # what a run with --data.seed 1 stores in its checkpoints
    dm = make(0)
    capsys.readouterr()
    dm.load_state_dict(saved)
    note = capsys.readouterr().err.strip()
    assert "checkpoint was split with seed 1, this run with seed 0 (--data.seed 1 splits as it did)" in note
    assert "files were added" not in note  # the same clips, only the seed differs
    trained = set(saved["split"]["train"]) & (set(dm.split["val"]) | set(dm.split["test"]))
    assert trained  # seed 0 holds out clips the seed-1 run trained on, so the scores would flatter it
    assert f"{len(trained)} of this run's val/test clips were training clips there: " in note
    assert all(name in note for name in trained)
    dm.load_state_dict(dm.state_dict())  # the same split: nothing to say
    assert capsys.readouterr().err == ""
    renamed = {**dm.state_dict(), "split": {**dm.split, "test": ["renamed.avi"]}}
    dm.load_state_dict(renamed)
    note = capsys.readouterr().err
    assert "files were added, removed or renamed" in note and "were training clips" not in note


def test_train_val_test_subfolders_are_the_split(tmp_path: Path, clip_factory, capsys) -> None:
    for part, n in (("train", 2), ("val", 1), ("test", 1)):
        for k in range(n):
            clip_factory.write_clip(tmp_path / part / f"{k}.avi", clip_factory.indexed_frames(12, 16, 16))
    dm = VideoFolderDataModule(str(tmp_path), num_frames=6, size=(16, 16))
    dm.setup()
    assert dm.split == {"train": ["train/0.avi", "train/1.avi"], "val": ["val/0.avi"], "test": ["test/0.avi"]}
    assert "train/ val/ test/ sub-folders" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ bad input


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no clips here")
    with pytest.raises(DataError, match=f"{tmp_path}: no clips found; expected video files"):
        load_folder_clips(tmp_path, 4, Framing())


def test_loose_frames_in_the_root_are_explained(tmp_path: Path, clip_factory) -> None:
    clip_factory.write_clip(tmp_path, clip_factory.indexed_frames(6, 8, 8))  # PNGs straight in the root
    with pytest.raises(DataError, match="put each clip's frames in its own sub-folder"):
        load_folder_clips(tmp_path, 4, Framing())


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such folder"):
        load_folder_clips(tmp_path / "absent", 4, Framing())


def test_no_readable_video(tmp_path: Path) -> None:
    (tmp_path / "a.mp4").write_bytes(b"not a video at all")
    (tmp_path / "b.gif").write_bytes(b"GIF89a broken")
    with pytest.raises(DataError, match="none of the 2 clip\\(s\\) could be read"):
        load_folder_clips(tmp_path, 4, Framing())


def test_one_unreadable_clip_is_skipped_with_one_warning_and_counted(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = folder / "nested" / "broken.mov"
    bad.write_bytes(b"\x00" * 100)
    found = load_folder_clips(folder, 4, Framing())
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"crevnet: warning: {bad}: skipped, ")
    assert len(found.clips) == 7
    assert found.summary() == "7 clip(s) used; skipped: 1 unreadable"


def test_too_short_clips_are_skipped_and_counted(folder: Path) -> None:
    found = load_folder_clips(folder, 14, Framing(), frame_stride=2)  # a window spans 27 frames
    assert sorted(c.frames for c in found.clips) == [27, 28, 29, 30]
    assert found.summary() == "4 clip(s) used; skipped: 3 shorter than a window (27 frames)"
    with pytest.raises(DataError, match="every clip is shorter than a window of 20 frames"):
        load_folder_clips(folder, 20, Framing(), frame_stride=2)


def test_grey_and_colour_are_converted_with_a_note(tmp_path: Path, clip_factory) -> None:
    clip_factory.write_clip(tmp_path / "grey.avi", clip_factory.indexed_frames(10, 16, 16, colour=False))
    clip_factory.write_clip(tmp_path / "grey_png", clip_factory.indexed_frames(10, 16, 16, colour=False))
    clip_factory.write_clip(tmp_path / "colour.mp4", clip_factory.indexed_frames(10, 16, 16))
    into_colour = load_folder_clips(tmp_path, 4, Framing((16, 16), channels=3))
    assert into_colour.notes == ("2 grey clip(s) converted grey -> RGB (grey.avi, grey_png)",)
    into_grey = load_folder_clips(tmp_path, 4, Framing((16, 16), channels=1))
    assert into_grey.notes == ("1 RGB clip(s) converted RGB -> grey (colour.mp4)",)
    windows = ClipWindows(into_colour.clips, [1, 1, 1], 4, 4, Framing((16, 16), channels=3))
    assert {tuple(windows[k].shape) for k in range(len(windows))} == {(4, 3, 16, 16)}
    windows = ClipWindows(into_grey.clips, [1, 1, 1], 4, 4, Framing((16, 16), channels=1))
    assert {tuple(windows[k].shape) for k in range(len(windows))} == {(4, 1, 16, 16)}


def test_mixed_frame_rates_are_noted_or_resampled(tmp_path: Path, clip_factory) -> None:
    clip_factory.write_clip(tmp_path / "slow.avi", clip_factory.indexed_frames(20, 16, 16), fps=10)
    clip_factory.write_clip(tmp_path / "fast.avi", clip_factory.indexed_frames(20, 16, 16), fps=20)
    found = load_folder_clips(tmp_path, 4, Framing((16, 16)))
    assert any("clips have frame rates 10, 20 fps" in note for note in found.notes)
    resampled = load_folder_clips(tmp_path, 4, Framing((16, 16)), fps=10)
    assert not any("frame rates" in note for note in resampled.notes)
    from crevnet.data.video_folder import clip_step

    assert sorted(clip_step(c, 1, 10) for c in resampled.clips) == [1, 2]  # 20 fps: every other frame


def test_index_file_caches_the_frame_counts(folder: Path, tmp_path: Path) -> None:
    index = tmp_path / "index.json"
    first = scan_clips(folder, index)
    assert index.is_file() and len(json.loads(index.read_text())["clips"]) == 7
    assert scan_clips(folder, index).clips == first.clips


@pytest.mark.parametrize("suffix", [".avi", ".gif", ""])
def test_a_black_first_frame_does_not_make_a_colour_clip_grey(
    tmp_path: Path, clip_factory, suffix: str
) -> None:
    frames = clip_factory.indexed_frames(20, 16, 16)
    frames[0] = 0  # fade-in from black: equal channels in the first frame only
    path = clip_factory.write_clip(tmp_path / f"fade{suffix or '_frames'}", frames)
    assert probe_clip(path).channels == 3
