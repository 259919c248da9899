"""``data.prefetch_batches``: ``crevnet fit`` trains on the very same batches with the background thread,
also after a resume from a mid-epoch checkpoint, and the thread is gone when fit ends or fails."""

from __future__ import annotations

import threading
from pathlib import Path

import lightning as L
import pytest
import torch


class Recorder(L.Callback):
    """Keeps a copy of every training batch, keyed by the step it is trained at."""

    def __init__(self) -> None:
        self.batches: dict[int, torch.Tensor] = {}
        self.threads = 0  # most prefetch threads seen running during a step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.batches[trainer.global_step] = batch.detach().clone()
        self.threads = max(self.threads, len(_prefetch_threads()))


def _prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "crevnet-prefetch" and t.is_alive()]


COMMON = [
    "--trainer.max_steps=10",
    "--data.train_size=16",  # 4 batches of 4 per epoch, fresh clips every epoch
    "--data.fixed_train=false",
    "--trainer.val_check_interval=5",
    "--checkpoint.every_n_train_steps=1",
]


def test_prefetch_sees_the_same_batches_straight_and_resumed(
    smoke_env: Path, fit_smoke, crash_at, same_training_state
) -> None:
    plain, ahead = Recorder(), Recorder()
    straight = fit_smoke(smoke_env / "a", [*COMMON, "--data.prefetch_batches=0"], [plain])
    prefetched = fit_smoke(smoke_env / "b", [*COMMON, "--data.prefetch_batches=2"], [ahead])
    assert sorted(plain.batches) == sorted(ahead.batches) == list(range(10))
    # the batches really came from the thread (two for a moment at an epoch boundary: the old one ends)
    assert plain.threads == 0 and ahead.threads >= 1
    for step, batch in plain.batches.items():
        assert torch.equal(batch, ahead.batches[step]), step
    same_training_state(straight, prefetched, 10)
    assert not _prefetch_threads()  # stopped at the end of fit

    with pytest.raises(RuntimeError, match="simulated crash"):
        fit_smoke(smoke_env / "c", [*COMMON, "--data.prefetch_batches=2"], [crash_at(6)])  # mid-epoch 1
    assert not _prefetch_threads()  # stopped when fit failed (no hang)
    after = Recorder()
    resumed = fit_smoke(smoke_env / "c", [*COMMON, "--data.prefetch_batches=2", "--ckpt_path=last"], [after])
    assert sorted(after.batches) == list(range(6, 10))
    for step, batch in after.batches.items():
        assert torch.equal(batch, plain.batches[step]), step
    same_training_state(straight, resumed, 10)
    assert not _prefetch_threads()
