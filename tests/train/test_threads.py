"""AdaptiveThreads: the tuner keeps the measured-fastest thread count and re-measures when steps slow."""

from __future__ import annotations

import pytest
import torch

from crevnet.train.threads import AdaptiveThreads, ThreadTuner, usable_cores


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run(tuner: ThreadTuner, cost: dict[int, float], steps: int, clock: FakeClock | None = None) -> list[int]:
    used = []
    for _ in range(steps):
        threads = tuner.threads
        used.append(threads)
        if clock is not None:
            clock.now += cost[threads]
        tuner.step_done(cost[threads])
    return used


def test_probe_picks_the_fastest_count_and_skips_the_first_step_after_a_switch():
    tuner = ThreadTuner((1, 2), probe_steps=3, reprobe_seconds=1e9)
    # idle machine: 2 threads faster
    used = run(tuner, {1: 0.15, 2: 0.10}, 8)
    assert used == [1, 1, 1, 1, 2, 2, 2, 2]  # 1 untimed + 3 timed steps per count
    assert tuner.chosen == 2
    assert tuner.history[-1]["medians"] == {1: 0.15, 2: 0.10}
    # busy neighbour: 2 threads spin and lose -> 1 thread
    tuner = ThreadTuner((1, 2), probe_steps=3, reprobe_seconds=1e9)
    run(tuner, {1: 0.16, 2: 0.45}, 8)
    assert tuner.chosen == 1


def test_more_threads_must_win_by_the_margin():
    tuner = ThreadTuner((1, 2), probe_steps=2, reprobe_seconds=1e9, margin=1.05)
    run(tuner, {1: 0.100, 2: 0.098}, 6)  # 2% faster is noise: keep the cheaper setting
    assert tuner.chosen == 1


def test_slowdown_triggers_a_new_probe_that_follows_the_neighbour():
    tuner = ThreadTuner((1, 2), probe_steps=2, reprobe_seconds=1e9, slowdown=1.4)
    run(tuner, {1: 0.15, 2: 0.10}, 6)
    assert tuner.chosen == 2
    # a neighbour arrives: 2 threads become 4x slower; after probe_steps slow steps a probe starts
    run(tuner, {1: 0.17, 2: 0.40}, 2 + 6)
    assert tuner.chosen == 1
    assert len(tuner.history) == 2


def test_timer_reprobes_so_a_departed_neighbour_is_noticed():
    clock = FakeClock()
    tuner = ThreadTuner((1, 2), probe_steps=2, reprobe_seconds=10.0, clock=clock)
    run(tuner, {1: 0.2, 2: 0.8}, 6, clock)
    assert tuner.chosen == 1
    # the neighbour left: 1 thread is as fast as before (no slowdown), only the timer can tell
    run(tuner, {1: 0.2, 2: 0.1}, 60 + 6, clock)
    assert tuner.chosen == 2
    assert len(tuner.history) >= 2


def test_a_probe_that_changes_the_count_is_checked_soon_after_and_a_transient_is_undone():
    clock = FakeClock()
    tuner = ThreadTuner((1, 2), probe_steps=2, reprobe_seconds=90.0, confirm_seconds=10.0, clock=clock)
    run(tuner, {1: 0.15, 2: 0.10}, 6, clock)
    assert tuner.chosen == 2
    # a transient (2 threads slow for one probe) ends as soon as the probe does
    run(tuner, {1: 0.15, 2: 0.10}, 3, clock)  # steady steps at 2
    clock.now += 90.0  # the regular re-probe is due
    run(tuner, {1: 0.15, 2: 0.50}, 7, clock)  # one step, then the probe runs in the disturbance: 1
    assert tuner.chosen == 1 and len(tuner.history) == 2
    used = run(tuner, {1: 0.15, 2: 0.10}, 100, clock)  # 15 s of steady 1-thread steps
    # checked 10 s later (not 90): back to 2 threads for the rest
    assert len(tuner.history) == 3 and tuner.history[2]["confirms"] and tuner.chosen == 2
    assert used.index(2) <= 10.0 / 0.15 + 1 + 3 and used[-20:] == [2] * 20  # + the probe at 1
    # a neighbour that stays is confirmed once, then the regular cadence holds
    clock.now += 91.0
    run(tuner, {1: 0.16, 2: 0.45}, 7, clock)
    assert tuner.chosen == 1
    run(tuner, {1: 0.16, 2: 0.45}, 400, clock)  # 64 s: the checking probe at ~10 s, none after it
    assert [h["chosen"] for h in tuner.history[3:]] == [1, 1] and tuner.history[4]["confirms"]


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="candidates"):
        ThreadTuner(())
    with pytest.raises(ValueError, match="probe_steps"):
        ThreadTuner((1, 2), probe_steps=0)
    with pytest.raises(ValueError, match="max_threads"):
        AdaptiveThreads(max_threads=0)


def test_callback_sets_torch_threads_from_the_tuner(monkeypatch):
    monkeypatch.setattr("crevnet.train.threads.usable_cores", lambda: 2)
    before = torch.get_num_threads()
    try:
        cb = AdaptiveThreads(max_threads=2, probe_steps=1)

        class Module:
            def __init__(self) -> None:
                self.logged: list[tuple[str, float]] = []

            def log(self, name, value, **kwargs):
                self.logged.append((name, value))

        module = Module()
        cb.on_fit_start(None, module)
        assert torch.get_num_threads() == 1  # the probe starts with the smallest count
        for _ in range(2):  # 1 untimed + 1 timed step at 1 thread
            cb.on_train_batch_start(None, module)
            cb.on_train_batch_end(None, module)
        assert torch.get_num_threads() == 2  # now probing 2 threads
        assert ("train/threads", 1.0) in module.logged
    finally:
        torch.set_num_threads(before)


def test_callback_does_nothing_when_the_run_allows_one_thread(monkeypatch):
    monkeypatch.setattr("crevnet.train.threads.usable_cores", lambda: 2)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # what --torch_threads 1 does before the fit starts
        cb = AdaptiveThreads()
        cb.on_fit_start(None, None)
        assert cb.tuner is None and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_callback_adds_up_the_time_inside_steps_and_keeps_it_in_the_checkpoint(monkeypatch):
    monkeypatch.setattr("crevnet.train.threads.usable_cores", lambda: 1)  # no tuner: it still counts
    clock = iter([10.0, 10.25, 11.0, 11.5, 20.0, 20.125])
    monkeypatch.setattr("crevnet.train.threads.time.perf_counter", lambda: next(clock))
    cb = AdaptiveThreads()
    cb.on_fit_start(None, None)
    assert cb.tuner is None
    for _ in range(3):
        cb.on_train_batch_start(None, None)
        cb.on_train_batch_end(None, None)
    assert cb.steps_timed == 3 and cb.step_seconds == pytest.approx(0.25 + 0.5 + 0.125)
    resumed = AdaptiveThreads()
    resumed.load_state_dict(cb.state_dict())  # what Lightning does with the checkpoint's callbacks
    assert (resumed.step_seconds, resumed.steps_timed) == (cb.step_seconds, 3)


def test_usable_cores_is_positive():
    assert usable_cores() >= 1
