"""The `captcha-bench` command: a thin click skin over the library, one call per command."""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import functools
import os
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from bench.summary import format_table
from captchas import dataset as ds
from captchas import generate as gen
from captchas import folder, schemes, turingpass
from captchas.render import IllegibleError, measure_legibility
from captchas.knobs import SpecError
from captchas.spec import KNOBS, PRESETS
from bench.runs import RunError
from bench.study.store import JOINS_PER_HOUR
from solvers import registry

USER_ERRORS = (ds.DatasetError, SpecError, schemes.SchemeError, IllegibleError, registry.SolverError, RunError)


class _Group(click.Group):
    """Turns the library's user errors into one-line messages with exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except USER_ERRORS as e:
            raise click.ClickException(str(e)) from None


@click.group(cls=_Group)
@click.version_option(package_name="captcha-bench")
def cli() -> None:
    """captcha-bench: do machines beat humans at image CAPTCHAs? Measure it on the same items.

    Exit status: 0 done; 1 refused or failed (the one-line error says why and what to do); 2 the
    command line itself is wrong (click's usage errors: an unknown option, a missing or mistyped value).

    \b
    Examples:
      captcha-bench run                      # the default benchmark: machines against recorded people
      captcha-bench generate --preset hard --count 1000 --seed 7 --out results/datasets/hard-7
      captcha-bench run --dataset results/datasets/hard-7 --solver cnn --out results/runs/hard-7
    """


def parse_options(pairs: tuple[str, ...], flag: str = "--set") -> dict[str, Any]:
    """KEY=VALUE strings to a dict; values go through ast.literal_eval, falling back to str."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise click.ClickException(f"{flag} expects KEY=VALUE, got {pair!r}")
        try:
            options[key.strip()] = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            options[key.strip()] = text
    return options


def dataset_or_default(dataset: Path | None) -> ds.Dataset:
    """The data set folder given, or the embedded default (generated, or reused once its hashes check)."""
    from bench.benchmark import default_dataset

    if dataset is not None:
        return ds.read_dataset(dataset)
    with progress_bar("Default data set") as generating:
        return default_dataset(_default_workers(), generating)


class Bars:
    """The one progress helper: called with (label, done, total), it draws a click progress bar on
    stderr; a new label closes the last bar (so does `close()`, and leaving `bars()`)."""

    def __init__(self) -> None:
        self._label: str | None = None
        self._bar: Any = None

    def __call__(self, label: str, done: int, total: int) -> None:
        if label != self._label:
            self.close()
            self._label = label
            self._bar = click.progressbar(length=total, label=f"{label:>10}", file=sys.stderr, show_pos=True)
            self._bar.__enter__()
        self._bar.update(done - self._bar.pos)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
        self._label = self._bar = None


@contextlib.contextmanager
def bars() -> Iterator[Bars]:
    shown = Bars()
    try:
        yield shown
    finally:
        shown.close()


@contextlib.contextmanager
def progress_bar(label: str) -> Iterator[ds.Progress]:
    """`bars` for library calls that report (done, total) under one label."""
    with bars() as update:
        yield functools.partial(update, label)


def _default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@cli.command()
@click.option("--preset", default=None, help="Difficulty preset (see `captcha-bench presets`); default medium.")
@click.option("--scheme", default=schemes.DEFAULT_SCHEME, show_default=True, help="Installed scheme name or module:attr.")
@click.option("--count", type=int, default=1000, show_default=True, help="Number of images.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed: the same seed gives the same bytes.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder to create (must be empty).")
@click.option("--set", "knobs", multiple=True, metavar="KNOB=VALUE", help="Override a knob; repeatable.")
@click.option("--workers", type=int, default=_default_workers, help="Worker processes [default: CPU count].")
@click.option("--force", is_flag=True, help="Replace a non-empty --out once the new set is complete.")
@click.option("--reuse", is_flag=True, help="Keep --out if it already holds exactly this data set.")
def generate(preset: str | None, scheme: str, count: int, seed: int, out: Path, knobs: tuple[str, ...],
             workers: int, force: bool, reuse: bool) -> None:
    """Generate a seeded data set of CAPTCHA images.

    \b
    Example: captcha-bench generate --preset hard --count 1000 --seed 7 --out results/datasets/hard-7
    """
    made = schemes.load(scheme, preset, parse_options(knobs))
    reused = reuse and (out / ds.MANIFEST).is_file()
    start = time.perf_counter()
    with progress_bar("Generating") as progress:
        data = gen.make_dataset(made, count, seed, out, workers=workers, force=force, reuse=reuse,
                                scheme_name=scheme, preset=preset, progress=progress)
    seconds = time.perf_counter() - start
    shown = preset or ("medium" if scheme == schemes.DEFAULT_SCHEME else None)  # image's default preset
    what = f"{len(data.samples)} images in {out} (scheme {scheme}{f', preset {shown}' if shown else ''}, seed {seed})"
    if reused:
        click.echo(f"Reused {what}: it already held this data set and its files match the manifest")
    else:
        click.echo(f"{what}; {len(data.samples) / seconds:,.0f} images/s with {workers} worker(s)")
    click.echo(f"data set sha256 {data.hash}")


def solver_specs(names: tuple[str, ...], pairs: tuple[str, ...]) -> tuple[Any, ...]:
    """-o key=value applies to every solver, -o NAME.key=value to the solver NAME only."""
    from bench.run import SolverSpec

    options: dict[str, dict[str, Any]] = {n: {} for n in names}
    for key, value in parse_options(pairs, "-o").items():
        target, dot, option = key.rpartition(".")
        if dot and target not in options:
            raise click.ClickException(f"-o {key}=...: {target!r} is not one of the solvers of this run ({', '.join(names)})")
        for name in ([target] if dot else names):
            options[name][option] = value
    return tuple(SolverSpec(n, options[n]) for n in names)


def run_config(names: tuple[str, ...], pairs: tuple[str, ...], timeout: float, batch_size: int,
               throughput_items: int, limit: int | None, case: bool | None) -> Any:
    """The RunConfig of the run options shared by `run` and `sweep`, checked."""
    from bench.run import RunConfig

    if timeout <= 0 or batch_size < 1 or throughput_items < 0 or (limit is not None and limit < 1):
        raise click.ClickException("--timeout must be > 0, --batch-size and --limit >= 1, --throughput-items >= 0")
    names = names or tuple(registry.default_solvers())
    if not names:
        raise click.ClickException("no solver can run here: see captcha-bench solvers")
    return RunConfig(solver_specs(names, pairs), timeout, batch_size, throughput_items, limit, case)


def echo_report(paths: list[Path], out: Path, allow_mixed: bool = False, seed: int = 0) -> None:
    """Build the report of these runs into `out` and print its verdict and where it is."""
    from bench.report import build_report, write_report
    from bench.tables import verdict_text

    report = build_report(paths, allow_mixed, seed)
    write_report(report, out)
    click.echo("\n" + verdict_text(report))
    click.echo(f"\nreport: {out / 'report.html'} (and report.md, figures/)")


@cli.command()
@click.option("--dataset", type=click.Path(path_type=Path), default=None,
              help="Data set folder [default: the embedded default benchmark, see below].")
@click.option("--solver", "names", multiple=True, metavar="NAME",
              help="Solver name or module:attr; repeatable [default: every solver that can run here].")
@click.option("-o", "--option", "pairs", multiple=True, metavar="[SOLVER.]KEY=VALUE", help="Solver option; repeatable.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Run folder [default: results/run-<time>].")
@click.option("--resume", is_flag=True, help="Continue the run in --out: finished attempts are kept, not redone.")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds per item before a solver is restarted.")
@click.option("--batch-size", type=int, default=32, show_default=True, help="Challenges per call in the throughput pass.")
@click.option("--throughput-items", type=int, default=256, show_default=True, help="Items in the throughput pass; 0 skips it.")
@click.option("--limit", type=int, default=None, help="Attempt only the first N items (of each data set).")
@click.option("--case-sensitive/--case-insensitive", "case", default=None,
              help="Score with or without case [default: as the data set says].")
def run(dataset: Path | None, names: tuple[str, ...], pairs: tuple[str, ...], out: Path | None, resume: bool,
        timeout: float, batch_size: int, throughput_items: int, limit: int | None, case: bool | None) -> None:
    """Run solvers on a data set; write attempts.csv, summary.csv and summary.json.

    Without --dataset, the default benchmark: every machine solver and the recorded people on the
    TuringPass images people answered (shipped in the package), and every machine solver on the
    generated default set; then the report (verdict, figures) of both, in one folder.

    \b
    Example: captcha-bench run --dataset results/datasets/hard-7 --solver ddddocr --solver ocr -o ocr.psm=7 --out results/runs/hard-7
    """
    from bench.summary import to_table
    from bench.benchmark import case_sensitive, recorded_request, run_benchmark, with_dataset_options
    from bench.suite import PEOPLE, run_default

    before = recorded_request(out) if resume and out is not None else None
    if before is not None:  # --resume takes what the command leaves out from the run it continues
        timeout, batch_size, throughput_items, limit, case = _recorded_settings(
            before["config"], timeout=timeout, batch_size=batch_size, throughput_items=throughput_items, limit=limit,
            case_sensitive=case)
        dataset = dataset or (Path(before["dataset"]) if before["dataset"] else None)
        names = names or tuple(s.name for s in before["solvers"])
    out = out or Path("results") / f"run-{time.strftime('%Y%m%d-%H%M%S')}"
    if dataset is None:
        names = tuple(names or registry.default_solvers()) + ((PEOPLE,) if PEOPLE not in names else ())  # people too
    config = run_config(names, pairs, timeout, batch_size, throughput_items, limit, case)
    if before is not None and not pairs and names == tuple(s.name for s in before["solvers"]):
        config = dataclasses.replace(config, solvers=before["solvers"])  # with the options the run recorded
    if dataset is None:
        with bars() as asking:
            done = run_default(config, dataset_or_default(None), out, resume=resume, progress=asking)
        for part, result in done:
            click.echo(f"\n{part.label}: {min(limit or len(part.dataset.samples), len(part.dataset.samples))} items "
                       f"(sha256 {part.dataset.hash[:12]})\n{to_table(result.summaries)}")
        echo_report([out], out)
        return
    data = dataset_or_default(dataset)
    config = with_dataset_options(config, data)
    with bars() as asking:
        result = run_benchmark(data, config, out, resume=resume, progress=asking)
    click.echo(f"\n{len(data.samples) if limit is None else min(limit, len(data.samples))} items of {data.path} "
               f"(sha256 {data.hash[:12]}), scored case-{'sensitive' if case_sensitive(data, config) else 'insensitive'}")
    click.echo(to_table(result.summaries))
    click.echo(f"\nresults in {result.path}/ (attempts.csv, summary.csv, summary.json); "
               f"the report: captcha-bench report {result.path}")


def _recorded_settings(recorded: dict[str, Any], **given: Any) -> tuple[Any, ...]:
    """The run settings (RunConfig field -> value) as given, except where the command line left an
    option at its default and the run being resumed recorded a value: that one is kept."""
    ctx = click.get_current_context()
    options = {"case_sensitive": "case"}  # RunConfig field -> the option's parameter name

    def defaulted(key: str) -> bool:
        source = ctx.get_parameter_source(options.get(key, key))
        return source is None or source == click.core.ParameterSource.DEFAULT

    return tuple(recorded[k] if k in recorded and defaulted(k) else v for k, v in given.items())


@cli.command()
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


@cli.command()
@click.option("--preset", default="medium", show_default=True, help="Preset every point starts from.")
@click.option("--scheme", default=schemes.DEFAULT_SCHEME, show_default=True, help="Installed scheme name or module:attr.")
@click.option("--vary", "varies", multiple=True, required=True, metavar="KNOB=V1,V2,...",
              help="A knob and its values (Python literals; a tuple is one value); repeatable, one axis each.")
@click.option("--set", "knobs", multiple=True, metavar="KNOB=VALUE", help="A knob for every point; repeatable.")
@click.option("--solver", "names", multiple=True, metavar="NAME", help="Solver; repeatable [default: every one that can run].")
@click.option("-o", "--option", "pairs", multiple=True, metavar="[SOLVER.]KEY=VALUE", help="Solver option; repeatable.")
@click.option("--count", type=int, default=300, show_default=True, help="Items per point.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every point's data set.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Sweep folder (data sets, runs, report).")
@click.option("--resume", is_flag=True, help="Continue the sweep in --out.")
@click.option("--studies", type=click.Path(path_type=Path), default=Path("results/studies"), show_default=True,
              help="Where `record` keeps study databases: a point whose data set has one gets the people too.")
@click.option("--throughput-items", type=int, default=256, show_default=True, help="Items in each throughput pass.")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds per item before a solver is restarted.")
@click.option("--workers", type=int, default=_default_workers, help="Processes generating data [default: CPU count].")
def sweep(preset: str, scheme: str, varies: tuple[str, ...], knobs: tuple[str, ...], names: tuple[str, ...],
          pairs: tuple[str, ...], count: int, seed: int, out: Path, resume: bool, studies: Path,
          throughput_items: int, timeout: float, workers: int) -> None:
    """Sweep difficulty knobs: where does each machine fall below the people?

    One data set per knob value (other knobs at the preset), every solver on each, one report with
    accuracy and time against each knob.

    \b
    Example: captcha-bench sweep --vary 'rotate=(-15,15),(-45,45),(-75,75)' --solver cnn --out results/sweep-rotate
    """
    from bench.sweep import Sweep, parse_values, run_sweep

    axes = tuple((key, parse_values(text)) for key, text in (_pair(v, "--vary") for v in varies))
    config = run_config(names, pairs, timeout, 32, throughput_items, None, None)
    plan = Sweep(axes, preset, scheme, parse_options(knobs), count, seed)
    with progress_bar("Generating") as generating, bars() as asking:
        run_sweep(plan, config.solvers, config, out, resume=resume, workers=workers, studies=studies,
                  progress=asking, generating=generating)
    echo_report([out], out)


def _pair(text: str, flag: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise click.ClickException(f"{flag} expects KEY=VALUE, got {text!r}")
    return key.strip(), value


@cli.command()
@click.option("--preset", default="medium", show_default=True, help="Train on fresh items of this preset...")
@click.option("--dataset", type=click.Path(path_type=Path), default=None, help="...or on this data set folder.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Checkpoint to write (the best so far).")
@click.option("--count", type=int, default=60_000, show_default=True, help="Training items to generate.")
@click.option("--val-count", type=int, default=1_000, show_default=True, help="Validation items (another seed).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--epochs", type=float, default=8.0, show_default=True, help="Passes over the training items.")
@click.option("--minutes", type=float, default=None, help="Wall-clock cap; the best checkpoint so far is kept.")
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--lr", type=float, default=3e-3, show_default=True, help="Peak learning rate (one-cycle).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--workers", type=int, default=_default_workers, help="Processes rendering data [default: CPU count].")
@click.option("--height", type=int, default=None, help="Model input rows [default: 24].")
@click.option("--width", type=int, default=None, help="Model input columns [default: 72]; the model reads width/4 steps.")
@click.option("--channels", default=None, help="Conv stages' channels, e.g. 24,48,64,96 [default: 16,32,48,64].")
@click.option("--hidden", type=int, default=None, help="GRU units per direction [default: 64].")
@click.option("--colour", is_flag=True, default=None, help="Read RGB instead of grey (3 input channels).")
@click.option("--strided", is_flag=True, default=None,
              help="First stage: a stride-2 convolution instead of convolution + pooling (a quarter of its work).")
@click.option("--augment/--no-augment", default=None,
              help="Random affine, polarity and contrast per item [default: on with --dataset, off with --preset].")
@click.option("--init", type=click.Path(path_type=Path), default=None,
              help="Start from this checkpoint's weights (fine-tune; same --channels and --colour; input size, "
                   "--strided and --hidden may differ: what does not fit starts fresh).")
@click.option("--mix", type=click.Path(path_type=Path), default=None,
              help="With --dataset: a second data set (generated images, say) whose items are added to every batch.")
@click.option("--mix-share", type=float, default=0.25, show_default=True,
              help="The share of each batch's items drawn from --mix (the --dataset items per batch stay --batch-size).")
@click.option("--mix-count", type=int, default=None, help="Read only the first N items of --mix [default: all].")
@click.option("--resume", is_flag=True, help="Continue from OUT.last after an interruption.")
def train(preset: str, dataset: Path | None, out: Path, count: int, val_count: int, seed: int, epochs: float,
          minutes: float | None, batch_size: int, lr: float, device: str, workers: int, height: int | None,
          width: int | None, channels: str | None, hidden: int | None, colour: bool | None, strided: bool | None,
          augment: bool | None, init: Path | None, mix: Path | None, mix_share: float, mix_count: int | None,
          resume: bool) -> None:
    """Train the CNN solver and save the best checkpoint (config, charset, data hash inside).

    \b
    Example: captcha-bench train --preset medium --out results/models/medium.pt --minutes 20
    """
    from solvers.cnn.card import model_card
    from solvers.cnn.train import TrainConfig, train as run_training

    try:
        stages = tuple(int(c) for c in channels.split(",")) if channels is not None else None
    except ValueError:
        raise click.ClickException(f"--channels {channels!r}: give three or more comma-separated counts, "
                                   "e.g. 24,48,64,96") from None
    model = {k: v for k, v in (("height", height), ("width", width), ("channels", stages), ("hidden", hidden),
                               ("colour", colour), ("strided", strided)) if v is not None}
    config = TrainConfig(out=out, preset=None if dataset else preset, dataset=dataset, count=count, val_count=val_count,
                         seed=seed, epochs=epochs, minutes=minutes, batch_size=batch_size, lr=lr, device=device,
                         workers=workers, model=model, augment=augment, init=init, mix=mix, mix_share=mix_share,
                         mix_count=mix_count)
    def report(p: Any) -> None:
        if p.phase == "data":
            shown("Rendering data", p.done, p.total)
        else:
            shown.close()
            click.echo(f"step {p.done}/{p.total}  loss {p.loss:.3f}  validation exact {p.val_accuracy:.1%}  "
                       f"{p.seconds:.0f} s", err=True)

    try:
        with bars() as shown:
            meta = run_training(config, resume=resume, progress=report)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    out.with_suffix(".md").write_text(model_card(meta, "captcha-bench " + " ".join(sys.argv[1:])))
    best = max(meta["history"], key=lambda h: h["val_accuracy"])
    click.echo(f"best validation exact match {best['val_accuracy']:.1%} at step {best['step']} "
               f"({best['seconds']:.0f} s); checkpoint {out}, model card {out.with_suffix('.md')}")


@cli.group()
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


@cli.command("solvers")
def solvers_() -> None:
    """List installed solvers: where each comes from and whether it can run here.

    \b
    Example: captcha-bench solvers
    """
    with progress_bar("Loading solvers") as progress:
        found = registry.describe(progress)
    rows = [[i.name, i.origin, i.target, "yes" if i.problem is None else f"no: {i.problem}"] for i in found]
    click.echo(format_table(["solver", "from", "entry point", "can run here"], rows))


@cli.command()
@click.option("--measure", type=int, default=0, metavar="N", help="Also render N answers per preset and count clipped ones.")
def presets(measure: int) -> None:
    """List the difficulty presets and their knobs, and the installed schemes.

    \b
    Example: captcha-bench presets --measure 1000
    """
    names = list(PRESETS)
    long: dict[str, str] = {}  # long values (charsets, font lists) named in the table, spelled out below it

    def cell(value: Any) -> str:
        text = _show(value)
        if len(text) <= 14:
            return text
        key = next((k for k, v in long.items() if v == text), f"[{len(long) + 1}]")
        long[key] = text
        return key

    rows = [[knob, *(cell(getattr(PRESETS[n], knob)) for n in names)] for knob in KNOBS]
    if measure > 0:
        with progress_bar("Measuring") as progress:
            stats = []
            for k, n in enumerate(names):
                stats.append(measure_legibility(PRESETS[n], measure))
                progress(k + 1, len(names))
        rows += [
            ["renders measured", *(str(s.renders) for s in stats)],
            ["any glyph ink cut off", *(f"{s.cut / s.renders:.1%}" for s in stats)],
            ["cut beyond max_clip", *(f"{s.clipped / s.renders:.1%}" for s in stats)],
            ["squeezed below min_scale", *(f"{s.squeezed / s.renders:.1%}" for s in stats)],
            ["redrawn (either)", *(f"{s.rejected_rate:.1%}" for s in stats)],
        ]
    elif measure < 0:
        raise click.ClickException(f"--measure must be 0 or more, got {measure}")
    from captchas.lined import LinedSpec

    lined = [[f.name, cell(f.default)] for f in dataclasses.fields(LinedSpec)]
    click.echo(format_table(["knob", *names], rows))
    click.echo("\nThe lined scheme (--scheme lined) has no presets; its knobs and defaults:\n"
               + format_table(["knob", "default"], lined) + "\n")
    for key, value in long.items():  # a table stays narrow; long values are spelled out once, here
        click.echo(textwrap.fill(f"{key} {value.replace(',', ', ') if ',' in value else value}", 78,
                                 subsequent_indent="    ", break_on_hyphens=False))
    installed = sorted(set(schemes.available()) | {schemes.DEFAULT_SCHEME})
    click.echo(f"\nschemes: {', '.join(installed)}")


@cli.command()
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--regenerate/--no-regenerate", default=True, show_default=True,
              help="For generated sets, render every item again from the seed and compare hashes.")
@click.option("--workers", type=int, default=_default_workers, help="Worker processes [default: CPU count].")
def verify(dataset: Path, regenerate: bool, workers: int) -> None:
    """Check every file of a data set against its manifest, and regenerate it from its seed.

    \b
    Example: captcha-bench verify results/datasets/hard-7
    """
    data = ds.read_dataset(dataset)
    with progress_bar("Checking files") as progress:
        problems = ds.check_files(data, progress)
    regenerated = regenerate and data.info.get("kind") == "generated"
    reencoded = 0
    if regenerated:
        with progress_bar("Regenerating") as progress:
            again = gen.regenerate(data, workers=workers, progress=progress)
        problems += again.problems
        reencoded = again.reencoded
    for line in problems[:20]:
        click.echo(line)
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s) in {dataset}" + (" (first 20 shown)" if len(problems) > 20 else ""))
    how = "files match the manifest"
    if regenerated:
        how += "; regenerated from the seed: " + (
            f"identical pixels ({reencoded} files deflated differently by this zlib-ng build)" if reencoded else "identical")
    click.echo(f"OK: {len(data.samples)} items, {how}; data set sha256 {data.hash}")


