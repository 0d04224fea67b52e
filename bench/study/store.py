"""The study database: participants, the images shown to them, and their answers (SQLite, WAL).

Every answer is committed the moment it arrives. Each request opens its own connection, so
several participants answer at once; writes are serialised (a lock in the process, then SQLite's
`BEGIN IMMEDIATE` across processes), and a
UNIQUE token per shown image makes a double submit store nothing twice. Times are the server's
wall clock (seconds since the epoch), so they survive a restart of the server mid-study.
"""

from __future__ import annotations

import json
import random
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from captchas.dataset import DatasetError
from captchas.errors import UserError
from captchas.recorded import Recorded

JOINS_PER_HOUR = 30  # new participants one client address may start in an hour (the study app's default)

SCHEMA = """
CREATE TABLE IF NOT EXISTS study (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS participants (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    items TEXT NOT NULL,            -- JSON list: this person's item order
    user_agent TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS shown (
    token TEXT PRIMARY KEY,         -- opaque: names the image in URLs instead of its item
    participant TEXT NOT NULL REFERENCES participants(id),
    position INTEGER NOT NULL,
    item_id TEXT NOT NULL,
    sent_at REAL,                   -- server clock: first time the image bytes went out
    UNIQUE (participant, position)
);
CREATE TABLE IF NOT EXISTS answers (
    token TEXT PRIMARY KEY REFERENCES shown(token),
    participant TEXT NOT NULL,
    position INTEGER NOT NULL,
    item_id TEXT NOT NULL,
    answer TEXT NOT NULL,
    skipped INTEGER NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 1,
    sent_at REAL NOT NULL,
    received_at REAL NOT NULL,      -- server clock
    client_seconds REAL,            -- browser clock: image shown to submit, kept beside, never trusted alone
    client_shown_at REAL,           -- browser clock, ms since the epoch
    client_submitted_at REAL,
    skip_reason TEXT NOT NULL DEFAULT '',  -- why the page skipped (e.g. the image did not load); '' for a person's Skip
    UNIQUE (participant, position)
);
"""


