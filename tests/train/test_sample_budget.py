"""SampleLogger's time budget: pictures take at most ``max_fraction`` of the training wall time."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from crevnet.train.callbacks import SampleLogger, within_budget


def test_within_budget_counts_the_next_cost_on_both_sides():
    # 1 s spent + 1 s more over 98 s + 1 s: 2 / 100 = 2 %
    assert within_budget(1.0, 1.0, 99.0, 0.02)
    assert not within_budget(1.0, 1.0, 98.0, 0.02)
    assert within_budget(0.0, 0.0, 0.0, 0.01)  # nothing spent, nothing to spend
    assert not within_budget(0.0, 0.5, 10.0, 0.03)  # 0.5 / 10.5 = 4.8 %


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("fraction", [0.01, 0.03])
def test_sample_logger_keeps_its_share_of_the_wall_time(monkeypatch, fraction):
    clock = _Clock()
    logger = SampleLogger(every_n_steps=10, max_fraction=fraction)
    logger._clock = clock
    logger._clips = torch.zeros(1)
    drawn: list[int] = []

    def write(trainer, module, clips, step):
        drawn.append(step)
        clock.now += 2.0  # each drawing costs 2 s

    monkeypatch.setattr(logger, "write_samples", write)
    trainer = SimpleNamespace(global_step=0)
    module = SimpleNamespace(device="cpu")
    logger.on_train_start(trainer, module)
    for step in range(1, 2001):
        clock.now += 0.5  # a training step
        trainer.global_step = step
        logger.on_train_batch_end(trainer, module, None, None, step - 1)
        assert logger.spent_s <= fraction * clock.now + 2.0  # never over by more than the first one
    assert drawn and drawn[0] == 10  # the first one is always drawn
    assert logger.spent_s <= fraction * clock.now  # the bound holds over the run
    assert logger.spent_s >= fraction * clock.now - 2.0 - 0.5 * 10  # and the budget is used, not wasted
    assert set(drawn).isdisjoint(logger.skipped) and len(drawn) + len(logger.skipped) == 200
    assert all(step % 10 == 0 for step in drawn)


def test_no_bound_draws_every_interval_and_bad_fractions_are_refused(monkeypatch):
    clock = _Clock()
    logger = SampleLogger(every_n_steps=5, max_fraction=None)
    logger._clock, logger._clips = clock, torch.zeros(1)
    drawn: list[int] = []
    monkeypatch.setattr(logger, "write_samples", lambda t, m, c, step: drawn.append(step))
    trainer, module = SimpleNamespace(global_step=0), SimpleNamespace(device="cpu")
    logger.on_train_start(trainer, module)
    for step in range(1, 21):
        trainer.global_step = step
        logger.on_train_batch_end(trainer, module, None, None, step - 1)
    assert drawn == [5, 10, 15, 20]
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="max_fraction"):
            SampleLogger(max_fraction=bad)
