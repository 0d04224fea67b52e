"""Run commands: run, report, sweep, solvers."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import click

from bench.cli.common import (FINITE, bars, dataset_or_default, default_workers, executor_from, executor_options,
                                   parse_options, progress_bar, split_pair)
from bench.cli.listing import default_run_text, run_text, solvers_table
from bench.run import PRICE_CORE_HOUR, RunConfig, SolverSpec
from captchas import output, schemes
from solvers import registry


def solver_options(command: Any) -> Any:
    """The options `run` and `sweep` share: which solvers, their options, and how they are asked."""
    for option in reversed([
        click.option("--solver", "names", multiple=True, metavar="NAME",
                     help="Solver name or module:attr; repeatable [default: every solver that can run here]."),
        click.option("-o", "--option", "pairs", multiple=True, metavar="[SOLVER.]KEY=VALUE",
                     help="Solver option; repeatable."),
        click.option("--timeout", type=FINITE, default=30.0, show_default=True,
                     help="Seconds per item before a solver is restarted."),
        click.option("--throughput-items", type=int, default=256, show_default=True,
                     help="Items in each throughput pass; 0 skips it."),
        click.option("--price-core-hour", type=FINITE, default=PRICE_CORE_HOUR, show_default=True, metavar="USD",
                     help="What one vCPU costs for an hour: a machine solver's cost per 1,000 solves is its CPU time "
                          "at this price (the default: AWS EC2 on demand, June 2026, as the README says)."),
        click.option("--solver-workers", type=click.IntRange(1), default=None,
                     help="Processes asking each solver at once [default: 1, so that latency is measured alone; "
                          "with --executor dask, the LocalCluster's workers, default the CPU count]."),
    ]):
        command = option(command)
    return executor_options(command)


def solver_specs(names: tuple[str, ...], pairs: tuple[str, ...]) -> tuple[Any, ...]:
    """-o key=value applies to every solver, -o NAME.key=value to the solver NAME only."""
    options: dict[str, dict[str, Any]] = {n: {} for n in names}
    for key, value in parse_options(pairs, "-o").items():
        target, dot, option = key.rpartition(".")
        if dot and target not in options:
            raise click.ClickException(f"-o {key}=...: {target!r} is not one of the solvers of this run ({', '.join(names)})")
        for name in ([target] if dot else names):
            options[name][option] = value
    return tuple(SolverSpec(n, options[n]) for n in names)


def run_config(names: tuple[str, ...], pairs: tuple[str, ...], **settings: Any) -> Any:
    """The RunConfig of the solvers, their options and the settings (RunConfig's fields), checked."""
    names = names or tuple(registry.default_solvers())
    if not names:
        raise click.ClickException("no solver can run here: see captcha-bench solvers")
    return RunConfig(solver_specs(names, pairs), **settings)


def echo_report(paths: list[Path], out: Path, allow_mixed: bool = False, seed: int = 0) -> None:
    """Build the report of these runs into `out` and print its verdict and where it is."""
    from bench.report import build_report, check_report_out, write_report  # loaded by the command, not by --help
    from bench.report.tables import verdict_text  # loaded by the command, not by --help

    if out not in paths:  # a folder of its own that cannot take the report is refused before the statistics
        check_report_out(out)
    report = build_report(paths, allow_mixed, seed)
    write_report(report, out)
    click.echo("\n" + verdict_text(report))
    click.echo(f"\nreport: {out / 'report.html'} (and report.md, figures/)")


@click.command()
@click.option("--dataset", type=click.Path(path_type=Path), default=None,
              help="Data set folder [default: the embedded default benchmark, see below].")
@solver_options
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Run folder [default: results/run-<time>].")
@click.option("--resume", is_flag=True, help="Continue the run in --out: finished attempts are kept, not redone.")
@click.option("--batch-size", type=int, default=32, show_default=True, help="Challenges per call in the throughput pass.")
@click.option("--limit", type=int, default=None, help="Attempt only the first N items (of each data set).")
@click.option("--case-sensitive/--case-insensitive", "case", default=None,
              help="Score with or without case [default: as the data set says].")
@click.option("--margin", type=FINITE, default=None, metavar="POINTS",
              help="Accuracy points within which machine and people count as equivalent, stated before the run and "
                   "recorded with it: the report then also tests equivalence (TOST) and non-inferiority.")
def run(dataset: Path | None, names: tuple[str, ...], pairs: tuple[str, ...], out: Path | None, resume: bool,
        timeout: float, batch_size: int, throughput_items: int, price_core_hour: float, limit: int | None,
        case: bool | None, margin: float | None, solver_workers: int | None, executor_kind: str, scheduler: str | None,
        images_by: str | None) -> None:
    """Run solvers on a data set; write attempts.csv, summary.csv and summary.json.

    Without --dataset, the default benchmark: every machine solver and the recorded people on the
    TuringPass images people answered (shipped in the package), and every machine solver on the
    generated default set; then the report (verdict, figures) of both, in one folder.

    \b
    Example: captcha-bench run --dataset results/datasets/hard-7 --solver ddddocr --solver ocr -o ocr.psm=7 --out results/runs/hard-7-baselines

    \b
    Example: captcha-bench run --dataset captchas/data/turingpass/humans --solver cnn --solver human --limit 100 --margin 5 --out results/runs/tp-100
    """
    from bench.benchmark import run_benchmark, with_dataset_options  # loaded by the command, not by --help
    from bench.suite import run_default  # loaded by the command, not by --help

    dataset, config, out = _request(dataset, names, pairs, out, resume, timeout=timeout, batch_size=batch_size,
                                    throughput_items=throughput_items, limit=limit, case_sensitive=case,
                                    price_core_hour=price_core_hour, margin=margin)
    output.check_writable(out, what="run")  # before the default set is made or any image is read
    data = dataset_or_default(dataset)  # the generated default set when none is given
    with executor_from(executor_kind, solver_workers, scheduler, images_by) as where, bars() as asking:
        if dataset is None:
            done = run_default(config, data, out, resume=resume, progress=asking, executor=where)
        else:
            config = with_dataset_options(config, data)
            result = run_benchmark(data, config, out, resume=resume, progress=asking, executor=where)
    if dataset is None:
        click.echo(default_run_text(done, config.limit))
        return echo_report([out], out)
    click.echo(run_text(data, config, result))


def _request(dataset: Path | None, names: tuple[str, ...], pairs: tuple[str, ...], out: Path | None, resume: bool,
             **settings: Any) -> tuple[Path | None, Any, Path]:
    """What `run` is asked: its data set (None: the default benchmark, people included), config and
    folder. --resume takes what the command leaves out from the run it continues."""
    from bench.runfolder.resume import recorded_request  # loaded by the command, not by --help
    from bench.suite import PEOPLE  # loaded by the command, not by --help

    before = recorded_request(out) if resume and out is not None else None
    if before is not None:
        settings = _recorded_settings(before["config"], settings)
        dataset = dataset or (Path(before["dataset"]) if before["dataset"] else None)
        names = names or tuple(s.name for s in before["solvers"])
    if dataset is None:
        names = tuple(names or registry.default_solvers()) + ((PEOPLE,) if PEOPLE not in names else ())
    config = run_config(names, pairs, **settings)
    if before is not None and not pairs and names == tuple(s.name for s in before["solvers"]):
        config = dataclasses.replace(config, solvers=before["solvers"])  # with the options the run recorded
    return dataset, config, out or Path("results") / f"run-{time.strftime('%Y%m%d-%H%M%S')}"


def _recorded_settings(recorded: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The run settings (RunConfig field -> value) as given, except where the command line left an
    option at its default and the run being resumed recorded a value: that one is kept."""
    ctx = click.get_current_context()
    options = {"case_sensitive": "case"}  # RunConfig field -> the option's parameter name

    def defaulted(key: str) -> bool:
        source = ctx.get_parameter_source(options.get(key, key))
        return source is None or source == click.core.ParameterSource.DEFAULT

    return {k: recorded[k] if k in recorded and defaulted(k) else v for k, v in given.items()}


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder for report.html, report.md and figures/ [default: the first RUN]; a run folder, or an "
                   "empty or new one.")
@click.option("--allow-mixed", is_flag=True, help="Report runs on different data sets side by side (each compared "
                                                  "within its own data set).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap intervals.")
def report(runs: tuple[Path, ...], out: Path | None, allow_mixed: bool, seed: int) -> None:
    """Compare machines with people on the same items: the verdict and its statistics, figures, provenance.

    RUN is a run folder, or a folder of runs that `run` (no --dataset) or `sweep` wrote. Runs on the
    same data set are compared together; people are the solvers that replay recorded answers.

    \b
    Example: captcha-bench report results/runs/hard-7
    """
    echo_report(list(runs), out or runs[0], allow_mixed, seed)


@click.command()
@click.option("--preset", default="medium", show_default=True, help="Preset every point starts from.")
@click.option("--scheme", default=schemes.DEFAULT_SCHEME, show_default=True, help="Installed scheme name or module:attr.")
@click.option("--vary", "varies", multiple=True, required=True, metavar="KNOB=V1,V2,...",
              help="A knob and its values (Python literals; a tuple is one value); repeatable, one axis each.")
@click.option("--set", "knobs", multiple=True, metavar="KNOB=VALUE", help="A knob for every point; repeatable.")
@solver_options
@click.option("--count", type=int, default=300, show_default=True, help="Items per point.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every point's data set.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Sweep folder (data sets, runs, report).")
@click.option("--resume", is_flag=True, help="Continue the sweep in --out.")
@click.option("--studies", type=click.Path(path_type=Path), default=Path("results/studies"), show_default=True,
              help="Where `record` keeps study databases: a point whose data set has one gets the people too.")
@click.option("--workers", type=click.IntRange(1), default=default_workers,
              help="Processes generating data [default: CPU count; with --executor dask, the cluster's workers].")
def sweep(preset: str, scheme: str, varies: tuple[str, ...], knobs: tuple[str, ...], names: tuple[str, ...],
          pairs: tuple[str, ...], count: int, seed: int, out: Path, resume: bool, studies: Path,
          throughput_items: int, price_core_hour: float, timeout: float, workers: int, solver_workers: int | None,
          executor_kind: str, scheduler: str | None, images_by: str | None) -> None:
    """Sweep difficulty knobs: where does each machine fall below the people?

    One data set per knob value (other knobs at the preset), every solver on each, one report with
    accuracy and time against each knob.

    \b
    Example: captcha-bench sweep --vary 'rotate=(-15,15),(-45,45),(-75,75)' --solver cnn --out results/sweep-rotate
    """
    from bench.sweep import Sweep, parse_values, plan_sweep, plan_text, run_sweep  # loaded by the command

    axes = tuple((key, parse_values(text)) for key, text in (split_pair(v, "--vary") for v in varies))
    config = run_config(names, pairs, timeout=timeout, throughput_items=throughput_items, price_core_hour=price_core_hour)
    asked = Sweep(axes, preset, scheme, parse_options(knobs), count, seed)
    with progress_bar("Checking points") as checking:
        plan = plan_sweep(asked, out, resume, checking)  # every point drawn before anything is written
    click.echo(plan_text(plan, workers, len(config.solvers)), err=True)
    with executor_from(executor_kind, solver_workers, scheduler, images_by) as where, \
            progress_bar("Generating") as generating, bars() as asking:
        run_sweep(asked, config.solvers, config, out, resume=resume, workers=workers, studies=studies,
                  progress=asking, generating=generating, executor=where, plan=plan)
    echo_report([out], out)


@click.command("solvers")
def solvers_() -> None:
    """List installed solvers: where each comes from and whether it can run here.

    \b
    Example: captcha-bench solvers
    """
    with progress_bar("Loading solvers") as progress:
        found = registry.describe(progress)
    click.echo(solvers_table(found))
