"""A benchmark run on disk: results/<run>/ with run.json, attempts.csv, timing.jsonl, summaries.

Attempts are appended and flushed one by one, so an interrupted run keeps every finished one;
`resume=True` continues it without redoing or duplicating rows.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import json
import math
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.executors import DaskExecutor, LocalExecutor
from bench.provenance import now, provenance
from bench.replay import Replayer, replays
from bench.summary import Summary, Tally
from bench import load
from bench.results import (ATTEMPTS, COLUMNS, RUN, SUMMARY_CSV, SUMMARY_JSON, TIMING, Attempt, Timing, add_session,
                           attempt_row, iter_attempts, read_timings, repair_cut_row, timing_line)
from bench.host import SolverHost
from bench.run import SHARD, RunConfig, SolverSpec, replayed, scored
from captchas import dataset as ds
from captchas import output
from solvers.registry import check_options


RunProgress = Callable[[str, int, int], None]  # (label: a solver, or a stage of the run, done, total)
STARTING = "starting solvers"
CHECKING = "checking images"
Executor = LocalExecutor | DaskExecutor


@dataclass(frozen=True)
class RunResult:
    path: Path
    run_id: str
    summaries: list[Summary]
    load_warning: str | None = None  # the machine was busy enough to distort times (bench.load.warning)
    already_done: bool = False  # --resume found every attempt and timing there: nothing was asked or written


def run_benchmark(
    dataset: ds.Dataset, config: RunConfig, out: str | Path, resume: bool = False, progress: RunProgress | None = None,
    executor: Executor | None = None,
) -> RunResult:
    """Run every solver of `config` on `dataset`, writing results under `out` as it goes.

    Everything that can be checked is checked before `out` is touched: the solvers and their
    options, every image (read, hash-checked and its header read, one at a time), the folder itself, and
    that every solver starts (a machine solver's process is up, a replay's answers are read and
    belong to this data set). `executor` says where the shards run (default: one local solver
    process per solver). `progress` hears (label, done, total): "checking images", "starting
    solvers", then each solver's attempts, then "NAME throughput".
    """
    out = Path(out)
    runner = executor or LocalExecutor()
    names = [s.name for s in config.solvers]
    if not names:
        raise ds.DatasetError("no solver to run: give --solver NAME (see captcha-bench solvers)")
    if len(set(names)) != len(names):
        raise ds.DatasetError(f"solver {next(n for n in names if names.count(n) > 1)!r} is given twice: give it once")
    for spec in config.solvers:
        check_options(spec.name, spec.options)  # unknown solvers and options fail before anything is written
    output.check_writable(out, what="run")
    total, sizes = survey(dataset, config.limit, progress)  # so do bad images
    request = _request(dataset, config)
    done: set[tuple[str, str]] = set()  # (solver, item) pairs already attempted
    if resume:
        _check_resumable(out, request)
        done = _done(out / ATTEMPTS)  # a damaged attempts.csv is refused here, before any solver starts
        if _finished(out, config, dataset, done):  # nothing to ask, nothing to write
            return RunResult(out, out.name, summaries(out, total, solver_notes(dataset, config, sizes)),
                             already_done=True)
    else:
        check_new_run(out)
    started: dict[str, Any] = {}
    before = load.snapshot()
    try:
        for k, spec in enumerate(config.solvers):  # so does a solver that cannot start
            if progress:
                progress(STARTING, k, len(config.solvers))
            started[spec.name] = Replayer(spec, dataset) if replays(spec.name) else runner.start(spec)
        if progress:
            progress(STARTING, len(config.solvers), len(config.solvers))
        if not resume:
            out.mkdir(parents=True, exist_ok=True)
            (out / RUN).write_text(json.dumps({**request, "provenance": provenance(dataset, config, runner)},
                                              indent=2) + "\n")
        _run_all(out, config, runner, started, dataset, total, done, case_sensitive(dataset, config), progress)
    finally:
        for solver in started.values():
            _close(solver)
    session = load.between(before, load.snapshot())  # what else ran meanwhile, into the run's provenance
    add_session(out, session)
    written = write_summaries(out, total, solver_notes(dataset, config, sizes))
    return RunResult(out, out.name, written, load.warning(session))


def survey(dataset: ds.Dataset, limit: int | None = None, progress: RunProgress | None = None
           ) -> tuple[int, Counter[tuple[int, int]]]:
    """Check every image of the run, one at a time: it exists, matches its sha256, and its header is
    an image within the pixel limit; the number of items, and how many images have each size.

    The pixels are decoded later, once, in the solver process (a file that then fails to decode
    stops the run there, naming the item). Every image was decoded in full when its data set was
    generated or imported, and its bytes are the ones the manifest's hash vouches for."""
    samples = dataset.samples[:limit] if limit else dataset.samples
    total, sizes = len(samples), Counter[tuple[int, int]]()
    for done, sample in enumerate(samples, 1):
        sizes[ds.load_image(dataset, sample, decode=False).size] += 1
        if progress and (done % 256 == 0 or done == total):
            progress(CHECKING, done, total)
    return total, sizes


