"""The split by time: the end of every clip held out, no window across a cut, recorded and scored alone."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import lightning as L
import pytest
import torch

from crevnet.data.folder_datamodule import VideoFolderDataModule
from crevnet.data.framing import Framing
from crevnet.data.video_folder import (
    folder_eval_settings,
    folder_test_set,
    span,
    split_by_time,
    time_parts,
)
from crevnet.errors import DataError
from crevnet.io.checkpoint import read_checkpoint

LENGTHS = {"a.avi": 30, "b.gif": 24, "c_frames": 28}


@pytest.fixture
def folder(tmp_path: Path, clip_factory) -> Path:
    """Three colour clips (30, 24 and 28 frames) of three containers; frame i carries its index."""
    root = tmp_path / "clips"
    for k, (name, frames) in enumerate(LENGTHS.items()):
        clip_factory.write_clip(root / name, clip_factory.indexed_frames(frames, 16, 24, hue=60 * k))
    return root


def _module(root: Path, **kwargs) -> VideoFolderDataModule:
    args = {"num_frames": 4, "size": (16, 16), "split_by": "time", "val_fraction": 0.2, "test_fraction": 0.2}
    dm = VideoFolderDataModule(str(root), **{**args, **kwargs})
    dm.setup("fit")
    return dm


@pytest.mark.parametrize("frames", [9, 10, 17, 30, 100, 1001])
@pytest.mark.parametrize("need", [1, 3, 7])
def test_time_parts_are_disjoint_cover_the_clip_and_hold_a_window_each(frames: int, need: int) -> None:
    parts = time_parts(frames, need, 0.15, 0.2)
    if parts is None:
        assert frames < 3 * need  # with these fractions only a clip shorter than three windows fails
        return
    val, test = parts
    pieces = [range(0, val), range(val, test), range(test, frames)]
    assert [i for piece in pieces for i in piece] == list(range(frames))  # disjoint, in order, cover
    assert min(len(piece) for piece in pieces) >= need
    assert frames - test >= round(frames * 0.2) and test - val >= round(frames * 0.15)


def test_a_clip_too_short_is_one_error_naming_it_the_frames_it_needs_and_what_to_pass() -> None:
    frames = {"long.mp4": 100, "short.avi": 20, "tiny/x.gif": 25}
    needs = dict.fromkeys(frames, 9)
    with pytest.raises(DataError) as err:
        split_by_time(frames, needs, 0.15, 0.15, num_frames=5)
    message = str(err.value)
    assert "2 clip(s) too short for a split by time" in message
    assert "short.avi (20 frames, needs 27)" in message and "tiny/x.gif (25 frames, needs 27)" in message
    assert "long.mp4" not in message
    assert "data.val_fraction / data.test_fraction, data.num_frames or data.frame_stride" in message
    assert "data.split_by file" in message and "5-frame window" in message
    assert time_parts(27, 9, 0.15, 0.15) is not None and time_parts(26, 9, 0.15, 0.15) is None


def test_too_short_in_the_data_module_says_so_in_one_line(folder: Path) -> None:
    with pytest.raises(DataError, match=r"1 clip\(s\) too short for a split by time.*b\.gif \(24 frames"):
        _module(folder, num_frames=9)


def test_no_window_crosses_a_cut_and_each_part_reads_its_own_frames(folder: Path, clip_factory) -> None:
    dm = _module(folder)
    cuts = dm.state_dict()["cuts"]
    assert cuts == {"a.avi": [18, 24, 30], "b.gif": [14, 19, 24], "c_frames": [16, 22, 28]}
    assert dm.split == {key: sorted(LENGTHS) for key in ("train", "val", "test")}  # every clip trains
    bounds = {"train": (0, 0), "val": (0, 1), "test": (1, 2)}
    seen: dict[str, set[int]] = {name: set() for name in LENGTHS}
    for part, (lo, hi) in bounds.items():
        windows = dm.windows(part)
        assert len(windows) > 0
        for k in range(len(windows)):
            clip, indices = windows.frame_indices(k)
            name = windows.clips[clip].path.name
            first = 0 if part == "train" else cuts[name][lo]
            assert first <= indices[0] and indices[-1] < cuts[name][hi], (part, name, indices)
            seen[name].update(indices)
        for k in (0, len(windows) - 1):  # the frames decoded are those indices
            clip, indices = windows.frame_indices(windows._window_of(k))  # train: a shuffled stream
            got = [clip_factory.frame_index(f) for f in windows.read(k)]
            assert got == indices
    for name in LENGTHS:  # every part made windows of every clip
        assert max(seen[name]) >= cuts[name][1] and min(seen[name]) == 0


def test_training_stream_uses_only_the_train_part(folder: Path) -> None:
    dm = _module(folder, window_stride=1)
    windows = dm.windows("train")
    n = len(windows)
    assert n == sum(cut[0] - span(4, 1) + 1 for cut in dm.cuts.values())
    starts = {windows.frame_indices(windows._window_of(i))[1][-1] for i in range(3 * n)}
    assert max(starts) < max(cut[0] for cut in dm.cuts.values())


def test_the_split_is_recorded_and_restored_from_a_checkpoint(folder: Path, capsys) -> None:
    dm = _module(folder)
    state = dm.state_dict()
    assert state["split_by"] == "time" and state["root"] == str(folder.resolve())
    fresh = _module(folder)
    capsys.readouterr()
    fresh.load_state_dict(state)
    assert capsys.readouterr().err == ""  # the same cuts: nothing to say
    assert fresh.state_dict() == state
    other = _module(folder, test_fraction=0.3, val_fraction=0.1)
    capsys.readouterr()
    other.load_state_dict(state)
    note = capsys.readouterr().err
    assert "split differently from the checkpoint's recorded split by time" in note
    assert "cut at other frames" in note and "a.avi" in note
    by_file = VideoFolderDataModule(
        str(folder), num_frames=4, size=(16, 16), val_fraction=0.2, test_fraction=0.2
    )
    by_file.setup("fit")
    capsys.readouterr()
    by_file.load_state_dict(state)
    note = capsys.readouterr().err
    assert (
        "the checkpoint was split by time, this run by file (--data.split_by time splits as it did)" in note
    )
    assert "split_by" not in by_file.state_dict()  # a split by file is recorded as before


def test_evaluate_on_the_training_folder_scores_only_the_test_part(
    folder: Path, clip_factory, caplog
) -> None:
    dm = _module(folder)
    hparams = dict(dm.hparams)
    settings = folder_eval_settings(hparams, dm.state_dict())
    framing = Framing((16, 16), "center_crop", 3)
    with caplog.at_level(logging.INFO, logger="crevnet"):  # the library logs; `crevnet evaluate` shows it
        test, horizon = folder_test_set(folder, settings, framing, context=2)
    assert horizon == 2
    assert "split by time; scoring the held-out last part of its 3 clip(s) only" in caplog.text
    assert test.name.startswith("held-out test parts")
    firsts = sorted(clip_factory.frame_index(w[0].numpy()) for w in test.videos)
    assert firsts == [19, 22, 24]  # one disjoint 4-frame window in each clip's test part: b.gif, c, a.avi
    everything, _ = folder_test_set(folder, settings, framing, context=2, all_files=True)
    assert len(everything) == sum(n // 4 for n in LENGTHS.values())
    dm.setup("test")
    assert torch.equal(dm.test_data.videos, test.videos)  # the data module's test set is the same


class _Crash(L.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError("simulated crash")


def test_resume_mid_epoch_continues_exactly_and_evaluate_scores_the_test_parts(
    folder: Path, tmp_path: Path, clip_factory, monkeypatch, run_cli
) -> None:
    from crevnet.train.cli import CrevNetCLI

    config = tmp_path / "tiny.yaml"
    config.write_text(clip_factory.TINY_FOLDER_CONFIG)
    monkeypatch.chdir(tmp_path)
    common = [
        "fit",
        "--config",
        str(config),
        f"--data.root={folder}",
        "--data.split_by=time",
        "--data.train_size=8",  # 4 batches of 2 per epoch: step 3 is mid-epoch
        "--trainer.max_steps=6",
        "--trainer.callbacks=[]",
        "--checkpoint.every_n_train_steps=1",
    ]

    def fit(root: Path, extra: list[str] = (), callbacks=None):
        args = [*common, *extra, f"--trainer.logger.init_args.save_dir={root}"]
        return CrevNetCLI(args=args, trainer_defaults={"callbacks": callbacks} if callbacks else None)

    straight = fit(tmp_path / "a")
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(tmp_path / "b", callbacks=[_Crash(3)])
    last = tmp_path / "b" / "folder" / "version_0" / "checkpoints" / "last.ckpt"
    assert read_checkpoint(last)["global_step"] == 3
    resumed = fit(tmp_path / "b", ["--ckpt_path=last"])
    assert resumed.trainer.global_step == straight.trainer.global_step == 6
    assert resumed.datamodule.state_dict() == straight.datamodule.state_dict()
    for name, value in straight.model.state_dict().items():
        torch.testing.assert_close(value, resumed.model.state_dict()[name], rtol=1e-5, atol=1e-6)
    # crevnet evaluate on the training folder: the checkpoint's cuts, the test parts only
    out = tmp_path / "eval"
    argv = ["evaluate", "--ckpt", str(last), "--test-set", str(folder), "--out", str(out), "--no-progress"]
    code, _, err = run_cli(*argv, "--samples", "0")
    assert code == 0, err
    assert "split by time; scoring the held-out last part of its 3 clip(s) only" in err
    results = json.loads((out / "metrics.json").read_text())
    assert results["num_sequences"] == 3  # one disjoint 5-frame window in each clip's test part
    assert results["test_set"].startswith("held-out test parts")
