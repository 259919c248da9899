"""Training schedules as functions of *progress* in [0, 1]: the learning rate and the sampling curriculum.

Progress is ``step / total_steps``, or, when the run is bounded by wall time, the larger of that and
``elapsed / max_time`` (so a time-boxed run still reaches the end of its schedule). Every schedule here
is a pure function of progress (and the step for warm-up), so resuming from a checkpoint that restores
the step (and the elapsed time) continues the exact same schedule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = ["LRSchedule", "SamplingCurriculum", "ScheduleKind", "lr_factor"]

ScheduleKind = Literal["step", "cosine", "constant"]


def lr_factor(
    kind: ScheduleKind,
    step: int,
    progress: float,
    warmup_steps: int = 0,
    decay_at: float = 5 / 6,
    decay_factor: float = 0.2,
    min_factor: float = 0.0,
) -> float:
    """Multiplier of the base learning rate.

    * ``"step"`` (the paper's): 1 until ``decay_at`` of training, then ``decay_factor`` (×0.2 at 5/6).
    * ``"cosine"``: half a cosine from 1 down to ``min_factor`` over training.
    * ``"constant"``: 1.

    A linear warm-up over the first ``warmup_steps`` optimizer steps multiplies any of them.

    Args:
        kind: schedule shape.
        step: optimizer steps taken so far (0 for the first step).
        progress: fraction of training done, clamped to [0, 1].
        warmup_steps: length of the linear warm-up (0: none).
        decay_at: fraction of training at which the step schedule decays.
        decay_factor: the step schedule's factor after ``decay_at``.
        min_factor: the cosine schedule's final factor.

    Returns:
        The factor, in (0, 1].
    """
    p = min(max(progress, 0.0), 1.0)
    if kind == "step":
        factor = decay_factor if p >= decay_at else 1.0
    elif kind == "cosine":
        factor = min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * p))
    elif kind == "constant":
        factor = 1.0
    else:
        raise ValueError(f"lr schedule must be 'step', 'cosine' or 'constant', got {kind!r}")
    if warmup_steps > 0 and step < warmup_steps:
        factor *= (step + 1) / warmup_steps
    return factor


@dataclass(frozen=True)
class LRSchedule:
    """The learning-rate schedule of :class:`crevnet.train.module.CrevNetModule`.

    Attributes:
        kind: "step" (paper: ×``decay_factor`` at ``decay_at``), "cosine" or "constant".
        warmup_steps: linear warm-up, in optimizer steps.
        decay_at: fraction of training where the step schedule decays (paper: 5/6).
        decay_factor: factor of the step schedule after ``decay_at`` (paper: 0.2).
        min_factor: final factor of the cosine schedule.
    """

    kind: ScheduleKind = "step"  # "step" (paper) | "cosine" | "constant"
    warmup_steps: int = 0  # linear warm-up steps
    decay_at: float = 5 / 6  # step schedule: fraction of training where the lr drops
    decay_factor: float = 0.2  # step schedule: factor after the drop
    min_factor: float = 0.0  # cosine schedule: final factor

    def __post_init__(self) -> None:
        if self.kind not in ("step", "cosine", "constant"):
            raise ValueError(f"LRSchedule.kind must be 'step', 'cosine' or 'constant', got {self.kind!r}")
        if self.warmup_steps < 0:
            raise ValueError(f"LRSchedule.warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0.0 <= self.decay_at <= 1.0:
            raise ValueError(f"LRSchedule.decay_at must be in [0, 1], got {self.decay_at}")
        if not 0.0 < self.decay_factor <= 1.0:
            raise ValueError(f"LRSchedule.decay_factor must be in (0, 1], got {self.decay_factor}")
        if not 0.0 <= self.min_factor <= 1.0:
            raise ValueError(f"LRSchedule.min_factor must be in [0, 1], got {self.min_factor}")

    def factor(self, step: int, progress: float) -> float:
        """Multiplier of the base learning rate at ``step`` / ``progress`` (see :func:`lr_factor`)."""
        return lr_factor(
            self.kind, step, progress, self.warmup_steps, self.decay_at, self.decay_factor, self.min_factor
        )


@dataclass(frozen=True)
class SamplingCurriculum:
    """Scheduled sampling (Bengio et al. 2015): how often the model is fed its own predictions.

    The probability ramps linearly from ``start`` to ``end`` between progress ``ramp_begin`` and
    ``ramp_end``, and stays constant outside. The defaults (0 → 0) are the paper's 100% teacher forcing;
    ``start=0, end=1`` moves from teacher forcing to free running, which is how the model is used at
    inference.

    Attributes:
        start: sampling probability before ``ramp_begin``.
        end: sampling probability after ``ramp_end``.
        ramp_begin: progress where the ramp starts.
        ramp_end: progress where the ramp ends.
    """

    start: float = 0.0  # probability of feeding back predictions at the beginning
    end: float = 0.0  # ... and at the end of the ramp
    ramp_begin: float = 0.0  # progress where the ramp starts
    ramp_end: float = 1.0  # progress where the ramp ends

    def __post_init__(self) -> None:
        for name in ("start", "end", "ramp_begin", "ramp_end"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"SamplingCurriculum.{name} must be in [0, 1], got {value}")
        if self.ramp_end < self.ramp_begin:
            raise ValueError(
                f"SamplingCurriculum.ramp_end ({self.ramp_end}) must be >= ramp_begin ({self.ramp_begin})"
            )

    def probability(self, progress: float) -> float:
        """Sampling probability at ``progress`` in [0, 1]."""
        if progress <= self.ramp_begin:
            return self.start
        if progress >= self.ramp_end:
            return self.end
        t = (progress - self.ramp_begin) / (self.ramp_end - self.ramp_begin)
        return self.start + t * (self.end - self.start)
