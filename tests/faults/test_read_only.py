"""A read-only folder: the message names the user's target and says "read-only", for every writer."""

from __future__ import annotations

import pytest
import torch

from crevnet.errors import OutputError
from crevnet.inference.predict import write_prediction
from crevnet.io.atomic import atomic_write_bytes
from crevnet.train.checkpoint_io import AtomicCheckpointIO


@pytest.mark.parametrize("name", ["p.gif", "p.mp4", "p.png", "p.npy", "m.json", "last.ckpt"])
def test_a_read_only_folder_is_named_with_the_reason(read_only, name: str) -> None:
    target = read_only / name
    frames = torch.rand(4, 1, 16, 16)
    with pytest.raises(OutputError) as info:
        if name.endswith(".json"):
            atomic_write_bytes(target, b"{}")
        elif name.endswith(".ckpt"):
            AtomicCheckpointIO().save_checkpoint({"w": frames}, target)
        else:
            write_prediction(frames, target)
    message = str(info.value)
    assert f"cannot write {target}: " in message and ".crevnet-tmp" not in message
    assert "read-only" in message or "permission denied" in message
    assert not target.exists()
