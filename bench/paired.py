"""What paired yes/no outcomes can and cannot show: the power of a paired comparison (Connor 1987), the
equivalence and non-inferiority rules that a stated margin allows (two one-sided tests, Schuirmann 1987),
and the test and intervals that hold where the pairs come in clusters (a study's participants: Durkalski
et al. 2003; a bootstrap that resamples the clusters, as Miller, "Adding error bars to evals", 2024, asks).

Pure functions, no I/O; a floor beside `bench.stats`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from bench.stats import ALPHA

POWER = 0.80  # the power a verdict line states its smallest resolvable gap at
EQUIVALENT, NOT_WORSE = "equivalent", "not worse"  # outcomes a margin allows, beside bench.stats' sides


def _z(p: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(p))


def items_needed(gap: float, discordance: float, power: float = POWER, alpha: float = ALPHA) -> float:
    """Paired items a two-sided McNemar test at `alpha` needs to find a difference of `gap` (a proportion)
    with `power`, where `discordance` is the share of items on which the two sides disagree (Connor,
    Biometrics 1987;43:207, his formula on p. 209):

        n = (z(1 - alpha/2) sqrt(psi) + z(power) sqrt(psi - gap^2))^2 / gap^2

    A gap is a difference of the discordant shares, so it cannot reach the discordance itself: ValueError."""
    if not 0 < discordance <= 1:
        raise ValueError(f"the discordance is a share of items in (0, 1], not {discordance}")
    if not 0 < gap * gap < discordance:
        raise ValueError(f"a gap of {gap:g} cannot happen where only {discordance:g} of the items are discordant: "
                         "the gap must be above 0 and below the discordance's square root")
    if not 0 < power < 1 or not 0 < alpha < 1:
        raise ValueError("power and alpha are probabilities between 0 and 1")
    root = _z(1 - alpha / 2) * math.sqrt(discordance) + _z(power) * math.sqrt(discordance - gap * gap)
    return root * root / (gap * gap)


def smallest_gap(items: float, discordance: float, power: float = POWER, alpha: float = ALPHA) -> float:
    """The smallest accuracy difference (a proportion) that `items` paired items resolve with `power`:
    Connor's formula solved for the gap. NaN where nothing is discordant or no gap within reach is
    resolved (too few items)."""
    from scipy.optimize import brentq

    if items <= 0 or not 0 < discordance <= 1:
        return math.nan
    top = math.sqrt(discordance) * (1 - 1e-12)  # items_needed falls as the gap grows, up to this
    if items_needed(top, discordance, power, alpha) > items:
        return math.nan
    return float(brentq(lambda g: items_needed(g, discordance, power, alpha) - items, 1e-9, top, xtol=1e-12))


def margin_outcome(low90: float, high90: float, margin: float | None) -> str:
    """What a stated margin (a proportion) lets the paired 90 % interval of machine minus people say, where
    neither side beats the other: EQUIVALENT where it lies wholly inside (-margin, +margin), which is
    both one-sided tests at 0.05 rejecting (TOST); NOT_WORSE where only its lower bound, the one-sided
    95 % bound, lies above -margin; "" otherwise, or with no margin."""
    if margin is None or math.isnan(low90) or math.isnan(high90):
        return ""
    if -margin < low90 and high90 < margin:
        return EQUIVALENT
    if -margin < low90:
        return NOT_WORSE
    return ""


def mcnemar_clustered(first_only: Sequence[int], second_only: Sequence[int]) -> tuple[float, float]:
    """McNemar's test where the pairs come in clusters (Durkalski, Palesch, Lipsitz & Rust, Stat Med
    2003;22:2417): per cluster k the discordant counts b_k (only the first right) and c_k, and

        X^2 = (sum b_k - c_k)^2 / sum (b_k - c_k)^2,  chi-square with 1 degree of freedom.

    With one pair per cluster it is McNemar's statistic without continuity correction. Returns (p, design
    effect): the design effect sum (b_k - c_k)^2 / sum (b_k + c_k) is how much the clusters inflate the
    variance of the discordance over independent pairs (1 with one pair per cluster)."""
    from scipy.stats import chi2

    d = np.asarray(first_only, dtype=float) - np.asarray(second_only, dtype=float)
    spread = float(np.sum(d * d))
    discordant = float(np.sum(first_only) + np.sum(second_only))
    if spread == 0:
        return 1.0, 1.0
    return float(chi2.sf(float(np.sum(d)) ** 2 / spread, 1)), spread / discordant if discordant else math.nan


def cluster_draws(clusters: int, resamples: int, seed: int) -> NDArray[np.float64]:
    """How often each cluster is drawn in each of `resamples` resamples of the clusters (B, clusters)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, clusters, size=(resamples, clusters))
    counts = np.zeros((resamples, clusters))
    np.add.at(counts, (np.repeat(np.arange(resamples), clusters), draws.ravel()), 1.0)
    return counts


def percentile_interval(values: NDArray[np.float64], level: float) -> tuple[float, float]:
    """The percentile interval of a bootstrap's values at `level`, NaN values left out (NaN, NaN: none)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return math.nan, math.nan
    low, high = np.percentile(finite, [50 * (1 - level), 50 * (1 + level)])
    return float(low), float(high)
