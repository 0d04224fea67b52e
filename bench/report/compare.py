"""A machine against people on the same items: paired accuracy and time, the verdict, Holm's correction;
and one machine against another (`versus`), to choose between solvers or options.

Pure functions over attempts. The primary analysis pairs each item's machine attempt with the
item's first human answer (the first recorded answer that was that person's first try); the
second uses all answers, with intervals from a bootstrap that resamples items.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from bench import paired, stats
from bench.report import clusters
from bench.runfolder.records import Attempt
from captchas.scoring import cer, is_correct


@dataclass(frozen=True)
class AccuracyTest:
    """Machine minus people, accuracy on the same items, under one case rule."""

    case_sensitive: bool
    items: int  # items with the machine's attempt and a first human answer
    machine_right: int
    human_right: int
    machine_only: int  # items the machine got right and the person wrong
    human_only: int  # the other way round
    difference: float  # machine accuracy - people's accuracy (first answers), in [-1, 1]
    low: float  # Newcombe 95 % interval
    high: float
    p: float  # exact McNemar, two-sided
    answers: int  # all answers: human answers on the items the machine attempted
    answer_items: int  # ...and on how many items
    human_right_all: int
    difference_all: float  # machine accuracy over those items - people's over all their answers
    low_all: float  # item bootstrap 95 % interval
    high_all: float
    p_holm: float = math.nan  # p after Holm's correction over every test of the report
    low90: float = math.nan  # the paired 90 % interval: what a margin's two one-sided tests read
    high90: float = math.nan
    margin: float | None = None  # the margin the runs stated before they ran, a proportion; None: none stated
    gap: float = math.nan  # the smallest difference these items resolve at 80 % power (Connor 1987)
    units: str = "items"  # what the intervals resample: "items", or "participants" where a study recorded who
    clusters: int = 0  # participants whose first answers were paired, where units is "participants"
    design_effect: float = 1.0  # how much the participants inflate the variance over independent items

    @property
    def machine_accuracy(self) -> float:
        return self.machine_right / self.items if self.items else math.nan

    @property
    def human_accuracy(self) -> float:
        return self.human_right / self.items if self.items else math.nan

    @property
    def human_accuracy_all(self) -> float:
        return self.human_right_all / self.answers if self.answers else math.nan

    @property
    def ahead(self) -> str:
        return stats.side(self.p_holm, self.low, self.high, 0.0)

    @property
    def outcome(self) -> str:
        """Who is ahead under the rule; where neither is, what the stated margin allows (equivalent, or the
        machine not worse), else NEITHER."""
        ahead = self.ahead
        if ahead != stats.NEITHER:
            return ahead
        return paired.margin_outcome(self.low90, self.high90, self.margin) or stats.NEITHER


@dataclass(frozen=True)
class TimeTest:
    """People's solve time over the machine's, on the same items (both answered)."""

    items: int
    machine_median: float  # seconds
    human_median: float
    ratio: float  # human median / machine median: how many times longer people took
    low: float  # paired bootstrap 95 % interval
    high: float
    p: float  # Wilcoxon signed-rank, two-sided
    answers: int  # all answers with a time, on items the machine answered
    human_median_all: float
    ratio_all: float
    low_all: float  # item bootstrap 95 % interval
    high_all: float
    p_holm: float = math.nan

    @property
    def ahead(self) -> str:
        return stats.side(self.p_holm, self.low, self.high, 1.0)


@dataclass(frozen=True)
class Comparison:
    """One machine solver against the people, on one data set."""

    group: str  # the data set's label
    machine: str
    human: str
    accuracy: AccuracyTest  # under the data set's case rule
    other: AccuracyTest  # under the other case rule
    time: TimeTest

    @property
    def verdict(self) -> str:
        return stats.overall(self.accuracy.outcome, self.time.ahead, self.accuracy.margin)

    @property
    def verdict_other(self) -> str:
        return stats.overall(self.other.outcome, self.time.ahead, self.other.margin)


def right(a: Attempt, case_sensitive: bool) -> bool:
    """Whether an attempt is right under a case rule (errors and skips never are)."""
    return not a.error and is_correct(a.expected, a.predicted, case_sensitive)


def rescore(attempts: Iterable[Attempt], case_sensitive: bool, with_cer: bool = True) -> list[Attempt]:
    """The attempts scored again under a case rule, as the run would have; CER too unless `with_cer`
    is False (it is then NaN: an edit table per attempt is the costly part)."""
    return [Attempt(a.run_id, a.solver, a.item_id, a.expected, a.predicted, right(a, case_sensitive),
                    cer(a.expected, a.predicted, case_sensitive) if with_cer else math.nan, a.seconds, a.error,
                    a.participant, a.attempt)  # the constructor: dataclasses.replace costs ten times as much
            for a in attempts]


@dataclass(frozen=True)
class Versus:
    """Two machines on the same items: paired accuracy, and each one's median time."""

    items: int  # items both attempted
    first_right: int
    second_right: int
    first_only: int  # items only the first got right
    second_only: int
    difference: float  # first's accuracy - second's, with Newcombe's 95 % interval
    low: float
    high: float
    p: float  # exact McNemar, two-sided
    first_median: float  # seconds per item, over the items both attempted without an error
    second_median: float
    time_p: float = math.nan  # Wilcoxon signed-rank on the paired times, two-sided
    p_holm: float = math.nan  # after Holm's correction over the family the caller names
    time_p_holm: float = math.nan


