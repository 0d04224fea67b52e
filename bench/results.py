"""The results record: what a run writes, and the one place that knows the files' formats.

`Attempt` (one row of attempts.csv) and `Timing` (one line of timing.jsonl) cross from the runner to
the summaries, statistics and report; they are written and read here, by field name through
`dataclasses.asdict` and `fields`, never by position.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from captchas import dataset as ds

RUN, ATTEMPTS, TIMING = "run.json", "attempts.csv", "timing.jsonl"
SUMMARY_CSV, SUMMARY_JSON = "summary.csv", "summary.json"
SKIPPED = "skipped"  # the error of a replayed human answer where the person pressed Skip


@dataclass(frozen=True)
class Attempt:
    """One row of attempts.csv. `expected` is written by the runner, never by the solver."""

    run_id: str
    solver: str
    item_id: str
    expected: str
    predicted: str
    correct: bool
    cer: float  # edit distance / answer length
    seconds: float  # solve() time for this item alone, inside the solver process; humans: recorded time
    error: str  # empty when the solver answered; "skipped" when a person skipped the item
    participant: str = ""  # replayed human answers: who (empty for machines and anonymous sources)
    attempt: int = 1  # replayed human answers: that person's try at this item


@dataclass(frozen=True)
class Timing:
    """What a solver's session measured apart from the attempts."""

    solver: str
    cold_start: float | None  # seconds to import and construct it in a fresh process
    throughput: float | None  # items/s over batches of batch_size
    throughput_items: int
    batch_size: int
    restarts: int  # processes replaced after timeouts or crashes
    error: str = ""  # why the solver could not run at all


COLUMNS = [f.name for f in dataclasses.fields(Attempt)]
_FORMATS = {"correct": lambda v: int(v), "cer": lambda v: f"{v:.6f}", "seconds": lambda v: f"{v:.9f}"}
_TYPES = {f.name: f.type for f in dataclasses.fields(Attempt)}  # annotations as strings (postponed)


def attempt_row(a: Attempt) -> list[Any]:
    """An Attempt as attempts.csv cells, in COLUMNS order: correct as 1/0, CER to 6 places, seconds to 9."""
    return [_FORMATS.get(k, lambda v: v)(v) for k, v in dataclasses.asdict(a).items()]


def attempt_from_row(row: dict[str, str]) -> Attempt:
    """An attempts.csv row (by column name) back as an Attempt; ValueError names a malformed cell."""
    values: dict[str, Any] = {}
    for name, kind in _TYPES.items():
        text = row[name]
        if kind == "bool":
            if text not in ("0", "1"):
                raise ValueError(f"{name} must be 0 or 1, not {text!r}")
            values[name] = text == "1"
        elif kind == "float":
            values[name] = float(text)
        elif kind == "int":
            values[name] = int(text)
        else:
            values[name] = text
    if math.isinf(values["seconds"]):
        raise ValueError("seconds is infinite")
    return Attempt(**values)


def write_attempts_header(writer: ds.CsvWriter) -> None:
    writer.writerow(COLUMNS)


def read_attempts(path: Path) -> list[Attempt]:
    """attempts.csv back as records (the last line is ignored if a kill cut it short)."""
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [attempt_from_row(r) for r in rows if r.get(COLUMNS[-1])]  # a row cut short lacks its last column


def timing_line(t: Timing, time: str) -> str:
    """One line of timing.jsonl: the record and when it was written."""
    return json.dumps({**dataclasses.asdict(t), "time": time}) + "\n"


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
