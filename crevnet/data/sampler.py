"""``EpochSampler``: a new block of dataset indices every epoch; ``ResumableLoader``: its position saved.

Lightning saves the ``state_dict`` of a training loader that has one (the ``_Stateful`` protocol) into
every checkpoint and hands it back to ``load_state_dict`` before iterating again. ``ResumableLoader``
uses that to make a resumed run see exactly the batches a straight run would have seen: the state is
the epoch and the number of samples the training loop has consumed in it, read from the trainer's loop
progress at save time (the loader's own iterator runs ahead of the loop because Lightning prefetches),
and on load the sampler starts that many samples into that epoch. Lightning counts the batches already
consumed when it resumes mid-epoch, so the epoch still ends after ``len(loader)`` batches.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

from torch.utils.data import DataLoader, Sampler

__all__ = ["EpochSampler", "ResumableLoader"]


class EpochSampler(Sampler[int]):
    """Yield indices ``epoch * size + i`` for ``i`` in ``range(size)``.

    With a generated dataset such as ``MovingMNIST`` (any non-negative index is a new sequence)
    this gives ``size`` never-seen sequences per epoch, all reproducible from (seed, epoch).
    Lightning calls ``set_epoch`` before every training epoch; the sampler runs in the main
    process, so it also works with persistent workers. With ``fixed=True`` the epoch is ignored
    and every epoch sees the same ``size`` sequences.

    Args:
        size: Indices per epoch.
        fixed: Ignore the epoch (always yield ``range(size)``).
    """

    def __init__(self, size: int, fixed: bool = False) -> None:
        if size < 0:
            raise ValueError(f"EpochSampler: size must be >= 0, got {size}")
        self.size = size
        self.fixed = fixed
        self.epoch = 0
        self.resume_at: tuple[int, int] | None = None  # (epoch, samples already consumed in it)

    def set_epoch(self, epoch: int) -> None:
        """Select the block of indices of ``epoch`` (called by Lightning)."""
        self.epoch = epoch

    def resume(self, epoch: int, consumed: int) -> None:
        """In ``epoch`` only, skip the first ``consumed`` indices (they were trained on before a restart)."""
        if epoch < 0 or consumed < 0:
            raise ValueError(f"EpochSampler.resume: need epoch, consumed >= 0, got {epoch}, {consumed}")
        self.resume_at = (epoch, consumed)

    def __iter__(self) -> Iterator[int]:
        start = 0 if self.fixed else self.epoch * self.size
        skip = 0
        if self.resume_at is not None and self.resume_at[0] == self.epoch:
            skip = min(self.resume_at[1], self.size)
        return iter(range(start + skip, start + self.size))

    def __len__(self) -> int:
        return self.size


class ResumableLoader(DataLoader):
    """A ``DataLoader`` over an :class:`EpochSampler` whose position goes into Lightning checkpoints.

    Args:
        *args: as ``DataLoader``; ``sampler`` must be an :class:`EpochSampler`.
        position: returns ``(epoch, batches)``: the current epoch and how many batches of it the
            training loop has consumed (the data module reads them from its trainer).
        **kwargs: as ``DataLoader``.
    """

    def __init__(self, *args: Any, position: Callable[[], tuple[int, int]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.position = position

    def state_dict(self) -> dict[str, int]:
        """``{"epoch", "samples"}``: the epoch and the samples consumed in it (per process)."""
        epoch, batches = self.position()
        return {"epoch": int(epoch), "samples": int(batches) * int(self.batch_size or 1)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Start the next iteration where the saved run stopped."""
        if not isinstance(self.sampler, EpochSampler):
            # e.g. Lightning's DistributedSamplerWrapper under DDP: the skipped indices would
            # shift every rank's share; the epoch restarts from its first batch instead.
            warnings.warn(
                "ResumableLoader: the sampler is not an EpochSampler "
                f"({type(self.sampler).__name__}); the resumed epoch starts from its first batch",
                stacklevel=2,
            )
            return
        self.sampler.resume(int(state["epoch"]), int(state["samples"]))
