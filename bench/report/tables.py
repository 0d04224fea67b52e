"""What the report says, as tables and lines: the verdict rows and text, where sweeps cross the
people, the glyphs each side misses, and the number formats every page and the terminal share.
Pure functions of a built Report.
"""

from __future__ import annotations

import math
from collections import Counter

from bench import stats
from bench.report.compare import Comparison
from bench.report.model import Group, Report
from bench.summary import Glyph, format_table


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


def power_line(c: Comparison) -> str:
    """What the comparison could resolve, its units and, where the runs stated one, its margin, in one line."""
    a = c.accuracy
    discordant = (a.machine_only + a.human_only) / a.items if a.items else math.nan
    resolves = (f"resolve a gap of {100 * a.gap:.1f} points at 80 % power" if not math.isnan(a.gap)
                else "resolve no gap at 80 % power")
    line = f"{a.items:,} paired items {resolves} ({pct(discordant)} of them discordant"
    if a.units == "participants":
        line += (f"; answers from {a.clusters:,} participants, so intervals and tests resample participants, "
                 f"design effect {a.design_effect:.2f}")
    line += ")"
    if a.margin is not None:
        line += (f"; margin stated before the run: {100 * a.margin:g} points, 90 % interval "
                 f"[{points(a.low90)}, {points(a.high90)}]")
    return line


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
        lines += [f"  {c.machine}: {power_line(c)}" for c in mine]
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