def _close(solver: Any) -> None:
    if isinstance(solver, SolverHost):
        solver.close()


def _run_all(out: Path, config: RunConfig, runner: Executor, started: dict[str, Any], dataset: ds.Dataset,
             total: int, done: set[tuple[str, str]], case: bool, progress: RunProgress | None) -> None:
    samples = dataset.samples[: config.limit] if config.limit else dataset.samples
    with (out / ATTEMPTS).open("a", newline="", encoding="utf-8") as f:
        writer = ds.CsvWriter(f)
        if f.tell() == 0:
            writer.writerow(COLUMNS)
        for spec in config.solvers:
            finished = {item for solver, item in done if solver == spec.name}
            count = len(finished)

            def wrote(n: int, name: str = spec.name) -> None:
                nonlocal count
                f.flush()  # what is written survives a kill; an unfinished shard is redone on --resume
                count += n
                if progress:
                    progress(name, count, total)

            wrote(0)
            solver = started[spec.name]
            if isinstance(solver, Replayer):
                for attempt in replayed(out.name, spec, solver, samples, case, finished):
                    writer.writerow(attempt_row(attempt))
                wrote(total - count)
                timing = Timing(spec.name, None, None, 0, config.batch_size, 0)
            else:
                timing = _ask(out.name, spec, runner, solver, dataset, samples, finished, config, case,
                              lambda row: writer.writerow(attempt_row(row)), wrote, progress)
            with (out / TIMING).open("a", encoding="utf-8") as t:
                t.write(timing_line(timing, now()))
            _close(solver)  # its memory back before the next solver


def _ask(run_id: str, spec: SolverSpec, runner: Executor, started: Any, dataset: ds.Dataset,
         samples: Sequence[ds.Sample], finished: set[str], config: RunConfig, case: bool,
         write: Callable[[Attempt], None], wrote: Callable[[int], None], progress: RunProgress | None) -> Timing:
    """A machine solver's attempts, shard by shard in order, then its throughput pass: its Timing."""
    queued: collections.deque[list[ds.Sample]] = collections.deque()  # shards handed out, oldest first

    def shards() -> Iterator[list[tuple[str, str, str]]]:
        batch: list[ds.Sample] = []
        for sample in itertools.chain(samples, [None]):
            if sample is not None and sample.id not in finished:
                batch.append(sample)
            if batch and (sample is None or len(batch) == SHARD):
                queued.append(batch)
                yield [(s.id, s.file, s.sha256) for s in batch]
                batch = []

    restarts, decoding = 0, 0.0
    for result in runner.attempts(spec, started, dataset.path, shards(), config.timeout):
        batch = queued.popleft()
        for sample, answer in zip(batch, result.answers, strict=True):
            write(scored(run_id, spec.name, sample, answer.predicted, answer.seconds, answer.error, case))
        restarts += result.restarts
        decoding += result.decode_seconds
        wrote(len(batch))
    first = [(s.id, s.file, s.sha256) for s in itertools.islice(samples, config.throughput_items)]
    cold = started.cold_start if isinstance(started, SolverHost) else float(started)
    rate, answered = None, 0
    if first:
        name = spec.name
        report = (lambda k, n: progress(f"{name} throughput", k, n)) if progress else None
        seconds, answered, cold, more = runner.throughput(spec, started, dataset.path, first, config.batch_size,
                                                          config.timeout, report)
        restarts += more
        rate = answered / seconds if answered and seconds > 0 else None
    return Timing(spec.name, cold, rate, answered, config.batch_size, restarts, decode_seconds=decoding)


