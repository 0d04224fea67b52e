"""A benchmark run: every solver of a config on a data set, written to a run folder as it goes.

The folder's files are bench.runfolder's to write; attempts are flushed shard by shard, so an interrupted
run keeps every finished one, and `resume=True` continues it without redoing or duplicating rows.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import load
from bench.executors import Executor, LocalExecutor
from bench.provenance import now, provenance
from bench.runfolder.attest import attest_run
from bench.replay import Replayer, replays
from bench.run import SHARD, ConfigError, RunConfig, SolverSpec
from bench.runfolder import files, resume as resuming
from bench.runfolder.files import ATTEMPTS, AttemptsFile
from bench.runfolder.records import Timing, scored
from bench.summary import Summary
from captchas import dataset as ds
from captchas import images
from captchas import output
from solvers.base import is_paid, notes_for
from solvers.registry import SolverError, accepts, check_options, resolve


RunProgress = Callable[[str, int, int], None]  # (label: a solver, or a stage of the run, done, total)
STARTING = "starting solvers"
CHECKING = "checking images"


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
        raise ConfigError("no solver to run: give --solver NAME (see captcha-bench solvers)")
    if len(set(names)) != len(names):
        raise ConfigError(f"solver {next(n for n in names if names.count(n) > 1)!r} is given twice: give it once")
    for spec in config.solvers:
        check_options(spec.name, spec.options)  # unknown solvers and options fail before anything is written
    output.check_writable(out, what="run")
    total, sizes = survey(dataset, config.limit, progress)  # so do bad images
    request = _request(dataset, config)
    done: set[tuple[str, str]] = set()  # (solver, item) pairs already attempted
    if resume:
        resuming.check_resumable(out, request)
        done = resuming.done(out / ATTEMPTS)  # a damaged attempts.csv is refused here, before any solver starts
        items = [s.id for s in _samples(dataset, config)]
        machines = [s.name for s in config.solvers if not replays(s.name)]
        if resuming.finished(out, names, machines, items, done):  # nothing to ask, nothing to write
            return RunResult(out, out.name, files.summaries(out, total, solver_notes(dataset, config, sizes)),
                             already_done=True)
    else:
        resuming.check_new_run(out)
    replayers: dict[str, Replayer] = {}
    started: list[SolverSpec] = []
    before = load.snapshot()
    try:
        for k, spec in enumerate(config.solvers):  # so does a solver that cannot start
            if progress:
                progress(STARTING, k, len(config.solvers))
            if replays(spec.name):
                replayers[spec.name] = Replayer(spec, dataset)
            else:
                runner.start(spec)
                started.append(spec)
        if progress:
            progress(STARTING, len(config.solvers), len(config.solvers))
        if not resume:
            threads = {spec.name: runner.threads(spec) for spec in started}
            files.write_request(out, request, provenance(dataset, config, runner.describe(), threads, list(replayers)))
        _run_all(out, config, runner, replayers, dataset, total, done, case_sensitive(dataset, config), progress)
    finally:
        for spec in started:
            runner.stop(spec)
    session = load.between(before, load.snapshot())  # what else ran meanwhile, into the run's provenance
    files.add_session(out, session)
    written = files.write_summaries(out, total, solver_notes(dataset, config, sizes))
    attest_run(out)  # the last file: what the run folder holds, in sha256s
    return RunResult(out, out.name, written, load.warning(session))


def _samples(dataset: ds.Dataset, config: RunConfig) -> Sequence[ds.Sample]:
    """The items the run asks: the first --limit, or all."""
    return dataset.samples[: config.limit] if config.limit else dataset.samples


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
        sizes[images.load_image(dataset, sample, decode=False).size] += 1
        if progress and (done % 256 == 0 or done == total):
            progress(CHECKING, done, total)
    return total, sizes


def _run_all(out: Path, config: RunConfig, runner: Executor, replayers: dict[str, Replayer], dataset: ds.Dataset,
             total: int, done: set[tuple[str, str]], case: bool, progress: RunProgress | None) -> None:
    samples = _samples(dataset, config)
    with files.appending(out) as written:
        for spec in config.solvers:
            finished = {item for solver, item in done if solver == spec.name}
            count = len(finished)

            def wrote(n: int, name: str = spec.name) -> None:
                nonlocal count
                written.flush()  # what is written survives a kill; an unfinished shard is redone on --resume
                count += n
                if progress:
                    progress(name, count, total)

            wrote(0)
            if spec.name in replayers:
                for attempt in replayers[spec.name].attempts(out.name, samples, case, finished):
                    written.write(attempt)
                wrote(total - count)
                timing = Timing(spec.name, None, None, 0, config.batch_size, 0)
            else:
                timing = _ask(out, spec, runner, dataset, samples, finished, config, case, written, wrote,
                              progress)
                runner.stop(spec)  # its memory back before the next solver
            files.append_timing(out, timing, now())


def _ask(out: Path, spec: SolverSpec, runner: Executor, dataset: ds.Dataset, samples: Sequence[ds.Sample],
         finished: set[str], config: RunConfig, case: bool, written: AttemptsFile, wrote: Callable[[int], None],
         progress: RunProgress | None) -> Timing:
    """A machine solver's attempts, shard by shard in order, then its throughput pass: its Timing."""
    queued: collections.deque[list[ds.Sample]] = collections.deque()  # shards handed out, oldest first
    paid = is_paid(resolve(spec.name), spec.options)
    size = 1 if paid else SHARD  # a paid solver's answers are written one by one: a resume never pays twice

    def shards() -> Iterator[list[tuple[str, str, str]]]:
        batch: list[ds.Sample] = []
        for sample in itertools.chain(samples, [None]):
            if sample is not None and sample.id not in finished:
                batch.append(sample)
            if batch and (sample is None or len(batch) == size):
                queued.append(batch)
                yield [(s.id, s.file, s.sha256) for s in batch]
                batch = []

    restarts, decoding = 0, 0.0
    for result in runner.attempts(spec, dataset.path, shards(), config.timeout):
        batch = queued.popleft()
        for sample, answer in zip(batch, result.answers, strict=True):
            written.write(scored(out.name, spec.name, sample, answer.predicted, answer.seconds, answer.error, case))
        written.flush()  # the shard's attempts first: details follow them, so that none are written twice
        files.append_details(out, [{"solver": spec.name, "item_id": answer.item_id, "cpu_seconds": answer.cpu_seconds,
                                    **(answer.details or {})} for answer in result.answers])
        restarts += result.restarts
        decoding += result.decode_seconds
        wrote(len(batch))
    first = [] if paid else [(s.id, s.file, s.sha256) for s in itertools.islice(samples, config.throughput_items)]
    cold = runner.cold_start(spec)
    rate, answered = None, 0
    if first:
        name = spec.name
        report = (lambda k, n: progress(f"{name} throughput", k, n)) if progress else None
        seconds, answered, cold, more = runner.throughput(spec, dataset.path, first, config.batch_size, config.timeout,
                                                          report)
        restarts += more
        rate = answered / seconds if answered and seconds > 0 else None
    return Timing(spec.name, cold, rate, answered, config.batch_size, restarts, decode_seconds=decoding)


