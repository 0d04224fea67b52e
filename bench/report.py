"""The report: machines and people on the same items, the verdict with its statistics, the figures.

`build_report` reads finished runs (`bench.results.read_runs`), groups them by data set, compares every machine
with the people of its data set (`bench.compare`) and applies Holm's correction over the whole
report; `write_report` writes report.html (figures embedded), report.md and the figures as PNG.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import gc
import json
import math
import os
import platform
import statistics
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import stats
from bench.compare import Comparison, adjust, first_answers, plans, rescore
from bench.results import COLLECTION, Attempt, Run, RunError, Timing, read_runs
from bench.provenance import git_state
from bench.results import RUN
from bench.summary import Glyph, Summary, glyph_readings, summarize

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

    @property
    def has_people(self) -> bool:
        return any(g.people for g in self.groups)


def build_report(paths: list[Path], allow_mixed: bool = False, seed: int = stats.SEED) -> Report:
    """Read the runs and compute everything the report shows (no files written)."""
    with _collector_paused():
        return _build(paths, allow_mixed, seed)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """A report allocates hundreds of thousands of small records and frees few of them: Python's cyclic
    garbage collector would scan them again and again for nothing (about a second of a 10,000-item
    report), so it waits until the report is built."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _build(paths: list[Path], allow_mixed: bool, seed: int) -> Report:
    runs = read_runs(paths, allow_mixed)
    groups: dict[tuple[str, str], list[Run]] = {}
    for r in runs:  # a sweep's points stay apart even where two knobs' values make the same data set
        groups.setdefault((r.dataset_sha256, str(r.point.get("label", ""))), []).append(r)
    # Every bootstrap first, then all at once: those over the same items (a data set's solvers' medians,
    # each machine against its people) share one resampling, as one seed would draw it anyway.
    planned: list[tuple[stats.Wanted, Callable[..., Any]]] = []
    grouped = []
    for rs in groups.values():
        group, wanted, finish = _group(rs)
        grouped.append(len(planned))
        planned.append((wanted, finish))
        for person in group.people:
            planned += plans(group.label, {m: group.attempts[m] for m in group.machines}, group.attempts[person],
                             group.case_sensitive)
    done = [finish(*intervals) for (_, finish), intervals in
            zip(planned, stats.bootstrap_together([wanted for wanted, _ in planned], seed))]
    built = [done[k] for k in grouped]
    comparisons = [c for k, c in enumerate(done) if k not in set(grouped)]
    swept = any(g.point for g in built)  # only a sweep draws the TuringPass people as a reference band
    return Report(built, adjust(comparisons), _turingpass_reference() if swept else None,
                  datetime.now(timezone.utc).isoformat(timespec="seconds"), _provenance(seed),
                  [str(r.path) for r in runs if not r.finished])


def write_report(report: Report, out: Path) -> list[Path]:
    """Write report.html, report.md and figures/*.png into `out`, each replacing what an earlier report
    wrote there; nothing else is overwritten or removed (see `check_report_out`).

    The files written, with their sha256, are recorded in `out`/.report-files.json: the next report
    replaces a file only when it is one of those and unchanged since, and removes only its own figures
    that it no longer draws, so a user's own figures or an edited page stay, or stop the report by name."""
    from bench import figures
    from bench.pages import html, markdown

    check_report_out(out)
    with _collector_paused():
        drawn = figures.draw(report)
    mine = _written_before(out)
    for name in drawn:  # before anything is written: a figure of the user's own in the way stops the report
        _check_replaceable(out, f"{FIGURES}/{name}.png", mine)
    (out / FIGURES).mkdir(parents=True, exist_ok=True)
    record: dict[str, str] = {}
    written = []
    for name, png in drawn.items():
        written.append(_replace(out, f"{FIGURES}/{name}.png", png, record))
    for stale, digest in mine.items():  # this report's figures replace the last one's, and only those
        path = out / stale
        if stale.startswith(f"{FIGURES}/") and stale not in record and _unchanged(path, digest):
            path.unlink()
    embedded = {name: "data:image/png;base64," + base64.b64encode(png).decode("ascii") for name, png in drawn.items()}
    linked = {name: f"{FIGURES}/{name}.png" for name in drawn}
    for name, text in ((HTML, html(report, embedded)), (MARKDOWN, markdown(report, linked))):
        written.append(_replace(out, name, text.encode("utf-8"), record))
    tmp = out / f"{RECORD}.tmp"
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(out / RECORD)
    return written


RECORD = ".report-files.json"  # in a report's folder: what the last report wrote there (path -> sha256)


def check_report_out(out: Path) -> None:
    """Refuse, before any work, a report folder that cannot take a report without overwriting or
    removing what the report did not write: a file, a folder holding other things (unless it is a
    run or collection folder), a report.html or report.md that no report wrote (or that was edited
    since), a figures/ that is not a folder, or a folder that cannot be written."""
    from captchas import output

    if out.is_symlink() or out.exists() and not out.is_dir():
        raise RunError(f"--out {out} is {'a symbolic link' if out.is_symlink() else 'a file'}: give a folder for the "
                       "report")
    ours = {HTML, MARKDOWN, FIGURES, RECORD}  # an earlier report there is replaced; anything else stays untouched
    if (out.is_dir() and not ((out / RUN).is_file() or (out / COLLECTION).is_file())
            and any(p.name not in ours for p in out.iterdir())):
        raise RunError(f"--out {out} holds other files: give a run folder, or an empty or new folder")
    mine = _written_before(out)
    for name in (HTML, MARKDOWN):
        _check_replaceable(out, name, mine)
    folder = out / FIGURES
    if folder.is_symlink() or folder.exists() and not folder.is_dir():
        raise RunError(f"--out {out}: {folder} is {'a symbolic link' if folder.is_symlink() else 'a file'}, where a "
                       "report writes its figures folder: move it, or give another --out")
    output.check_writable(out)


