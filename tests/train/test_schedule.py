"""The learning-rate schedule and the scheduled-sampling curriculum, against hand-computed values."""

from __future__ import annotations

import math

import pytest

from crevnet.train.schedule import LRSchedule, SamplingCurriculum, lr_factor


def test_step_schedule_is_the_papers_drop_at_five_sixths() -> None:
    sched = LRSchedule()  # paper: x0.2 at 5/6
    assert sched.factor(0, 0.0) == 1.0
    assert sched.factor(100, 0.83) == 1.0
    assert sched.factor(100, 5 / 6) == pytest.approx(0.2)
    assert sched.factor(100, 1.0) == pytest.approx(0.2)


def test_cosine_endpoints_midpoint_and_warmup() -> None:
    sched = LRSchedule(kind="cosine", warmup_steps=10, min_factor=0.1)
    assert sched.factor(50, 0.0) == pytest.approx(1.0)
    assert sched.factor(50, 0.5) == pytest.approx(0.1 + 0.9 * 0.5)
    assert sched.factor(50, 1.0) == pytest.approx(0.1)
    assert sched.factor(50, 0.25) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4)))
    # warm-up is linear in the step and multiplies the schedule
    assert sched.factor(0, 0.0) == pytest.approx(0.1)
    assert sched.factor(4, 0.0) == pytest.approx(0.5)
    assert sched.factor(9, 0.0) == pytest.approx(1.0)
    assert lr_factor("constant", 3, 0.9) == 1.0
    assert lr_factor("cosine", 3, 7.0) == pytest.approx(0.0)  # progress is clamped to 1


def test_curriculum_ramps_linearly_between_its_bounds() -> None:
    cur = SamplingCurriculum(start=0.0, end=0.8, ramp_begin=0.2, ramp_end=0.6)
    assert cur.probability(0.0) == 0.0
    assert cur.probability(0.2) == 0.0
    assert cur.probability(0.4) == pytest.approx(0.4)
    assert cur.probability(0.6) == pytest.approx(0.8)
    assert cur.probability(1.0) == pytest.approx(0.8)
    assert SamplingCurriculum().probability(0.7) == 0.0  # paper: 100% teacher forcing


@pytest.mark.parametrize(
    ("cls", "kwargs", "match"),
    [
        (LRSchedule, {"kind": "linear"}, "kind"),
        (LRSchedule, {"decay_factor": 0.0}, "decay_factor"),
        (LRSchedule, {"warmup_steps": -1}, "warmup_steps"),
        (SamplingCurriculum, {"end": 1.5}, "end"),
        (SamplingCurriculum, {"ramp_begin": 0.8, "ramp_end": 0.2}, "ramp_end"),
    ],
)
def test_bad_values_name_the_field(cls: type, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)
