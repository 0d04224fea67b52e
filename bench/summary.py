"""Summaries of attempts: accuracy with a Wilson 95 % interval, CER, latency, throughput; which
glyphs each solver reads right and what it reads them as.

Pure functions over records; `to_table` and `glyph_table` only build strings.
"""

from __future__ import annotations

import hashlib
import math
import statistics
from array import array
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any
from dataclasses import dataclass

from bench.runfolder.records import SKIPPED, Attempt, Timing
from captchas.scoring import edit_table
from bench.stats import wilson

@dataclass(frozen=True)
class Summary:
    """One solver on one data set."""

    solver: str
    n: int  # attempts (one per item for machines; one per recorded answer for replayed humans)
    items: int  # distinct items attempted
    coverage: float  # items attempted / items in the data set (humans may leave items unanswered)
    correct: int
    accuracy: float  # NaN when there was no attempt (an empty cell in summary.csv, null in .json): not 0 %
    accuracy_low: float  # Wilson 95 % interval; NaN without attempts
    accuracy_high: float
    cer: float  # mean character error rate; NaN without attempts
    errors: int  # attempts where the solver raised, hung, crashed or answered malformed
    skipped: int  # replayed human answers where the person pressed Skip (counted wrong, not errors)
    median_seconds: float | None  # latency per item at batch size 1, warm
    p90_seconds: float | None
    throughput: float | None  # items/s, batched
    cold_start: float | None  # seconds
    restarts: int
    failure: str = ""  # why the solver could not run at all
    notes: str = ""  # the solver's warnings about this data set (e.g. weights trained on another scheme), "; "-joined
    usd_per_1000: float | None = None  # what 1,000 solves cost, from the attempts' details (`cost`); None: unknown
    cost_basis: str = ""  # how: "the solver's prices", or "CPU time at $P per vCPU-hour"


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summarize(solver: str, attempts: Iterable[Attempt], timing: Timing | None, total_items: int | None = None,
              notes: Sequence[str] = ()) -> Summary:
    """Aggregate one solver's attempts (and its session timing) into a Summary.

    Times: the median over attempts that gave an answer (not errors, not skips)."""
    tally = Tally()
    for a in attempts:
        tally.add(a)
    return tally.summary(solver, timing, total_items, notes)


class Tally:
    """A solver's attempts, added one at a time, kept as a few numbers per attempt (about 24 bytes:
    its CER, its time, a digest of its item id) rather than as records, so that a summary of a
    million attempts needs no list of them."""

    def __init__(self) -> None:
        self.n = self.correct = self.errors = self.skipped = 0
        self.cers, self.seconds, self.items = array("d"), array("d"), array("Q")

    def add(self, a: Attempt) -> None:
        self.n += 1
        self.correct += a.correct
        self.cers.append(a.cer)
        self.errors += bool(a.error) and a.error != SKIPPED
        self.skipped += a.error == SKIPPED
        if not a.error and math.isfinite(a.seconds):
            self.seconds.append(a.seconds)
        self.items.append(int.from_bytes(hashlib.blake2b(a.item_id.encode("utf-8"), digest_size=8).digest(), "little"))

    def summary(self, solver: str, timing: Timing | None, total_items: int | None = None,
                notes: Sequence[str] = ()) -> Summary:
        n, correct, answered = self.n, self.correct, self.seconds
        import numpy as np

        items = int(np.unique(np.frombuffer(self.items, dtype=np.uint64)).size) if n else 0  # 8-byte digests: a clash needs ~4e9 items
        low, high = wilson(correct, n) if n else (math.nan, math.nan)
        return Summary(
            solver=solver,
            n=n,
            items=items,
            coverage=items / total_items if total_items else (1.0 if n else 0.0),
            correct=correct,
            accuracy=correct / n if n else math.nan,
            accuracy_low=low,
            accuracy_high=high,
            cer=statistics.fmean(self.cers) if n else math.nan,
            errors=self.errors,
            skipped=self.skipped,
            median_seconds=statistics.median(answered) if answered else None,
            p90_seconds=percentile(answered, 90) if answered else None,
            throughput=timing.throughput if timing else None,
            cold_start=timing.cold_start if timing else None,
            restarts=timing.restarts if timing else 0,
            failure=timing.error if timing else "",
            notes="; ".join(notes),
        )


