"""The statistics of a comparison: intervals, paired tests, Holm's correction and the verdict rule.

Pure functions over counts and arrays, no I/O. scipy and statsmodels do every test they have;
Newcombe's interval for a paired difference of proportions (his method 10), which statsmodels'
released wheel lacks, is written out here. Bootstraps are percentile intervals with a fixed seed.
"""

from __future__ import annotations

import gc
import itertools
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

LEVEL = 0.95  # every interval
ALPHA = 0.05  # every test, after Holm's correction
RESAMPLES = 2000  # bootstrap resamples
SEED = 0  # bootstrap seed: the same data give the same interval

MACHINE, HUMANS, NEITHER = "machine", "humans", "neither"  # who a test says is ahead

RULE = ("A side beats the other on accuracy only where the Holm-adjusted exact McNemar p is below 0.05 "
        "and the 95 % interval of the paired difference (Newcombe) lies wholly on its side of zero; on "
        "time only where the Holm-adjusted Wilcoxon signed-rank p is below 0.05 and the bootstrap 95 % "
        "interval of the ratio of median times lies wholly on its side of 1. \"AI beats humans\" needs "
        "both. Otherwise: no evidence either way. Where the runs stated a margin of M points before they ran "
        "(run --margin M), accuracy with neither side ahead is \"equivalent\" where the paired 90 % interval "
        "lies wholly within plus or minus M (two one-sided tests at 0.05, TOST), and \"AI not worse\" where "
        "only its lower bound (the one-sided 95 % bound) lies above -M.")


@dataclass(frozen=True)
class Spread:
    """A sample of times: its median with a bootstrap interval, and its quartiles."""

    n: int
    median: float
    low: float  # bootstrap 95 % interval of the median
    high: float
    q1: float  # interquartile range
    q3: float


