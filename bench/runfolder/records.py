"""The records a run folder holds, as the runner makes them: `Attempt` (one row of attempts.csv) and `Timing`
(one line of timing.jsonl), and `scored`, the one place an answer is scored. They cross from the runner to
the summaries, statistics and report by field name (`dataclasses.asdict`, `fields`), never by position."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

from captchas import dataset as ds
from captchas.scoring import cer, is_correct

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
    decode_seconds: float = 0.0  # spent decoding the attempts' images in the solver process(es), all together


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


def timing_line(t: Timing, time: str) -> str:
    """One line of timing.jsonl: the record and when it was written."""
    return json.dumps({**dataclasses.asdict(t), "time": time}) + "\n"


def scored(run_id: str, solver: str, sample: ds.Sample, predicted: str, seconds: float, error: str,
           case_sensitive: bool, participant: str = "", attempt: int = 1) -> Attempt:
    """One attempt, scored by the one rule: wrong whenever there is an error (a fault, or a skip)."""
    return Attempt(run_id=run_id, solver=solver, item_id=sample.id, expected=sample.answer, predicted=predicted,
                   correct=not error and is_correct(sample.answer, predicted, case_sensitive),
                   cer=cer(sample.answer, predicted, case_sensitive), seconds=seconds, error=error,
                   participant=participant, attempt=attempt)
