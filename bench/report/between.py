"""Two runs on the same data set, machine by machine (`captcha-bench compare RUN_A RUN_B`): is the second
run's solver better or worse than the first's, on the same items? Paired per item: the exact McNemar test
and Newcombe's interval for accuracy, the Wilcoxon signed-rank test for time, Holm's correction over every
test of the comparison; and the regression gate a CI job asks for.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import stats
from bench.report.compare import Versus, rescore, versus
from bench.report.tables import points, pvalue, seconds
from bench.runfolder.files import COLLECTION, RunError, read_collection
from bench.runfolder.read import Run, read_run

HEADER = ["first (A)", "second (B)", "items", "accuracy, A vs B", "B - A [95% CI], points", "p (Holm)",
          "median time, A vs B", "p (Holm)", "verdict"]


@dataclass(frozen=True)
class Pairing:
    """One solver of run A against one of run B; `result` is B minus A."""

    first: str
    second: str
    result: Versus

    @property
    def verdict(self) -> str:
        """Under the report's rule: B more or less accurate, faster or slower, or no evidence either way."""
        r = self.result
        accurate = stats.side(r.p_holm, r.low, r.high, 0.0)
        words = {stats.MACHINE: "B more accurate", stats.HUMANS: "B less accurate",
                 stats.NEITHER: "accuracy: no evidence either way"}[accurate]
        if not math.isnan(r.time_p_holm) and r.time_p_holm < stats.ALPHA:
            words += "; B faster" if r.second_median < r.first_median else "; B slower"
        else:
            words += "; time: no evidence either way"
        return words

    def regressed(self, points: float) -> bool:
        """B is worse than A by more than `points` under the rule's confidence: the Holm-adjusted McNemar p
        is below 0.05 and the whole 95 % interval of B - A lies below -points."""
        r = self.result
        return not math.isnan(r.p_holm) and r.p_holm < stats.ALPHA and r.high < -points / 100


@dataclass(frozen=True)
class Between:
    first: Run
    second: Run
    case_sensitive: bool
    pairings: list[Pairing]


def compare_runs(first: Path, second: Path, pairs: Sequence[tuple[str, str]] = ()) -> Between:
    """Read two run folders on the same data set and compare each named pair of machines (default: every
    machine both ran), scored by the data set's own case rule. RunError, one line, for what cannot be
    compared."""
    if first.resolve() == second.resolve():
        raise RunError(f"{first} is given twice: compare two different runs")
    a, b = (_one_run(p) for p in (first, second))
    if a.dataset_sha256 != b.dataset_sha256:
        raise RunError(f"{first} is on data set {a.dataset_sha256[:12]} and {second} on {b.dataset_sha256[:12]}: "
                       "compare runs on the same data set (captcha-bench report --allow-mixed shows different ones "
                       "side by side)")
    machines_a = [s for s in a.solvers if s not in a.recorded]
    machines_b = [s for s in b.solvers if s not in b.recorded]
    if not pairs:
        pairs = [(s, s) for s in machines_a if s in machines_b]
        if not pairs:
            raise RunError(f"no machine solver is in both runs ({', '.join(machines_a) or 'none'} against "
                           f"{', '.join(machines_b) or 'none'}): name a pair with --pair A_SOLVER:B_SOLVER")
    for name, run, machines in [(n, a, machines_a) for n, _ in pairs] + [(n, b, machines_b) for _, n in pairs]:
        if name in run.recorded:
            raise RunError(f"{name} in {run.path} replays recorded people: compare names machines "
                           "(captcha-bench report compares machines with people)")
        if name not in machines:
            raise RunError(f"{run.path} has no solver {name!r} (it has {', '.join(machines) or 'none'}): "
                           "name one of those in --pair")
    rule = a.case_sensitive
    found = []
    for x, y in pairs:
        mine = rescore([t for t in a.attempts if t.solver == x], rule, with_cer=False)
        theirs = rescore([t for t in b.attempts if t.solver == y], rule, with_cer=False)
        result = versus(mine, theirs, rule)
        if not result.items:
            raise RunError(f"{x} in {first} and {y} in {second} attempted no item in common: compare runs "
                           "over the same items")
        # B - A: Newcombe's interval is symmetric, so swapping the sides negates it
        found.append(Pairing(x, y, dataclasses.replace(result, difference=-result.difference, low=-result.high,
                                                       high=-result.low)))
    return Between(a, b, rule, _adjusted(found))


def _one_run(path: Path) -> Run:
    if (path / COLLECTION).is_file():
        parts = ", ".join(str(path / str(p["path"])) for p in read_collection(path)["parts"])
        raise RunError(f"{path} is a collection of runs: compare one of its parts ({parts})")
    return read_run(path)


def _adjusted(pairings: list[Pairing]) -> list[Pairing]:
    """Holm's correction over every McNemar and Wilcoxon test of the comparison."""
    adjusted = iter(stats.holm([p for x in pairings for p in (x.result.p, x.result.time_p)]))
    return [dataclasses.replace(x, result=dataclasses.replace(x.result, p_holm=next(adjusted),
                                                              time_p_holm=next(adjusted)))
            for x in pairings]


def rows(between: Between) -> list[list[str]]:
    """The terminal's and compare.md's table, one row per pair (HEADER)."""
    found = []
    for x in between.pairings:
        r = x.result
        found.append([x.first, x.second, f"{r.items:,}",
                      f"{r.first_right / r.items:.1%} vs {r.second_right / r.items:.1%}",
                      f"{points(r.difference)} [{points(r.low)}, {points(r.high)}]", pvalue(r.p_holm),
                      f"{seconds(r.first_median)} vs {seconds(r.second_median)}", pvalue(r.time_p_holm), x.verdict])
    return found


def records(between: Between) -> list[dict[str, Any]]:
    """compare.csv's and compare.json's rows: every figure, NaN as None."""
    found = []
    for x in between.pairings:
        r = x.result
        row = {"run_a": between.first.run_id, "run_b": between.second.run_id, "dataset_sha256": between.first.dataset_sha256,
               "case_sensitive": between.case_sensitive, "solver_a": x.first, "solver_b": x.second, "items": r.items,
               "accuracy_a": r.first_right / r.items, "accuracy_b": r.second_right / r.items,
               "only_a_right": r.first_only, "only_b_right": r.second_only, "difference_b_minus_a": r.difference,
               "difference_low": r.low, "difference_high": r.high, "mcnemar_p": r.p, "mcnemar_p_holm": r.p_holm,
               "median_seconds_a": r.first_median, "median_seconds_b": r.second_median, "wilcoxon_p": r.time_p,
               "wilcoxon_p_holm": r.time_p_holm, "verdict": x.verdict}
        found.append({k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()})
    return found
