"""``MovingMNIST``: a torch Dataset that generates each sequence on demand from its (seed, index)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from crevnet.data.generator import (
    Motion,
    MovingMNISTGenerator,
    StandardGenerator,
    sequence_rng,
)
from crevnet.data.sampler import unit_float

__all__ = ["MovingMNIST"]


class MovingMNIST(Dataset[torch.Tensor]):
    """Moving MNIST sequences generated on the fly, deterministic per (seed, index).

    Item ``i`` is ``generator.generate(digits, sequence_rng(seed, i, stream), num_frames) / 255``,
    so it can be regenerated alone, in any worker, in any order. ``len()`` is ``length``, but any
    non-negative index is valid: a sampler may ask for indices beyond it to get fresh sequences
    (``EpochSampler`` does, one block of ``length`` indices per epoch).

    Args:
        digits: Digit images to draw from, (N, h, w) uint8 (e.g. ``load_mnist("train").images``).
        length: Number of sequences reported by ``len()``.
        seed: Seed of the set.
        num_frames: Frames per sequence T.
        generator: A ``MovingMNISTGenerator``; default ``StandardGenerator()``.
        stream: Stream number passed to ``sequence_rng`` (0 = the test-set family).

    Shape:
        item: (T, 1, H, W) float32 in [0, 1].
    """

    def __init__(
        self,
        digits: np.ndarray,
        length: int,
        seed: int = 0,
        num_frames: int = 20,
        generator: MovingMNISTGenerator | None = None,
        stream: int = 0,
    ) -> None:
        if digits.ndim != 3 or digits.dtype != np.uint8 or len(digits) == 0:
            raise ValueError(
                f"MovingMNIST: digits must be a non-empty (N, h, w) uint8 array, got "
                f"{digits.shape} {digits.dtype}"
            )
        if length < 0 or num_frames < 1 or seed < 0 or stream < 0:
            raise ValueError(
                f"MovingMNIST: need length >= 0, num_frames >= 1, seed >= 0, stream >= 0; got "
                f"length={length}, num_frames={num_frames}, seed={seed}, stream={stream}"
            )
        self.digits = digits
        self.length = length
        self.seed = seed
        self.num_frames = num_frames
        self.generator = StandardGenerator() if generator is None else generator
        self.stream = stream

    def __len__(self) -> int:
        return self.length

    def _rng(self, index: int) -> np.random.Generator:
        if index < 0:
            raise IndexError(f"MovingMNIST: index must be non-negative, got {index}")
        return sequence_rng(self.seed, int(index), self.stream)

    def motion(self, index: int) -> Motion:
        """The digits and trajectories of sequence ``index``."""
        return self.generator.sample_motion(self._rng(index), len(self.digits), self.num_frames)

    def sequence(self, index: int) -> np.ndarray:
        """Sequence ``index`` as uint8. Shape: (T, H, W)."""
        return self.generator.generate(self.digits, self._rng(index), self.num_frames)

    def raw(self, index: int) -> np.ndarray:
        """Sequence ``index`` as uint8 with its channel axis. Shape: (T, 1, H, W)."""
        return self.sequence(index)[:, None]

    def __getitem__(self, index: int) -> torch.Tensor:
        """Sequence ``index`` as float32 in [0, 1]. Shape: (T, 1, H, W)."""
        return unit_float(self.raw(index))  # the training loaders' batches are these items, stacked
