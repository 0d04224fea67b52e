"""`--minutes` is a budget the run spends by the clock: tested with a fake clock."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed")

from solvers.cnn import schedule  # noqa: E402
from solvers.cnn.train import TrainConfig, train  # noqa: E402


class FakeClock:
    """A clock that moves `tick` seconds each time it is read."""

    def __init__(self, tick: float) -> None:
        self.now, self.tick = 1000.0, tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


def test_one_cycle_warms_to_the_peak_then_anneals_to_almost_nothing() -> None:
    assert schedule.one_cycle(0.0, 3e-3) == pytest.approx((3e-3 / 25, 0.95))
    assert schedule.one_cycle(schedule.WARM, 3e-3) == pytest.approx((3e-3, 0.85))
    assert schedule.one_cycle(1.0, 3e-3) == pytest.approx((3e-3 / 25 / 1e4, 0.95))
    rates = [schedule.one_cycle(k / 100, 1.0)[0] for k in range(101)]
    peak = rates.index(max(rates))
    assert peak == 15 and rates[:peak + 1] == sorted(rates[:peak + 1]) and rates[peak:] == sorted(rates[peak:], reverse=True)
    assert schedule.one_cycle(2.0, 1.0) == schedule.one_cycle(1.0, 1.0)  # past the end: the end


def test_the_budget_is_the_clock_less_what_the_last_validation_needs() -> None:
    readings = iter([10.0, 34.5, 34.5, 59.0])
    budget = schedule.Budget(60.0, begun=0.0, clock=lambda: next(readings))  # training starts at 10 s
    assert budget.fraction(0) == pytest.approx((34.5 - 10) / (60 - schedule.SLACK - 10))
    budget.measured(4.0)  # a validation and checkpoint took 4 s: 1.25 * 4 + 1 s are kept back
    assert budget.reserve == pytest.approx(6.0)
    assert budget.fraction(0) == pytest.approx(24.5 / 44)
    assert budget.fraction(0) == 1.0  # 59 s: past 60 - 6
    capped = schedule.Budget(600.0, begun=0.0, steps=100, clock=lambda: 1.0)
    assert capped.fraction(50) == 0.5 and capped.fraction(100) == 1.0  # --epochs reached before the minutes


@pytest.mark.parametrize("tick", [0.1, 0.5])
def test_a_run_spends_its_minutes_and_anneals_whatever_the_speed(tmp_path: Path, tick: float) -> None:
    """The same command on a fast and a ten times slower clock: each ends within 90-105 % of its budget,
    with its learning rate fully down and a validation at each tenth (or each step, where there are fewer)."""
    clock = FakeClock(tick)
    cfg = TrainConfig(out=tmp_path / "m.pt", preset="easy", count=64, val_count=16, batch_size=16, workers=1,
                      minutes=0.25, epochs=1000, device="cpu")  # epochs: a cap far past the minutes
    begun = clock.now
    meta = train(cfg, clock=clock)
    spent = clock.now - begun
    assert 0.9 * 15 <= spent <= 1.05 * 15
    history = meta["history"]
    steps = history[-1]["step"]
    assert history[0]["step"] == 0 and len(history) >= min(schedule.CURVE, steps) + 1
    assert history[-1]["seconds"] <= 1.05 * 15
    assert steps > 1 and (steps > 20) == (tick == 0.1)  # a slower clock, fewer steps: the same schedule
    state = torch.load(str(tmp_path / "m.pt") + ".last", weights_only=True)
    assert state["optimizer"]["param_groups"][0]["lr"] < 3e-3 / 25 / 100  # annealed, not cut off


def test_epochs_end_a_minutes_run_sooner_with_the_schedule_complete(tmp_path: Path) -> None:
    clock = FakeClock(0.001)
    cfg = TrainConfig(out=tmp_path / "m.pt", preset="easy", count=64, val_count=16, batch_size=16, workers=1,
                      minutes=10, epochs=2, device="cpu")
    meta = train(cfg, clock=clock)
    assert meta["history"][-1]["step"] == 8  # two passes over 64 items, 16 a batch
    state = torch.load(str(tmp_path / "m.pt") + ".last", weights_only=True)
    assert state["optimizer"]["param_groups"][0]["lr"] < 3e-3 / 25 / 100


def test_threads_are_chosen_by_timing_the_runs_own_steps() -> None:
    applied: list[int] = []
    threads = schedule.Threads(8, applied.append, window=2)
    assert threads.choices == [8, 4, 2, 1] and applied == [8]
    threads.check()
    seconds = {8: 0.9, 4: 0.5, 2: 0.6, 1: 0.7}  # a busy machine: half the cores are quickest
    for _ in range(8):
        threads.before()
        threads.after(seconds[threads.applied])
    assert threads.current == 4 and applied == [8, 4, 2, 1, 4]
    threads.before()
    assert threads.applied == 4  # kept until the next check
    threads.after(0.1)
    assert threads.current == 4 and not threads.queue
    single = schedule.Threads(1, applied.append)
    single.check()
    assert single.queue == []  # nothing to choose between


def test_an_interrupted_minutes_run_resumes_with_the_budget_it_had_left(tmp_path: Path) -> None:
    clock = FakeClock(0.1)
    cfg = TrainConfig(out=tmp_path / "m.pt", preset="easy", count=64, val_count=16, batch_size=16, workers=1,
                      minutes=0.25, epochs=1000, device="cpu")
    seen: list[int] = []

    def stop_at_the_third(p: object) -> None:
        if p.phase == "train":  # type: ignore[attr-defined]
            seen.append(p.done)  # type: ignore[attr-defined]
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=stop_at_the_third, clock=clock)
    clock.now += 3600.0  # an hour later: the time between does not count
    meta = train(cfg, resume=True, clock=clock)
    history = meta["history"]
    assert [h["step"] for h in history[:3]] == seen[:3] and history[-1]["step"] > seen[2]
    assert 0.9 * 15 <= history[-1]["seconds"] <= 1.05 * 15  # the budget's seconds, both sittings together
