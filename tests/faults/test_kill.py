"""``kill -9`` in the middle of a checkpoint write: the old checkpoint stays, the debris goes next time."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import torch

from crevnet.io.atomic import TEMP_MARK, atomic_write_bytes
from crevnet.io.checkpoint import read_checkpoint
from crevnet.train.checkpoint_io import AtomicCheckpointIO

# Writes a checkpoint whose bytes trickle out; says "writing" after the first KiB and then waits.
_WRITER = """
import sys, time
import torch
import crevnet.io.atomic as atomic
from crevnet.train.checkpoint_io import AtomicCheckpointIO

real = atomic._os_write
def slow(fd, data):
    written = real(fd, data[:1024])
    print("writing", flush=True)
    time.sleep(120)
    return written
atomic._os_write = slow
AtomicCheckpointIO().save_checkpoint({"global_step": 2, "w": torch.rand(100_000)}, sys.argv[1])
"""


def test_kill_9_during_a_checkpoint_write(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"global_step": 1, "w": torch.zeros(3)}, path)
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
    finally:
        writer.kill()  # SIGKILL: no finally block, no cleanup in the writer
        writer.wait()
    assert read_checkpoint(path)["global_step"] == 1  # the old checkpoint, whole
    debris = [p.name for p in path.parent.iterdir() if TEMP_MARK in p.name]
    assert len(debris) == 1 and str(writer.pid) in debris[0]
    io.save_checkpoint({"global_step": 3, "w": torch.zeros(3)}, path)  # the next run's first save
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # the stale temporary is gone
    assert read_checkpoint(path)["global_step"] == 3


def test_a_running_writers_temporary_is_left_alone(tmp_path: Path) -> None:
    other = tmp_path / f".x.ckpt.{os.getppid()}-0123abcd{TEMP_MARK}.tmp"  # a live process's temporary
    other.write_bytes(b"in progress")
    atomic_write_bytes(tmp_path / "y.json", b"{}")
    assert other.exists()


def test_checkpoints_get_the_same_mode_as_every_other_output(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        AtomicCheckpointIO().save_checkpoint({"w": torch.zeros(2)}, tmp_path / "last.ckpt")
        atomic_write_bytes(tmp_path / "metrics.json", b"{}")
        from crevnet.inference.predict import write_prediction

        write_prediction(torch.rand(3, 1, 16, 16), tmp_path / "p.mp4")
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    finally:
        os.umask(old)
    assert modes == {"last.ckpt": 0o644, "metrics.json": 0o644, "p.mp4": 0o644}
