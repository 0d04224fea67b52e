"""Benchmarks of captcha-bench itself: the speed group."""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
from pathlib import Path

import click

from bench.cli.common import counts as parse_counts, dataset_or_default, default_workers, parse_options, progress_bar
from bench.cli.listing import generator_speed_text, latency_text, runner_speed_text, study_speed_text
from bench.cli.runs import run_config
from bench.load import cores
from bench.replay import replays
from bench.run import RunConfig, SolverSpec
from bench.summary import format_table
from solvers import registry


@click.group()
def speed() -> None:
    """Benchmarks of captcha-bench itself: the runner's overhead, the report, the generator, the study app.

    \b
    Example: captcha-bench speed runner --rounds 5
    """


@speed.command("runner")
@click.option("--dataset", type=click.Path(path_type=Path), default=None, help="Data set [default: the embedded default].")
@click.option("--rounds", type=int, default=5, show_default=True)
def runner_speed(dataset: Path | None, rounds: int) -> None:
    """Measure the harness's own overhead with a constant-answer solver.

    \b
    Example: captcha-bench speed runner --rounds 5
    """
    from bench.measure import measure_runner  # loaded by the command, not by --help

    data = dataset_or_default(dataset)
    if rounds < 1:
        raise click.ClickException(f"--rounds must be at least 1, got {rounds}")
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as scratch:
        r = measure_runner(data, Path(scratch), rounds)
    click.echo(runner_speed_text(r, str(data.path)))


@speed.command("report")
@click.option("--items", type=click.IntRange(10), default=10_000, show_default=True)
@click.option("--solvers", type=click.IntRange(2, 20), default=4, show_default=True,
              help="Solvers, one of which replays made-up recorded answers.")
def report_speed(items: int, solvers: int) -> None:
    """Time `captcha-bench report` on a synthetic run (random answers, no people's): start-up included.

    \b
    Example: captcha-bench speed report --items 10000 --solvers 4
    """
    from bench.measure import measure_report  # loaded by the command, not by --help

    with tempfile.TemporaryDirectory(dir=Path.cwd()) as scratch:
        r = measure_report(Path(scratch), items, solvers)
    click.echo(f"report of {r.items:,} items x {r.solvers} solvers ({r.attempts:,} attempts): {r.seconds:.1f} s "
               "for the whole command (target: under 10 s)")


@speed.command("study")
@click.option("--dataset", type=click.Path(path_type=Path), default=None, help="Data set [default: the embedded default].")
@click.option("--participants", type=click.IntRange(1, 500), default=20, show_default=True)
@click.option("--items", type=click.IntRange(1), default=20, show_default=True, help="Items each participant answers.")
def study_speed(dataset: Path | None, participants: int, items: int) -> None:
    """Load-test the study app: simulated participants answer at once over loopback HTTP.

    Each one loads every image, answers it and presses Submit a second time; then the database
    (a temporary one) must hold every answer exactly once.

    \b
    Example: captcha-bench speed study --participants 20 --items 20
    """
    from bench.study.load import measure  # loaded by the command, not by --help

    data = dataset_or_default(dataset)
    data = dataclasses.replace(data, samples=data.samples[:items])
    r = measure(data, participants)
    click.echo(study_speed_text(r, len(data.samples)))
    if r.errors or not r.stored_once:
        raise click.ClickException("the study app lost, doubled or refused answers under load (see above)")


@speed.command("generator")
@click.option("--preset", default="medium", show_default=True)
@click.option("--count", type=int, default=300, show_default=True, help="Images per contender per round.")
@click.option("--rounds", type=int, default=6, show_default=True)
@click.option("--workers", type=int, default=2, show_default=True, help="Workers of the parallel run.")
def generator_speed(preset: str, count: int, rounds: int, workers: int) -> None:
    """Benchmark the generator beside the raw captcha library on the same texts.

    \b
    Example: captcha-bench speed generator --count 300 --rounds 6 --workers 2
    """
    from captchas.generation_speed import measure_generation  # loaded by the command, not by --help

    with tempfile.TemporaryDirectory(dir=Path.cwd()) as scratch, progress_bar("Timing") as progress:
        r = measure_generation(Path(scratch), preset, count, rounds, workers, progress=progress)
    click.echo(generator_speed_text(r))