def check_new_run(out: Path, allowed: tuple[str, ...] = ()) -> None:
    """Refuse an --out that is a file or a folder holding anything (but `allowed` names), naming what it holds."""
    if out.exists() and not out.is_dir():
        raise ds.DatasetError(f"--out {out} is a file: give a folder for the run")
    if not out.is_dir() or all(p.name in allowed for p in out.iterdir()):
        return
    if (out / RUN).is_file() or (out / "collection.json").is_file():
        raise ds.DatasetError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
    if (out / ds.MANIFEST).is_file():
        raise ds.DatasetError(f"--out {out} is a data set, not a run folder: give a new folder for the run "
                              "(the data set goes in --dataset)")
    raise ds.DatasetError(f"--out {out} holds other files, not a run: choose an empty or new folder")


def case_sensitive(dataset: ds.Dataset, config: RunConfig) -> bool:
    """How this run scores: as the command says, else as the data set says."""
    return dataset.case_sensitive if config.case_sensitive is None else config.case_sensitive


def with_dataset_options(config: RunConfig, dataset: ds.Dataset) -> RunConfig:
    """Give the data set's charset, preset and recorded human answers file to solvers that take
    such options and were not given them."""
    from solvers.registry import accepts

    known: dict[str, Any] = {k: dataset.info[k] for k in ("charset", "preset") if dataset.info.get(k)}
    known["case_sensitive"] = case_sensitive(dataset, config)  # a reader may fold case where it is not scored
    answers = (dataset.info.get("human_answers") or {}).get("file")
    if answers:
        known["answers"] = str((dataset.path / answers).resolve())
    specs = []
    for s in config.solvers:
        extra = {k: v for k, v in known.items() if k not in s.options and accepts(s.name, k)}
        specs.append(dataclasses.replace(s, options={**extra, **s.options}) if extra else s)
    return dataclasses.replace(config, solvers=tuple(specs))


def solver_notes(dataset: ds.Dataset, config: RunConfig, sizes: Counter[tuple[int, int]]) -> dict[str, list[str]]:
    """Each solver's warnings about this data set (its `notes` hook), given what the data set is
    (`sizes`: how many of the run's images have each size)."""
    from solvers.base import notes_for
    from solvers.registry import SolverError, resolve

    about = {"sha256": dataset.hash, "scheme": dataset.info.get("scheme") or dataset.info.get("source_name"),
             "image": list(_median(sizes)) if sizes else None, "charset": dataset.info.get("charset") or "",
             "case_sensitive": case_sensitive(dataset, config)}
    notes = {}
    for spec in config.solvers:
        try:
            notes[spec.name] = notes_for(resolve(spec.name), about, spec.options)
        except SolverError:
            pass  # the run reports it
    return notes


def _median(sizes: Counter[tuple[int, int]]) -> tuple[int, int]:
    """The middle size in sorted order (the upper one of an even count), as sorted(all)[n // 2] would give."""
    middle, seen = sum(sizes.values()) // 2, 0
    for size in sorted(sizes):
        seen += sizes[size]
        if seen > middle:
            return size
    raise ValueError("no sizes")


def summaries(out: Path, total: int | None = None, notes: dict[str, list[str]] | None = None) -> list[Summary]:
    """Each solver's Summary of attempts.csv (and its latest timing), reading the attempts one row at a
    time. `total`: the run's items, for each solver's coverage."""
    request = json.loads((out / RUN).read_text())
    tallies = {spec["name"]: Tally() for spec in request["solvers"]}
    for attempt in iter_attempts(out / ATTEMPTS):
        if attempt.solver in tallies:
            tallies[attempt.solver].add(attempt)
    timings = read_timings(out / TIMING)
    return [tallies[name].summary(name, timings.get(name), total, (notes or {}).get(name, ())) for name in tallies]


def write_summaries(out: Path, total: int | None = None, notes: dict[str, list[str]] | None = None
                    ) -> list[Summary]:
    """Summarise attempts.csv into summary.csv and summary.json (`summaries`)."""
    made = summaries(out, total, notes)
    request = json.loads((out / RUN).read_text())
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


def _finished(out: Path, config: RunConfig, dataset: ds.Dataset, done: set[tuple[str, str]]) -> bool:
    """Whether a run folder holds its summaries, every solver's timing (written once its pass is over)
    and, for every machine solver, an attempt at every item of the run."""
    timed = read_timings(out / TIMING)
    if not (out / SUMMARY_JSON).is_file() or any(s.name not in timed for s in config.solvers):
        return False
    machines = [s.name for s in config.solvers if not replays(s.name)]
    samples = dataset.samples[: config.limit] if config.limit else dataset.samples
    return all((name, sample.id) in done for sample in samples for name in machines)


