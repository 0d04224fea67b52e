"""The report's figures (matplotlib, no pyplot state): each a function of the report, returning PNG bytes.

People are drawn in black diamonds, machines in colour circles; published human figures are grey,
hatched or dashed, labelled "other items, other people", and never joined to what was measured.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from bench.report.compare import first_answers
from bench.report.model import HUMAN_PRICE, REFERENCES, Group, Report, Row
from bench.report.tables import sweep_knobs

PEOPLE = "black"
REFERENCE = "0.55"
MANY = 6  # more data sets than this share one panel


def draw(report: Report) -> dict[str, bytes]:
    """Every figure of the report by file stem, in the order the report shows them."""
    figures = {"accuracy-time": accuracy_time(report)}
    if any(row.summary.usd_per_1000 is not None for g in report.groups for row in g.rows(g.case_sensitive)):
        figures["accuracy-cost"] = accuracy_cost(report)
    figures |= {"times": time_distributions(report), "accuracy": accuracy_by_set(report)}
    few = len(report.groups) <= MANY
    for k, group in enumerate(report.groups, 1):
        if group.attempts and (few or group.people):
            figures[f"glyphs-{k}"] = glyphs(group)
    for knob, groups in sweep_knobs(report).items():
        figures["sweep-" + re.sub(r"[^A-Za-z0-9_-]", "_", knob)] = sweep(knob, groups, report)
    return figures


def accuracy_time(report: Report) -> bytes:
    """Accuracy against median solve time (log), with intervals, per data set; references apart."""
    groups = report.groups if len(report.groups) <= MANY else [None]
    fig, axes = _panels(len(groups), width=5.2, height=3.8)
    colours = _colours(report)
    handles: dict[str, Any] = {}
    for ax, group in zip(axes, groups):
        shown = report.groups if group is None else [group]
        fastest = 1.0
        for g in shown:
            for row in g.rows(g.case_sensitive):
                if row.spread is None or not row.summary.n:
                    continue
                s, m = row.summary, row.spread
                fastest = min(fastest, m.low if m.low > 0 else m.median)
                open_marker = row.person and "all answers" in row.name
                if not open_marker:
                    ax.annotate(row.name.split(" (")[0], (m.median, s.accuracy), xytext=(6, -12),
                                textcoords="offset points", fontsize=7)
                handles[row.name] = ax.errorbar(
                    m.median, s.accuracy, xerr=_bars([m.median], [m.low], [m.high]),
                    yerr=_bars([s.accuracy], [s.accuracy_low], [s.accuracy_high]),
                    fmt="D" if row.person else "o", mfc="white" if open_marker else None,
                    color=PEOPLE if row.person else colours[row.name], ms=7, capsize=3)
        ax.set_xscale("log")
        ax.minorticks_off()  # unlabelled minor ticks cost most of this figure's drawing time
        ax.set_xlim(fastest / 3, 60.0)
        handles.update(_references(ax))
        _accuracy_panel(ax, "median seconds per item (log)", group, report)
    return _with_legend(fig, handles, len(groups))


def accuracy_cost(report: Report) -> bytes:
    """Accuracy against cost per 1,000 solves (log), per data set: machines at their measured cost, people's
    first answers at a solving service's published price range (HUMAN_PRICE), drawn as such."""
    groups = report.groups if len(report.groups) <= MANY else [None]
    fig, axes = _panels(len(groups), width=5.2, height=3.8)
    colours = _colours(report)
    handles: dict[str, Any] = {}
    low_price, high_price = HUMAN_PRICE.usd_per_1000
    for ax, group in zip(axes, groups):
        shown = report.groups if group is None else [group]
        cheapest = low_price
        for g in shown:
            for row in g.rows(g.case_sensitive):
                s = row.summary
                if not s.n or (row.person and "all answers" in row.name):
                    continue
                yerr = _bars([s.accuracy], [s.accuracy_low], [s.accuracy_high])
                if row.person:
                    middle = (low_price * high_price) ** 0.5
                    handles[f"{row.name}, at a service's published price"] = ax.errorbar(
                        middle, s.accuracy, xerr=[[middle - low_price], [high_price - middle]], yerr=yerr, fmt="D",
                        color=PEOPLE, ecolor=REFERENCE, ms=7, capsize=3)
                elif s.usd_per_1000:
                    cheapest = min(cheapest, s.usd_per_1000)
                    handles[row.name] = ax.errorbar(s.usd_per_1000, s.accuracy, yerr=yerr, fmt="o",
                                                    color=colours[row.name], ms=7, capsize=3)
                else:
                    continue
                ax.annotate(row.name.split(" (")[0], (s.usd_per_1000 or low_price, s.accuracy), xytext=(6, -12),
                            textcoords="offset points", fontsize=7)
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xlim(cheapest / 3, high_price * 3)
        ax.xaxis.set_major_formatter(lambda v, _: f"${v:g}")
        _accuracy_panel(ax, "US dollars per 1,000 solves (log)", group, report)
    return _with_legend(fig, handles, len(groups))


