"""What the commands print besides the report: what a run did, the presets and their knobs, the
installed solvers, and the speed benchmarks' tables. Pure functions that build strings from library
results.
"""

from __future__ import annotations

import dataclasses
import os
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bench.run import RunConfig
from bench.summary import format_table, to_table
from captchas import dataset as ds
from captchas.lined import LinedSpec
from captchas.render import Legibility
from captchas.spec import KNOBS, PRESETS


if TYPE_CHECKING:  # the run's modules load with the run, not with --help
    from bench.benchmark import RunResult
    from bench.suite import Part


def run_text(data: ds.Dataset, config: RunConfig, result: RunResult) -> str:
    """One run: its items and scoring, each solver's summary, and where the results are."""
    from bench.benchmark import case_sensitive  # loaded by the command, not by --help

    items = len(data.samples) if config.limit is None else min(config.limit, len(data.samples))
    how = "sensitive" if case_sensitive(data, config) else "insensitive"
    return (f"{_nothing_to_do(result)}\n{items} items of {data.path} (sha256 {data.hash[:12]}), scored case-{how}\n"
            f"{to_table(result.summaries)}{_busy(result)}"
            f"\n\nresults in {result.path}/ (attempts.csv, summary.csv, summary.json); "
            f"the report: captcha-bench report {result.path}")


def default_run_text(done: Sequence[tuple[Part, RunResult]], limit: int | None) -> str:
    """The default benchmark's parts: each one's items and solvers' summaries."""

    return "".join(f"{_nothing_to_do(result)}\n{part.label}: "
                   f"{min(limit or len(part.dataset.samples), len(part.dataset.samples))} items "
                   f"(sha256 {part.dataset.hash[:12]})\n{to_table(result.summaries)}{_busy(result)}"
                   for part, result in done)


def _nothing_to_do(result: RunResult) -> str:

    return (f"\nnothing to do: {result.path} already holds every attempt and timing of its solvers (its files are "
            "unchanged); its results:" if result.already_done else "")


def _busy(result: RunResult) -> str:

    return f"\nwarning: {result.load_warning}" if result.load_warning else ""


def show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def presets_text(measured: Sequence[Legibility] | None, schemes: Sequence[str]) -> str:
    """Every preset's knobs in one table (with how often their renders are redrawn, when measured), the
    `lined` scheme's knobs, the long values spelled out below, and the installed schemes."""
    names = list(PRESETS)
    long: dict[str, str] = {}  # long values (charsets, font lists) named in the table, spelled out below it

    def cell(value: Any) -> str:
        text = show(value)
        if len(text) <= 14:
            return text
        key = next((k for k, v in long.items() if v == text), f"[{len(long) + 1}]")
        long[key] = text
        return key

    rows = [[knob, *(cell(getattr(PRESETS[n], knob)) for n in names)] for knob in KNOBS]
    if measured:
        rows += [
            ["renders measured", *(str(s.renders) for s in measured)],
            ["any glyph ink cut off", *(f"{s.cut / s.renders:.1%}" for s in measured)],
            ["cut beyond max_clip", *(f"{s.clipped / s.renders:.1%}" for s in measured)],
            ["squeezed below min_scale", *(f"{s.squeezed / s.renders:.1%}" for s in measured)],
            ["redrawn (either)", *(f"{s.rejected_rate:.1%}" for s in measured)],
        ]
    lined = [[f.name, cell(f.default)] for f in dataclasses.fields(LinedSpec)]
    lines = [format_table(["knob", *names], rows),
             "\nThe lined scheme (--scheme lined) has no presets; its knobs and defaults:\n"
             + format_table(["knob", "default"], lined) + "\n"]
    for key, value in long.items():  # a table stays narrow; long values are spelled out once, here
        lines.append(textwrap.fill(f"{key} {value.replace(',', ', ') if ',' in value else value}", 78,
                                   subsequent_indent="    ", break_on_hyphens=False))
    return "\n".join(lines) + f"\n\nschemes: {', '.join(schemes)}"