def _done(path: Path) -> set[tuple[str, str]]:
    """(solver, item) pairs already in attempts.csv, after dropping a last line a kill cut short (its
    shard is redone); RunError for a file damaged otherwise, which a resume cannot mend."""
    repair_cut_row(path)
    return {(a.solver, a.item_id) for a in iter_attempts(path)}


def _request(dataset: ds.Dataset, config: RunConfig) -> dict[str, Any]:
    """What must match for --resume to continue a run."""
    return {
        "dataset": str(dataset.path.resolve()),
        "dataset_sha256": dataset.hash,
        "case_sensitive": case_sensitive(dataset, config),
        "solvers": [{"name": s.name, "options": s.options} for s in config.solvers],
        "config": {k: v for k, v in dataclasses.asdict(config).items() if k != "solvers"},
    }


def recorded_request(out: Path) -> dict[str, Any] | None:
    """What the run (or collection of runs) in `out` was asked: its data set folder (None for a
    collection), solvers as SolverSpecs, and config; None when `out` holds no run."""
    from bench.results import COLLECTION

    if (out / RUN).is_file():
        request = _read_json(out / RUN)
        dataset = request.get("dataset")
    elif (out / COLLECTION).is_file():
        collection = _read_json(out / COLLECTION)
        request = {"solvers": collection.get("request", {}).get("solvers", []), "config": {}}
        parts = [out / str(p.get("path")) / RUN for p in collection.get("parts", []) if isinstance(p, dict)]
        config = next((_read_json(p).get("config") for p in parts if p.is_file()), None)
        request["config"] = config or {}
        dataset = None
    else:
        return None
    try:
        solvers = tuple(SolverSpec(str(s["name"]), dict(s.get("options") or {})) for s in request.get("solvers", []))
    except (TypeError, KeyError, AttributeError):
        raise ds.DatasetError(f"{out} holds a damaged run record: start a new run instead of --resume") from None
    config = request.get("config") if isinstance(request.get("config"), dict) else {}
    return {"dataset": dataset, "solvers": solvers, "config": config}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ds.DatasetError(f"{path} is damaged ({e}): start a new run instead of --resume") from None
    if not isinstance(value, dict):
        raise ds.DatasetError(f"{path} is damaged (not a JSON object): start a new run instead of --resume")
    return value


def _check_resumable(out: Path, request: dict[str, Any]) -> None:
    if not (out / RUN).is_file():
        raise ds.DatasetError(f"{out} holds no run to resume: drop --resume to start one")
    before = json.loads((out / RUN).read_text())
    differences = resume_conflicts(before, json.loads(json.dumps(request)))
    if differences:
        raise ds.DatasetError(f"cannot resume {out}: {'; '.join(differences)}: give the run's own settings, or "
                              "start a new run")


def resume_conflicts(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What differs between a run folder's request and this command's, one phrase per setting."""
    found = []
    if before.get("dataset_sha256") != now["dataset_sha256"]:
        found.append(f"it ran on data set {str(before.get('dataset_sha256'))[:12]}, this command gives "
                     f"{now['dataset_sha256'][:12]}")
    old = {s["name"]: s.get("options", {}) for s in before.get("solvers", [])}
    new = {s["name"]: s.get("options", {}) for s in now["solvers"]}
    if list(old) != list(new):
        found.append(f"its solvers are {', '.join(old) or 'none'}, this command's {', '.join(new)}")
    else:
        found += [f"solver {name}'s options were {old[name]}, now {new[name]}" for name in old if old[name] != new[name]]
    config = before.get("config", {})
    found += [f"it ran with {_setting(key, config.get(key))}, this command asks {_setting(key, value)}"
              for key, value in now["config"].items() if config.get(key) != value]
    return found


def _setting(key: str, value: Any) -> str:
    """A run setting as the command line says it: `--case-sensitive`, `no --limit`, `--timeout 30`."""
    if key == "case_sensitive":
        return "the data set's case rule" if value is None else "--case-sensitive" if value else "--case-insensitive"
    option = "--" + key.replace("_", "-")
    return f"no {option}" if value is None else f"{option} {value:g}" if isinstance(value, float) else f"{option} {value}"
