"""The leaderboard as data (`captcha-bench leaderboard`): one row per solver per data set, from a built
Report, with accuracy and its interval, median time, cost where known, and the verdict against people
where the data set has them. Sorted by data set, then accuracy, best first."""

from __future__ import annotations

import math
from typing import Any

from bench.report.model import Report

COLUMNS = ["data_set", "dataset_sha256", "case_sensitive", "solver", "people", "attempts", "items", "accuracy",
           "accuracy_low", "accuracy_high", "median_seconds", "median_low", "median_high", "usd_per_1000",
           "cost_basis", "versus_people", "difference_points", "difference_low", "difference_high", "p_holm",
           "resolvable_gap_points", "margin_points"]


def leaderboard(report: Report) -> list[dict[str, Any]]:
    """Every row of every data set's table under its own case rule (people as their first answers)."""
    rows = []
    for group in report.groups:
        against = {c.machine: c for c in report.comparisons if c.group == group.label}
        mine = []
        for row in group.rows(group.case_sensitive):
            if row.person and not row.name.endswith("(first answers)"):
                continue  # people once: their first answers, the primary analysis
            s, c = row.summary, against.get(row.name)
            a = c.accuracy if c else None
            spread = row.spread
            mine.append({
                "data_set": group.label, "dataset_sha256": group.sha256, "case_sensitive": group.case_sensitive,
                "solver": row.name, "people": row.person, "attempts": s.n, "items": s.items, "accuracy": s.accuracy,
                "accuracy_low": s.accuracy_low, "accuracy_high": s.accuracy_high,
                "median_seconds": spread.median if spread else None, "median_low": spread.low if spread else None,
                "median_high": spread.high if spread else None, "usd_per_1000": s.usd_per_1000,
                "cost_basis": s.cost_basis, "versus_people": c.verdict if c else "",
                "difference_points": 100 * a.difference if a else None, "difference_low": 100 * a.low if a else None,
                "difference_high": 100 * a.high if a else None, "p_holm": a.p_holm if a else None,
                "resolvable_gap_points": 100 * a.gap if a else None,
                "margin_points": 100 * a.margin if a and a.margin is not None else None,
            })
        rows += sorted(mine, key=_best_first)
    return [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()} for r in rows]


def _best_first(row: dict[str, Any]) -> float:
    accuracy = float(row["accuracy"])
    return math.inf if math.isnan(accuracy) else -accuracy