def case_sensitive(dataset: ds.Dataset, config: RunConfig) -> bool:
    """How this run scores: as the command says, else as the data set says."""
    return dataset.case_sensitive if config.case_sensitive is None else config.case_sensitive


def with_dataset_options(config: RunConfig, dataset: ds.Dataset) -> RunConfig:
    """Give the data set's charset, preset and recorded human answers file to solvers that take
    such options and were not given them."""
    known: dict[str, Any] = {k: dataset.info[k] for k in ("charset", "preset") if dataset.info.get(k)}
    known["case_sensitive"] = case_sensitive(dataset, config)  # a reader may fold case where it is not scored
    known["length"] = answer_lengths(dataset)  # the set's, never an item's
    answers = (dataset.info.get("human_answers") or {}).get("file")
    if answers:
        known["answers"] = str((dataset.path / answers).resolve())
    specs = []
    for s in config.solvers:
        extra = {k: v for k, v in known.items() if k not in s.options and accepts(s.name, k)}
        specs.append(dataclasses.replace(s, options={**extra, **s.options}) if extra else s)
    return dataclasses.replace(config, solvers=tuple(specs))


def answer_lengths(dataset: ds.Dataset) -> str:
    """The set's answer lengths as a prompt may name them ("5" or "5-6"): its generator's `length` knob, else
    the shortest and longest of its answers (a property of the set, as its charset is, never of an item)."""
    knob = (dataset.info.get("knobs") or {}).get("length")
    low, high = (int(knob[0]), int(knob[-1])) if isinstance(knob, (list, tuple)) and knob else (
        min((len(s.answer) for s in dataset.samples), default=0), max((len(s.answer) for s in dataset.samples), default=0))
    return f"{low}" if low == high else f"{low}-{high}"


def solver_notes(dataset: ds.Dataset, config: RunConfig, sizes: Counter[tuple[int, int]]) -> dict[str, list[str]]:
    """Each solver's warnings about this data set (its `notes` hook), given what the data set is
    (`sizes`: how many of the run's images have each size)."""
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


def _request(dataset: ds.Dataset, config: RunConfig) -> dict[str, Any]:
    """What must match for --resume to continue a run."""
    return {
        "dataset": str(dataset.path.resolve()),
        "dataset_sha256": dataset.hash,
        "case_sensitive": case_sensitive(dataset, config),
        "solvers": [{"name": s.name, "options": s.options} for s in config.solvers],
        "config": {k: v for k, v in dataclasses.asdict(config).items() if k != "solvers"},
    }


