"""A full disk: every output type keeps the old file, and the message names the target and "disk full"."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from crevnet.errors import OutputError
from crevnet.inference.predict import write_prediction
from crevnet.io.atomic import atomic_write_bytes
from crevnet.train.checkpoint_io import AtomicCheckpointIO

OUTPUTS = [".mp4", ".avi", ".gif", ".png", ".npy", ".json", ".md", ".ckpt"]


def _write(path: Path, seed: int) -> None:
    frames = torch.rand(6, 1, 16, 16, generator=torch.Generator().manual_seed(seed))
    suffix = path.suffix
    if suffix in (".mp4", ".gif", ".png", ".npy"):
        write_prediction(frames, path)
    elif suffix == ".avi":
        from crevnet.data.video import write_video

        write_video(frames, path)
    elif suffix in (".json", ".md"):
        atomic_write_bytes(path, str(frames.tolist()).encode())
    else:
        AtomicCheckpointIO().save_checkpoint({"global_step": seed, "w": frames}, path)


def _ours(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != "filler")


@pytest.mark.parametrize("suffix", OUTPUTS)
def test_a_full_disk_keeps_the_old_file_and_says_so(full_disk, suffix: str) -> None:
    target = full_disk.folder / f"out{suffix}"
    _write(target, 1)
    before = target.read_bytes()
    full_disk.fill()
    with pytest.raises(OutputError) as info:
        _write(target, 2)
    message = str(info.value)
    assert str(target) in message and "disk full" in message
    assert ".crevnet-tmp" not in message  # the user's name, never our temporary one
    assert target.read_bytes() == before
    assert _ours(full_disk.folder) == [target.name]  # no temporary file left behind


@pytest.fixture(scope="module")
def tiny(fit_tiny, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tiny")
    fit_tiny(folder / "tiny.ckpt", frames=6, size=16)
    clip = folder / "clip.npy"
    np.save(clip, (np.random.default_rng(0).random((6, 1, 16, 16)) * 255).astype(np.uint8))
    test = folder / "test.npy"
    np.save(test, (np.random.default_rng(1).random((6, 3, 16, 16)) * 255).astype(np.uint8))  # (T, N, H, W)
    return {"ckpt": folder / "tiny.ckpt", "clip": clip, "test": test}


def _error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert lines and lines[-1].startswith("crevnet: error: ") and "Traceback" not in err, err
    return lines[-1]


def test_predict_mp4_on_a_full_disk_exits_2_and_keeps_the_good_video(full_disk, tiny, run_cli) -> None:
    out = full_disk.folder / "pred.mp4"
    argv = ["predict", "--ckpt", str(tiny["ckpt"]), "--input", str(tiny["clip"]), "--horizon", "4"]
    argv += ["--out", str(out), "--device", "cpu", "--size", "keep"]
    code, stdout, err = run_cli(*argv)
    assert code == 0, err
    before = out.read_bytes()
    full_disk.fill()
    code, stdout, err = run_cli(*argv)
    assert code == 2 and "wrote" not in stdout
    line = _error_line(err)
    assert str(out) in line and "disk full" in line
    assert out.read_bytes() == before


def test_evaluate_on_a_full_disk_writes_the_whole_set_or_nothing(full_disk, tiny, run_cli) -> None:
    out = full_disk.folder / "eval"
    argv = ["evaluate", "--ckpt", str(tiny["ckpt"]), "--test-set", str(tiny["test"]), "--out", str(out)]
    argv += ["--device", "cpu", "--samples", "1", "--no-progress", "--batch-size", "3"]
    code, _, err = run_cli(*argv)
    assert code == 0, err
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert {Path("metrics.json"), Path("report.md"), Path("per_horizon.png")} <= set(before)
    full_disk.fill()
    code, _, err = run_cli(*argv)
    assert code == 2
    line = _error_line(err)
    assert str(out) in line and "disk full" in line
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert _ours(full_disk.folder) == ["eval"]  # no half-written folder beside it
