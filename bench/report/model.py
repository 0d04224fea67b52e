"""What a report holds, computed once by `build` and drawn by `tables`, `figures` and `pages`: a Group per
data set (its runs, rows and readings), the comparisons of machines with people, and the published human
figures drawn beside them (never compared)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from bench import stats
from bench.report.compare import Comparison
from bench.runfolder.read import Run
from bench.runfolder.records import Attempt, Timing
from bench.summary import Glyph, Summary

HTML, MARKDOWN, FIGURES = "report.html", "report.md", "figures"


@dataclass(frozen=True)
class Reference:
    """A published human figure: other items, other people. Drawn apart, never compared."""

    cite: str
    what: str
    short: str  # for a legend
    accuracy: tuple[float, float]  # range, 0-1
    seconds: tuple[float, float] | None  # range, or None where the source gives no times


REFERENCES = (
    Reference("Searles et al., USENIX Security 2023", "people on distorted-text CAPTCHAs",
              "Searles et al. 2023: people, distorted text, 50-84 %, 9-15 s", (0.50, 0.84), (9.0, 15.0)),
    Reference("Bursztein et al., IEEE S&P 2010", "three people agreed on 71 % of image CAPTCHAs",
              "Bursztein et al. 2010: three people agreed on 71 %", (0.71, 0.71), None),
)



@dataclass(frozen=True)
class PublishedPrice:
    """What a human CAPTCHA-solving service says it charges: a cited range, drawn beside the people's
    measured accuracy, never measured here."""

    cite: str
    usd_per_1000: tuple[float, float]


HUMAN_PRICE = PublishedPrice("2Captcha, \"Human-Powered Image and CAPTCHA Recognition\" (2captcha.com/order-captchas): "
                             "from $0.50 to $1 for 1,000 CAPTCHAs solved, by the load at the time; read 2026-12-06",
                             (0.50, 1.00))

@dataclass(frozen=True)
class PeopleReference:
    """The people's first tries on the embedded TuringPass split (case-insensitive, as its app judged):
    what a sweep draws where its own points have no people. Other items, other people."""

    accuracy: float
    low: float  # Wilson 95 %
    high: float
    answers: int
    median_seconds: float  # their app's clock


@dataclass(frozen=True)
class Row:
    """One line of a solver table: a summary under one case rule, with its spread of times."""

    name: str  # the solver, or "human (first answers)" / "human (all answers)"
    summary: Summary
    spread: stats.Spread | None  # seconds of answered attempts
    person: bool


@dataclass(frozen=True)
class Group:
    """One data set of the report and everything measured on it (computed once, in `build_report`)."""

    label: str
    sha256: str
    case_sensitive: bool  # the data set's own rule; the report also scores by the other one
    runs: tuple[Run, ...]
    attempts: dict[str, list[Attempt]]  # by solver, in the order the runs list them
    timings: dict[str, Timing]
    people: tuple[str, ...]  # solvers that replay recorded human answers
    point: dict[str, Any]  # a sweep's point; empty otherwise
    tables: dict[bool, list[Row]]  # case rule -> every solver's row (people twice: first answers, all answers)
    glyphs: list[Glyph]  # per solver and glyph, under the data set's rule; people's first answers
    confusions: dict[str, Counter[tuple[str, str]]]  # likewise

    @property
    def machines(self) -> list[str]:
        return [s for s in self.attempts if s not in self.people]

    def rows(self, case_sensitive: bool) -> list[Row]:
        """Every solver (people twice: first answers, all answers) scored under one case rule."""
        return self.tables[case_sensitive]


@dataclass(frozen=True)
class Report:
    groups: list[Group]
    comparisons: list[Comparison]  # every machine against the people of its data set, Holm-adjusted together
    people_reference: PeopleReference | None  # TuringPass first tries, for sweeps
    created: str
    provenance: dict[str, Any]
    unfinished: list[str]  # runs that did not finish
    audits: tuple[Any, ...] = ()  # per group, its bench.report.items.Audit (None where it has no people)

    @property
    def has_people(self) -> bool:
        return any(g.people for g in self.groups)
