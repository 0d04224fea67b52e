"""Recorded human answers: one CSV format for the study app's export and for imported sets.

A row is one answer by one person to one item. `server_seconds` is the study server's clock
(image sent to answer received, typing included); `client_seconds` is the browser's own clock,
kept beside it and never trusted alone. Imported sets fill what their source recorded and leave
the rest empty (TuringPass has only its app's time, from page load to the submit click, in
`client_seconds`).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path

from captchas.dataset import CsvWriter, DatasetError


@dataclass(frozen=True)
class Recorded:
    """One human answer."""

    participant: str  # empty where the source recorded none
    item_id: str
    answer: str  # what the person typed; empty when skipped
    skipped: bool
    attempt: int  # 1 = first try at this item by this person
    server_seconds: float | None
    client_seconds: float | None
    sent_at: str = ""  # ISO 8601 UTC, server clock
    received_at: str = ""
    client_shown_at: str = ""  # ISO 8601 UTC, browser clock
    client_submitted_at: str = ""
    dataset_sha256: str = ""  # of the data set the answers were given on
    skip_reason: str = ""  # a skip the page made for the person (e.g. "the image did not load"); empty otherwise

    @property
    def seconds(self) -> float | None:
        """The time a replay reports: the server's when there is one, else the source's own."""
        return self.server_seconds if self.server_seconds is not None else self.client_seconds


COLUMNS = [f.name for f in fields(Recorded)]


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet may run as a formula


def write_csv(path: Path, rows: Iterable[Recorded], excel_safe: bool = False) -> int:
    """Write an answers CSV (UTF-8, header first, "\n" line ends); return the number of rows.

    Answers are written exactly as typed. `excel_safe` puts a `'` before any text cell that a
    spreadsheet would take for a formula (starting with = + - @): safe to open, no longer exact."""
    buffer = io.StringIO()
    writer = CsvWriter(buffer)
    writer.writerow(COLUMNS)
    n = 0
    for r in rows:
        writer.writerow([_cell(getattr(r, c), excel_safe) for c in COLUMNS])
        n += 1
    path.write_text(buffer.getvalue(), encoding="utf-8", newline="")
    return n


MAX_SECONDS = 86_400.0  # a recorded time longer than a day is no solve time (and 1e308 would make a median inf)


def read_csv(path: Path) -> list[Recorded]:
    """An answers CSV back as records; a malformed file raises DatasetError naming the row.

    A UTF-8 byte-order mark (as spreadsheets write) is allowed and dropped. Refused too: a file with
    no answer row, and one person's same try at one item given twice (rows without a participant are
    anonymous people, and may repeat)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            missing = [c for c in ("item_id", "answer") if c not in (reader.fieldnames or [])]
            if missing:
                raise DatasetError(f"{path} is not an answers CSV: it lacks the column(s) {', '.join(missing)} "
                                   f"(expected {','.join(COLUMNS)})")
            rows = []
            seen: dict[tuple[str, str, int], int] = {}
            for line, row in enumerate(reader, 2):
                r = _record(row, path, line)
                if r.participant:
                    key = (r.participant, r.item_id, r.attempt)
                    if key in seen:
                        raise DatasetError(f"{path} line {line}: participant {r.participant!r}'s try {r.attempt} at item "
                                           f"{r.item_id} is also on line {seen[key]}: keep one of the two rows")
                    seen[key] = line
                rows.append(r)
    except (UnicodeDecodeError, csv.Error) as e:
        raise DatasetError(f"{path} is not a readable UTF-8 CSV ({e})") from None
    if not rows:
        raise DatasetError(f"{path} holds no answers, only its header: give a file with recorded answers")
    return rows


TRUE, FALSE = ("1", "true", "yes"), ("", "0", "false", "no")


def _record(row: dict[str, str | None], path: Path, line: int) -> Recorded:
    def text(key: str) -> str:
        value = row.get(key)
        return value if isinstance(value, str) else ""  # absent, or a short row

    try:
        if None in row:
            raise ValueError(f"{len(row[None] or ())} more cell(s) than the header has columns")  # type: ignore[index]
        if not text("item_id").strip():
            raise ValueError("item_id is empty")
        flag = text("skipped").strip().lower()
        if flag not in TRUE + FALSE:
            raise ValueError(f"skipped {flag!r} is not 0/1, true/false or yes/no")
        attempt = int(text("attempt").strip() or 1)
        if attempt < 1:
            raise ValueError(f"attempt {attempt} is not 1 or more (1 = a person's first try at the item)")
        return Recorded(
            participant=text("participant"),
            item_id=text("item_id").strip(),
            answer=text("answer"),
            skipped=flag in TRUE,
            attempt=attempt,
            server_seconds=_seconds(text("server_seconds")),
            client_seconds=_seconds(text("client_seconds")),
            sent_at=text("sent_at"),
            received_at=text("received_at"),
            client_shown_at=text("client_shown_at"),
            client_submitted_at=text("client_submitted_at"),
            dataset_sha256=text("dataset_sha256"),
            skip_reason=text("skip_reason"),
        )
    except ValueError as e:
        raise DatasetError(f"{path} line {line}: {e}; fix or drop that row") from None


def _seconds(text: str) -> float | None:
    if not text.strip():
        return None
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"time {text!r} is not a non-negative number of seconds")
    if value > MAX_SECONDS:
        raise ValueError(f"time {text!r} is more than a day ({MAX_SECONDS:,.0f} s): not a solve time")
    return value


def _cell(value: object, excel_safe: bool = False) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return f"{value:.3f}"
    if excel_safe and isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value
