"""Finished runs read back for a report: run folders (`run.json`, `attempts.csv`), or collections of runs
(`collection.json`, written by the no-argument run and by `sweep`), which stand for their parts, checked
strictly and grouped by data set. Anything else, an empty or cut-short attempts.csv, or runs on several
data sets without `allow_mixed`, is refused with one line naming the fix, before anything is written."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.replay import replays
from bench.runfolder.files import (ATTEMPTS, COLLECTION, RUN, SUMMARY_JSON, TIMING, RunError, check_scores,
                                   read_attempts, read_collection, read_timings)
from bench.runfolder.records import Attempt, Timing


@dataclass(frozen=True)
class Run:
    """One run folder, read back."""

    path: Path
    request: dict[str, Any]  # run.json without its provenance
    provenance: dict[str, Any]
    attempts: tuple[Attempt, ...]
    timings: dict[str, Timing]  # solver -> its session's cold start and throughput
    finished: bool  # summary.json was written: every solver went through every item
    label: str  # what the report calls its data set
    point: dict[str, Any] = field(default_factory=dict)  # a sweep's point: {"knob": ..., "value": ...}

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def dataset_sha256(self) -> str:
        return str(self.request["dataset_sha256"])

    @property
    def case_sensitive(self) -> bool:
        """The data set's own case rule (the run's, for runs older than that record)."""
        rule = (self.provenance.get("dataset") or {}).get("case_sensitive")
        return bool(self.request.get("case_sensitive") if rule is None else rule)

    @property
    def solvers(self) -> list[str]:
        return [s["name"] for s in self.request["solvers"]]

    @property
    def recorded(self) -> set[str]:
        """Solvers that replay recorded human answers: the people."""
        names = self.provenance.get("recorded_solvers")
        return set(names) if isinstance(names, list) else {n for n in self.solvers if replays(n)}


def read_runs(paths: list[Path], allow_mixed: bool = False) -> list[Run]:
    """Read every run the paths name (a collection stands for its parts); refuse what cannot be reported."""
    if not paths:
        raise RunError("no run given: name one or more run folders (results/run-...)")
    runs: list[Run] = []
    collections = 0
    for path in paths:
        if (path / COLLECTION).is_file():
            collections += 1
            runs += [read_run(path / part["path"], part.get("label"), part.get("point") or {})
                     for part in read_collection(path)["parts"]]
        else:
            runs.append(read_run(path))
    seen: dict[Path, Run] = {}
    for r in runs:
        if r.path.resolve() in seen:
            raise RunError(f"{r.path} is given twice: name each run once")
        seen[r.path.resolve()] = r
    data_sets = {r.dataset_sha256: r for r in runs}
    if len(data_sets) > 1 and not allow_mixed and not (collections == 1 and len(paths) == 1):
        named = ", ".join(f"{r.run_id} ({h[:12]})" for h, r in data_sets.items())
        raise RunError(f"these runs are on {len(data_sets)} different data sets ({named}): pass --allow-mixed to "
                       "report them side by side, each compared within its own data set")
    return runs


def read_run(path: Path, label: str | None = None, point: dict[str, Any] | None = None) -> Run:
    """One run folder, checked: run.json, a complete attempts.csv, timing.jsonl."""
    if not path.is_dir():
        raise RunError(f"{path} is not a folder: give a run folder that captcha-bench run wrote")
    if not (path / RUN).is_file():
        raise RunError(f"{path} is not a run: it has no {RUN} (give a folder that captcha-bench run wrote)")
    try:
        document = json.loads((path / RUN).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunError(f"{path / RUN} is not valid JSON ({e}): the run folder is damaged; run it again") from None
    if not isinstance(document, dict) or not {"dataset_sha256", "solvers"} <= set(document):
        raise RunError(f"{path / RUN} lacks the data set or its solvers: the run folder is damaged; run it again")
    provenance = document.pop("provenance", {}) or {}
    attempts = read_attempts_strictly(path / ATTEMPTS)
    check_scores(attempts, bool(document.get("case_sensitive")), path / ATTEMPTS)
    return Run(path, document, provenance, tuple(attempts), read_timings(path / TIMING), (path / SUMMARY_JSON).is_file(),
               label or _label(document, provenance), point or {})


def read_attempts_strictly(path: Path) -> list[Attempt]:
    """attempts.csv as records; an absent, empty or cut-short file is an error, not a smaller result."""
    if not path.is_file() or path.stat().st_size == 0:
        raise RunError(f"{path} is missing or empty: the run recorded nothing; run it again")
    with path.open("rb") as f:
        f.seek(-1, 2)
        if f.read(1) != b"\n":
            raise RunError(f"{path} is cut short (its last line is incomplete, as a kill leaves it): resume the run "
                           f"(captcha-bench run --out {path.parent} --resume), which redoes that line's items")
    attempts = read_attempts(path)
    if not attempts:
        raise RunError(f"{path} holds no attempts: the run recorded nothing; run it again")
    return attempts


def _label(request: dict[str, Any], provenance: dict[str, Any]) -> str:
    """A readable name for the run's data set: its source and split, or its preset, seed and count."""
    info = provenance.get("dataset") or {}
    if info.get("source_name"):
        return f"{info['source_name']} {info.get('split') or ''}".strip()
    if info.get("kind") == "generated":
        return f"{info.get('preset') or info.get('scheme')}, seed {info.get('seed')}, {info.get('count')} items"
    return Path(str(request.get("dataset", "data set"))).name
