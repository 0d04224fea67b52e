"""The files of a run folder, written and read here alone: run.json (the request and its provenance),
attempts.csv (one row per attempt, appended and flushed shard by shard, so an interrupted run keeps what
it finished), timing.jsonl (one line per solver session), details.jsonl (each machine attempt's CPU time and the solver's own
details: a reply's text, its tokens, its price), summary.csv and summary.json, and a
collection's collection.json (the default benchmark's and a sweep's parts). RunError, one line, for a
file that cannot be used."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from bench.runfolder.records import COLUMNS, Attempt, Timing, attempt_from_row, attempt_row, timing_line
from bench.run import PRICE_CORE_HOUR
from bench.summary import Cost, Summary, Tally
from captchas import dataset as ds
from captchas.errors import UserError
from captchas.output import write_atomic
from captchas.scoring import cer, is_correct

RUN, ATTEMPTS, TIMING = "run.json", "attempts.csv", "timing.jsonl"
DETAILS = "details.jsonl"  # per machine attempt: its CPU seconds and what the solver's `details` hook said
SUMMARY_CSV, SUMMARY_JSON = "summary.csv", "summary.json"
COLLECTION = "collection.json"  # a collection of runs: the default benchmark, a sweep


class RunError(UserError):
    """A folder that cannot be reported; the message names the problem and the fix."""


def write_request(out: Path, request: dict[str, Any], provenance: dict[str, Any]) -> None:
    """A new run's run.json: what was asked (what a resume must match) and its provenance."""
    out.mkdir(parents=True, exist_ok=True)
    (out / RUN).write_text(json.dumps({**request, "provenance": provenance}, indent=2) + "\n")


def read_request(out: Path) -> dict[str, Any]:
    """run.json as written (its provenance included)."""
    value: dict[str, Any] = json.loads((out / RUN).read_text())
    return value


class AttemptsFile:
    """attempts.csv open for appending: its header first where the file is new; `flush` after each shard."""

    def __init__(self, f: IO[str]) -> None:
        self._f = f
        self._writer = ds.CsvWriter(f)
        if f.tell() == 0:
            self._writer.writerow(COLUMNS)

    def write(self, attempt: Attempt) -> None:
        self._writer.writerow(attempt_row(attempt))

    def flush(self) -> None:
        """What is written survives a kill; an unfinished shard is redone on --resume."""
        self._f.flush()


@contextlib.contextmanager
def appending(out: Path) -> Iterator[AttemptsFile]:
    with (out / ATTEMPTS).open("a", newline="", encoding="utf-8") as f:
        yield AttemptsFile(f)


def append_details(out: Path, rows: list[dict[str, Any]]) -> None:
    """Each attempt's details ({"solver", "item_id", "cpu_seconds", ...}), written once its shard's attempts
    rows are flushed: a shard a kill cuts short is redone whole, so no item's details are written twice
    (a kill between the two leaves that shard's items without details, which a cost's mean leaves out)."""
    with (out / DETAILS).open("a", encoding="utf-8") as f:
        f.writelines(json.dumps(row, default=str) + "\n" for row in rows)


def iter_details(path: Path) -> Iterator[dict[str, Any]]:
    """details.jsonl's rows, one line at a time (a line cut short by a kill is skipped)."""
    if path.is_file():
        with path.open(encoding="utf-8") as f:
            for line in f:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(row, dict) and "solver" in row and "item_id" in row:
                    yield row


