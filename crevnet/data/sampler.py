"""``EpochSampler``: a new block of dataset indices every epoch, for fresh generated sequences."""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import Sampler

__all__ = ["EpochSampler"]


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

    def set_epoch(self, epoch: int) -> None:
        """Select the block of indices of ``epoch`` (called by Lightning)."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        start = 0 if self.fixed else self.epoch * self.size
        return iter(range(start, start + self.size))

    def __len__(self) -> int:
        return self.size
