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

from captchas.dataset import DatasetError


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

    @property
    def seconds(self) -> float | None:
        """The time a replay reports: the server's when there is one, else the source's own."""
        return self.server_seconds if self.server_seconds is not None else self.client_seconds


COLUMNS = [f.name for f in fields(Recorded)]


def write_csv(path: Path, rows: Iterable[Recorded]) -> int:
    """Write an answers CSV (UTF-8, header first); return the number of rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    n = 0
    for r in rows:
        writer.writerow([_cell(getattr(r, c)) for c in COLUMNS])
        n += 1
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return n


def read_csv(path: Path) -> list[Recorded]:
    """An answers CSV back as records; a malformed file raises DatasetError naming the row."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in ("item_id", "answer") if c not in (reader.fieldnames or [])]
            if missing:
                raise DatasetError(f"{path} is not an answers CSV: it lacks the column(s) {', '.join(missing)} "
                                   f"(expected {','.join(COLUMNS)})")
            return [_record(row, path, line) for line, row in enumerate(reader, 2)]
    except (UnicodeDecodeError, csv.Error) as e:
        raise DatasetError(f"{path} is not a readable UTF-8 CSV ({e})") from None


def _record(row: dict[str, str], path: Path, line: int) -> Recorded:
    try:
        return Recorded(
            participant=row.get("participant") or "",
            item_id=row["item_id"] or "",
            answer=row["answer"] or "",
            skipped=(row.get("skipped") or "0").strip().lower() in ("1", "true", "yes"),
            attempt=int(row.get("attempt") or 1),
            server_seconds=_seconds(row.get("server_seconds")),
            client_seconds=_seconds(row.get("client_seconds")),
            sent_at=row.get("sent_at") or "",
            received_at=row.get("received_at") or "",
            client_shown_at=row.get("client_shown_at") or "",
            client_submitted_at=row.get("client_submitted_at") or "",
            dataset_sha256=row.get("dataset_sha256") or "",
        )
    except ValueError as e:
        raise DatasetError(f"{path} line {line}: {e}; fix or drop that row") from None


def _seconds(text: str | None) -> float | None:
    if text is None or not text.strip():
        return None
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"time {text!r} is not a non-negative number of seconds")
    return value


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return f"{value:.3f}"
    return value