class StudyError(UserError):
    """A request the study refuses; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Next:
    """What a participant sees next."""

    position: int  # answered so far
    total: int
    token: str | None  # None when the participant is done


class Store:
    """One study: a database bound to one data set (by its sha256)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # Writers of this process queue here rather than in SQLite's busy handler, whose sleeps
        # back off to 100 ms; other processes on the same file still wait through busy_timeout.
        self._lock = threading.Lock()

    @classmethod
    def create(cls, path: str | Path, dataset_sha256: str, item_ids: Sequence[str], dataset_path: str = "") -> Store:
        """Open (or start) the study in `path` for this data set; a database of another data set is refused."""
        store = cls(path)
        with store._connect() as db:
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(SCHEMA)
                columns = {row[1] for row in db.execute("PRAGMA table_info(answers)")}
                if "skip_reason" not in columns:  # a study started by an earlier version
                    db.execute("ALTER TABLE answers ADD COLUMN skip_reason TEXT NOT NULL DEFAULT ''")
            except sqlite3.DatabaseError as e:
                raise StudyError(409, f"{path} is not a study database ({e}): give a new file or an earlier study's --db") from None
            row = db.execute("SELECT value FROM study WHERE key = 'dataset_sha256'").fetchone()
            if row is None:
                db.execute("BEGIN IMMEDIATE")
                db.executemany("INSERT OR IGNORE INTO study VALUES (?, ?)", [
                    ("dataset_sha256", dataset_sha256), ("dataset", dataset_path), ("items", json.dumps(list(item_ids))),
                    ("created", _iso(time.time())),
                ])
                db.execute("COMMIT")
                row = db.execute("SELECT value FROM study WHERE key = 'dataset_sha256'").fetchone()
            if row[0] != dataset_sha256:
                raise StudyError(409, f"{path} holds a study of another data set (sha256 {row[0][:12]}): "
                                      "give that data set, or another --db for this one")
        return store

    @classmethod
    def open_existing(cls, path: Path) -> Store:
        """A study database that must exist already (for export and replay)."""
        store = cls(path)
        try:
            with store._connect() as db:
                db.execute("SELECT value FROM study WHERE key = 'dataset_sha256'").fetchone()
        except sqlite3.DatabaseError as e:
            raise DatasetError(f"{path} is not a captcha-bench study database ({e})") from None
        return store

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)  # explicit transactions only
        db.row_factory = sqlite3.Row  # columns by name (or by index)
        try:
            db.execute("PRAGMA busy_timeout = 30000")
            db.execute("PRAGMA foreign_keys = ON")
            yield db
        finally:
            db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _items(self, db: sqlite3.Connection) -> list[str]:
        return list(json.loads(db.execute("SELECT value FROM study WHERE key = 'items'").fetchone()[0]))

    def new_participant(self, user_agent: str = "") -> str:
        """A participant with a server-made id and their own random order of the items."""
        pid = secrets.token_urlsafe(12)
        with self._write() as db:
            items = self._items(db)
            random.SystemRandom().shuffle(items)
            db.execute("INSERT INTO participants VALUES (?, ?, ?, ?)", (pid, time.time(), json.dumps(items), user_agent[:300]))
        return pid

    def next(self, pid: str) -> Next:
        """The participant's current image (a token, made once per position), or done."""
        with self._connect() as db:  # most calls only read: a reload, a returning participant
            found = self._current(db, pid, create=False)
        if found is not None:
            return found
        with self._write() as db:
            return self._current(db, pid, create=True)  # type: ignore[return-value]

    def _current(self, db: sqlite3.Connection, pid: str, create: bool) -> Next | None:
        items = self._participant(db, pid)
        position = db.execute("SELECT COUNT(*) FROM answers WHERE participant = ?", (pid,)).fetchone()[0]
        if position >= len(items):
            return Next(position, len(items), None)
        row = db.execute("SELECT token FROM shown WHERE participant = ? AND position = ?", (pid, position)).fetchone()
        if row is not None:
            return Next(position, len(items), row[0])
        if not create:
            return None
        token = secrets.token_urlsafe(16)
        db.execute("INSERT INTO shown VALUES (?, ?, ?, ?, NULL)", (token, pid, position, items[position]))
        return Next(position, len(items), token)

    def send(self, pid: str, token: str) -> str:
        """The item behind a token of this participant's, stamping the first time it is sent."""
        with self._connect() as db:
            self._participant(db, pid)
            shown = self._shown(db, pid, token)
            if db.execute("SELECT 1 FROM answers WHERE token = ?", (token,)).fetchone():
                raise StudyError(410, "that image was already answered: ask for the next one")
        if shown["sent_at"] is None:
            with self._write() as db:
                db.execute("UPDATE shown SET sent_at = ? WHERE token = ? AND sent_at IS NULL", (time.time(), token))
        return str(shown["item_id"])

    def answer(self, pid: str, token: str, answer: str, skipped: bool, client_seconds: float | None = None,
               client_shown_at: float | None = None, client_submitted_at: float | None = None,
               skip_reason: str = "") -> Next:
        """Commit one answer (once: a second submit of the same token is refused) and, in the same
        transaction, make the next image's token. An image never sent can only be skipped with a
        reason (it did not load); its time is then zero."""
        received = time.time()
        with self._write() as db:
            self._participant(db, pid)
            shown = self._shown(db, pid, token)
            sent = shown["sent_at"]
            if sent is None and not (skipped and skip_reason):
                raise StudyError(409, "that image was never sent: load it before answering")
            try:
                db.execute("INSERT INTO answers (token, participant, position, item_id, answer, skipped, attempt, sent_at, "
                           "received_at, client_seconds, client_shown_at, client_submitted_at, skip_reason) "
                           "VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?)", (
                               token, pid, shown["position"], shown["item_id"], answer, int(skipped),
                               received if sent is None else sent, received, client_seconds, client_shown_at,
                               client_submitted_at, skip_reason))
            except sqlite3.IntegrityError:
                raise StudyError(409, "that image was already answered: the first answer stands") from None
            return self._current(db, pid, create=True)  # type: ignore[return-value]

    def skipped(self, pid: str) -> int:
        """How many images this participant skipped."""
        with self._connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM answers WHERE participant = ? AND skipped = 1", (pid,)).fetchone()[0])

    def _participant(self, db: sqlite3.Connection, pid: str) -> list[str]:
        row = db.execute("SELECT items FROM participants WHERE id = ?", (pid,)).fetchone()
        if row is None:
            raise StudyError(404, "unknown participant: start the study again from its first page")
        return list(json.loads(row[0]))

    def _shown(self, db: sqlite3.Connection, pid: str, token: str) -> sqlite3.Row:
        row = db.execute("SELECT * FROM shown WHERE token = ?", (token,)).fetchone()
        if row is None:
            raise StudyError(404, "unknown image token: ask for the next image")
        if row["participant"] != pid:
            raise StudyError(403, "that image token belongs to another participant")
        return row  # type: ignore[no-any-return]

    def export(self) -> list[Recorded]:
        """Every answer, in the order received, as recorded-answer rows."""
        with self._connect() as db:
            found = db.execute("SELECT value FROM study WHERE key = 'dataset_sha256'").fetchone()
            rows = db.execute("SELECT participant, item_id, answer, skipped, skip_reason, attempt, sent_at, received_at, "
                              "client_seconds, client_shown_at, client_submitted_at FROM answers "
                              "ORDER BY received_at, rowid").fetchall()
        dataset = found[0] if found else ""
        return [
            Recorded(participant=p, item_id=i, answer=a, skipped=bool(s), skip_reason=why, attempt=n,
                     server_seconds=max(0.0, received - sent), client_seconds=cs,
                     sent_at=_iso(sent), received_at=_iso(received),
                     client_shown_at=_iso(shown / 1000) if shown is not None else "",
                     client_submitted_at=_iso(submitted / 1000) if submitted is not None else "",
                     dataset_sha256=dataset)
            for p, i, a, s, why, n, sent, received, cs, shown, submitted in rows
        ]

    def counts(self) -> tuple[int, int]:
        """(participants, answers) so far."""
        with self._connect() as db:
            return (db.execute("SELECT COUNT(*) FROM participants").fetchone()[0],
                    db.execute("SELECT COUNT(*) FROM answers").fetchone()[0])


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="milliseconds")
