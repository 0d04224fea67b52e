"""The harness's own speed: how fast it asks, scores and records when the solver costs nothing."""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.benchmark import run_benchmark, survey
from bench.benchmark import with_dataset_options
from bench.executors import DaskExecutor, LocalExecutor
from bench.run import ConfigError, RunConfig, SolverSpec
from bench.runfolder.files import ATTEMPTS, RUN, SUMMARY_JSON
from bench.runfolder.files import iter_attempts
from bench.runfolder.files import RunError
from bench.runfolder.files import TIMING, read_timings
from bench.runfolder.records import COLUMNS
from bench.summary import percentile
from captchas import dataset as ds


@dataclass(frozen=True)
class RunnerSpeed:
    items: int  # attempts timed, over all rounds
    load: float  # items/s: read, hash-check and read the header of each image (the run's check before it starts)
    decode: float  # items/s: decode the images in the solver process (once per item, as a shard arrives)
    loop: float  # items/s: read a shard, ask the solver (its own process), score, append to attempts.csv; decoding apart
    total: float  # items/s: a whole `run` including start-up, the loop and the summaries


def measure_runner(dataset: ds.Dataset, scratch: Path, rounds: int = 5) -> RunnerSpeed:
    """Run the `constant` solver over the data set `rounds` times; files go under `scratch`.

    The loop's rate leaves out the time the solver process spent decoding (which the run records in
    timing.jsonl), so that it measures what it measured before images were decoded there: asking,
    scoring and recording."""
    if rounds < 1:
        raise ConfigError("rounds must be at least 1")
    n = len(dataset.samples)
    load = loop = total = decode = 0.0
    looped = 0
    for r in range(rounds):
        start = time.perf_counter()
        survey(dataset)
        load += time.perf_counter() - start
        out = scratch / f"round-{r}"
        start = time.perf_counter()
        config = RunConfig((SolverSpec("constant"),), throughput_items=0)
        stamps = _stamped(lambda progress: run_benchmark(dataset, config, out, progress=progress), "constant")
        total += time.perf_counter() - start
        decoding = read_timings(out / TIMING)["constant"].decode_seconds
        first = 1 if len(stamps) > 2 else 0  # after the first shard (which has the warm-up), where there are more
        looped += stamps[-1][0] - stamps[first][0]
        loop += stamps[-1][1] - stamps[first][1] - decoding * (stamps[-1][0] - stamps[first][0]) / n
        decode += decoding
        shutil.rmtree(out)
    return RunnerSpeed(items=n * rounds, load=n * rounds / load, decode=n * rounds / decode, loop=looped / loop,
                       total=n * rounds / total)


def _stamped(run: Callable[[Any], Any], label: str) -> list[tuple[int, float]]:
    """(items done, when) at each progress report of `label` while `run(progress)` runs."""
    stamps: list[tuple[int, float]] = []

    def heard(name: str, done: int, total: int) -> None:
        if name == label:
            stamps.append((done, time.perf_counter()))

    run(heard)
    return stamps


@dataclass(frozen=True)
class Scaling:
    items: int  # attempts timed per contender and round
    rates: dict[str, list[float]]  # contender -> attempts/s of each round, counted after the first shards


def measure_scaling(dataset: ds.Dataset, scratch: Path, solver: SolverSpec, limit: int, rounds: int = 3,
                    dask_workers: int = 2, progress: Callable[[int, int], None] | None = None) -> Scaling:
    """Attempts/s of one solver on the first `limit` items: one local solver process, two, and a Dask
    LocalCluster of `dask_workers` processes, taking turns for `rounds` rounds (so that the machine's
    drift falls on all three alike). Each rate counts from the end of the first four shards (start-up
    and warm-up apart) to the last attempt."""
    config = RunConfig((solver,), throughput_items=0, limit=limit)
    contenders: list[tuple[str, Callable[[], Any]]] = [
        ("local, 1 process", lambda: LocalExecutor(1)), ("local, 2 processes", lambda: LocalExecutor(2)),
        (f"dask LocalCluster, {dask_workers} workers", lambda: DaskExecutor(workers=dask_workers))]
    rates: dict[str, list[float]] = {name: [] for name, _ in contenders}
    for r in range(rounds):
        for k, (name, make) in enumerate(contenders):
            executor = make()
            out = scratch / f"scale-{r}-{k}"
            try:
                stamps = _stamped(lambda progress: run_benchmark(dataset, config, out, progress=progress,
                                                                 executor=executor), solver.name)
            finally:
                executor.close()
            first = next(j for j, (done, _) in enumerate(stamps) if done >= 4 * 64)
            rates[name].append((stamps[-1][0] - stamps[first][0]) / (stamps[-1][1] - stamps[first][1]))
            shutil.rmtree(out)
            if progress:
                progress(r * len(contenders) + k + 1, rounds * len(contenders))
    return Scaling(limit, rates)


@dataclass(frozen=True)
class Memory:
    peaks: dict[int, float]  # items -> peak resident memory (MB) of the whole run: the command and its solver processes
    seconds: dict[int, float]


