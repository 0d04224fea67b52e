"""What every command shares: the progress bars, KEY=VALUE options, the default data set, the worker count."""

from __future__ import annotations

import ast
import contextlib
import functools
import math
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from captchas import dataset as ds

if TYPE_CHECKING:  # the executors load with a command that runs, not with --help
    from bench.executors import Executor


class Finite(click.ParamType):
    """A float that is a number: inf and nan are refused as the option's usage error, in one line."""

    name = "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


FINITE = Finite()


def parse_options(pairs: tuple[str, ...], flag: str = "--set") -> dict[str, Any]:
    """KEY=VALUE strings to a dict; values go through ast.literal_eval, falling back to str."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, text = split_pair(pair, flag)
        try:
            options[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            options[key] = text
    return options


def split_pair(text: str, flag: str) -> tuple[str, str]:
    """KEY=VALUE to (KEY, VALUE text); a one-line usage error naming `flag` otherwise."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise click.ClickException(f"{flag} expects KEY=VALUE, got {text!r}")
    return key.strip(), value


def counts(text: str, flag: str, example: str) -> list[int]:
    """Comma-separated whole numbers; a one-line error naming `flag` and an example otherwise."""
    try:
        return [int(n) for n in text.split(",")]
    except ValueError:  # int()'s refusal of the text, nothing else runs here
        raise click.ClickException(f"{flag} {text!r}: give comma-separated whole numbers, e.g. {example}") from None


def dataset_or_default(dataset: Path | None) -> ds.Dataset:
    """The data set folder given, or the embedded default (generated, or reused once its hashes check)."""
    from bench.suite import default_dataset  # loaded by the command, not by --help

    if dataset is not None:
        return ds.read_dataset(dataset)
    with progress_bar("Default data set") as generating:
        return default_dataset(default_workers(), generating)


class Bars:
    """The one progress helper: called with (label, done, total), it draws a click progress bar on
    stderr, with the items done, the rate since the bar began and the time left (click's ETA); a new
    label closes the last bar (so does `close()`, and leaving `bars()`)."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._label: str | None = None
        self._bar: Any = None
        self._clock = clock
        self._began = (0.0, 0)  # when the bar began, and what was done then (a resumed run starts part-way)

    def __call__(self, label: str, done: int, total: int) -> None:
        if label != self._label:
            self.close()
            self._label = label
            self._bar = click.progressbar(length=total, label=f"{label:>10}", file=sys.stderr, show_pos=True,
                                          show_eta=True, item_show_func=lambda rate: rate)
            self._bar.__enter__()
            self._began = (self._clock(), done)
        self._bar.update(done - self._bar.pos, self.rate(done))

    def rate(self, done: int) -> str:
        """Items per second since the bar began, as the bar shows it ("" before any second has passed)."""
        seconds = self._clock() - self._began[0]
        if seconds <= 0 or done <= self._began[1]:
            return ""
        per_second = (done - self._began[1]) / seconds
        return f"{per_second:,.1f}/s" if per_second >= 1 else f"{1 / per_second:,.1f} s each"

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


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def executor_options(command: Any) -> Any:
    """--executor, --scheduler and --images-by: where `run`, `sweep` and `generate` do their work."""
    for option in reversed([
        click.option("--executor", "executor_kind", type=click.Choice(["local", "dask"]), default="local",
                     show_default=True, help="Local processes, or a Dask cluster (see docs/scale.md)."),
        click.option("--scheduler", default=None, metavar="tcp://HOST:PORT",
                     help="With --executor dask: an existing cluster's scheduler [default: start a LocalCluster]."),
        click.option("--images-by", type=click.Choice(["path", "bytes"]), default=None,
                     help="With --executor dask: images reach workers by path (a shared file system) or as bytes "
                          "[default: path on a LocalCluster, bytes with --scheduler]."),
    ]):
        command = option(command)
    return command


@contextlib.contextmanager
def executor_from(kind: str, workers: int | None, scheduler: str | None, images_by: str | None) -> Iterator[Executor]:
    """The executor asked for (a LocalCluster has `workers` processes, default the CPU count; local runs
    default to one solver process per solver); a Dask cluster's dashboard address goes to stderr."""
    from bench.executors import DaskExecutor, executor  # loaded by the command, not by --help

    if kind == "local":
        made = executor("local", workers or 1, scheduler, images_by)
    else:
        with bars() as starting:
            starting("starting Dask", 0, 1)
            made = executor(kind, workers or default_workers(), scheduler, images_by)
            starting("starting Dask", 1, 1)
        where = scheduler or "a LocalCluster on 127.0.0.1"
        dashboard = made.dashboard if isinstance(made, DaskExecutor) else ""
        click.echo(f"Dask: {where}, {made.workers} worker(s); dashboard: {dashboard}", err=True)
    try:
        yield made
    finally:
        made.close()
