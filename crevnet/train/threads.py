"""Pick the CPU thread count from measured step times, and adapt it while training.

On a small CPU the best ``torch.set_num_threads`` depends on what else runs on the machine: on an idle
2-core box two threads trained the quickstart model 1.1-1.5× faster than one, but beside one busy process
two OpenMP threads that wait for each other at every op run 3-4× *slower* than one thread. No static
setting is right for both, and ``nproc`` or the load average cannot tell (a nice-19 neighbour still
steals the second core at the wrong moments). :class:`AdaptiveThreads` measures instead: it times a few
training steps at each thread count, keeps the fastest, and measures again when steps slow down or a
minute has passed, so it follows a neighbour that comes and goes.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

import lightning as L
import torch

__all__ = ["AdaptiveThreads", "ThreadTuner", "usable_cores"]


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class ThreadTuner:
    """The measuring state machine behind :class:`AdaptiveThreads`, independent of Lightning.

    Call :meth:`step_done` with each step's duration; it returns the thread count to use for the next
    step. A probe tries every count in ``candidates`` for ``probe_steps`` timed steps each (the first
    step after a switch is not counted: caches and the thread pool settle), then keeps the fastest
    (more threads must win by ``margin`` to be kept). A new probe starts when the median of the last
    ``probe_steps`` steps is ``slowdown`` times the chosen count's probe median, or ``reprobe_seconds``
    after the last probe. A probe that changes the count is checked by another one ``confirm_seconds``
    later (once: a confirming probe is not itself confirmed): a probe disturbed for a second or two, e.g.
    by the kernel writing a checkpoint back, would otherwise keep the slower count for ``reprobe_seconds``,
    and a slower count runs steadily, so the slowdown rule never notices it (measured on a 2-core
    AMD EPYC: one such probe kept 1 thread for 264 of 586 quickstart steps, 0.334 s each against 0.27 s).

    Args:
        candidates: thread counts to try, e.g. ``(1, 2)``.
        probe_steps: timed steps per candidate.
        reprobe_seconds: wall time between probes.
        slowdown: step-time ratio that triggers an early probe.
        margin: more threads must be this much faster (ratio of medians) to be chosen.
        confirm_seconds: wall time after a probe that changed the count before the probe that checks it.
        clock: time source, for tests.
    """

    def __init__(
        self,
        candidates: tuple[int, ...],
        probe_steps: int = 4,
        reprobe_seconds: float = 90.0,
        slowdown: float = 1.4,
        margin: float = 1.05,
        confirm_seconds: float = 10.0,
        clock: Any = time.monotonic,
    ) -> None:
        if not candidates or any(c < 1 for c in candidates):
            raise ValueError(f"ThreadTuner: candidates must be thread counts >= 1, got {candidates}")
        if probe_steps < 1:
            raise ValueError(f"ThreadTuner: probe_steps must be >= 1, got {probe_steps}")
        self.candidates = tuple(sorted(set(candidates)))
        self.probe_steps = probe_steps
        self.reprobe_seconds = reprobe_seconds
        self.slowdown = slowdown
        self.margin = margin
        self.confirm_seconds = confirm_seconds
        self._clock = clock
        self.chosen = self.candidates[-1]
        self._confirming = False  # the running (or next) probe checks the one before it
        self.history: list[dict[str, Any]] = []  # one entry per finished probe
        self._start_probe()

    # -- probing ----------------------------------------------------------------------------------
    def _start_probe(self) -> None:
        self._probing = True
        self._order = list(self.candidates)
        self._medians: dict[int, float] = {}
        self._current = self._order.pop(0)
        self._skip = True  # the first step after a switch is not timed
        self._times: list[float] = []

    def _finish_probe(self) -> None:
        best = self.candidates[0]
        for count in self.candidates[1:]:
            if self._medians[count] * self.margin < self._medians[best]:
                best = count
        changed = best != self.chosen
        self.chosen = best
        self._baseline = self._medians[best]
        self._probed_at = self._clock()
        self._recent: list[float] = []
        self._probing = False
        self.history.append({"medians": dict(self._medians), "chosen": best, "confirms": self._confirming})
        self._confirming = changed and not self._confirming  # the next probe, if it comes early, checks this

    @property
    def threads(self) -> int:
        """The thread count for the next step."""
        return self._current if self._probing else self.chosen

    def step_done(self, seconds: float) -> int:
        """Record a step's wall time; return the thread count for the next step."""
        if self._probing:
            if self._skip:
                self._skip = False
            else:
                self._times.append(seconds)
            if len(self._times) >= self.probe_steps:
                self._medians[self._current] = statistics.median(self._times)
                if self._order:
                    self._current = self._order.pop(0)
                    self._skip = True
                    self._times = []
                else:
                    self._finish_probe()
            return self.threads
        self._recent.append(seconds)
        self._recent = self._recent[-self.probe_steps :]
        slow = (
            len(self._recent) == self.probe_steps
            and statistics.median(self._recent) > self.slowdown * self._baseline
        )
        wait = self.confirm_seconds if self._confirming else self.reprobe_seconds
        if slow or self._clock() - self._probed_at > wait:
            self._start_probe()
        return self.threads