def repeated_dataset(base: ds.Dataset, count: int, out: Path) -> ds.Dataset:
    """A data set of `count` items made of `base`'s images over and over (hard links, one file per item:
    every item is read, checked and decoded on its own), for measuring a run's memory without
    rendering a million images."""
    out.mkdir(parents=True)
    originals = list(base.samples)
    samples = []
    for k in range(count):
        sample = originals[k % len(originals)]
        item = ds.item_id(k, count)
        file = item + Path(sample.file).suffix
        os.link(base.path / sample.file, out / file)
        samples.append(ds.Sample(item, file, sample.answer, sample.sha256))
    digest = ds.write_manifest(out, samples)
    ds.write_info(out, {"kind": "repeated", "count": count, "from": str(base.path), "from_sha256": base.hash,
                        "case_sensitive": base.case_sensitive, "manifest_sha256": digest})
    return ds.read_dataset(out)


def measure_memory(base: ds.Dataset, scratch: Path, counts: Sequence[int], solver: str,
                   options: Sequence[str] = (), interval: float = 0.05) -> Memory:
    """Peak resident memory of `captcha-bench run` (its process and every child) on data sets of
    `counts` items, sampled every `interval` seconds with psutil."""
    try:
        import psutil
    except ImportError:
        raise ConfigError("speed memory needs psutil: pip install psutil (the dask extra brings it)") from None
    peaks, seconds = {}, {}
    for count in counts:
        data = repeated_dataset(base, count, scratch / f"set-{count}")
        command = [sys.executable, "-c", "from bench.cli import cli; cli()", "run", "--dataset", str(data.path),
                   "--solver", solver, *options, "--out", str(scratch / f"run-{count}")]
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        watched, peak = psutil.Process(process.pid), 0
        while process.poll() is None:
            try:
                tree = [watched, *watched.children(recursive=True)]
                peak = max(peak, sum(_rss(p) for p in tree))
            except psutil.Error:
                pass
            time.sleep(interval)
        _, errors = process.communicate()
        if process.returncode != 0:
            raise RunError(f"the run of {count} items failed: {errors.strip()[-300:]}")
        peaks[count], seconds[count] = peak / 2**20, time.perf_counter() - start
        shutil.rmtree(data.path)
        shutil.rmtree(scratch / f"run-{count}")
    return Memory(peaks, seconds)


def _rss(process: Any) -> int:
    try:
        return int(process.memory_info().rss)
    except Exception:  # gone between listing and reading
        return 0


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


    if items < 10 or solvers < 2:
        raise ConfigError("give at least 10 items and 2 solvers (one of them replays recorded answers)")
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
        raise RunError(f"the report failed: {done.stdout[-500:]}{done.stderr[-500:]}")
    return ReportSpeed(items, solvers, rows, seconds)


@dataclass(frozen=True)
class Clock:
    """One solver's batch-1 latency on a quiet machine and beside busy loops, pooled over the rounds."""

    solver: str
    quiet: tuple[float, float, int]  # median and p90 seconds, answered attempts
    busy: tuple[float, float, int]

    @property
    def ratios(self) -> tuple[float, float]:
        """Busy over quiet: the median's and the p90's."""
        return self.busy[0] / self.quiet[0], self.busy[1] / self.quiet[1]


BUSY_LOOP = "import os\nos.nice(19)\nwhile True:\n    pass\n"


@contextlib.contextmanager
def busy_loops(n: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`n` processes that spin at nice 19, each in a session of its own, stopped on leaving.

    A session of its own, as a job started from another terminal or by cron is: with the kernel's
    autogroups (Linux's default on desktops and many servers) nice orders processes only within a
    session, and a niced loop from another session competes for a core as an equal."""
    loops = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP], start_new_session=True, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(n)]
    try:
        time.sleep(0.2)  # running before the clock starts
        yield loops
    finally:
        for p in loops:
            p.kill()
        for p in loops:
            p.wait()


def measure_clock(dataset: ds.Dataset, scratch: Path, solvers: Sequence[SolverSpec], limit: int, rounds: int = 2,
                  loops: int = 1, progress: Callable[[int, int], None] | None = None) -> list[Clock]:
    """Batch-1 latency of each solver on the first `limit` items, in a run on a quiet machine and in a run
    beside `loops` busy loops (`busy_loops`), taking turns for `rounds` rounds so that the machine's drift
    falls on both alike. Runs go under `scratch` and are removed."""
    if rounds < 1 or loops < 1 or limit < 1:
        raise ConfigError("rounds, loops and items must each be at least 1")
    config = with_dataset_options(RunConfig(tuple(solvers), throughput_items=0, limit=limit), dataset)
    seconds: dict[tuple[str, bool], list[float]] = {(s.name, busy): [] for s in solvers for busy in (False, True)}
    for r in range(rounds):
        for k, busy in enumerate((False, True)):
            out = scratch / f"clock-{r}-{'busy' if busy else 'quiet'}"
            with busy_loops(loops) if busy else contextlib.nullcontext():
                run_benchmark(dataset, config, out)
            for a in iter_attempts(out / ATTEMPTS):
                if not a.error:
                    seconds[(a.solver, busy)].append(a.seconds)
            shutil.rmtree(out)
            if progress:
                progress(2 * r + k + 1, 2 * rounds)

    def figures(values: list[float]) -> tuple[float, float, int]:
        if not values:
            raise RunError("a solver answered no item without an error: nothing to time")
        return statistics.median(values), percentile(values, 90), len(values)

    return [Clock(s.name, figures(seconds[(s.name, False)]), figures(seconds[(s.name, True)])) for s in solvers]