@speed.command("scale")
@click.option("--dataset", type=click.Path(path_type=Path), default=None, help="Data set [default: the embedded default].")
@click.option("--solver", "name", default="cnn", show_default=True, help="The solver asked (a CPU-bound one).")
@click.option("-o", "--option", "pairs", multiple=True, metavar="KEY=VALUE", help="Solver option; repeatable.")
@click.option("--items", type=click.IntRange(512), default=3000, show_default=True, help="Items per contender.")
@click.option("--rounds", type=click.IntRange(1), default=3, show_default=True, help="Turns each contender takes.")
def scale_speed(dataset: Path | None, name: str, pairs: tuple[str, ...], items: int, rounds: int) -> None:
    """Attempts/s with one local solver process, two, and a Dask LocalCluster of two workers.

    \b
    Example: captcha-bench speed scale --dataset results/datasets/hard-7 --items 1000
    """
    from bench.benchmark import with_dataset_options  # loaded by the command, not by --help
    from bench.measure import measure_scaling  # loaded by the command, not by --help

    data = dataset_or_default(dataset)
    if len(data.samples) < items:
        raise click.ClickException(f"--items {items}: {data.path} holds only {len(data.samples)} items")
    spec = with_dataset_options(RunConfig((SolverSpec(name, parse_options(pairs, "-o")),)), data).solvers[0]
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as scratch, progress_bar("Timing") as progress:
        r = measure_scaling(data, Path(scratch), spec, items, rounds, progress=progress)
    medians = {k: statistics.median(v) for k, v in r.rates.items()}
    base = next(iter(medians.values()))
    click.echo(format_table(["executor", "attempts/s, median", "each round", "vs 1 process"],
                            [[k, f"{medians[k]:,.0f}", " ".join(f"{x:,.0f}" for x in v), f"{medians[k] / base:.2f}x"]
                             for k, v in r.rates.items()]))
    click.echo(f"{r.items:,} items of {data.path}, solver {name}, {rounds} round(s), {default_workers()} cores; "
               "targets: 2 processes >= 1.7x, Dask within 15 % of 2 local processes")


@speed.command("memory")
@click.option("--dataset", type=click.Path(path_type=Path), default=None,
              help="Data set whose images are repeated [default: the embedded default].")
@click.option("--counts", default="20000,200000", show_default=True, help="Items of each run, comma-separated.")
@click.option("--solver", "name", default="constant", show_default=True)
@click.option("-o", "--option", "pairs", multiple=True, metavar="KEY=VALUE", help="Solver option; repeatable.")
def memory_speed(dataset: Path | None, counts: str, name: str, pairs: tuple[str, ...]) -> None:
    """Peak resident memory of whole runs (the command and its solver processes) as items grow.

    Each data set repeats the given set's images, one hard-linked file per item, so that every item
    is read, checked, decoded, asked and written on its own without rendering them all.

    \b
    Example: captcha-bench speed memory --counts 20000,200000 --solver constant
    """
    from bench.measure import measure_memory  # loaded by the command, not by --help

    sizes = parse_counts(counts, "--counts", "20000,200000")
    data = dataset_or_default(dataset)
    options = [arg for pair in pairs for arg in ("-o", pair)] + ["--throughput-items", "0"]
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as scratch:
        r = measure_memory(data, Path(scratch), sizes, name, options)
    first = r.peaks[sizes[0]]
    click.echo(format_table(["items", "peak RSS MB", f"vs {sizes[0]:,}", "seconds"],
                            [[f"{n:,}", f"{r.peaks[n]:,.0f}", f"{r.peaks[n] / first:.2f}x", f"{r.seconds[n]:,.0f}"]
                             for n in sizes]))
    click.echo(f"solver {name}; images repeated from {data.path}; target: 200,000 within 1.3x of 20,000")


@speed.command("latency")
@click.option("--dataset", type=click.Path(path_type=Path), default=None, help="Data set [default: the embedded default].")
@click.option("--solver", "names", multiple=True, metavar="NAME",
              help="Solver; repeatable [default: every machine solver that can run here].")
@click.option("-o", "--option", "pairs", multiple=True, metavar="[SOLVER.]KEY=VALUE", help="Solver option; repeatable.")
@click.option("--items", type=click.IntRange(1), default=300, show_default=True, help="Items per run (the first ones).")
@click.option("--rounds", type=click.IntRange(1), default=2, show_default=True,
              help="Turns of a quiet run and a busy one.")
@click.option("--loops", type=click.IntRange(1), default=1, show_default=True,
              help="Busy loops beside the busy runs (nice 19, each in a session of its own).")
def latency_speed(dataset: Path | None, names: tuple[str, ...], pairs: tuple[str, ...], items: int, rounds: int,
                  loops: int) -> None:
    """Batch-1 solve times on a quiet machine and beside busy loops this command starts and stops itself.

    A timing should measure the solver, not what else the machine does: the target is a median and a
    p90 beside one loop within 1.5x of quiet, for every solver.

    \b
    Example: captcha-bench speed latency --solver cnn --solver ddddocr --items 300
    """
    from bench.measure import measure_clock  # loaded by the command, not by --help

    data = dataset_or_default(dataset)
    chosen = names or tuple(n for n in registry.default_solvers() if not replays(n))
    if any(replays(n) for n in chosen):
        raise click.ClickException(f"--solver {next(n for n in chosen if replays(n))}: recorded people are not timed "
                                   "by this machine; give a machine solver")
    config = run_config(chosen, pairs)
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as scratch, progress_bar("Timing") as progress:
        clocks = measure_clock(data, Path(scratch), config.solvers, min(items, len(data.samples)), rounds, loops,
                               progress)
    click.echo(latency_text(clocks))
    click.echo(f"{min(items, len(data.samples)):,} items of {data.path} per run, {rounds} round(s), {loops} busy "
               f"loop(s) at nice 19 in sessions of their own, {cores()} cores; target: median and p90 beside the "
               "loop within 1.5x of quiet")
