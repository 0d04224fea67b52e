"""The statistics against published values and hand cases, and the verdict rule's table."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import wilcoxon

from bench import stats


@pytest.mark.parametrize("successes, n, low, high", [
    # Newcombe, Stat Med 1998;17:857 (single proportion): its worked examples, Wilson's score method
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
])
def test_wilson_matches_newcombes_single_proportion_examples(successes: int, n: int, low: float, high: float) -> None:
    assert stats.wilson(successes, n) == pytest.approx((low, high), abs=5e-5)


def test_wilson_with_no_attempts_is_the_whole_range() -> None:
    assert stats.wilson(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize("first_only, second_only, p", [
    (5, 0, 0.0625),  # Altman et al., Statistics with Confidence (2000), Table 6.2: 14, 5, 0, 22; 2 x 0.5^5
    (10, 2, 158 / 4096),  # [[80, 10], [2, 8]]: 2 x P(X <= 2), X ~ Bin(12, 1/2) = 2 x 79 / 4096
    (0, 0, 1.0),  # no discordant pair: no evidence
])
def test_exact_mcnemar_on_textbook_tables(first_only: int, second_only: int, p: float) -> None:
    assert stats.mcnemar_exact(first_only, second_only) == pytest.approx(p, rel=1e-9)


@pytest.mark.parametrize("table, expected", [
    # Newcombe, Stat Med 1998;17:2635 (paired), the worked example (20, 12, 2, 16), method 10
    ((20, 12, 2, 16), (0.2, 0.0562, 0.3292)),
    # Fagerland, Lydersen & Laake, Stat Med 2014 (paired proportions; the Bentur et al. table), method 10
    ((1, 1, 7, 12), (-6 / 21, -0.5069, -0.0256)),
])
def test_newcombe_paired_interval_matches_the_worked_examples(table: tuple[int, int, int, int],
                                                              expected: tuple[float, float, float]) -> None:
    assert stats.newcombe_paired(*table) == pytest.approx(expected, abs=5e-5)


def test_newcombe_interval_holds_its_estimate_and_stays_in_range() -> None:
    for table in [(0, 0, 0, 10), (10, 0, 0, 0), (0, 10, 0, 0), (0, 0, 10, 0), (3, 4, 4, 3), (50, 0, 1, 2)]:
        diff, low, high = stats.newcombe_paired(*table)
        assert -1 <= low <= diff <= high <= 1, table
    assert stats.newcombe_paired(5, 3, 3, 5)[1] < 0 < stats.newcombe_paired(5, 3, 3, 5)[2]  # balanced: holds 0


def test_wilcoxon_against_scipy_and_a_hand_case() -> None:
    # Wilcoxon (1945), the first example: differences 58 32 30 5 -7 6 11 10; T- = 3, and exactly
    # 5 of the 256 sign patterns give T <= 3 (sums 0, 1, 2, 3, 1+2), so p = 2 x 5 / 256
    a = [209, 200, 177, 169, 159, 169, 187, 198]
    b = [151, 168, 147, 164, 166, 163, 176, 188]
    assert stats.wilcoxon_signed_rank(a, b) == pytest.approx(10 / 256)
    assert stats.wilcoxon_signed_rank(a, b) == pytest.approx(wilcoxon(a, b).pvalue)
    assert stats.wilcoxon_signed_rank(a, a) == 1.0
    assert math.isnan(stats.wilcoxon_signed_rank([], []))


def test_holm_step_down_by_hand() -> None:
    # sorted 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> kept monotone: 0.06
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    adjusted = stats.holm([0.2, math.nan, 0.01])
    assert adjusted[0] == pytest.approx(0.2) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.02)


def test_a_seeded_bootstrap_gives_the_same_interval_twice() -> None:
    rng = np.random.default_rng(5)
    slow, fast = rng.lognormal(2, 0.5, 300), rng.lognormal(-3, 0.4, 300)
    a, b = stats.Pooled([[v] for v in slow]), stats.Pooled([[v] for v in fast])  # paired: unit i holds both

    def ratio_of_medians(seed: int) -> tuple[float, float]:
        low, high = stats.bootstrap(300, lambda w: stats.ratio(a.medians(w), b.medians(w)), seed=seed)
        return float(low[0]), float(high[0])

    first = ratio_of_medians(11)
    assert first == ratio_of_medians(11)
    assert first[0] < a.median / b.median < first[1]
    assert ratio_of_medians(12) != first  # the seed is what fixes it
    wanted, finish = stats.spreads_wanted(tuple(map(str, range(300))), [[[t] for t in fast]])
    spread = finish(*stats.bootstrap_together([wanted], seed=3)[0])[0]
    assert spread == finish(*stats.bootstrap_together([wanted], seed=3)[0])[0]
    assert spread is not None and spread.low <= spread.median <= spread.high and spread.q1 <= spread.median <= spread.q3


def weights_of(draws: np.ndarray, units: int) -> np.ndarray:
    return np.stack([np.bincount(row, minlength=units) for row in draws]).astype(float)


def test_pooled_medians_equal_the_medians_of_the_expanded_resamples() -> None:
    rng = np.random.default_rng(3)
    for _ in range(100):
        people = [rng.integers(0, 20, size).astype(float) for size in rng.integers(0, 4, rng.integers(1, 8))]
        draws = rng.integers(0, len(people), (5, len(people)))
        expected = [np.median(np.concatenate([people[j] for j in row])) if any(people[j].size for j in row)
                    else np.nan for row in draws]
        got = stats.Pooled(people).medians(weights_of(draws, len(people)))
        assert np.allclose(got, expected, equal_nan=True)


def test_pooled_medians_of_large_samples_use_the_window_and_still_agree() -> None:
    rng = np.random.default_rng(8)
    people = [rng.lognormal(2, 0.6, size) for size in rng.integers(1, 4, 3000)]
    draws = rng.integers(0, len(people), (6, len(people)))
    draws[0] = 0  # one resample far from the middle: every draw the same item, counted in full
    expected = [np.median(np.concatenate([people[j] for j in row])) for row in draws]
    assert np.allclose(stats.Pooled(people).medians(weights_of(draws, len(people))), expected)


def test_one_bootstrap_gives_intervals_of_several_statistics() -> None:
    values = np.arange(1.0, 201.0)
    pooled = stats.Pooled([[v] for v in values])

    def statistic(w: np.ndarray) -> np.ndarray:
        return np.stack([w @ values / w.sum(axis=1), pooled.medians(w)])

    low, high = stats.bootstrap(200, statistic, seed=2)
    assert low.shape == high.shape == (2,)
    assert low[0] < 100.5 < high[0] and low[1] < 100.5 < high[1]
    again = stats.bootstrap(200, statistic, seed=2)
    assert np.array_equal(low, again[0]) and np.array_equal(high, again[1])


@pytest.mark.parametrize("p, low, high, null, expected", [
    (0.001, 0.02, 0.10, 0.0, stats.MACHINE),
    (0.001, -0.10, -0.02, 0.0, stats.HUMANS),
    (0.20, 0.02, 0.10, 0.0, stats.NEITHER),  # the interval agrees, the corrected test does not
    (0.001, -0.01, 0.10, 0.0, stats.NEITHER),  # the test agrees, the interval does not
    (0.001, 300.0, 400.0, 1.0, stats.MACHINE),  # time: people take 300-400 times as long
    (0.001, 0.2, 0.5, 1.0, stats.HUMANS),
    (math.nan, 0.2, 0.5, 1.0, stats.NEITHER),
])
def test_side_needs_the_corrected_test_and_the_interval_to_agree(p: float, low: float, high: float, null: float,
                                                                  expected: str) -> None:
    assert stats.side(p, low, high, null) == expected


@pytest.mark.parametrize("accuracy, time, words", [
    (stats.MACHINE, stats.MACHINE, "AI beats humans"),
    (stats.HUMANS, stats.HUMANS, "humans beat AI"),
    (stats.NEITHER, stats.MACHINE, "accuracy: no evidence either way; AI faster"),
    (stats.HUMANS, stats.MACHINE, "humans more accurate; AI faster"),
    (stats.NEITHER, stats.NEITHER, "accuracy: no evidence either way; time: no evidence either way"),
])
def test_ai_beats_humans_needs_both_accuracy_and_time(accuracy: str, time: str, words: str) -> None:
    assert stats.overall(accuracy, time) == words