def _written_before(out: Path) -> dict[str, str]:
    """What the last report recorded writing in `out`: path inside it -> sha256 (empty: none, or unreadable)."""
    try:
        record = json.loads((out / RECORD).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return {str(k): str(v) for k, v in record.items()} if isinstance(record, dict) else {}


def _check_replaceable(out: Path, name: str, mine: dict[str, str]) -> None:
    path = out / name
    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink() or not path.is_file() or not _unchanged(path, mine.get(name)):
        raise RunError(f"--out {out} holds {name}, which no report of captcha-bench wrote (or which was edited since): "
                       "move it, or give another --out")


def _unchanged(path: Path, digest: str | None) -> bool:
    from captchas.dataset import sha256_bytes

    try:
        return digest is not None and path.is_file() and not path.is_symlink() and sha256_bytes(path.read_bytes()) == digest
    except OSError:
        return False


def _replace(out: Path, name: str, data: bytes, record: dict[str, str]) -> Path:
    """Write `data` to out/name through a temporary file beside it, and note its sha256 in `record`."""
    from captchas.dataset import sha256_bytes

    path = out / name
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    tmp.write_bytes(data)
    tmp.replace(path)
    record[name] = sha256_bytes(data)
    return path


def _group(runs: list[Run]) -> tuple[Group, stats.Wanted, Callable[..., Group]]:
    """A data set's runs as a Group without its time intervals yet; the bootstrap of its solvers'
    medians; and how to finish the Group from that bootstrap's intervals."""
    attempts: dict[str, list[Attempt]] = {}
    timings: dict[str, Timing] = {}
    scored_as: dict[str, bool] = {}  # the case rule each solver's run scored its attempts by
    people: list[str] = []
    names = Counter(s for r in runs for s in r.solvers)
    for r in runs:
        for solver in r.solvers:
            name = solver if names[solver] == 1 else f"{solver} ({r.run_id})"  # the same solver in two runs
            attempts[name] = [a for a in r.attempts if a.solver == solver]
            scored_as[name] = bool(r.request.get("case_sensitive"))
            if solver in r.timings:
                timings[name] = r.timings[solver]
            if solver in r.recorded:
                people.append(name)
    rule = runs[0].case_sensitive
    rows_of: dict[bool, list[tuple[str, str, list[Attempt]]]] = {}  # rule -> (row, solver, attempts)
    for case in (rule, not rule):
        rows_of[case] = []
        for name, mine in attempts.items():
            scored = mine if scored_as[name] == case else rescore(mine, case, with_cer=case == rule)
            rows_of[case] += ([(f"{name} (first answers)", name, list(first_answers(scored).values())),
                               (f"{name} (all answers)", name, scored)] if name in people else [(name, name, scored)])
    # times do not depend on the case rule: every row's median interval from one bootstrap of the items
    items = sorted({a.item_id for mine in attempts.values() for a in mine})
    where = {i: k for k, i in enumerate(items)}
    samples = []
    for _, _, chosen in rows_of[rule]:
        times: list[list[float]] = [[] for _ in items]
        for a in chosen:
            if not a.error and math.isfinite(a.seconds):
                times[where[a.item_id]].append(a.seconds)
        samples.append(times)
    wanted, spread_of = stats.spreads_wanted(tuple(items), samples)
    firsts = [a for name, mine in attempts.items()
              for a in (first_answers(mine).values() if name in people else mine)]
    first = runs[0]
    bare = Group(first.label, first.dataset_sha256, rule, tuple(runs), attempts, timings, tuple(people), first.point,
                 {}, *glyph_readings(firsts, rule))

    def finish(low: Any, high: Any) -> Group:
        spreads = dict(zip((label for label, _, _ in rows_of[rule]), spread_of(low, high)))
        tables = {case: [Row(label, summarize(label, chosen, timings.get(name)), spreads[label], name in people)
                         for label, name, chosen in rows_of[case]] for case in rows_of}
        return dataclasses.replace(bare, tables=tables)

    return bare, wanted, finish


def _turingpass_reference() -> PeopleReference | None:
    """People's first tries on the embedded TuringPass split, scored as its app judged (case-insensitive)."""
    from captchas import recorded
    from captchas import dataset as ds
    from captchas.turingpass import EMBEDDED_HUMANS
    from captchas.scoring import is_correct

    try:
        data = ds.read_dataset(EMBEDDED_HUMANS)
        rows = recorded.read_csv(EMBEDDED_HUMANS / data.info["human_answers"]["file"])
    except (ds.DatasetError, KeyError, OSError):
        return None
    truth = {s.id: s.answer for s in data.samples}
    firsts = [r for r in rows if r.attempt == 1 and r.item_id in truth]
    right = sum(not r.skipped and is_correct(truth[r.item_id], r.answer, False) for r in firsts)
    low, high = stats.wilson(right, len(firsts))
    times = sorted(r.seconds for r in firsts if not r.skipped and r.seconds is not None)
    return PeopleReference(right / len(firsts), low, high, len(firsts), statistics.median(times))


def _provenance(seed: int) -> dict[str, Any]:
    versions = {}
    for name in ("captcha-bench", "numpy", "scipy", "statsmodels", "matplotlib"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return {"versions": versions, "python": platform.python_version(), "git": git_state(), "machine": platform.node(),
            "bootstrap": {"resamples": stats.RESAMPLES, "seed": seed, "method": "percentile"}}
