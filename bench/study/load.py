"""Simulated participants against a running study server: concurrency and round-trip figures.

Each simulated participant joins, then loads every image and answers it over real HTTP on
loopback, as a browser does, optionally pressing Submit twice. Afterwards the database is
checked: every answer stored exactly once.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from captchas import dataset as ds


@dataclass(frozen=True)
class LoadResult:
    participants: int
    answers_sent: int  # accepted (201) answers
    double_submits: int  # second submits, every one refused
    stored: int  # rows in the database
    distinct: int  # distinct (participant, item) among them
    seconds: float  # wall time of the whole load
    answer_ms_median: float  # round trip of an answer POST
    answer_ms_p95: float
    errors: tuple[str, ...]

    @property
    def stored_once(self) -> bool:
        """Every accepted answer is in the database, exactly once."""
        return self.stored == self.distinct == self.answers_sent


def call(url: str, method: str = "GET", body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """One HTTP request; JSON decoded when the reply is JSON, else the bytes."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data is not None else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            raw = reply.read()
            return reply.status, json.loads(raw) if reply.headers.get_content_type() == "application/json" else raw
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def simulate(base_url: str, db: Path, participants: int = 20, double_submit: bool = True) -> LoadResult:
    """Run `participants` simulated people at once to the end of the study, then count the rows."""
    start = threading.Barrier(participants)
    lock = threading.Lock()
    errors: list[str] = []
    round_trips: list[float] = []
    counts = {"sent": 0, "double": 0}

    def person(k: int) -> None:
        try:
            start.wait()
            status, view = call(base_url + "/api/participants", "POST", {"consent": True})
            if status != 201:
                raise RuntimeError(f"join answered {status}: {view}")
            while not view["done"]:
                status, _ = call(base_url + view["image"])
                if status != 200:
                    raise RuntimeError(f"image answered {status}")
                body = {"token": view["token"], "answer": f"P{k}", "skipped": False}
                url = f"{base_url}/api/participants/{view['participant']}/answers"
                t0 = time.perf_counter()
                status, view = call(url, "POST", body)
                elapsed = time.perf_counter() - t0
                if status != 201:
                    raise RuntimeError(f"answer answered {status}: {view}")
                with lock:
                    round_trips.append(elapsed)
                    counts["sent"] += 1
                if double_submit:
                    again, reply = call(url, "POST", body)
                    if again != 409:
                        raise RuntimeError(f"a second submit answered {again}, not 409: {reply}")
                    with lock:
                        counts["double"] += 1
        except Exception as e:  # reported in the result: a thread's exception would be lost
            with lock:
                errors.append(f"participant {k}: {e}")

    t0 = time.perf_counter()
    threads = [threading.Thread(target=person, args=(k,), daemon=True) for k in range(participants)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
        distinct = conn.execute("SELECT COUNT(*) FROM (SELECT DISTINCT participant, item_id FROM answers)").fetchone()[0]
    ms = sorted(1000 * t for t in round_trips) or [0.0]
    return LoadResult(participants, counts["sent"], counts["double"], stored, distinct, seconds,
                      statistics.median(ms), ms[min(len(ms) - 1, int(0.95 * len(ms)))], tuple(errors))


def measure(data: ds.Dataset, participants: int = 20) -> LoadResult:
    """Serve `data` from a study app with a temporary database on a free loopback port, run
    `simulate` against it, and stop the server."""
    import logging
    import tempfile

    from bench.study.app import create_app, serve  # flask: only the load test serves the app

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "study.sqlite"
        server = serve(create_app(data, str(db), joins_per_hour=None), "127.0.0.1", 0, background=True)
        try:
            return simulate(server.url, db, participants)
        finally:
            server.close()