def _accuracy_panel(ax: Axes, xlabel: str, group: Group | None, report: Report) -> None:
    """An accuracy-against-something panel's axes: accuracy 0-100 %, the labels, its data set's title."""
    ax.set_ylim(-0.02, 1.02)
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy (95 % interval)")
    ax.set_title(group.label if group is not None else f"{len(report.groups)} data sets", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)


def _with_legend(fig: Figure, handles: dict[str, Any], panels: int) -> bytes:
    """The figure with its legend below the panels, as PNG."""
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", fontsize=7,
               ncols=2 if panels > 1 else 1)
    return png(fig)


def time_distributions(report: Report) -> bytes:
    """Empirical distribution of solve times (log), people against machines, per data set."""
    groups = report.groups if len(report.groups) <= MANY else [None]
    fig, axes = _panels(len(groups), width=5.2, height=3.6)
    colours = _colours(report)
    for ax, group in zip(axes, groups):
        shown = report.groups if group is None else [group]
        series: dict[str, list[float]] = {}
        for g in shown:
            for name, attempts in g.attempts.items():
                if name in g.people:
                    firsts = list(first_answers(attempts).values())
                    series.setdefault(f"{name} (first answers)", []).extend(_times(firsts))
                    series.setdefault(f"{name} (all answers)", []).extend(_times(attempts))
                else:
                    series.setdefault(name, []).extend(_times(attempts))
        for name, values in series.items():
            if not values:
                continue
            x = np.sort(values)
            y = np.arange(1, x.size + 1) / x.size
            if x.size > 2000:  # 2,000 steps draw the same curve at this size, and much faster
                keep = np.unique(np.linspace(0, x.size - 1, 2000).astype(int))
                x, y = x[keep], y[keep]
            person = name.endswith("answers)")
            ax.step(x, y, where="post", label=name,
                    color=PEOPLE if person else colours.get(name, "C0"),
                    linestyle="--" if "all answers" in name else "-")
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("seconds per item (log)")
        ax.set_ylabel("share of items solved within")
        ax.set_title(group.label if group is not None else f"pooled over {len(report.groups)} data sets", fontsize=10)
        ax.grid(True, alpha=0.3)
        if series:
            ax.legend(fontsize=7, loc="lower right")
    return png(fig)