class AdaptiveThreads(L.Callback):
    """Lightning callback: train with the thread count that measures fastest right now.

    Args:
        max_threads: largest count to try; default the thread count set when the fit starts
            (``torch_threads``, or PyTorch's default), never more than the usable cores.
        probe_steps: timed steps per count in a probe.
        reprobe_seconds: wall time between probes (a neighbour may have come or gone).
        slowdown: step-time ratio against the last probe that triggers an early probe.
        confirm_seconds: wall time before a probe checks one that changed the count.

    The chosen count is logged as ``train/threads``. With a largest count of 1 (one usable core, or
    ``--torch_threads 1``) it changes nothing.

    Whatever the count, it adds up the wall time inside training steps as it times them (batch start to
    batch end: forward, backward and optimizer; not the data, validation or what runs between steps):
    ``step_seconds`` over ``steps_timed`` steps, kept in the checkpoint (a resumed fit goes on adding),
    so a fit's time splits into its steps and the rest without comparing two processes
    (``benchmarks/fit_ratio.py``).
    """

    def __init__(
        self,
        max_threads: int | None = None,
        probe_steps: int = 4,
        reprobe_seconds: float = 90.0,
        slowdown: float = 1.4,
        confirm_seconds: float = 10.0,
    ) -> None:
        super().__init__()
        if max_threads is not None and max_threads < 1:
            raise ValueError(f"AdaptiveThreads: max_threads must be >= 1, got {max_threads}")
        self.max_threads = max_threads
        self.probe_steps = probe_steps
        self.reprobe_seconds = reprobe_seconds
        self.slowdown = slowdown
        self.confirm_seconds = confirm_seconds
        self.tuner: ThreadTuner | None = None
        self._t0: float | None = None
        self.step_seconds = 0.0
        self.steps_timed = 0

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        top = min(self.max_threads or torch.get_num_threads(), usable_cores())
        if top > 1:
            self.tuner = ThreadTuner(
                tuple(range(1, top + 1)),
                self.probe_steps,
                self.reprobe_seconds,
                self.slowdown,
                confirm_seconds=self.confirm_seconds,
            )
            torch.set_num_threads(self.tuner.threads)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if self._t0 is None:
            return
        seconds = time.perf_counter() - self._t0
        self.step_seconds += seconds
        self.steps_timed += 1
        if self.tuner is None:
            return
        used = self.tuner.threads
        threads = self.tuner.step_done(seconds)
        pl_module.log("train/threads", float(used), on_step=True, on_epoch=False)
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)

    def state_dict(self) -> dict[str, Any]:
        return {"step_seconds": self.step_seconds, "steps_timed": self.steps_timed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.step_seconds = float(state_dict.get("step_seconds", 0.0))
        self.steps_timed = int(state_dict.get("steps_timed", 0))

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # validation steps are not timed; use the current best count
        if self.tuner is not None:
            torch.set_num_threads(self.tuner.chosen)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.tuner is not None:
            torch.set_num_threads(self.tuner.threads)
            self._t0 = None