@cli.group("import")
def import_() -> None:
    """Import labelled images from elsewhere as a data set.

    \b
    Example: captcha-bench import folder captchas/data/turingpass/humans --labels captchas/data/turingpass/humans/manifest.csv --out results/datasets/mine
    """


@import_.command("folder")
@click.argument("src", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder to create (must be empty).")
@click.option("--labels", type=click.Path(path_type=Path), default=None, help="CSV with columns file,answer.")
@click.option("--pattern", default=None, help="Regular expression on the file stem; its first group is the answer.")
@click.option("--case-sensitive/--case-insensitive", default=False, show_default=True, help="How answers are scored.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the shuffle that assigns opaque ids.")
@click.option("--force", is_flag=True, help="Replace a non-empty --out once the new set is complete.")
def import_folder(src: Path, out: Path, labels: Path | None, pattern: str | None, case_sensitive: bool,
                  seed: int, force: bool) -> None:
    """Import a folder of images labelled by file name (or a CSV), renamed to opaque ids.

    \b
    Example: captcha-bench import folder captchas/data/turingpass/humans --labels captchas/data/turingpass/humans/manifest.csv --out results/datasets/mine
    """
    with progress_bar("Importing") as progress:
        result = folder.import_folder(src, out, labels=labels, pattern=pattern, case_sensitive=case_sensitive,
                                       seed=seed, force=force, progress=progress)
    for s in result.skipped[:20]:
        click.echo(f"skipped {ds.shown(s.file)}: {s.reason}")
    more = " (first 20 listed)" if len(result.skipped) > 20 else ""
    click.echo(f"{len(result.dataset.samples)} images imported to {out}, {len(result.skipped)} skipped{more}; "
               f"data set sha256 {result.dataset.hash}")


@import_.command("turingpass")
@click.argument("src", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Folder for the two data sets OUT/humans and OUT/train (each must be empty).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the shuffle that assigns opaque ids.")
@click.option("--force", is_flag=True, help="Replace non-empty splits once the new ones are complete.")
def import_turingpass(src: Path, out: Path, seed: int, force: bool) -> None:
    """Import the public TuringPass set: the images people answered (with their answers) and the rest.

    \b
    The source is a clone of https://github.com/amri-tah/TuringPass (MIT); its `humans` split already
    ships inside captcha-bench, so this is needed only for the `train` split.

    \b
    Example: captcha-bench import turingpass TuringPass --out results/datasets/turingpass
    """
    with progress_bar("Importing") as progress:
        result = turingpass.import_turingpass(src, out, seed=seed, force=force, progress=progress)
    for s in result.skipped[:20]:
        click.echo(f"skipped {ds.shown(s.file)}: {s.reason}")
    more = " (first 20 listed)" if len(result.skipped) > 20 else ""
    click.echo(f"humans: {len(result.humans.samples)} images with {result.answers} recorded answers in {out / 'humans'} "
               f"(sha256 {result.humans.hash[:12]})\ntrain: {len(result.train.samples)} images in {out / 'train'} "
               f"(sha256 {result.train.hash[:12]}); {len(result.skipped)} skipped{more}; both scored case-insensitive")


@cli.command()
@click.option("--dataset", type=click.Path(path_type=Path), required=True, help="Data set whose images people answer.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (loopback; give 0.0.0.0 to let other machines in).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port (0: any free one).")
@click.option("--db", type=click.Path(path_type=Path), default=None,
              help="SQLite file of the study [default: results/studies/<data set sha256 prefix>.sqlite].")
@click.option("--title", default="Read the characters", show_default=True, help="Heading of the participants' page.")
@click.option("--completion-code", default="", help="Shown to each participant on the done page (e.g. for a "
                                                    "crowdsourcing platform).")
@click.option("--joins-per-hour", type=click.IntRange(1), default=JOINS_PER_HOUR, show_default=True,
              help="New participants one client address may start per hour (raise it for a lab behind one address).")
def record(dataset: Path, host: str, port: int, db: Path | None, title: str, completion_code: str,
           joins_per_hour: int) -> None:
    """Serve the human study: people answer the data set's images in their browsers.

    Each answer is committed to the SQLite database the moment it arrives; stop with Ctrl-C and
    start again with the same --db to continue. Every image is checked before the server starts.

    \b
    Example: captcha-bench record --dataset captchas/data/turingpass/humans --port 8000
    """
    from bench.study.server import open_study
    from bench.study.store import StudyError

    data = ds.read_dataset(dataset)
    try:
        with progress_bar("Checking images") as progress:
            study = open_study(data, host, port, db, title, completion_code, joins_per_hour, progress)
    except StudyError as e:
        raise click.ClickException(str(e)) from None
    people, answers = study.counts()
    click.echo(f"study of {len(data.samples)} images ({data.path}), database {study.db} "
               f"({people} participants, {answers} answers so far)\nopen {study.url}/  (Ctrl-C stops)")
    if study.public_url:
        click.echo(f"warning: listening on {host}, not loopback: anyone who can reach this machine can take part; "
                   f"participants open {study.public_url}/", err=True)
    study.serve_forever()
    people, answers = study.counts()
    click.echo(f"stopped: {people} participants, {answers} answers in {study.db}")


@cli.group()
def humans() -> None:
    """Recorded human answers: export them from a study database.

    \b
    Example: captcha-bench humans export --db results/studies/051e9b2ff964.sqlite --out answers.csv
    """


@humans.command("export")
@click.option("--db", type=click.Path(path_type=Path), required=True, help="Study database (from captcha-bench record).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="CSV file to write (must not exist).")
@click.option("--force", is_flag=True, help="Overwrite --out.")
@click.option("--excel-safe", is_flag=True, help="Put ' before answers a spreadsheet would run as formulas "
                                                 "(= + - @); the file is then no longer exact.")
def humans_export(db: Path, out: Path, force: bool, excel_safe: bool) -> None:
    """Write every recorded answer as CSV: participant, item, answer, server and browser times, attempt, skip.

    Answers are written exactly as typed, as results need them; open the file in a spreadsheet
    only with --excel-safe, or import it as text.

    \b
    Example: captcha-bench humans export --db results/studies/051e9b2ff964.sqlite --out answers.csv
    """
    from bench.study.store import Store
    from captchas.recorded import write_csv

    if not db.is_file():
        raise click.ClickException(f"--db {db} does not exist: give the database that captcha-bench record wrote")
    if out.is_dir():
        raise click.ClickException(f"--out {out} is a folder: give a file name, e.g. {out / 'answers.csv'}")
    if out.exists() and not force:
        raise click.ClickException(f"{out} exists: choose another --out, or pass --force to overwrite it")
    rows = Store.open_existing(db).export()
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_csv(tmp, rows, excel_safe=excel_safe)
        tmp.replace(out)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise click.ClickException(f"cannot write {out} ({e.strerror or e}): choose another --out") from None
    click.echo(f"{len(rows)} answers by {len({r.participant for r in rows})} participants written to {out}"
               + (" (formula-like answers prefixed with ')" if excel_safe else ""))


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


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)
