"""Power (Connor 1987), equivalence and non-inferiority under a stated margin (TOST), and the clustered
McNemar test (Durkalski et al. 2003): against published figures and hand cases; then in the report."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
from statsmodels.stats.contingency_tables import mcnemar

from bench import paired, stats
from bench.report import build_report
from bench.report.tables import verdict_text
from bench.runfolder.files import RunError
from tests.fakes import write_run
from tests.test_report import attempt


def test_items_needed_matches_connors_published_example() -> None:
    # Connor, Biometrics 1987;43:207, p. 209: p10 = 0.05, p01 = 0.45, two-sided alpha 0.05, power 0.8: 23 pairs
    assert math.ceil(paired.items_needed(0.45 - 0.05, 0.45 + 0.05)) == 23
    # ...and one-sided at power 0.9 gives 23 as well (the same page); here alpha 0.10 two-sided is that test
    assert math.ceil(paired.items_needed(0.40, 0.50, power=0.90, alpha=0.10)) == 23


@pytest.mark.parametrize("gap, needed", [(0.03, 2_004), (0.02, 4_511)])
def test_turingpass_discordance_needs_the_items_the_issue_quotes(gap: float, needed: int) -> None:
    assert math.ceil(paired.items_needed(gap, 0.23)) == needed  # "about 2,000" and "about 4,500" pairs


def test_the_smallest_gap_inverts_the_items_needed() -> None:
    assert paired.smallest_gap(1_387, 0.23) == pytest.approx(0.0360, abs=5e-4)  # "about 3.6 points"
    for n, psi in [(50, 0.4), (1_000, 0.1), (20_000, 0.02)]:
        gap = paired.smallest_gap(n, psi)
        assert paired.items_needed(gap, psi) == pytest.approx(n, rel=1e-6)
    assert math.isnan(paired.smallest_gap(1_000, 0.0))  # no discordant item: nothing to resolve with
    assert math.isnan(paired.smallest_gap(3, 0.5))  # too few items for any gap within reach


@pytest.mark.parametrize("gap, discordance", [(0.5, 0.2), (0.0, 0.2), (0.1, 0.0), (0.1, 1.5)])
def test_impossible_plans_are_refused(gap: float, discordance: float) -> None:
    with pytest.raises(ValueError):
        paired.items_needed(gap, discordance)


def test_the_margin_reads_the_90_percent_interval() -> None:
    # Fagerland, Lydersen & Laake 2014 (the Bentur et al. table), Newcombe's method 10: -0.2857 [-0.5069, -0.0256]
    diff, low95, high95 = stats.newcombe_paired(1, 1, 7, 12)
    _, low90, high90 = stats.newcombe_paired(1, 1, 7, 12, level=0.90)
    assert low95 < low90 < diff < high90 < high95  # the 90 % interval lies inside the 95 % one
    assert paired.margin_outcome(low90, high90, 0.60) == paired.EQUIVALENT  # wider than the 95 % interval
    assert paired.margin_outcome(low90, high90, 0.20) == ""  # the estimate itself is beyond the margin
    # not worse: the lower bound above -margin, the upper beyond +margin
    assert paired.margin_outcome(-0.01, 0.08, 0.05) == paired.NOT_WORSE
    assert paired.margin_outcome(-0.01, 0.08, None) == ""


def test_clustered_mcnemar_is_mcnemar_with_one_pair_per_cluster() -> None:
    b, c = [1] * 9 + [0] * 3, [0] * 9 + [1] * 3
    p, effect = paired.mcnemar_clustered(b, c)
    assert p == pytest.approx(mcnemar([[0, 9], [3, 0]], exact=False, correction=False).pvalue)
    assert effect == 1.0
    # the same discordant pairs held by three people who each answer alike: weaker evidence
    p_clustered, effect = paired.mcnemar_clustered([5, 4, 0], [0, 0, 3])
    assert effect > 1 and p_clustered > p


def test_the_verdict_gains_equivalence_and_not_worse() -> None:
    assert stats.overall(paired.EQUIVALENT, stats.MACHINE, 0.02) == "accuracy equivalent within 2 points; AI faster"
    assert stats.overall(paired.NOT_WORSE, stats.NEITHER, 0.05).startswith("AI not worse by 5 points or more")


def _alike(n: int, seed: int = 1, participants: int = 0) -> list:
    """Machine and people right on the same 90 % of items, except a few discordant items either way."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        answer = f"A{i:04d}"
        m_ok = h_ok = i % 10 != 0
        if i % 50 == 1:
            m_ok = False
        if i % 50 == 2:
            h_ok = False
        who = f"p{i % participants}" if participants else ""
        rows.append(attempt("cnn", i, answer, answer if m_ok else "X", 0.01 * rng.uniform(0.8, 1.2)))
        rows.append(attempt("human", i, answer, answer if h_ok else "X", 5 * rng.uniform(0.8, 1.2), participant=who))
    return rows


def test_a_stated_margin_gives_an_equivalence_verdict(tmp_path: Path) -> None:
    write_run(tmp_path / "run", "c" * 64, _alike(2_000), config={"margin": 2.0})
    report = build_report([tmp_path / "run"])
    (c,) = report.comparisons
    assert c.accuracy.margin == 0.02 and c.accuracy.ahead == stats.NEITHER
    assert c.verdict == "accuracy equivalent within 2 points; AI faster"
    text = verdict_text(report)
    assert "margin stated before the run: 2 points" in text and "at 80 % power" in text
    write_run(tmp_path / "none", "c" * 64, _alike(2_000))
    (c,) = build_report([tmp_path / "none"]).comparisons
    assert c.accuracy.margin is None and c.verdict == "accuracy: no evidence either way; AI faster"


def test_runs_that_stated_different_margins_are_refused(tmp_path: Path) -> None:
    rows = _alike(100)
    write_run(tmp_path / "a", "d" * 64, [r for r in rows if r.solver == "cnn"], config={"margin": 2.0})
    write_run(tmp_path / "b", "d" * 64, [r for r in rows if r.solver == "human"], config={"margin": 3.0})
    with pytest.raises(RunError, match="stated different margins"):
        build_report([tmp_path / "a", tmp_path / "b"])


def test_participants_are_resampled_where_a_study_recorded_them(tmp_path: Path) -> None:
    write_run(tmp_path / "items", "e" * 64, _alike(600))
    write_run(tmp_path / "people", "e" * 64, _alike(600, participants=6))
    (by_item,) = build_report([tmp_path / "items"]).comparisons
    report = build_report([tmp_path / "people"])
    (by_person,) = report.comparisons
    assert by_item.accuracy.units == "items" and by_person.accuracy.units == "participants"
    assert by_person.accuracy.clusters == 6
    assert by_person.accuracy.difference == by_item.accuracy.difference  # the estimate stays the items'
    assert "resample participants" in verdict_text(report)
