"""Benchmarks of captcha-bench itself: the speed group."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

from bench.commands.common import dataset_or_default, progress_bar
from bench.summary import format_table
from captchas.spec import PRESETS


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
    from bench.speed import measure_runner

    data = dataset_or_default(dataset)
    if rounds < 1:
        raise click.ClickException(f"--rounds must be at least 1, got {rounds}")
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as scratch:
        r = measure_runner(data, Path(scratch), rounds)
    click.echo(format_table(["stage", "items/s"], [
        ["load: read, sha256 check, decode", f"{r.load:,.0f}"],
        ["loop: ask (solver process), score, append attempts.csv", f"{r.loop:,.0f}"],
        ["whole run, start-up and summaries included", f"{r.total:,.0f}"],
    ]))
    click.echo(f"{r.items} attempts of the constant solver on {data.path}; target: loop >= 5,000 items/s")


@speed.command("report")
@click.option("--items", type=click.IntRange(10), default=10_000, show_default=True)
@click.option("--solvers", type=click.IntRange(2, 20), default=4, show_default=True,
              help="Solvers, one of which replays made-up recorded answers.")
def report_speed(items: int, solvers: int) -> None:
    """Time `captcha-bench report` on a synthetic run (random answers, no people's): start-up included.

    \b
    Example: captcha-bench speed report --items 10000 --solvers 4
    """
    from bench.speed import measure_report

    with tempfile.TemporaryDirectory(dir=Path.cwd()) as scratch:
        try:
            r = measure_report(Path(scratch), items, solvers)
        except ValueError as e:
            raise click.ClickException(str(e)) from None
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
    import dataclasses
    import logging
    import tempfile

    from bench.study.app import create_app, serve
    from bench.study.load import simulate

    data = dataset_or_default(dataset)
    data = dataclasses.replace(data, samples=data.samples[:items])
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "study.sqlite"
        server = serve(create_app(data, str(db), joins_per_hour=None), "127.0.0.1", 0, background=True)
        try:
            r = simulate(server.url, db, participants)
        finally:
            server.close()
    for e in r.errors[:10]:
        click.echo(f"error: {e}")
    once = "stored once each" if r.stored == r.distinct == r.answers_sent else "NOT stored once each"
    click.echo(f"{r.participants} participants x {len(data.samples)} items at once: {r.answers_sent} answers accepted, "
               f"{r.stored} rows, {r.distinct} distinct: {r.stored} answers {once}; {r.double_submits} double submits "
               f"refused\n{r.answers_sent / r.seconds:,.0f} answers/s (each with its image load and a double submit); "
               f"answer round trip median {r.answer_ms_median:.1f} ms, p95 {r.answer_ms_p95:.1f} ms; {r.seconds:.1f} s in all")
    if r.errors or once.startswith("NOT"):
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
    from captchas.speed import measure_generation

    if preset not in PRESETS:
        raise click.ClickException(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as scratch, progress_bar("Timing") as progress:
        try:
            r = measure_generation(Path(scratch), preset, count, rounds, workers, progress=progress)
        except ValueError as e:
            raise click.ClickException(str(e)) from None
    click.echo(format_table(["contender", "images/s"], [
        ["captcha ImageCaptcha.generate_image (in memory)", f"{r.library:.0f}"],
        ["captcha ImageCaptcha.write (PNG files)", f"{r.library_files:.0f}"],
        ["file creation alone (same PNG bytes, same count)", f"{r.file_writes:.0f}"],
        ["captcha-bench, 1 worker, in memory (render, legibility, PNG)", f"{r.ours_memory:.0f}"],
        ["captcha-bench generate, 1 worker (files + manifest)", f"{r.ours:.0f}"],
        [f"captcha-bench generate, {workers} workers", f"{r.ours_parallel:.0f}"],
    ]))
    click.echo(f"per core, median of rounds: {r.ratio_memory:.2f} x the library in memory, {r.ratio:.2f} x with files "
               "(target >= 0.90); "
               f"{workers} workers: {r.speedup:.2f} x one worker (target >= 1.70 on 2 cores); "
               f"{r.count} {preset} images x {r.rounds} rounds, {os.cpu_count()} CPUs")
