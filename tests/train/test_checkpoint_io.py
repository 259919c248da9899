"""Atomic checkpoint writes and weights-only reads."""

from __future__ import annotations

import collections
import os
from pathlib import Path

import pytest
import torch

from crevnet.errors import CheckpointError
from crevnet.io.checkpoint import read_checkpoint, write_checkpoint
from crevnet.train.checkpoint_io import AtomicCheckpointIO


def test_save_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    io = AtomicCheckpointIO()
    path = tmp_path / "sub" / "last.ckpt"
    io.save_checkpoint({"step": 1, "w": torch.arange(3.0)}, path)
    io.save_checkpoint({"step": 2, "w": torch.arange(4.0)}, path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]
    loaded = io.load_checkpoint(path)
    assert loaded["step"] == 2
    assert torch.equal(loaded["w"], torch.arange(4.0))


def test_a_failed_write_keeps_the_old_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "last.ckpt"
    write_checkpoint({"step": 1}, path)
    before = path.read_bytes()

    def crash(src: str, dst: str) -> None:
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        write_checkpoint({"step": 2, "big": torch.zeros(1000)}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


class _Payload:
    """Not an allowed type for a weights-only load."""


def test_weights_only_load_refuses_pickled_objects(tmp_path: Path) -> None:
    path = tmp_path / "evil.ckpt"
    torch.save({"obj": _Payload()}, path)
    with pytest.raises(CheckpointError, match=r"evil\.ckpt"):
        AtomicCheckpointIO().load_checkpoint(path)
    # plain containers and tensors load fine
    torch.save({"d": collections.OrderedDict(a=torch.ones(2)), "t": (1, 2.0, "x")}, path)
    assert read_checkpoint(path)["t"] == (1, 2.0, "x")


def test_missing_or_garbage_files_are_checkpoint_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "nope.ckpt")
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"bad\.ckpt"):
        read_checkpoint(bad)