class Cost:
    """What 1,000 solves cost, added up one attempt's details (details.jsonl) at a time: the mean `usd` the
    solver priced its attempts at, where it did (a hosted model's tokens, a service's charge); else the mean
    CPU seconds of an attempt asked alone, at a price per vCPU-hour (batched reading costs less); else
    nothing, for a solver with no details (people replayed)."""

    def __init__(self) -> None:
        self.usd = self.cpu = 0.0
        self.priced = self.timed = 0

    def add(self, row: dict[str, Any]) -> None:
        if isinstance(row.get("usd"), (int, float)):
            self.usd += float(row["usd"])
            self.priced += 1
        if isinstance(row.get("cpu_seconds"), (int, float)):
            self.cpu += float(row["cpu_seconds"])
            self.timed += 1

    def per_1000(self, price_core_hour: float) -> tuple[float | None, str]:
        """US dollars per 1,000 solves, and its basis."""
        if self.priced:
            return 1000 * self.usd / self.priced, "the solver's prices"
        if self.timed:
            return 1000 * self.cpu / self.timed * price_core_hour / 3600, f"CPU time at ${price_core_hour:g} per vCPU-hour"
        return None, ""


def to_table(summaries: Sequence[Summary]) -> str:
    """The terminal table."""
    header = ["solver", "n", "coverage", "accuracy [95% CI]", "CER", "median ms", "p90 ms", "items/s", "cold s", "errors",
              "$ / 1,000"]
    rows = []
    for s in summaries:
        if not s.n:
            why = f"could not run: {s.failure}" if s.failure else "no attempt"
            rows.append([s.solver, "0", "", why, "", "", "", "", "", "", ""])
            continue
        rows.append([
            s.solver,
            str(s.n),
            f"{s.coverage:.1%}",
            f"{s.accuracy:6.1%} [{s.accuracy_low:.1%}, {s.accuracy_high:.1%}]",
            f"{s.cer:.3f}",
            _ms(s.median_seconds),
            _ms(s.p90_seconds),
            f"{s.throughput:,.0f}" if s.throughput else "-",
            f"{s.cold_start:.2f}" if s.cold_start is not None else "-",
            str(s.errors) + (f" (+{s.skipped} skipped)" if s.skipped else ""),
            _usd(s.usd_per_1000),
        ])
    said = [f"warning: {s.solver}: {note}" for s in summaries for note in s.notes.split("; ") if note]
    return "\n".join([format_table(header, rows), *said])


def _usd(value: float | None) -> str:
    """Dollars to three significant figures (a CNN's thousand solves cost a fraction of a cent)."""
    return "-" if value is None else f"{value:.3g}"


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, a rule under the header."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


@dataclass(frozen=True)
class Glyph:
    """How well one solver read one character of the answers."""

    solver: str
    glyph: str  # as the answers write it: case kept, so that I and l stay apart where scoring folds case
    n: int  # times it stands in the answers of answered attempts
    right: int  # times the solver's answer kept it (see glyph_accuracy)

    @property
    def accuracy(self) -> float:
        return self.right / self.n


def glyph_accuracy(attempts: Iterable[Attempt], case_sensitive: bool = False) -> list[Glyph]:
    """Per solver and answer character, how often it was read right: each answered attempt is aligned
    with its answer along a minimum edit path (matches taken first where paths tie), and a character
    counts as right where that path keeps it, compared as the scoring rule compares (`normalise`).
    Errors and skips are left out: no glyph was read. Worst first within each solver, in order of
    first appearance of the solvers."""
    return glyph_readings(attempts, case_sensitive)[0]


