"""`build_report`: reads finished runs (`bench.runfolder.read.read_runs`), groups them by data set, compares
every machine with the people of its data set (`bench.report.compare`) and applies Holm's correction over
the whole report. It writes nothing (`bench.report.write` does)."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import math
import platform
import statistics
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench import stats
from bench.provenance import git_state, versions
from bench.report.compare import adjust, first_answers, plans, rescore
from bench.report.items import audit
from bench.report.model import Group, PeopleReference, Report, Row
from bench.runfolder.files import RunError, solver_costs
from bench.runfolder.read import Run, read_runs
from bench.runfolder.records import Attempt, Timing
from bench.summary import Summary, glyph_readings, summarize
from captchas import dataset as ds
from captchas import recorded
from captchas.scoring import is_correct
from captchas.turingpass import EMBEDDED_HUMANS


def build_report(paths: list[Path], allow_mixed: bool = False, seed: int = stats.SEED) -> Report:
    """Read the runs and compute everything the report shows (no files written)."""
    with collector_paused():
        return _build(paths, allow_mixed, seed)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """A report allocates hundreds of thousands of small records and frees few of them: Python's cyclic
    garbage collector would scan them again and again for nothing (about a second of a 10,000-item
    report), so it waits until the report is built."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _build(paths: list[Path], allow_mixed: bool, seed: int) -> Report:
    runs = read_runs(paths, allow_mixed)
    groups: dict[tuple[str, str], list[Run]] = {}
    for r in runs:  # a sweep's points stay apart even where two knobs' values make the same data set
        groups.setdefault((r.dataset_sha256, str(r.point.get("label", ""))), []).append(r)
    # Every bootstrap first, then all at once: those over the same items (a data set's solvers' medians,
    # each machine against its people) share one resampling, as one seed would draw it anyway.
    planned: list[tuple[stats.Wanted, Callable[..., Any]]] = []
    grouped = []
    for rs in groups.values():
        group, wanted, finish = _group(rs)
        grouped.append(len(planned))
        planned.append((wanted, finish))
        for person in group.people:
            planned += plans(group.label, {m: group.attempts[m] for m in group.machines}, group.attempts[person],
                             group.case_sensitive, stated_margin(rs), seed)
    done = [finish(*intervals) for (_, finish), intervals in
            zip(planned, stats.bootstrap_together([wanted for wanted, _ in planned], seed))]
    built = [done[k] for k in grouped]
    comparisons = [c for k, c in enumerate(done) if k not in set(grouped)]
    swept = any(g.point for g in built)  # only a sweep draws the TuringPass people as a reference band
    return Report(built, adjust(comparisons), _turingpass_reference() if swept else None,
                  datetime.now(timezone.utc).isoformat(timespec="seconds"), _provenance(seed),
                  [str(r.path) for r in runs if not r.finished], tuple(audit(g) for g in built))


def stated_margin(runs: list[Run]) -> float | None:
    """The equivalence margin (a proportion) that the runs of one data set stated before they ran; None where
    none did. Runs that stated different margins cannot be judged by one: RunError."""
    stated = {float(m) for r in runs if (m := (r.request.get("config") or {}).get("margin")) is not None}
    if len(stated) > 1:
        named = ", ".join(f"{m:g}" for m in sorted(stated))
        raise RunError(f"the runs on {runs[0].label} stated different margins ({named} points): report them apart, "
                       "or run them again with one --margin")
    return stated.pop() / 100 if stated else None


