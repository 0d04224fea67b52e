"""A machine against people whose answers come from a study's participants: where one person gave the
first answers to several items, those items are not independent, so the intervals and tests of the
primary analysis resample participants instead of items (Miller, "Adding error bars to evals", 2024).

Accuracy: Durkalski's clustered McNemar test and a bootstrap of participants for the paired difference;
time: a bootstrap of participants for the ratio of medians, and the Wilcoxon signed-rank test over each
participant's mean log ratio of times (one value per person). The point estimates stay those of the
items. Where every first answer is a different person's, or none names its person (TuringPass), the items
are the units, as before.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from bench import paired, stats
from bench.runfolder.records import Attempt

PARTICIPANTS = "participants"


def owners(first: dict[str, Attempt], items: Sequence[str]) -> dict[str, str] | None:
    """Each paired item's participant (its first answer's; an answer naming nobody is its own), or None
    where no participant gave the first answer to two of them: then the items are the units."""
    owner = {i: first[i].participant or f"\0{i}" for i in items if i in first}
    return owner if len(set(owner.values())) < len(owner) else None


def accuracy(owner: dict[str, str], machine_ok: dict[str, bool], people_ok: dict[str, bool],
             seed: int) -> dict[str, Any]:
    """The clustered fields of an AccuracyTest: p, both intervals, the gap, units, clusters, design effect.
    `machine_ok`, `people_ok`: right or not, by paired item (the person's first answer)."""
    people = sorted(set(owner.values()))
    where = {p: k for k, p in enumerate(people)}
    n, m, h, b, c = (np.zeros(len(people)) for _ in range(5))
    for item, person in owner.items():
        k = where[person]
        n[k] += 1
        m[k] += machine_ok[item]
        h[k] += people_ok[item]
        b[k] += machine_ok[item] and not people_ok[item]
        c[k] += people_ok[item] and not machine_ok[item]
    w = paired.cluster_draws(len(people), stats.RESAMPLES, seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        differences = (w @ m - w @ h) / (w @ n)
    low, high = paired.percentile_interval(differences, stats.LEVEL)
    low90, high90 = paired.percentile_interval(differences, 1 - 2 * stats.ALPHA)
    p, effect = paired.mcnemar_clustered(b.astype(int).tolist(), c.astype(int).tolist())
    items = float(n.sum())
    discordance = float(b.sum() + c.sum()) / items if items else math.nan
    gap = paired.smallest_gap(items / effect, discordance) if effect > 0 else math.nan
    return {"low": low, "high": high, "low90": low90, "high90": high90, "p": p, "gap": gap, "units": PARTICIPANTS,
            "clusters": len(people), "design_effect": effect}


def time(owner: dict[str, str], people_seconds: dict[str, float], machine_seconds: dict[str, float],
         seed: int) -> dict[str, Any]:
    """The clustered fields of a TimeTest (low, high, p) over the items both answered with a time."""
    timed = [i for i in owner if i in people_seconds and i in machine_seconds]
    people = sorted({owner[i] for i in timed})
    if len(people) < 2:
        return {"low": math.nan, "high": math.nan, "p": math.nan}
    where = {p: k for k, p in enumerate(people)}
    theirs: list[list[float]] = [[] for _ in people]
    its: list[list[float]] = [[] for _ in people]
    for i in timed:
        theirs[where[owner[i]]].append(people_seconds[i])
        its[where[owner[i]]].append(machine_seconds[i])
    w = paired.cluster_draws(len(people), stats.RESAMPLES, seed)
    ratios = stats.ratio(stats.Pooled(theirs).medians(w), stats.Pooled(its).medians(w))
    low, high = paired.percentile_interval(ratios, stats.LEVEL)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = [float(np.mean(np.log(np.asarray(t) / np.asarray(s)))) for t, s in zip(theirs, its)]
    finite = [x for x in logs if math.isfinite(x)]
    p = stats.wilcoxon_signed_rank(finite, [0.0] * len(finite))
    return {"low": low, "high": high, "p": p}
