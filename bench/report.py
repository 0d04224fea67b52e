"""The report: machines and people on the same items, the verdict with its statistics, the figures.

`build_report` reads finished runs (`bench.runs`), groups them by data set, compares every machine
with the people of its data set (`bench.compare`) and applies Holm's correction over the whole
report; `write_report` writes report.html (figures embedded), report.md and the figures as PNG.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import gc
import math
import os
import platform
import shutil
import statistics
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import stats
from bench.compare import Comparison, adjust, first_answers, plans, rescore
from bench.results import Attempt, Timing
from bench.runs import COLLECTION, Run, RunError, read_runs
from bench.benchmark import git_state
from bench.results import RUN
from bench.summary import Glyph, Summary, format_table, glyph_readings, summarize

HTML, MARKDOWN, FIGURES = "report.html", "report.md", "figures"


@dataclass(frozen=True)
class Reference:
    """A published human figure: other items, other people. Drawn apart, never compared."""

    cite: str
    what: str
    short: str  # for a legend
    accuracy: tuple[float, float]  # range, 0-1
    seconds: tuple[float, float] | None  # range, or None where the source gives no times


REFERENCES = (
    Reference("Searles et al., USENIX Security 2023", "people on distorted-text CAPTCHAs",
              "Searles et al. 2023: people, distorted text, 50-84 %, 9-15 s", (0.50, 0.84), (9.0, 15.0)),
    Reference("Bursztein et al., IEEE S&P 2010", "three people agreed on 71 % of image CAPTCHAs",
              "Bursztein et al. 2010: three people agreed on 71 %", (0.71, 0.71), None),
)


@dataclass(frozen=True)
class PeopleReference:
    """The people's first tries on the embedded TuringPass split (case-insensitive, as its app judged):
    what a sweep draws where its own points have no people. Other items, other people."""

    accuracy: float
    low: float  # Wilson 95 %
    high: float
    answers: int
    median_seconds: float  # their app's clock


@dataclass(frozen=True)
class Row:
    """One line of a solver table: a summary under one case rule, with its spread of times."""

    name: str  # the solver, or "human (first answers)" / "human (all answers)"
    summary: Summary
    spread: stats.Spread | None  # seconds of answered attempts
    person: bool


@dataclass(frozen=True)
class Group:
    """One data set of the report and everything measured on it (computed once, in `build_report`)."""

    label: str
    sha256: str
    case_sensitive: bool  # the data set's own rule; the report also scores by the other one
    runs: tuple[Run, ...]
    attempts: dict[str, list[Attempt]]  # by solver, in the order the runs list them
    timings: dict[str, Timing]
    people: tuple[str, ...]  # solvers that replay recorded human answers
    point: dict[str, Any]  # a sweep's point; empty otherwise
    tables: dict[bool, list[Row]]  # case rule -> every solver's row (people twice: first answers, all answers)
    glyphs: list[Glyph]  # per solver and glyph, under the data set's rule; people's first answers
    confusions: dict[str, Counter[tuple[str, str]]]  # likewise

    @property
    def machines(self) -> list[str]:
        return [s for s in self.attempts if s not in self.people]

    def rows(self, case_sensitive: bool) -> list[Row]:
        """Every solver (people twice: first answers, all answers) scored under one case rule."""
        return self.tables[case_sensitive]


@dataclass(frozen=True)
class Report:
    groups: list[Group]
    comparisons: list[Comparison]  # every machine against the people of its data set, Holm-adjusted together
    people_reference: PeopleReference | None  # TuringPass first tries, for sweeps
    created: str
    provenance: dict[str, Any]
    unfinished: list[str]  # runs that did not finish

    @property
    def has_people(self) -> bool:
        return any(g.people for g in self.groups)


def build_report(paths: list[Path], allow_mixed: bool = False, seed: int = stats.SEED) -> Report:
    """Read the runs and compute everything the report shows (no files written)."""
    with _collector_paused():
        return _build(paths, allow_mixed, seed)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
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
                             group.case_sensitive)
    done = [finish(*intervals) for (_, finish), intervals in
            zip(planned, stats.bootstrap_together([wanted for wanted, _ in planned], seed))]
    built = [done[k] for k in grouped]
    comparisons = [c for k, c in enumerate(done) if k not in set(grouped)]
    swept = any(g.point for g in built)  # only a sweep draws the TuringPass people as a reference band
    return Report(built, adjust(comparisons), _turingpass_reference() if swept else None,
                  datetime.now(timezone.utc).isoformat(timespec="seconds"), _provenance(seed),
                  [str(r.path) for r in runs if not r.finished])


def write_report(report: Report, out: Path) -> list[Path]:
    """Write report.html, report.md and figures/*.png into `out`, each replacing the last report there.

    `out` must be a run or collection folder, or a folder that is absent, empty or holds only an
    earlier report: nothing else is overwritten."""
    from bench import figures
    from bench.pages import html, markdown

    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out} is a file: give a folder for the report")
    ours = {HTML, MARKDOWN, FIGURES}  # an earlier report there is replaced; anything else stays untouched
    if (out.is_dir() and not ((out / RUN).is_file() or (out / COLLECTION).is_file())
            and any(p.name not in ours for p in out.iterdir())):
        raise RunError(f"--out {out} holds other files: give a run folder, or an empty or new folder")
    with _collector_paused():
        drawn = figures.draw(report)
    out.mkdir(parents=True, exist_ok=True)
    staging = out / f".{FIGURES}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for name, png in drawn.items():
        (staging / f"{name}.png").write_bytes(png)
    if (out / FIGURES).exists():
        shutil.rmtree(out / FIGURES)
    staging.rename(out / FIGURES)
    embedded = {name: "data:image/png;base64," + base64.b64encode(png).decode("ascii") for name, png in drawn.items()}
    linked = {name: f"{FIGURES}/{name}.png" for name in drawn}
    written = [out / FIGURES / f"{name}.png" for name in drawn]
    for name, text in ((HTML, html(report, embedded)), (MARKDOWN, markdown(report, linked))):
        tmp = out / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out / name)
        written.append(out / name)
    return written


VERDICT_HEADER = ["data set", "machine", "items", "accuracy, machine vs people", "difference [95% CI], points",
                  "p (Holm)", "median time, machine vs people", "people's time / machine's [95% CI]", "p (Holm)",
                  "verdict"]


def verdict_rows(report: Report) -> list[list[str]]:
    """The verdict table: one row per machine and data set, under the data set's case rule."""
    rows = []
    for c in report.comparisons:
        a, t = c.accuracy, c.time
        rows.append([
            c.group, c.machine, f"{a.items:,}", f"{pct(a.machine_accuracy)} vs {pct(a.human_accuracy)}",
            f"{points(a.difference)} [{points(a.low)}, {points(a.high)}]", pvalue(a.p_holm),
            f"{seconds(t.machine_median)} vs {seconds(t.human_median)}",
            f"{times(t.ratio)} [{times(t.low)}, {times(t.high)}]", pvalue(t.p_holm), c.verdict,
        ])
    return rows


def other_rule(c: Comparison) -> str:
    """The accuracy comparison and verdict under the other case rule, in one line."""
    o = c.other
    rule = "case-sensitive" if o.case_sensitive else "case-insensitive"
    return (f"{rule}: {pct(o.machine_accuracy)} vs {pct(o.human_accuracy)}, difference {points(o.difference)} "
            f"[{points(o.low)}, {points(o.high)}] points, p (Holm) {pvalue(o.p_holm)}: {c.verdict_other}")


def all_answers(c: Comparison) -> str:
    """The second analysis, all human answers (items resampled), in one line."""
    a, t = c.accuracy, c.time
    return (f"all {a.answers:,} answers on {a.answer_items:,} items: people {pct(a.human_accuracy_all)}, difference "
            f"{points(a.difference_all)} [{points(a.low_all)}, {points(a.high_all)}] points; people's median "
            f"{seconds(t.human_median_all)}, {times(t.ratio_all)} [{times(t.low_all)}, {times(t.high_all)}] the machine's")


def verdict_text(report: Report) -> str:
    """The verdict for a terminal: per data set, the table, the other case rule; then the rule."""
    lines = []
    for group in report.groups:
        mine = [c for c in report.comparisons if c.group == group.label]
        if not mine:
            continue
        rule = "case-sensitive" if group.case_sensitive else "case-insensitive"
        lines.append(f"\nVerdict on {group.label} ({mine[0].accuracy.items:,} items paired with each one's first "
                     f"human answer; scored {rule}, as the data set says):")
        rows = [r[1:2] + r[3:] for r in verdict_rows(report) if r[0] == group.label]
        lines.append(format_table(VERDICT_HEADER[1:2] + VERDICT_HEADER[3:], rows))
        lines += [f"  {c.machine}, {other_rule(c)}" for c in mine]
    if report.comparisons:
        lines.append("Rule: " + stats.RULE)
    crossed = crossings(report)
    if crossed:
        value = report.people_reference.accuracy if report.people_reference else math.nan
        lines.append(f"\nWhere each machine falls below the TuringPass people's first tries ({pct(value)}; other "
                     "items, other people):")
        lines.append(format_table(CROSSING_HEADER, crossed))
    alone = [g.label for g in report.groups if not g.people]
    if alone:
        which = "; ".join(alone) if len(alone) <= 3 else f"{len(alone)} of the {len(report.groups)} data sets"
        lines.append(f"No human answers on {which}: machine figures only there; published human figures "
                     "(other items, other people) are shown as references in the report.")
    return "\n".join(lines).lstrip("\n")


def sweep_knobs(report: Report) -> dict[str, list[Group]]:
    """The report's sweep points by knob, in sweep order (empty when the report is not a sweep)."""
    knobs: dict[str, list[Group]] = {}
    for g in report.groups:
        if g.point.get("knob"):
            knobs.setdefault(str(g.point["knob"]), []).append(g)
    return knobs


CROSSING_HEADER = ["knob", "machine", "accuracy at each point", "first below the people", "first wholly below"]


def crossings(report: Report) -> list[list[str]]:
    """Where each machine falls below the TuringPass people's first tries along each swept knob: the
    first point whose accuracy is below theirs, and the first whose whole interval is below theirs."""
    if report.people_reference is None:
        return []
    value, low = report.people_reference.accuracy, report.people_reference.low
    rows = []
    for knob, groups in sweep_knobs(report).items():
        machines = list(dict.fromkeys(m for g in groups for m in g.machines))
        for machine in machines:
            points = [(str(g.point.get("label")), row.summary) for g in groups for row in g.rows(g.case_sensitive)
                      if row.name == machine and row.summary.n]
            below = next((label for label, s in points if s.accuracy < value), "nowhere in the range")
            wholly = next((label for label, s in points if s.accuracy_high < low), "nowhere in the range")
            rows.append([knob, machine, ", ".join(pct(s.accuracy) for _, s in points), below, wholly])
    return rows


def glyph_rows(group: Group, worst: int = 12) -> tuple[list[str], list[list[str]]]:
    """Per glyph (the people's worst first, else the first machine's), accuracy of each solver."""
    by: dict[str, dict[str, Glyph]] = {}
    for g in group.glyphs:
        by.setdefault(g.solver, {})[g.glyph] = g
    solvers = sorted((s for s in group.attempts if s in by), key=lambda s: s not in group.people)  # people first
    if not solvers:
        return [], []
    chosen = [g for g, v in sorted(by[solvers[0]].items(), key=lambda kv: (kv[1].accuracy, kv[0])) if v.n >= 5][:worst]
    rows = [[repr(g)[1:-1], *(f"{by[s][g].accuracy:.0%} ({by[s][g].n})" if g in by[s] else "-" for s in solvers)]
            for g in chosen]
    return ["glyph", *solvers], rows


def confusion_rows(group: Group, top: int = 8) -> tuple[list[str], list[list[str]]]:
    """Each solver's most frequent confusions (answer glyph read as another), side by side."""
    solvers = sorted((s for s in group.attempts if s in group.confusions), key=lambda s: s not in group.people)
    columns = [[f"{e}\u2192{r} ({n})" for (e, r), n in group.confusions[s].most_common(top)] for s in solvers]
    depth = max((len(c) for c in columns), default=0)
    return solvers, [[c[k] if k < len(c) else "" for c in columns] for k in range(depth)]


def shared_confusions(group: Group, machine: str, top: int = 10) -> tuple[int, int]:
    """How many of the people's `top` confusions are among the machine's `top` (first answers)."""
    if not group.people:
        return (0, 0)
    theirs = {pair for pair, _ in group.confusions.get(group.people[0], Counter()).most_common(top)}
    mine = {pair for pair, _ in group.confusions.get(machine, Counter()).most_common(top)}
    return (len(theirs & mine), len(theirs))


def pct(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.1%}"


def points(x: float) -> str:
    return "-" if math.isnan(x) else f"{100 * x:+.1f}"


def pvalue(p: float) -> str:
    if math.isnan(p):
        return "-"
    return "<1e-300" if p == 0 else f"{p:.2g}" if p < 0.001 else f"{p:.3f}"


def seconds(s: float | None) -> str:
    if s is None or math.isnan(s):
        return "-"
    return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"


def times(x: float) -> str:
    return "-" if math.isnan(x) or math.isinf(x) else f"{x:,.0f}x" if x >= 10 else f"{x:.2f}x"


def _group(runs: list[Run]) -> tuple[Group, stats.Wanted, Callable[..., Group]]:
    """A data set's runs as a Group without its time intervals yet; the bootstrap of its solvers'
    medians; and how to finish the Group from that bootstrap's intervals."""
    attempts: dict[str, list[Attempt]] = {}
    timings: dict[str, Timing] = {}
    scored_as: dict[str, bool] = {}  # the case rule each solver's run scored its attempts by
    people: list[str] = []
    names = Counter(s for r in runs for s in r.solvers)
    for r in runs:
        for solver in r.solvers:
            name = solver if names[solver] == 1 else f"{solver} ({r.run_id})"  # the same solver in two runs
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
        tables = {case: [Row(label, summarize(label, chosen, timings.get(name)), spreads[label], name in people)
                         for label, name, chosen in rows_of[case]] for case in rows_of}
        return dataclasses.replace(bare, tables=tables)

    return bare, wanted, finish


def _turingpass_reference() -> PeopleReference | None:
    """People's first tries on the embedded TuringPass split, scored as its app judged (case-insensitive)."""
    from captchas import recorded
    from captchas import dataset as ds
    from captchas.turingpass import EMBEDDED_HUMANS
    from captchas.scoring import is_correct

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
    versions = {}
    for name in ("captcha-bench", "numpy", "scipy", "statsmodels", "matplotlib"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return {"versions": versions, "python": platform.python_version(), "git": git_state(), "machine": platform.node(),
            "bootstrap": {"resamples": stats.RESAMPLES, "seed": seed, "method": "percentile"}}