DROPPED = "\u2205"  # what a confusion reads for an answer glyph that the solver left out (the empty-set sign)


def glyph_readings(attempts: Iterable[Attempt], case_sensitive: bool = False
                   ) -> tuple[list[Glyph], dict[str, Counter[tuple[str, str]]]]:
    """`glyph_accuracy`, and per solver how often each answer glyph was read as another one (or dropped:
    DROPPED), from one alignment of each attempt. Pairs that the scoring rule calls equal are not
    confusions."""
    seen: defaultdict[str, Counter[str]] = defaultdict(Counter)  # solver -> glyph -> times in the answers
    kept: defaultdict[str, Counter[str]] = defaultdict(Counter)  # solver -> glyph -> times read right
    found: defaultdict[str, Counter[tuple[str, str]]] = defaultdict(Counter)
    for a in attempts:
        if a.error:
            continue
        answer, predicted = "".join(a.expected.split()), "".join(a.predicted.split())
        seen[a.solver].update(answer)
        right, tally = kept[a.solver], found[a.solver]
        if answer == predicted or (not case_sensitive and len(answer) == len(predicted)
                                   and _glyphs(answer, False) == _glyphs(predicted, False)):
            right.update(answer)  # read right: every glyph kept (the common case, counted at C speed)
            continue
        for glyph, r in zip(answer, align(answer, predicted, case_sensitive)):
            # compared as normalise() compares: the white space is gone already, so only case is left to fold
            if r is not None and (r == glyph or not case_sensitive and r.casefold() == glyph.casefold()):
                right[glyph] += 1
            else:
                tally[(glyph, DROPPED if r is None else r)] += 1
    glyphs = [Glyph(solver, glyph, n, kept[solver][glyph])
              for solver, per in seen.items()
              for glyph, n in sorted(per.items(), key=lambda kv: (kept[solver][kv[0]] / kv[1], kv[0]))]
    return glyphs, dict(found)


def align(answer: str, predicted: str, case_sensitive: bool) -> list[str | None]:
    """For each character of `answer` (white space removed): the character of `predicted` that a
    minimum edit path puts against it (itself where kept, another where substituted), or None where
    the path drops it."""
    a, b = _glyphs(answer, case_sensitive), _glyphs(predicted, case_sensitive)
    if a == b:
        return list(predicted)  # read right: every glyph kept
    d = edit_table(a, b)
    read: list[str | None] = [None] * len(a)
    i, j = len(a), len(b)
    while i and j:
        if a[i - 1] == b[j - 1] and d[i][j] == d[i - 1][j - 1]:
            read[i - 1] = predicted[j - 1]  # kept
            i, j = i - 1, j - 1
        elif d[i][j] == d[i - 1][j - 1] + 1:
            read[i - 1] = predicted[j - 1]  # substituted
            i, j = i - 1, j - 1
        elif d[i][j] == d[i - 1][j] + 1:
            i -= 1  # dropped
        else:
            j -= 1  # inserted
    return read


def glyph_table(glyphs: Sequence[Glyph], worst: int | None = None) -> str:
    """The terminal table of glyph_accuracy: each solver's `worst` characters (all by default)."""
    rows: list[list[str]] = []
    shown: dict[str, int] = {}
    for g in glyphs:
        shown[g.solver] = shown.get(g.solver, 0) + 1
        if worst is None or shown[g.solver] <= worst:
            rows.append([g.solver, g.glyph, str(g.n), str(g.right), f"{g.accuracy:.1%}"])
    return format_table(["solver", "glyph", "n", "read right", "accuracy"], rows)


def _ms(seconds: float | None) -> str:
    return f"{seconds * 1000:.2f}" if seconds is not None else "-"


def _glyphs(text: str, case_sensitive: bool) -> list[str]:
    """Each character in its comparison form (white space already removed)."""
    return list(text) if case_sensitive else [c.casefold() for c in text]
