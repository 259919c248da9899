"""The per-clip frame cache: hits and misses, invalidation, damaged files, and bit-equal windows."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from crevnet.data import cache as cache_module
from crevnet.data.cache import CACHE_DIR_NAME, FrameCache, cache_shape, content_key, open_cached
from crevnet.data.clips import iter_frames, probe_clip, read_frames
from crevnet.data.folder_datamodule import VideoFolderDataModule
from crevnet.data.framing import Framing
from crevnet.data.video_folder import ClipWindows, load_folder_clips
from crevnet.errors import DataError
from crevnet.io.atomic import TEMP_MARK

FRAMING = Framing((16, 16), "center_crop", 3)


@pytest.fixture
def clip(tmp_path: Path, clip_factory):
    """A 20-frame 24×32 colour AVI (frame i carries its index)."""
    path = clip_factory.write_clip(tmp_path / "clips" / "a.avi", clip_factory.indexed_frames(20, 24, 32))
    return probe_clip(path)


def _notes() -> tuple[list[str], object]:
    lines: list[str] = []
    return lines, lines.append


def test_a_miss_builds_the_file_and_a_hit_reads_it(clip, tmp_path: Path) -> None:
    lines, note = _notes()
    cache = FrameCache(tmp_path / "cache", note)
    assert cache.lookup(clip, "a.avi", FRAMING) is None
    (path,) = cache.ensure([clip], ["a.avi"], FRAMING)
    assert path is not None and path.parent == tmp_path / "cache"
    assert path.name == f"a.avi.{content_key(clip.path)}.16x22x3.v1.npy"  # 24×32 scaled to cover 16×16
    assert "cache: decoding 1 clip(s) (20 frames) once into" in lines[0]
    assert lines[1].startswith("cache: 1 clip(s) cached in ")
    frames = open_cached(path)
    assert isinstance(frames, np.memmap) and frames.shape == cache_shape(clip, FRAMING) == (20, 16, 22, 3)
    written = path.stat().st_mtime_ns
    lines.clear()
    assert cache.ensure([clip], ["a.avi"], FRAMING) == [path]
    assert lines == [f"cache: 1 clip(s) read from {tmp_path / 'cache'} (0.0 MB)"]
    assert path.stat().st_mtime_ns == written  # not rewritten


def test_a_changed_clip_is_rebuilt_and_its_old_file_removed(clip, tmp_path: Path, clip_factory) -> None:
    cache = FrameCache(tmp_path / "cache", lambda _: None)
    (old,) = cache.ensure([clip], ["a.avi"], FRAMING)
    reversed_frames = clip_factory.indexed_frames(20, 24, 32)[::-1].copy()
    clip_factory.write_clip(clip.path, reversed_frames)
    os.utime(clip.path, ns=(1, 1))  # even with an mtime from the past, the content hash differs
    changed = probe_clip(clip.path)
    assert cache.lookup(changed, "a.avi", FRAMING) is None
    (new,) = cache.ensure([changed], ["a.avi"], FRAMING)
    assert new != old and not old.exists()
    assert clip_factory.frame_index(open_cached(new)[0].transpose(2, 0, 1)) == 19


def test_a_framing_change_is_another_file_and_both_stay(clip, tmp_path: Path) -> None:
    cache = FrameCache(tmp_path / "cache", lambda _: None)
    (small,) = cache.ensure([clip], ["a.avi"], FRAMING)
    (grey,) = cache.ensure([clip], ["a.avi"], Framing((16, 16), "center_crop", 1))
    (resized,) = cache.ensure([clip], ["a.avi"], Framing((8, 8), "resize", 3))
    assert len({small, grey, resized}) == 3 and all(p.exists() for p in (small, grey, resized))
    assert open_cached(grey).shape == (20, 16, 22, 1) and open_cached(resized).shape == (20, 8, 8, 3)
    # random and centre crops of one size share a file: the cut is made when a window is read
    assert cache.lookup(clip, "a.avi", Framing((16, 16), "random_crop", 3)) == small


def test_a_cache_of_another_version_is_rebuilt(clip, tmp_path: Path, monkeypatch) -> None:
    cache = FrameCache(tmp_path / "cache", lambda _: None)
    (old,) = cache.ensure([clip], ["a.avi"], FRAMING)
    frames = np.array(open_cached(old))
    monkeypatch.setattr(cache_module, "CACHE_VERSION", 2)
    assert cache.lookup(clip, "a.avi", FRAMING) is None
    (new,) = cache.ensure([clip], ["a.avi"], FRAMING)
    assert new.name.endswith(".v2.npy") and not old.exists()
    assert np.array_equal(open_cached(new), frames)


def test_a_partial_file_is_never_trusted(clip, tmp_path: Path) -> None:
    lines, note = _notes()
    cache = FrameCache(tmp_path / "cache", note)
    (path,) = cache.ensure([clip], ["a.avi"], FRAMING)
    whole = path.read_bytes()
    # a run killed mid-write leaves the atomic writer's temporary file (of a process that is gone)
    dead = 2**22 + 12345
    temp = path.parent / f".{path.name}.{dead}-0badc0de{TEMP_MARK}.tmp"
    temp.write_bytes(whole[: len(whole) // 2])
    # and a file damaged at the real name: truncated (a copy cut short), or its tail lost
    path.write_bytes(whole[: len(whole) - 100])
    assert cache.lookup(clip, "a.avi", FRAMING) is None
    lines.clear()
    assert cache.ensure([clip], ["a.avi"], FRAMING) == [path]
    assert "decoding 1 clip(s)" in lines[0]
    assert path.read_bytes() == whole and not temp.exists()  # rebuilt; the dead writer's debris removed
    path.write_bytes(whole[:60])  # only the header's start
    assert cache.lookup(clip, "a.avi", FRAMING) is None
    path.write_bytes(whole + b"\0")  # longer than its header says
    assert cache.lookup(clip, "a.avi", FRAMING) is None


def test_an_unwritable_cache_is_said_once_and_the_clips_are_read_directly(clip, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    lines, note = _notes()
    assert FrameCache(blocker / "cache", note).ensure([clip], ["a.avi"], FRAMING) == [None]
    assert any(line.startswith("warning: cache: cannot write") for line in lines)
    assert "reading the clips directly" in lines[-1]


@pytest.mark.parametrize(
    ("mode", "size", "channels"),
    [
        ("random_crop", (16, 16), 3),
        ("center_crop", (16, 16), 1),
        ("resize", (12, 20), 3),
        ("center_crop", (8, 24), 3),
        ("random_crop", (20, 12), 1),
    ],
)
def test_windows_from_the_cache_are_bit_equal_to_windows_decoded_directly(
    tmp_path: Path, clip_factory, mode: str, size: tuple[int, int], channels: int
) -> None:
    root = tmp_path / "clips"
    shapes = {"a.avi": (24, 32), "b.gif": (30, 22), "c_frames": (17, 23), "d.mp4": (32, 32)}
    for k, (name, (h, w)) in enumerate(shapes.items()):
        frames = clip_factory.indexed_frames(14 + k, h, w, colour=k != 2, hue=50 * k)
        clip_factory.write_clip(root / name, frames)
    framing = Framing(size, mode, channels)  # type: ignore[arg-type]
    clips = load_folder_clips(root, 4, framing).clips
    cached = FrameCache(tmp_path / "cache", lambda _: None).ensure(
        clips, [c.path.name for c in clips], framing
    )
    assert all(p is not None for p in cached)
    for seed in (None, 5):
        direct = ClipWindows(clips, [2] * 4, 4, 1, framing, seed)
        from_cache = ClipWindows(clips, [2] * 4, 4, 1, framing, seed, cached=cached, open_files=2)
        assert len(direct) == len(from_cache)
        for i in range(len(direct) + (3 if seed is not None else 0)):
            assert np.array_equal(direct.read(i), from_cache.read(i)), i
        assert len(from_cache._maps) <= 2  # open maps stay bounded
    whole = read_frames(clips[0], range(clips[0].frames))
    assert open_cached(cached[0]).shape[0] == len(whole)


def test_windows_pickle_without_their_maps(clip, tmp_path: Path) -> None:
    (path,) = FrameCache(tmp_path / "cache", lambda _: None).ensure([clip], ["a.avi"], FRAMING)
    windows = ClipWindows([clip], [1], 4, 1, FRAMING, cached=[path])
    first = windows.read(0)
    assert len(windows._maps) == 1
    copy = pickle.loads(pickle.dumps(windows))  # a spawned DataLoader worker
    assert len(copy._maps) == 0 and np.array_equal(copy.read(0), first)
    assert len(pickle.dumps(windows)) < 4096  # paths, not frames


def test_the_data_module_caches_once_in_the_root_and_can_do_without(
    tmp_path: Path, clip_factory, capsys
) -> None:
    root = tmp_path / "clips"
    for k in range(4):
        clip_factory.write_clip(root / f"{k}.avi", clip_factory.indexed_frames(16, 24, 32, hue=40 * k))

    def make(**kwargs) -> VideoFolderDataModule:
        dm = VideoFolderDataModule(str(root), num_frames=4, size=(16, 16), resize="random_crop", **kwargs)
        dm.setup("fit")
        return dm

    dm = make()
    train, val = dm.windows("train"), dm.windows("val")
    err = capsys.readouterr().err
    assert err.count("cache: decoding") == 1  # train (random crops) and val (centre) share the files
    assert f"{root / CACHE_DIR_NAME}" in err and "4 clip(s) cached in" in err
    assert len(list((root / CACHE_DIR_NAME).glob("*.npy"))) == 4
    assert all(p is not None for p in train.cached + val.cached)
    direct = make(cache=False)
    assert direct.windows("train").cached == (None, None)
    assert "cache:" not in capsys.readouterr().err
    for i in range(10):
        assert np.array_equal(train.read(i), direct.windows("train").read(i))
    again = make()
    again.windows("train")
    assert "cache: 4 clip(s) read from" in capsys.readouterr().err  # the cache dir is not a clip either
    elsewhere = make(cache_dir=str(tmp_path / "elsewhere"))
    elsewhere.windows("val")
    assert len(list((tmp_path / "elsewhere").glob("*.npy"))) == 4  # every part cached in one go


@pytest.mark.parametrize("chunk", [1, 3, 7, 64])
def test_one_sequential_pass_gives_the_frames_of_read_frames(
    tmp_path: Path, clip_factory, chunk: int
) -> None:
    # The cache is built from iter_frames (no seek per chunk); read_frames serves direct windows.
    root = tmp_path / "clips"
    shapes = {"a.avi": (24, 32), "b.gif": (30, 22), "c_frames": (17, 23), "d.mp4": (32, 32)}
    for k, (name, (h, w)) in enumerate(shapes.items()):
        frames = clip_factory.indexed_frames(11 + k, h, w, colour=k != 2, hue=50 * k)
        clip_factory.write_clip(root / name, frames)
    for clip in load_folder_clips(root, 4, FRAMING).clips:
        chunks = list(iter_frames(clip, chunk))
        assert all(len(c) <= chunk for c in chunks) and sum(len(c) for c in chunks) == clip.frames
        first = 0
        for part in chunks:
            expected = read_frames(clip, range(first, first + len(part)))
            assert np.array_equal(part, expected), (clip.path.name, first)
            first += len(part)


def test_a_clip_that_ends_early_is_one_error(clip) -> None:
    import dataclasses

    longer = dataclasses.replace(clip, frames=clip.frames + 2)
    with pytest.raises(DataError, match=r"a\.avi: frame 20 could not be decoded"):
        list(iter_frames(longer, 8))


def test_the_data_module_prefetches_the_same_training_batches_bit_for_bit(
    tmp_path: Path, clip_factory
) -> None:
    import threading

    import torch

    root = tmp_path / "clips"
    for k in range(4):
        clip_factory.write_clip(root / f"{k}.avi", clip_factory.indexed_frames(16, 24, 32, hue=40 * k))

    def make(**kwargs) -> VideoFolderDataModule:
        dm = VideoFolderDataModule(
            str(root), num_frames=4, size=(16, 16), resize="random_crop", batch_size=3, **kwargs
        )
        dm.setup("fit")
        return dm

    plain, ahead = make(), make(prefetch_batches=2)
    assert set(plain.cache_files()) == {f"{k}.avi" for k in range(4)}
    assert all(p is not None and p.is_file() for p in plain.cache_files().values())
    assert make(cache=False).cache_files() == {}
    loaders = plain.train_dataloader(), ahead.train_dataloader()
    for epoch in (0, 1):
        for loader in loaders:
            loader.sampler.set_epoch(epoch)
        expected, got = (list(loader) for loader in loaders)
        assert len(expected) == len(got) > 2
        assert all(torch.equal(a, b) for a, b in zip(expected, got, strict=True))
    live = iter(loaders[1])
    next(live)
    ahead.teardown("fit")  # end of fit: the prefetch thread is stopped
    assert not live.alive
    assert not [t for t in threading.enumerate() if t.name == "crevnet-prefetch"]
    with pytest.raises(ValueError, match="prefetch_batches"):
        make(prefetch_batches=-1)