def versus(first: Sequence[Attempt], second: Sequence[Attempt], case_sensitive: bool) -> Versus:
    """Compare two machines' attempts (one per item each) on the items both attempted."""
    a, b = ({x.item_id: x for x in side} for side in (first, second))
    shared = [i for i in a if i in b]
    if len(a) != len(first) or len(b) != len(second):
        raise ValueError("versus compares machines: one attempt per item on each side")
    ok = [(right(a[i], case_sensitive), right(b[i], case_sensitive)) for i in shared]
    first_only, second_only = sum(x and not y for x, y in ok), sum(y and not x for x, y in ok)
    both = sum(x and y for x, y in ok)
    diff, low, high = stats.newcombe_paired(both, first_only, second_only, len(ok) - both - first_only - second_only)

    def median(side: dict[str, Attempt]) -> float:
        times = [side[i].seconds for i in shared if _timed(side[i])]
        return float(np.median(times)) if times else math.nan

    timed = [i for i in shared if _timed(a[i]) and _timed(b[i])]
    return Versus(len(ok), both + first_only, both + second_only, first_only, second_only, diff, low, high,
                  stats.mcnemar_exact(first_only, second_only) if ok else math.nan, median(a), median(b),
                  stats.wilcoxon_signed_rank([a[i].seconds for i in timed], [b[i].seconds for i in timed]))


def first_answers(human: Iterable[Attempt]) -> dict[str, Attempt]:
    """Each item's first answer: the first recorded row that was its person's first try (attempt 1).
    Items with retries only are left out: a retry follows a try the person was told was wrong."""
    first: dict[str, Attempt] = {}
    for a in human:
        if a.attempt == 1 and a.item_id not in first:
            first[a.item_id] = a
    return first


Finish = Callable[[NDArray[np.float64], NDArray[np.float64]], Comparison]


def plans(group: str, machines: dict[str, Sequence[Attempt]], human: Sequence[Attempt],
          case_sensitive: bool, margin: float | None = None, seed: int = stats.SEED) -> list[tuple[stats.Wanted, Finish]]:
    """Each machine's attempts against people's answers, on the items both attempted, in two steps so
    that a report can run every bootstrap over the same items as one: per machine, the bootstrap it
    needs and how to finish the Comparison (p_holm not yet set) from that bootstrap's intervals.

    Newcombe's interval, McNemar and Wilcoxon come from the first answers; the all-answers intervals
    and the ratios' intervals from one bootstrap of the items both attempted. Where a study's participants
    each gave several first answers, the first answers' intervals and tests resample participants instead
    (`bench.report.clusters`). `margin`: the equivalence margin the runs stated (a proportion), or None."""
    people = _People(human, (case_sensitive, not case_sensitive))
    return [_plan(group, name, attempts, people, case_sensitive, margin, seed) for name, attempts in machines.items()]


class _People:
    """What every comparison with the same people needs, worked out once: each item's first answer,
    its answers, how many were right under each case rule, and their solve times."""

    def __init__(self, human: Sequence[Attempt], rules: tuple[bool, bool]) -> None:
        self.name = human[0].solver if human else ""
        self.first = first_answers(human)
        self.by_item: dict[str, list[Attempt]] = {}
        for a in human:
            self.by_item.setdefault(a.item_id, []).append(a)
        self.ok = {rule: {id(a): right(a, rule) for a in human} for rule in rules}
        self.right = {rule: {i: sum(self.ok[rule][id(a)] for a in said) for i, said in self.by_item.items()}
                      for rule in rules}
        self.times = {i: [a.seconds for a in said if _timed(a)] for i, said in self.by_item.items()}


