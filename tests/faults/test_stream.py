"""`crevnet predict --stream` outputs (.mp4, .avi, .gif): a full disk, a read-only folder, kill -9 mid-write.

The stream writes a video frame by frame while the model runs; like every other output it must keep an
earlier file whole, say what went wrong in one line, and exit non-zero.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from crevnet.deploy.stream import STREAM_SUFFIXES
from crevnet.io.atomic import TEMP_MARK
from crevnet.models.checkpoint import save_model
from crevnet.nn import CrevNet

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stream_inputs(tiny_net, tmp_path_factory) -> dict[str, Path]:
    import torch

    folder = tmp_path_factory.mktemp("stream")
    torch.manual_seed(0)
    ckpt = save_model(CrevNet(tiny_net).eval(), folder / "m.ckpt", context=3, frame_size=(16, 16))
    clip = folder / "clip.npy"
    # noise compresses badly: every output is well over the 16 KiB a test leaves free, and fits in 300 KB
    np.save(clip, (np.random.default_rng(0).random((20, 32, 32)) * 255).astype(np.uint8))
    return {"ckpt": ckpt, "clip": clip}


def _argv(inputs: dict[str, Path], out: Path) -> list[str]:
    return [
        "predict",
        "--stream",
        "--ckpt",
        str(inputs["ckpt"]),
        "--input",
        str(inputs["clip"]),
        "--horizon",
        "2",
        "--out",
        str(out),
        "--device",
        "cpu",
        "--backend",
        "eager",
        "--size",
        "keep",
    ]


def _error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert lines and lines[-1].startswith("crevnet: error: ") and "Traceback" not in err, err
    return lines[-1]


def test_stream_writes_the_suffixes_tested_here() -> None:
    assert set(STREAM_SUFFIXES) == {".mp4", ".avi", ".gif"}  # a new output needs its fault cases below


@pytest.mark.parametrize("leave", [0, 16 << 10], ids=["full", "16KiB-free"])
@pytest.mark.parametrize("suffix", STREAM_SUFFIXES)
def test_stream_on_a_full_disk_exits_2_and_keeps_the_good_file(
    full_disk, stream_inputs, run_cli, suffix, leave
):
    # 16 KiB free: the video's header fits, its frames do not (OpenCV's writer reports nothing).
    out = full_disk.folder / f"s{suffix}"
    code, _, err = run_cli(*_argv(stream_inputs, out))
    assert code == 0, err
    before = out.read_bytes()
    full_disk.fill(leave)
    code, stdout, err = run_cli(*_argv(stream_inputs, out))
    assert code == 2 and "wrote" not in stdout
    line = _error_line(err)
    assert str(out) in line and "disk full" in line and TEMP_MARK not in line
    assert out.read_bytes() == before
    assert sorted(p.name for p in full_disk.folder.iterdir() if p.name != "filler") == [out.name]


@pytest.mark.parametrize("suffix", STREAM_SUFFIXES)
def test_stream_into_a_read_only_folder_is_one_line(read_only, stream_inputs, run_cli, suffix):
    out = read_only / f"s{suffix}"
    code, stdout, err = run_cli(*_argv(stream_inputs, out))
    assert code == 2 and "wrote" not in stdout
    line = _error_line(err)
    assert f"cannot write {out}: " in line and TEMP_MARK not in line
    assert "read-only" in line or "permission denied" in line
    assert not out.exists()


# Runs `crevnet predict --stream`; after the first bytes of the output it says "writing" and waits.
_STREAM_WRITER = """
import sys, time
import crevnet.data.frames as frames
import crevnet.io.atomic as atomic
from crevnet.cli import main

def stall():
    print("writing", flush=True)
    time.sleep(120)

video_write = frames.VideoWriter.write
def slow_video(self, frame):
    video_write(self, frame)
    stall()
frames.VideoWriter.write = slow_video

os_write = atomic._os_write
def slow_bytes(fd, data):
    written = os_write(fd, data[:256])
    stall()
    return written
atomic._os_write = slow_bytes

main(sys.argv[1:])
"""


@pytest.mark.parametrize("suffix", STREAM_SUFFIXES)
def test_kill_9_during_a_stream_keeps_the_old_file(tmp_path, stream_inputs, run_cli, suffix):
    out = tmp_path / f"s{suffix}"
    code, _, err = run_cli(*_argv(stream_inputs, out))
    assert code == 0, err
    before = out.read_bytes()
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    writer = subprocess.Popen(
        [sys.executable, "-c", _STREAM_WRITER, *_argv(stream_inputs, out)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
    finally:
        writer.kill()  # SIGKILL: no finally block, no cleanup in the writer
        writer.wait()
    assert out.read_bytes() == before  # the old output, whole
    debris = [p.name for p in tmp_path.iterdir() if TEMP_MARK in p.name]
    assert len(debris) == 1 and str(writer.pid) in debris[0]
    code, _, err = run_cli(*_argv(stream_inputs, out))  # the next stream into that folder
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # the stale temporary is gone
