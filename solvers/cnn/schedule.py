"""`--minutes` as a budget to spend: the learning rate follows the share of the budget spent, not a
step count fixed in advance.

A schedule fixed from the speed of the first few steps inherits whatever load the machine had in
those seconds: the same `train --minutes 12` planned 237 steps once and 4,982 the next, and either
stopped long before the budget or was cut off before its learning rate had come down. Here the run
steps until the clock says the budget (less what the last validation and checkpoint need, measured)
is spent, and each step's learning rate is the one-cycle schedule at that fraction of the budget,
so every run anneals fully, whatever the load. Pure: the clock is a parameter, for tests.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

WARM = 0.15  # share of the run spent warming up to the peak learning rate (OneCycleLR's pct_start, as before)
DIV = 25.0  # the run starts at peak / DIV ...
FINAL_DIV = 1e4  # ... and ends at peak / DIV / FINAL_DIV, as torch's OneCycleLR by default
MOMENTUM = (0.85, 0.95)  # Adam's beta1 cycles inversely to the learning rate, as OneCycleLR does
RESERVE = 1.25  # the last validation and checkpoint are given this many times their measured time ...
SLACK = 1.0  # ... plus this many seconds
CURVE = 10  # validation passes at each tenth of the budget, at least


def one_cycle(fraction: float, peak: float) -> tuple[float, float]:
    """The learning rate and Adam's beta1 at `fraction` (0-1) of a run: cosine up from peak / DIV to
    peak over the first WARM of it, then cosine down to peak / DIV / FINAL_DIV."""
    fraction = min(1.0, max(0.0, fraction))
    low, high = MOMENTUM
    start, end = peak / DIV, peak / DIV / FINAL_DIV
    if fraction < WARM:
        t = fraction / WARM
        return _cos(start, peak, t), _cos(high, low, t)
    t = (fraction - WARM) / (1.0 - WARM)
    return _cos(peak, end, t), _cos(low, high, t)


def _cos(start: float, end: float, t: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * t) + 1.0)


class Budget:
    """A run's `--minutes`, counted from `begun` (when the command started: loading the data counts),
    with the seconds kept back for the last validation and checkpoint, measured as the run goes.
    `steps`, where given (--epochs, or a rendered set's passes), ends the run sooner if it is reached first."""

    def __init__(self, seconds: float, begun: float, steps: int | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.deadline = begun + seconds
        self.steps = steps
        self.clock = clock
        self.reserve = SLACK
        self.started = clock()  # when training (not loading) began

    def resume(self, trained: float) -> None:
        """Continue a run that had trained `trained` seconds (its budget's start moved back by the caller)."""
        self.started = self.clock() - trained

    def trained(self) -> float:
        """Seconds of training so far."""
        return self.clock() - self.started

    def measured(self, seconds: float) -> None:
        """A validation pass and checkpoint took `seconds`: keep enough back for the last one."""
        self.reserve = max(self.reserve, RESERVE * seconds + SLACK)

    def fraction(self, step: int, ahead: float = 0.0) -> float:
        """How much of the run is done (0-1): the share of the training window spent (`ahead` seconds from
        now), or of `steps` taken, whichever is more. 1.0 means stop and validate a last time."""
        window = self.deadline - self.reserve - self.started
        spent = 1.0 if window <= 0 else (self.clock() + ahead - self.started) / window
        if self.steps:
            spent = max(spent, step / self.steps)
        return min(1.0, max(0.0, spent))


class Threads:
    """Training's CPU threads, chosen by timing the run's own steps, again at every tenth of the budget.

    Beside other work, a pool of a thread per core waits on its slowest thread: on this project's 2
    cores, one busy process beside training made a step with 2 threads take 0.49-0.59 s and with 1
    thread 0.27-0.29 s (quiet, 2 threads are the faster). So each check runs `window` steps at each
    count (all cores, then half as many, down to 1) and keeps the one whose median step was quickest.
    The steps are the run's own, so nothing is spent but the slower counts' extra seconds."""

    def __init__(self, most: int, apply: Callable[[int], None], window: int = 3) -> None:
        self.choices = [most]
        while self.choices[-1] > 1:
            self.choices.append(self.choices[-1] // 2)
        self.apply, self.window = apply, window
        self.current = self.applied = most
        self.queue: list[int] = []
        self.times: dict[int, list[float]] = {}
        apply(most)

    def check(self) -> None:
        """Time the counts again over the next steps."""
        if len(self.choices) > 1:
            self.queue = [n for n in self.choices for _ in range(self.window)]
            self.times = {n: [] for n in self.choices}

    def before(self) -> None:
        """Set the threads for the next step."""
        self._use(self.queue[0] if self.queue else self.current)

    def after(self, seconds: float) -> None:
        """The step just taken took `seconds`."""
        if not self.queue:
            return
        self.times[self.queue.pop(0)].append(seconds)
        if not self.queue:
            self.current = min(self.choices, key=lambda n: sorted(self.times[n])[len(self.times[n]) // 2])
            self._use(self.current)

    def _use(self, n: int) -> None:
        if n != self.applied:
            self.apply(n)
            self.applied = n