def wilson(successes: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion; (0, 1) when there is nothing to go on."""
    if n == 0:
        return (0.0, 1.0)
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(successes, n, alpha=1 - level, method="wilson")
    return (max(0.0, float(low)), min(1.0, float(high)))


def newcombe_paired(both: int, first_only: int, second_only: int, neither: int,
                    level: float = LEVEL) -> tuple[float, float, float]:
    """p1 - p2 for paired yes/no outcomes, with Newcombe's interval (Stat Med 1998;17:2635, method 10).

    `first_only` counts pairs where only the first is right, `second_only` where only the second is.
    Wilson intervals of both margins, squared and added, with the correlation of the pairs corrected
    as the paper says: phi is shrunk by n/2 when positive and left alone when negative."""
    n = both + first_only + second_only + neither
    if n == 0:
        return (0.0, -1.0, 1.0)
    p1, p2 = (both + first_only) / n, (both + second_only) / n
    l1, u1 = wilson(both + first_only, n, level)
    l2, u2 = wilson(both + second_only, n, level)
    margins = (both + first_only) * (second_only + neither) * (both + second_only) * (first_only + neither)
    cross = both * neither - first_only * second_only
    if margins == 0 or 0 <= cross <= n / 2:
        phi = 0.0
    else:
        phi = (cross - n / 2 if cross > n / 2 else cross) / math.sqrt(margins)
    delta = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    epsilon = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return (p1 - p2, max(-1.0, p1 - p2 - delta), min(1.0, p1 - p2 + epsilon))


def mcnemar_exact(first_only: int, second_only: int) -> float:
    """Two-sided exact McNemar p: a binomial test on the discordant pairs (1 when there are none)."""
    from statsmodels.stats.contingency_tables import mcnemar

    return float(mcnemar([[0, first_only], [second_only, 0]], exact=True).pvalue)


def wilcoxon_signed_rank(first: ArrayLike, second: ArrayLike) -> float:
    """Two-sided p of the Wilcoxon signed-rank test on paired samples (scipy; zero differences dropped).
    1.0 when every difference is zero; NaN with no pairs."""
    from scipy.stats import wilcoxon

    x, y = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if x.size == 0:
        return math.nan
    if not np.any(x != y):
        return 1.0
    return float(wilcoxon(x, y).pvalue)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment over one family of tests (statsmodels); NaN stays NaN."""
    from statsmodels.stats.multitest import multipletests

    finite = [i for i, p in enumerate(pvalues) if not math.isnan(p)]
    adjusted = [math.nan] * len(pvalues)
    if finite:
        gc.freeze()  # multipletests calls gc.collect(), which would walk every record the caller holds
        try:
            corrected = multipletests([pvalues[i] for i in finite], alpha=ALPHA, method="holm")[1]
        finally:
            gc.unfreeze()
        for i, p in zip(finite, corrected):
            adjusted[i] = float(p)
    return adjusted


def bootstrap(size: int, statistic: Callable[[NDArray[np.float64]], NDArray[np.float64]], *, seed: int = SEED,
              resamples: int = RESAMPLES) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Percentile 95 % intervals by scipy's bootstrap over `size` units (items).

    scipy resamples the units; `statistic` gets how often each unit was drawn in each resample, as
    weights (B, size), and returns one value per resample (B,) or several (k, B). Means, medians and
    their ratios are all functions of those weights, so one bootstrap serves every interval of a
    comparison, and all answers to one item travel together. Returns (low, high), each of shape (k,)."""
    from scipy.stats import DegenerateDataWarning
    from scipy.stats import bootstrap as scipy_bootstrap

    if size < 2:
        with np.errstate(divide="ignore", invalid="ignore"):
            k = np.atleast_2d(statistic(np.ones((1, size)))).shape[0]
        return np.full(k, math.nan), np.full(k, math.nan)

    def on_draws(i: NDArray[np.intp], axis: int = -1) -> NDArray[np.float64]:
        draws = np.atleast_2d(i)  # (B, size): the units each resample drew
        rows = draws.shape[0]
        weights = np.bincount((draws + np.arange(rows)[:, None] * size).ravel(),
                              minlength=rows * size).reshape(rows, size).astype(np.float64)  # floats: BLAS products
        values = np.atleast_2d(statistic(weights))  # (k, B)
        return values if i.ndim > 1 else values[:, 0]

    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        # a resample with nothing to take a median of gives NaN, and then the interval is NaN: no interval,
        # said as such in the report, rather than a warning
        warnings.simplefilter("ignore", DegenerateDataWarning)
        result = scipy_bootstrap((np.arange(size),), on_draws, vectorized=True, axis=-1, n_resamples=resamples,
                                 batch=max(1, 4_000_000 // size), confidence_level=LEVEL, method="percentile",
                                 rng=np.random.default_rng(seed))
    return np.atleast_1d(result.confidence_interval.low), np.atleast_1d(result.confidence_interval.high)


@dataclass(frozen=True)
class Wanted:
    """A bootstrap that a report needs: over which units (item ids, in order) and what to compute from
    each resample's weights (B, units), giving (k, B)."""

    units: tuple[str, ...]
    statistic: Callable[[NDArray[np.float64]], NDArray[np.float64]]


def bootstrap_together(wanted: Sequence[Wanted], seed: int = SEED,
                       resamples: int = RESAMPLES) -> list[tuple[NDArray[np.float64], NDArray[np.float64]]]:
    """Each wanted bootstrap's intervals, (low, high) of shape (k,). Those over the same units run as one:
    with one seed they would draw the very same resamples anyway, so the resampling is paid once."""
    found: list[tuple[NDArray[np.float64], NDArray[np.float64]]] = [(np.empty(0), np.empty(0))] * len(wanted)
    by_units: dict[tuple[str, ...], list[int]] = {}
    for k, w in enumerate(wanted):
        by_units.setdefault(w.units, []).append(k)
    for units, members in by_units.items():
        with np.errstate(divide="ignore", invalid="ignore"):  # the whole sample, once: how many values each gives
            sizes = [np.atleast_2d(wanted[k].statistic(np.ones((1, len(units))))).shape[0] for k in members]
        low, high = bootstrap(len(units), lambda w: np.concatenate([np.atleast_2d(wanted[k].statistic(w))
                                                                    for k in members]), seed=seed, resamples=resamples)
        start = 0
        for k, size in zip(members, sizes):
            found[k] = (low[start:start + size], high[start:start + size])
            start += size
    return found


class Pooled:
    """Values that belong to units (each item's times), sorted once, so that the median of any
    resample of units comes from counting instead of sorting."""

    def __init__(self, values_by_unit: Sequence[Sequence[float]]) -> None:
        self.units = len(values_by_unit)
        sizes = np.fromiter((len(v) for v in values_by_unit), dtype=np.intp, count=self.units)
        values = np.fromiter(itertools.chain.from_iterable(values_by_unit), dtype=float, count=int(sizes.sum()))
        owner = np.repeat(np.arange(self.units), sizes)
        order = np.argsort(values, kind="stable")
        self.values, self.owner = values[order], owner[order]  # ascending, each with its unit

    @property
    def median(self) -> float:
        return float(np.median(self.values)) if self.values.size else math.nan

    def medians(self, weights: NDArray[np.float64]) -> NDArray[np.float64]:
        """For weights (B, units) (whole numbers, as floats), each resample's median: every unit's values counted as often as it
        was drawn; the same as np.median of the expanded resample, NaN where it holds no value.

        A resample's median stays within a few standard errors of the whole sample's, so the running
        counts are taken over a window about the middle (the counts below it in one product); rows
        whose median falls outside it are counted in full."""
        rows = weights.shape[0]
        n = self.values.size
        if n == 0:
            return np.full(rows, math.nan)
        width = 3 * math.isqrt(n) + 64  # six standard errors of the median's rank either side
        lo, hi = max(0, n // 2 - width), min(n, n // 2 + width)
        total = weights @ np.bincount(self.owner, minlength=self.units).astype(np.float64)  # (B,): values drawn
        before = weights @ np.bincount(self.owner[:lo], minlength=self.units).astype(np.float64)  # (B,): below
        inside = np.cumsum(weights[:, self.owner[lo:hi]], axis=1) + before[:, None]  # (B, window)
        half = total / 2
        medians = np.full(rows, math.nan)
        fits = (before < half) & (inside[:, -1] > half)
        rest = ~fits & (total > 0)
        for mask, offset, cumulative in ((fits, lo, inside[fits]),
                                         (rest, 0, np.cumsum(weights[rest][:, self.owner], axis=1))):
            if mask.any():
                h = half[mask][:, None]
                lower = self.values[offset + np.argmax(cumulative >= h, axis=1)]
                upper = self.values[offset + np.argmax(cumulative > h, axis=1)]
                medians[mask] = np.where(total[mask] % 2 == 0, (lower + upper) / 2, upper)
        return medians


def spreads_wanted(units: tuple[str, ...], samples: Sequence[Sequence[Sequence[float]]]
                   ) -> tuple[Wanted, Callable[[NDArray[np.float64], NDArray[np.float64]], list[Spread | None]]]:
    """For several samples over the same units (`samples[r][i]`: sample r's times on unit i): the bootstrap
    of units that gives each one's median an interval, and how to finish from that bootstrap's intervals
    (see bootstrap_together) to each sample's Spread, None where it is empty."""
    pooled = [Pooled(sample) for sample in samples]

    def finish(low: NDArray[np.float64], high: NDArray[np.float64]) -> list[Spread | None]:
        found: list[Spread | None] = []
        for p, lo, hi in zip(pooled, low, high):
            if not p.values.size:
                found.append(None)
                continue
            q1, q3 = np.percentile(p.values, [25, 75])
            lo, hi = (p.median, p.median) if math.isnan(lo) else (float(lo), float(hi))
            found.append(Spread(int(p.values.size), p.median, lo, hi, float(q1), float(q3)))
        return found

    return Wanted(units, lambda w: np.stack([p.medians(w) for p in pooled])), finish


def side(p_adjusted: float, low: float, high: float, null: float) -> str:
    """Who a test puts ahead under the verdict rule: MACHINE where the adjusted p is below ALPHA and the
    interval lies wholly above `null`, HUMANS where it lies wholly below, else NEITHER."""
    if math.isnan(p_adjusted) or p_adjusted >= ALPHA:
        return NEITHER
    if low > null:
        return MACHINE
    if high < null:
        return HUMANS
    return NEITHER


def overall(accuracy: str, time: str, margin: float | None = None) -> str:
    """The verdict over both measures, in words. `accuracy` may also be "equivalent" or "not worse" (what a
    stated `margin`, a proportion, allows: bench.paired.margin_outcome)."""
    if accuracy == time == MACHINE:
        return "AI beats humans"
    if accuracy == time == HUMANS:
        return "humans beat AI"
    within = f"{100 * margin:g} points" if margin is not None else "the margin"
    accurate = {MACHINE: "AI more accurate", HUMANS: "humans more accurate", NEITHER: "accuracy: no evidence either way",
                "equivalent": f"accuracy equivalent within {within}", "not worse": f"AI not worse by {within} or more"}
    faster = {MACHINE: "AI faster", HUMANS: "humans faster", NEITHER: "time: no evidence either way"}
    return f"{accurate[accuracy]}; {faster[time]}"


def ratio(a: ArrayLike, b: ArrayLike) -> NDArray[np.float64]:
    """a / b elementwise, inf or NaN (not a warning) where b is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.divide(a, b), dtype=float)