def solvers_table(found: Sequence[Any]) -> str:
    """`registry.describe()`'s solvers: where each comes from and whether it can run here."""
    rows = [[i.name, i.origin, i.target, "yes" if i.problem is None else f"no: {i.problem}"] for i in found]
    return format_table(["solver", "from", "entry point", "can run here"], rows)


def runner_speed_text(r: Any, where: str) -> str:
    """`bench.measure.measure_runner`'s result."""
    return format_table(["stage", "items/s"], [
        ["check: read, sha256, header (before the run)", f"{r.load:,.0f}"],
        ["decode (in the solver process, as each shard arrives)", f"{r.decode:,.0f}"],
        ["loop: ask (solver process), score, append attempts.csv", f"{r.loop:,.0f}"],
        ["whole run, start-up and summaries included", f"{r.total:,.0f}"],
    ]) + (f"\n{r.items} attempts of the constant solver on {where}; harness cost per item: "
          f"{1000 / r.load + 1000 / r.decode + 1000 / r.loop:.3f} ms; target: loop >= 5,000 items/s")


def generator_speed_text(r: Any) -> str:
    """`captchas.generation_speed.measure_generation`'s result."""
    return format_table(["contender", "images/s"], [
        ["captcha ImageCaptcha.generate_image (in memory)", f"{r.library:.0f}"],
        ["captcha ImageCaptcha.write (PNG files)", f"{r.library_files:.0f}"],
        ["file creation alone (same PNG bytes, same count)", f"{r.file_writes:.0f}"],
        ["captcha-bench, 1 worker, in memory (render, legibility, PNG)", f"{r.ours_memory:.0f}"],
        ["captcha-bench generate, 1 worker (files + manifest)", f"{r.ours:.0f}"],
        [f"captcha-bench generate, {r.workers} workers", f"{r.ours_parallel:.0f}"],
    ]) + (f"\nper core, median of rounds: {r.ratio_memory:.2f} x the library in memory, {r.ratio:.2f} x with files "
          "(target >= 0.90); "
          f"{r.workers} workers: {r.speedup:.2f} x one worker (target >= 1.70 on 2 cores); "
          f"{r.count} {r.preset} images x {r.rounds} rounds, {os.cpu_count()} CPUs")


def study_speed_text(r: Any, items: int) -> str:
    """`bench.study.load.measure`'s result: errors first, then whether every answer was stored once."""
    once = "stored once each" if r.stored_once else "NOT stored once each"
    return "".join(f"error: {e}\n" for e in r.errors[:10]) + (
        f"{r.participants} participants x {items} items at once: {r.answers_sent} answers accepted, "
        f"{r.stored} rows, {r.distinct} distinct: {r.stored} answers {once}; {r.double_submits} double submits "
        f"refused\n{r.answers_sent / r.seconds:,.0f} answers/s (each with its image load and a double submit); "
        f"answer round trip median {r.answer_ms_median:.1f} ms, p95 {r.answer_ms_p95:.1f} ms; {r.seconds:.1f} s in all")


def latency_text(clocks: Sequence[Any]) -> str:
    """`bench.measure.measure_clock`'s result: each solver quiet and busy, and busy over quiet."""
    rows = []
    for c in clocks:
        median, p90 = c.ratios
        rows.append([c.solver, f"{c.quiet[0] * 1000:.2f}", f"{c.quiet[1] * 1000:.2f}", f"{c.busy[0] * 1000:.2f}",
                     f"{c.busy[1] * 1000:.2f}", f"{median:.2f}x", f"{p90:.2f}x",
                     "yes" if max(median, p90) <= 1.5 else "no"])
    return format_table(["solver", "quiet median ms", "quiet p90 ms", "busy median ms", "busy p90 ms",
                         "median busy/quiet", "p90 busy/quiet", "within 1.5x"], rows)
