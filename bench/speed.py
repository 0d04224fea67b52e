"""The harness's own speed: how fast it asks, scores and records when the solver costs nothing."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from bench.run import RunConfig, SolverSpec, load_challenges
from bench.benchmark import run_benchmark
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
        run_benchmark(dataset, config, out,
                      progress=lambda label, done, all_: stamps.append(time.perf_counter()) if label == "constant" else None)
        total += time.perf_counter() - start
        loop += stamps[-1] - stamps[1]  # the solver's own progress only; stamps[0] comes before the first attempt
        shutil.rmtree(out)
    return RunnerSpeed(items=n * rounds, load=n * rounds / load, loop=(n - 1) * rounds / loop, total=n * rounds / total)


@dataclass(frozen=True)
class ReportSpeed:
    items: int  # items of the synthetic run
    solvers: int  # machines, plus one solver replaying synthetic recorded answers
    attempts: int  # rows of its attempts.csv
    seconds: float  # the whole `captcha-bench report RUN` command: start-up, reading, statistics, figures, pages


def measure_report(scratch: Path, items: int = 10_000, solvers: int = 4, seed: int = 0) -> ReportSpeed:
    """Time `captcha-bench report` in a fresh process on a synthetic run under `scratch`: `solvers - 1`
    machines and one replay of made-up answers (one to three per item, so first answers and the item
    bootstrap have work), 5-character answers, log-normal times. The answers are random, not people's."""
    import json
    import random
    import subprocess
    import sys

    from bench.results import ATTEMPTS, COLUMNS, RUN, SUMMARY_JSON

    if items < 10 or solvers < 2:
        raise ValueError("give at least 10 items and 2 solvers (one of them replays recorded answers)")
    rng = random.Random(seed)
    run = scratch / "synthetic-run"
    run.mkdir(parents=True)
    names = [f"machine-{k}" for k in range(1, solvers)] + ["replay"]
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    rows = 0
    with (run / ATTEMPTS).open("w", newline="") as f:
        writer = ds.CsvWriter(f)
        writer.writerow(COLUMNS)
        for k, name in enumerate(names):
            for i in range(items):
                answer = "".join(rng.choice(alphabet) for _ in range(5))
                tries = rng.randint(1, 3) if name == "replay" else 1
                for t in range(1, tries + 1):
                    right = rng.random() < (0.75 if name == "replay" else 0.6 + 0.1 * k)
                    said = answer if right else answer[:2] + rng.choice(alphabet) + answer[3:]
                    right = said == answer
                    seconds = rng.lognormvariate(2.0, 0.5) if name == "replay" else rng.lognormvariate(-4.5 + k, 0.3)
                    writer.writerow(["synthetic-run", name, f"{i:06d}", answer, said, int(right),
                                     "0" if right else "0.2", f"{seconds:.6f}", "", "", t])
                    rows += 1
    request = {"dataset": "synthetic", "dataset_sha256": "0" * 64, "case_sensitive": False,
               "solvers": [{"name": n, "options": {}} for n in names], "config": {}}
    (run / RUN).write_text(json.dumps({**request, "provenance": {"recorded_solvers": ["replay"]}}))
    (run / SUMMARY_JSON).write_text("{}")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", "from bench.cli import cli; cli()", "report", str(run)],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise ValueError(f"the report failed: {done.stdout[-500:]}{done.stderr[-500:]}")
    return ReportSpeed(items, solvers, rows, seconds)