def accuracy_by_set(report: Report) -> bytes:
    """Accuracy of every solver on every data set (or difficulty point), with Wilson intervals."""
    labels = [g.label for g in report.groups]
    names: list[str] = []
    table: dict[tuple[str, int], Row] = {}
    for k, g in enumerate(report.groups):
        for row in g.rows(g.case_sensitive):
            if row.person and "all answers" in row.name:
                continue
            names += [row.name] if row.name not in names else []
            table[(row.name, k)] = row
    colours = _colours(report)
    fig = Figure(figsize=(max(6.0, 1.2 * len(labels) * max(1, len(names)) ** 0.5), 3.8), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(names))
    for j, name in enumerate(names):
        xs, ys, lo, hi = [], [], [], []
        for k in range(len(labels)):
            found = table.get((name, k))
            if found is not None and found.summary.n:
                s = found.summary
                xs.append(k - 0.4 + width * (j + 0.5))
                ys.append(s.accuracy)
                lo.append(s.accuracy_low)
                hi.append(s.accuracy_high)
        person = any(r.person for (n, _), r in table.items() if n == name)
        ax.bar(xs, ys, width, yerr=_bars(ys, lo, hi), capsize=2, label=name, alpha=0.85,
               color=PEOPLE if person else colours.get(name, "C0"))
    slanted = len(labels) > 3
    ax.set_xticks(range(len(labels)), labels, rotation=20 if slanted else 0, ha="right" if slanted else "center",
                  fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.set_ylabel("accuracy (95 % interval)")
    ax.grid(True, axis="y", alpha=0.3)
    if names:
        ax.legend(fontsize=7, ncols=min(4, len(names)), loc="upper center", bbox_to_anchor=(0.5, -0.18))
    return png(fig)


def glyphs(group: Group, worst: int = 16) -> bytes:
    """Per glyph, how often each solver read it right: the people's worst glyphs (else the first
    machine's), people beside each machine."""
    accuracy: dict[str, dict[str, tuple[float, int]]] = {}
    for g in group.glyphs:
        accuracy.setdefault(g.solver, {})[g.glyph] = (g.accuracy, g.n)
    solvers = sorted((s for s in group.attempts if s in accuracy), key=lambda s: s not in group.people)  # people first
    lead = solvers[0] if solvers else None
    chosen = [] if lead is None else [
        g for g, (acc, n) in sorted(accuracy[lead].items(), key=lambda kv: (kv[1][0], kv[0])) if n >= 5][:worst]
    colours = {s: c for s, c in zip([s for s in solvers if s not in group.people], _palette())}
    fig = Figure(figsize=(max(6.0, 0.45 * len(chosen) * max(1, len(solvers)) ** 0.5 + 2), 3.6), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(solvers))
    for j, s in enumerate(solvers):
        xs = [k - 0.4 + width * (j + 0.5) for k, g in enumerate(chosen) if g in accuracy[s]]
        ys = [accuracy[s][g][0] for g in chosen if g in accuracy[s]]
        ax.bar(xs, ys, width, label=s + (" (first answers)" if s in group.people else ""),
               color=PEOPLE if s in group.people else colours[s], alpha=0.85)
    ax.set_xticks(range(len(chosen)), chosen, fontsize=10, family="monospace")
    ax.set_ylim(0, 1.05)
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.set_ylabel("glyph read right")
    who = "the people's" if lead in group.people else f"{lead}'s"
    ax.set_title(f"{group.label}: {who} {len(chosen)} hardest glyphs (5+ occurrences)", fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    if solvers:
        ax.legend(fontsize=7, ncols=min(4, len(solvers)), loc="upper center", bbox_to_anchor=(0.5, -0.12))
    return png(fig)


def sweep(knob: str, groups: Sequence[Group], report: Report) -> bytes:
    """Accuracy and median time against one knob's values; people where a point has them, else the
    TuringPass people's first tries as a band (other items, other people)."""
    fig = Figure(figsize=(10.5, 3.8), layout="constrained")
    acc, speed = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    labels = [str(g.point.get("label", "")).partition("=")[2] or str(g.point.get("value")) for g in groups]
    colours = _colours(report)
    series: dict[str, dict[int, Row]] = {}
    for k, g in enumerate(groups):
        for row in g.rows(g.case_sensitive):
            if not (row.person and "all answers" in row.name) and row.summary.n:
                series.setdefault(row.name, {})[k] = row
    for name, rows in series.items():
        ks = sorted(rows)
        person = rows[ks[0]].person
        style: dict[str, Any] = {"color": PEOPLE if person else colours.get(name, "C0"),
                                 "marker": "D" if person else "o", "label": name, "capsize": 3}
        acc.errorbar(ks, [rows[k].summary.accuracy for k in ks],
                     yerr=_bars([rows[k].summary.accuracy for k in ks], [rows[k].summary.accuracy_low for k in ks],
                                [rows[k].summary.accuracy_high for k in ks]), **style)
        spreads = [(k, m) for k in ks if (m := rows[k].spread) is not None]
        speed.errorbar([k for k, _ in spreads], [m.median for _, m in spreads],
                       yerr=_bars([m.median for _, m in spreads], [m.low for _, m in spreads],
                                  [m.high for _, m in spreads]), **style)
    ref = report.people_reference
    if ref is not None:
        acc.axhspan(ref.low, ref.high, color=REFERENCE, alpha=0.25, lw=0)
        acc.axhline(ref.accuracy, color=REFERENCE, ls="--", lw=1,
                    label=f"TuringPass people, first tries: {ref.accuracy:.1%} (other items, other people)")
        speed.axhline(ref.median_seconds, color=REFERENCE, ls="--", lw=1,
                      label=f"TuringPass people, first tries: median {ref.median_seconds:.1f} s (other items)")
    for ax, title in ((acc, "accuracy (95 % interval)"), (speed, "median seconds per item (log, 95 % interval)")):
        ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
        ax.set_xlabel(knob)
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
    acc.set_ylim(-0.02, 1.02)
    acc.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    speed.set_yscale("log")
    speed.minorticks_off()
    acc.legend(fontsize=7, loc="best")
    speed.legend(fontsize=7, loc="best")
    return png(fig)


def _references(ax: Axes) -> dict[str, Any]:
    """Draw the published human figures apart (grey, hatched or dotted); their legend handles."""
    handles: dict[str, Any] = {}
    for ref in REFERENCES:
        label = f"{ref.short}: other items, other people"
        low, high = ref.accuracy
        if ref.seconds is not None:
            handles[label] = ax.add_patch(Rectangle((ref.seconds[0], low), ref.seconds[1] - ref.seconds[0], high - low,
                                                    fill=False, hatch="///", edgecolor=REFERENCE, lw=1))
        else:
            handles[label] = ax.axhline(low, color=REFERENCE, ls=":", lw=1.2)
    return handles


def _bars(centre: Sequence[float], low: Sequence[float], high: Sequence[float]) -> list[list[float]]:
    """Error bar lengths below and above each centre; never negative (an interval that rounding or a
    percentile bootstrap leaves just beside its estimate is drawn as none on that side), NaN as none."""
    return [[max(0.0, c - lo) if math.isfinite(lo) else 0.0 for c, lo in zip(centre, low)],
            [max(0.0, hi - c) if math.isfinite(hi) else 0.0 for c, hi in zip(centre, high)]]


def _times(attempts: Sequence[Any]) -> list[float]:
    return [a.seconds for a in attempts if not a.error and math.isfinite(a.seconds) and a.seconds > 0]


def _colours(report: Report) -> dict[str, str]:
    names: list[str] = []
    for g in report.groups:
        names += [n for n in g.machines if n not in names]
    return dict(zip(names, _palette()))


def _palette() -> list[str]:
    return [f"C{k % 10}" for k in range(64)]


def _panels(n: int, width: float, height: float) -> tuple[Figure, list[Axes]]:
    columns = min(n, 2)
    rows = math.ceil(n / columns)
    fig = Figure(figsize=(max(7.5, width * columns), height * rows), layout="constrained")
    return fig, [fig.add_subplot(rows, columns, k + 1) for k in range(n)]


def png(fig: Figure) -> bytes:
    """The figure as PNG bytes, without the Software stamp (so equal figures are equal bytes)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, metadata={"Software": None})
    return buffer.getvalue()