def _group(runs: list[Run]) -> tuple[Group, stats.Wanted, Callable[..., Group]]:
    """A data set's runs as a Group without its time intervals yet; the bootstrap of its solvers'
    medians; and how to finish the Group from that bootstrap's intervals."""
    attempts: dict[str, list[Attempt]] = {}
    timings: dict[str, Timing] = {}
    scored_as: dict[str, bool] = {}  # the case rule each solver's run scored its attempts by
    people: list[str] = []
    costs: dict[str, tuple[float | None, str]] = {}  # a machine's cost per 1,000 solves, from its run's details
    names = Counter(s for r in runs for s in r.solvers)
    for r in runs:
        priced = solver_costs(r.path, r.request)
        for solver in r.solvers:
            name = solver if names[solver] == 1 else f"{solver} ({r.run_id})"  # the same solver in two runs
            if solver in priced:
                costs[name] = priced[solver]
            attempts[name] = [a for a in r.attempts if a.solver == solver]
            scored_as[name] = bool(r.request.get("case_sensitive"))
            if solver in r.timings:
                timings[name] = r.timings[solver]
            if solver in r.recorded:
                people.append(name)
    rule = runs[0].case_sensitive
    rows_of: dict[bool, list[tuple[str, str, list[Attempt]]]] = {}  # rule -> (row, solver, attempts)
    for case in (rule, not rule):
        rows_of[case] = []
        for name, mine in attempts.items():
            scored = mine if scored_as[name] == case else rescore(mine, case, with_cer=case == rule)
            rows_of[case] += ([(f"{name} (first answers)", name, list(first_answers(scored).values())),
                               (f"{name} (all answers)", name, scored)] if name in people else [(name, name, scored)])
    # times do not depend on the case rule: every row's median interval from one bootstrap of the items
    items = sorted({a.item_id for mine in attempts.values() for a in mine})
    where = {i: k for k, i in enumerate(items)}
    samples = []
    for _, _, chosen in rows_of[rule]:
        times: list[list[float]] = [[] for _ in items]
        for a in chosen:
            if not a.error and math.isfinite(a.seconds):
                times[where[a.item_id]].append(a.seconds)
        samples.append(times)
    wanted, spread_of = stats.spreads_wanted(tuple(items), samples)
    firsts = [a for name, mine in attempts.items()
              for a in (first_answers(mine).values() if name in people else mine)]
    first = runs[0]
    bare = Group(first.label, first.dataset_sha256, rule, tuple(runs), attempts, timings, tuple(people), first.point,
                 {}, *glyph_readings(firsts, rule))

    def finish(low: Any, high: Any) -> Group:
        spreads = dict(zip((label for label, _, _ in rows_of[rule]), spread_of(low, high)))
        def summary(label: str, name: str, chosen: list[Attempt]) -> Summary:
            made = summarize(label, chosen, timings.get(name))
            usd, basis = costs.get(name, (None, ""))
            return dataclasses.replace(made, usd_per_1000=usd, cost_basis=basis)

        tables = {case: [Row(label, summary(label, name, chosen), spreads[label], name in people)
                         for label, name, chosen in rows_of[case]] for case in rows_of}
        return dataclasses.replace(bare, tables=tables)

    return bare, wanted, finish


def _turingpass_reference() -> PeopleReference | None:
    """People's first tries on the embedded TuringPass split, scored as its app judged (case-insensitive)."""
    try:
        data = ds.read_dataset(EMBEDDED_HUMANS)
        rows = recorded.read_csv(EMBEDDED_HUMANS / data.info["human_answers"]["file"])
    except (ds.DatasetError, KeyError, OSError):
        return None
    truth = {s.id: s.answer for s in data.samples}
    firsts = [r for r in rows if r.attempt == 1 and r.item_id in truth]
    right = sum(not r.skipped and is_correct(truth[r.item_id], r.answer, False) for r in firsts)
    low, high = stats.wilson(right, len(firsts))
    times = sorted(r.seconds for r in firsts if not r.skipped and r.seconds is not None)
    return PeopleReference(right / len(firsts), low, high, len(firsts), statistics.median(times))


def _provenance(seed: int) -> dict[str, Any]:
    return {"versions": versions(("captcha-bench", "numpy", "scipy", "statsmodels", "matplotlib")),
            "python": platform.python_version(), "git": git_state(), "machine": platform.node(),
            "bootstrap": {"resamples": stats.RESAMPLES, "seed": seed, "method": "percentile"}}