def read_details(path: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """details.jsonl as solver -> item -> its details."""
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for row in iter_details(path):
        found.setdefault(str(row["solver"]), {})[str(row["item_id"])] = row
    return found


def append_timing(out: Path, timing: Timing, time: str) -> None:
    with (out / TIMING).open("a", encoding="utf-8") as t:
        t.write(timing_line(timing, time))


def read_attempts(path: Path) -> list[Attempt]:
    """attempts.csv back as records (see `iter_attempts`)."""
    return list(iter_attempts(path))


def iter_attempts(path: Path) -> Iterator[Attempt]:
    """attempts.csv as records, one row at a time, so that a million rows need not fit in memory.

    Every row is checked (its number of fields, each cell's type); a damaged one raises RunError
    naming its line. A last line without its line end (a kill mid-write) is not a row: the caller
    decides (`repair_cut_row` drops it before a resume; a report refuses the file)."""
    if not path.is_file():
        return
    fix = f"start a new run (another --out), or restore {path.name}"
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                return
            if header != COLUMNS:
                raise RunError(f"{path} does not start with the attempts header ({','.join(COLUMNS)}): it was not "
                               f"written by this version of captcha-bench; {fix}")
            for row in reader:
                try:
                    if len(row) != len(COLUMNS):
                        raise ValueError(f"{len(row)} fields, not {len(COLUMNS)}")
                    yield attempt_from_row(dict(zip(COLUMNS, row)))
                except ValueError as e:
                    raise RunError(f"{path} line {reader.line_num} is damaged ({e}); {fix}") from None
    except UnicodeDecodeError as e:
        raise RunError(f"{path} is not UTF-8 text (byte {e.start} of a chunk is not): it is damaged; {fix}") from None
    except csv.Error as e:
        raise RunError(f"{path} is not a readable CSV ({e}): it is damaged; {fix}") from None


def repair_cut_row(path: Path) -> bool:
    """Drop a last line that has no line end (the one thing a kill mid-write leaves); whether one was dropped.

    Its shard is redone on resume. Anything else damaged is `iter_attempts`'s to refuse."""
    if not path.is_file():
        return False
    with path.open("r+b") as f:
        size = f.seek(0, 2)
        if size == 0:
            return False
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return False
        keep, block = 0, 1 << 16
        end = size
        while end > 0:  # the last line end, read from the back: the file may be large
            start = max(0, end - block)
            f.seek(start)
            chunk = f.read(end - start)
            at = chunk.rfind(b"\n")
            if at >= 0:
                keep = start + at + 1
                break
            end = start
        f.truncate(keep)
    return True


def check_scores(attempts: list[Attempt], case_sensitive: bool, path: Path) -> None:
    """Refuse attempts whose `correct` or `cer` is not what the one scoring rule gives for their `expected`
    and `predicted` (an edited file): a report states only what the rule says of the answers."""
    for line, a in enumerate(attempts, 2):
        right = not a.error and is_correct(a.expected, a.predicted, case_sensitive)
        if a.correct != right or abs(a.cer - cer(a.expected, a.predicted, case_sensitive)) > 1e-5:
            rule = "case-sensitive" if case_sensitive else "case-insensitive"
            what = (f"correct={int(a.correct)}" if a.correct != right else f"cer={a.cer:g}")
            raise RunError(f"{path} line {line} says {what} for expected {a.expected!r} and predicted {a.predicted!r}, "
                           f"which the {rule} scoring rule does not give: the file was edited; run it again")


def add_session(out: Path, session: dict[str, Any]) -> None:
    """Add one session's record of the machine's load (`bench.load.between`) to run.json's provenance."""
    document = json.loads((out / RUN).read_text(encoding="utf-8"))
    provenance = document.setdefault("provenance", {})
    provenance["load"] = [*provenance.get("load", []), session]
    write_atomic(out / RUN, json.dumps(document, indent=2) + "\n")


def read_timings(path: Path) -> dict[str, Timing]:
    """The latest Timing of each solver in timing.jsonl; a line cut short by a kill is skipped (that
    session's figures are lost, its attempts are not)."""
    timings: dict[str, Timing] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
                record.pop("time", None)
                timings[record["solver"]] = Timing(**record)
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
    return timings


def summaries(out: Path, total: int | None = None, notes: dict[str, list[str]] | None = None,
              request: dict[str, Any] | None = None) -> list[Summary]:
    """Each solver's Summary of attempts.csv (and its latest timing, and its cost), reading the attempts and
    their details one row at a time. `total`: the run's items, for each solver's coverage; `request`: run.json,
    where the caller has read it."""
    request = request or read_request(out)
    tallies = {spec["name"]: Tally() for spec in request["solvers"]}
    for attempt in iter_attempts(out / ATTEMPTS):
        if attempt.solver in tallies:
            tallies[attempt.solver].add(attempt)
    timings = read_timings(out / TIMING)
    costs = solver_costs(out, request)
    return [dataclasses.replace(tally.summary(name, timings.get(name), total, (notes or {}).get(name, ())),
                                usd_per_1000=costs.get(name, (None, ""))[0], cost_basis=costs.get(name, (None, ""))[1])
            for name, tally in tallies.items()]


def solver_costs(out: Path, request: dict[str, Any]) -> dict[str, tuple[float | None, str]]:
    """Each solver's cost per 1,000 solves and its basis (bench.summary.Cost), from details.jsonl read one line
    at a time, at the price per vCPU-hour the run's request names."""
    price = float(request.get("config", {}).get("price_core_hour", PRICE_CORE_HOUR))
    tallies: dict[str, Cost] = {}
    for row in iter_details(out / DETAILS):
        tallies.setdefault(str(row["solver"]), Cost()).add(row)
    return {name: tally.per_1000(price) for name, tally in tallies.items()}


def write_summaries(out: Path, total: int | None = None, notes: dict[str, list[str]] | None = None
                    ) -> list[Summary]:
    """Summarise attempts.csv into summary.csv and summary.json (`summaries`)."""
    request = read_request(out)
    made = summaries(out, total, notes, request)
    fields = [f.name for f in dataclasses.fields(Summary)]
    with (out / SUMMARY_CSV).open("w", newline="", encoding="utf-8") as f:
        writer = ds.CsvWriter(f)
        writer.writerow(["run_id", "dataset_sha256", *fields])
        for s in made:
            writer.writerow([out.name, request["dataset_sha256"], *(_cell(getattr(s, k)) for k in fields)])
    report = {"run_id": out.name, **request, "solvers_summary": [
        {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in dataclasses.asdict(s).items()}
        for s in made]}
    (out / SUMMARY_JSON).write_text(json.dumps(report, indent=2) + "\n")
    return made


def _cell(value: Any) -> Any:
    """A summary.csv cell: no value (None, NaN) is an empty cell, never 0."""
    if value is None or isinstance(value, float) and math.isnan(value):
        return ""
    return f"{value:.6g}" if isinstance(value, float) else value


def write_collection(out: Path, document: dict[str, Any]) -> None:
    """A collection's collection.json: its kind, its request and its parts (a folder each)."""
    (out / COLLECTION).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def read_collection(path: Path) -> dict[str, Any]:
    """collection.json, checked: parts that are folders inside it (RunError otherwise)."""
    try:
        document = json.loads((path / COLLECTION).read_text(encoding="utf-8"))
        parts = document["parts"]
        if not isinstance(parts, list) or not parts or not all(isinstance(p.get("path"), str) for p in parts):
            raise RunError("no parts")
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError, RunError) as e:
        raise RunError(f"{path / COLLECTION} is damaged ({e}): run the collection again") from None
    for part in parts:
        if Path(part["path"]).is_absolute() or ".." in Path(part["path"]).parts:
            raise RunError(f"{path / COLLECTION} names {part['path']!r}, outside its folder: run the collection again")
    value: dict[str, Any] = document
    return value
