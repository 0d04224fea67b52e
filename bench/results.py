"""The results record: what a run writes, the one place that knows the files' formats, and finished
runs read back for a report.

`Attempt` (one row of attempts.csv) and `Timing` (one line of timing.jsonl) cross from the runner to
the summaries, statistics and report; they are written and read here, by field name through
`dataclasses.asdict` and `fields`, never by position.

`read_runs` reads run folders (`run.json`, `attempts.csv`) or collections of runs
(`collection.json`, written by the no-argument run and by `sweep`), which stand for their parts,
checked strictly and grouped by data set. Anything else, an empty or cut-short attempts.csv, or runs
on several data sets without `allow_mixed`, is refused with one line naming the fix, before
anything is written.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.replay import replays
from captchas import dataset as ds
from captchas.scoring import cer, is_correct

RUN, ATTEMPTS, TIMING = "run.json", "attempts.csv", "timing.jsonl"
SUMMARY_CSV, SUMMARY_JSON = "summary.csv", "summary.json"
COLLECTION = "collection.json"  # a collection of runs: the default benchmark, a sweep
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
    tmp = out / f".{RUN}.tmp"
    tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    tmp.replace(out / RUN)


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


class RunError(ValueError):
    """A folder that cannot be reported; the message names the problem and the fix."""


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
                     for part in _collection(path)]
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


def _collection(path: Path) -> list[dict[str, Any]]:
    try:
        document = json.loads((path / COLLECTION).read_text(encoding="utf-8"))
        parts = document["parts"]
        if not isinstance(parts, list) or not parts or not all(isinstance(p.get("path"), str) for p in parts):
            raise ValueError("no parts")
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as e:
        raise RunError(f"{path / COLLECTION} is damaged ({e}): run the collection again") from None
    for part in parts:
        if Path(part["path"]).is_absolute() or ".." in Path(part["path"]).parts:
            raise RunError(f"{path / COLLECTION} names {part['path']!r}, outside its folder: run the collection again")
    return parts


def _label(request: dict[str, Any], provenance: dict[str, Any]) -> str:
    """A readable name for the run's data set: its source and split, or its preset, seed and count."""
    info = provenance.get("dataset") or {}
    if info.get("source_name"):
        return f"{info['source_name']} {info.get('split') or ''}".strip()
    if info.get("kind") == "generated":
        return f"{info.get('preset') or info.get('scheme')}, seed {info.get('seed')}, {info.get('count')} items"
    return Path(str(request.get("dataset", "data set"))).name