def _plan(group: str, name: str, machine: Sequence[Attempt], people: _People, case_sensitive: bool,
          margin: float | None, seed: int) -> tuple[stats.Wanted, Finish]:
    mine: dict[str, Attempt] = {}
    for a in machine:
        mine.setdefault(a.item_id, a)
    items = sorted(i for i in people.by_item if i in mine)  # the units of the bootstrap, in a shared order
    first = people.first
    rules = (case_sensitive, not case_sensitive)
    ok = {rule: {i: right(a, rule) for i, a in mine.items()} for rule in rules}  # the machine's, by item
    m_right = {rule: np.array([ok[rule][i] for i in items], dtype=float) for rule in rules}
    h_right = {rule: np.array([people.right[rule][i] for i in items], dtype=float) for rule in rules}
    answers = np.array([len(people.by_item[i]) for i in items], dtype=float)
    timed = [i in first and _timed(first[i]) and _timed(mine[i]) for i in items]  # first answers, both timed
    first_people = stats.Pooled([[first[i].seconds] if both else [] for i, both in zip(items, timed)])
    first_machine = stats.Pooled([[mine[i].seconds] if both else [] for i, both in zip(items, timed)])
    every = [people.times[i] if _timed(mine[i]) else [] for i in items]
    all_people = stats.Pooled(every)
    all_machine = stats.Pooled([[mine[i].seconds] if times else [] for i, times in zip(items, every)])

    def statistic(w: NDArray[np.float64]) -> NDArray[np.float64]:  # (B, items): times each item was drawn
        drawn, said = w.sum(axis=1), w @ answers
        return np.stack([*(w @ m_right[rule] / drawn - w @ h_right[rule] / said for rule in rules),
                         stats.ratio(first_people.medians(w), first_machine.medians(w)),
                         stats.ratio(all_people.medians(w), all_machine.medians(w))])

    def finish(low: NDArray[np.float64], high: NDArray[np.float64]) -> Comparison:
        with np.errstate(divide="ignore", invalid="ignore"):
            estimate = statistic(np.ones((1, len(items))))[:, 0]
        tests = [_accuracy(first, ok[rule], people.ok[rule], len(items), int(answers.sum()), int(h_right[rule].sum()),
                           (float(estimate[k]), float(low[k]), float(high[k])), rule, margin)
                 for k, rule in enumerate(rules)]
        their = [first[i].seconds for i, both in zip(items, timed) if both]
        its = [mine[i].seconds for i, both in zip(items, timed) if both]
        time = TimeTest(len(their), first_machine.median, first_people.median, float(estimate[2]), float(low[2]),
                        float(high[2]), stats.wilcoxon_signed_rank(their, its), all_people.values.size,
                        all_people.median, float(estimate[3]), float(low[3]), float(high[3]))
        owner = clusters.owners(first, items)
        if owner is not None:  # a study's participants: the first answers' intervals and tests resample them
            tests = [dataclasses.replace(t, **clusters.accuracy(owner, ok[rule], {i: people.ok[rule][id(first[i])]
                                                                                  for i in owner}, seed))
                     for t, rule in zip(tests, rules)]
            time = dataclasses.replace(time, **clusters.time(
                owner, {i: first[i].seconds for i, both in zip(items, timed) if both},
                {i: mine[i].seconds for i, both in zip(items, timed) if both}, seed))
        return Comparison(group, name, people.name, tests[0], tests[1], time)

    return stats.Wanted(tuple(items), statistic), finish


def adjust(comparisons: Sequence[Comparison]) -> list[Comparison]:
    """Holm's correction over every test of these comparisons: both case rules' McNemar and the Wilcoxon."""
    ps = [p for c in comparisons for p in (c.accuracy.p, c.other.p, c.time.p)]
    adjusted = iter(stats.holm(ps))
    return [dataclasses.replace(c, accuracy=dataclasses.replace(c.accuracy, p_holm=next(adjusted)),
                                other=dataclasses.replace(c.other, p_holm=next(adjusted)),
                                time=dataclasses.replace(c.time, p_holm=next(adjusted)))
            for c in comparisons]


def _accuracy(first: dict[str, Attempt], machine_ok: dict[str, bool], people_ok: dict[int, bool], items: int,
              answers: int, right_all: int, all_answers: tuple[float, float, float], case_sensitive: bool,
              margin: float | None) -> AccuracyTest:
    """`machine_ok`: the machine right, by item; `people_ok`: each human answer right, by id(answer)."""
    pairs = [(machine_ok[i], people_ok[id(h)]) for i, h in first.items() if i in machine_ok]
    m_only = sum(m and not h for m, h in pairs)
    h_only = sum(h and not m for m, h in pairs)
    both = sum(m and h for m, h in pairs)
    neither = len(pairs) - both - m_only - h_only
    diff, low, high = stats.newcombe_paired(both, m_only, h_only, neither)
    _, low90, high90 = stats.newcombe_paired(both, m_only, h_only, neither, level=1 - 2 * stats.ALPHA)
    gap = paired.smallest_gap(len(pairs), (m_only + h_only) / len(pairs)) if pairs else math.nan
    return AccuracyTest(case_sensitive, len(pairs), both + m_only, both + h_only, m_only, h_only, diff, low, high,
                        stats.mcnemar_exact(m_only, h_only) if pairs else math.nan, answers, items, right_all,
                        *all_answers, low90=low90, high90=high90, margin=margin, gap=gap)


def _timed(a: Attempt) -> bool:
    return not a.error and math.isfinite(a.seconds)
