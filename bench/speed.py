"""The harness's own speed: how fast it asks, scores and records when the solver costs nothing."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from bench.run import RunConfig, SolverSpec, load_challenges
from bench.session import run_benchmark
from captchas import dataset as ds


@dataclass(frozen=True)
class RunnerSpeed:
    items: int  # attempts timed, over all rounds
    load: float  # items/s: read, hash-check and decode the images
    loop: float  # items/s: ask a constant solver (own process), score, append to attempts.csv
    total: float  # items/s: a whole `run` including start-up, the loop and the summaries


def measure_runner(dataset: ds.Dataset, scratch: Path, rounds: int = 5) -> RunnerSpeed:
    """Run the `constant` solver over the data set `rounds` times; files go under `scratch`."""
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    n = len(dataset.samples)
    load = loop = total = 0.0
    for r in range(rounds):
        start = time.perf_counter()
        load_challenges(dataset)
        load += time.perf_counter() - start
        stamps: list[float] = []
        out = scratch / f"round-{r}"
        start = time.perf_counter()
        config = RunConfig((SolverSpec("constant"),), throughput_items=0)
        run_benchmark(dataset, config, out, progress=lambda solver, done, all_: stamps.append(time.perf_counter()))
        total += time.perf_counter() - start
        loop += stamps[-1] - stamps[1]  # stamps[0] comes before the first attempt
        shutil.rmtree(out)
    return RunnerSpeed(items=n * rounds, load=n * rounds / load, loop=(n - 1) * rounds / loop, total=n * rounds / total)
