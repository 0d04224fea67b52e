"""Pit a solver against a data set: load and check the images, ask, score, time.

`run_solver` yields one Attempt per item as it goes (the caller writes them), then a Timing.
Scoring is `is_correct` and `cer`, used everywhere. Timing follows DESIGN.md: latency is each
item alone (batch size 1) with the solver warm; throughput is batched; cold start is apart.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from bench.host import HostError, Pixels, SolverHost, pixels
from captchas import dataset as ds


SKIPPED = "skipped"  # the error of a replayed human answer where the person pressed Skip


@dataclass(frozen=True)
class SolverSpec:
    """A solver as asked for: registry name or module:attr, and constructor options."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunConfig:
    """How a run asks its questions."""

    solvers: tuple[SolverSpec, ...]
    timeout: float = 30.0  # seconds per item before the solver process is replaced
    batch_size: int = 32  # challenges per solve() call in the throughput pass
    throughput_items: int = 256  # items in the throughput pass (the first ones); 0 skips it
    limit: int | None = None  # attempt only the first N items of the data set
    case_sensitive: bool | None = None  # score case-sensitively or not; None: as the data set says


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


def normalise(text: str, case_sensitive: bool) -> str:
    """The comparison form: white space removed, case folded unless case-sensitive."""
    text = "".join(text.split())
    return text if case_sensitive else text.casefold()


def is_correct(expected: str, predicted: str, case_sensitive: bool = False) -> bool:
    """The one scoring rule."""
    return expected == predicted or normalise(expected, case_sensitive) == normalise(predicted, case_sensitive)


def cer(expected: str, predicted: str, case_sensitive: bool = False) -> float:
    """Character error rate: Levenshtein distance over the expected length, after normalise()."""
    a, b = normalise(expected, case_sensitive), normalise(predicted, case_sensitive)
    return 0.0 if a == b else edit_table(a, b)[-1][-1] / max(len(a), 1)


def edit_table(a: Sequence[str], b: Sequence[str]) -> list[list[int]]:
    """Levenshtein distances between every prefix of `a` and of `b`: row i, column j is a[:i] to b[:j]."""
    d = [list(range(len(b) + 1))]
    for i, ca in enumerate(a, 1):
        above, row = d[-1], [i]
        left = i
        for j, cb in enumerate(b, 1):
            # the smallest of deleting, inserting and keeping or substituting (written out: min() costs more)
            best = above[j] + 1
            if left + 1 < best:
                best = left + 1
            diagonal = above[j - 1] + (ca != cb)
            if diagonal < best:
                best = diagonal
            row.append(best)
            left = best
        d.append(row)
    return d


def load_challenges(dataset: ds.Dataset, limit: int | None = None) -> list[tuple[ds.Sample, Pixels]]:
    """Read, hash-check and decode every image once; raise DatasetError on the first bad one."""
    samples = dataset.samples[:limit] if limit else dataset.samples
    loaded = []
    for s in samples:
        image = ds.load_image(dataset, s)
        image = image if image.mode in ("RGB", "L") else image.convert("RGB")
        loaded.append((s, pixels(ds.Challenge(s.id, image))))
    return loaded


class Replayer:
    """A replay solver (recorded human answers), loaded in process and checked against the data set."""

    cold_start = None
    restarts = 0

    def __init__(self, spec: SolverSpec, dataset: ds.Dataset) -> None:
        from solvers.registry import SolverError, load

        self.solver = load(spec.name, **spec.options)
        recorded_on = getattr(self.solver, "dataset_sha256", None)
        if recorded_on and recorded_on != dataset.hash:
            raise SolverError(f"solver {spec.name!r}: its answers were recorded on data set {recorded_on[:12]}, not "
                              f"this one ({dataset.hash[:12]}): give the answers of this data set")
        known = getattr(self.solver, "item_ids", None)
        unknown = sorted(set(known()) - {s.id for s in dataset.samples}) if callable(known) else []
        if unknown:
            raise SolverError(f"solver {spec.name!r}: {len(unknown)} recorded answer(s) name items this data set does "
                              f"not have (e.g. {unknown[0]!r}): give the answers recorded on this data set")

    def close(self) -> None:
        pass


Started = Union[SolverHost, Replayer]


def start_solver(spec: SolverSpec, dataset: ds.Dataset) -> Started:
    """Start one solver, ready to be asked (images not yet handed over): a process for a machine,
    the checked answers for a replay. Raises SolverError, in one line, when it cannot start."""
    from solvers.registry import SolverError

    if replays(spec.name):
        return Replayer(spec, dataset)
    try:
        return SolverHost(spec.name, spec.options)
    except HostError as e:
        message = str(e)
        raise SolverError(message if message.startswith("solver ") else f"solver {spec.name!r} cannot start: {message}") from None


def run_solver(
    run_id: str,
    spec: SolverSpec,
    started: Started,
    items: Sequence[tuple[ds.Sample, Pixels]],
    config: RunConfig,
    case_sensitive: bool,
    done: Collection[str] = (),
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[Attempt | Timing]:
    """Yield an Attempt per item not in `done`, then the solver's Timing; `progress` follows the throughput pass.

    Replay solvers (with a `replay(ids)` method, such as `human`) yield one Attempt per recorded
    answer instead, none for items nobody answered.
    """
    if isinstance(started, Replayer):
        yield from _replay(run_id, spec, started, items, config, case_sensitive, done)
        return
    host = started
    host.load([p for _, p in items])
    skip = set(done)
    todo = [(s, p) for s, p in items if s.id not in skip]
    if todo:
        host.solve([todo[0][0].id], config.timeout)  # warm-up, not recorded
    for sample, _ in todo:
        reply = host.solve([sample.id], config.timeout)
        predicted = reply.answers[0] if reply.answers else ""
        yield Attempt(
            run_id=run_id,
            solver=spec.name,
            item_id=sample.id,
            expected=sample.answer,
            predicted=predicted,
            correct=not reply.error and is_correct(sample.answer, predicted, case_sensitive),
            cer=cer(sample.answer, predicted, case_sensitive),  # no answer: 1.0
            seconds=reply.seconds,
            error=reply.error,
        )
    yield _throughput(host, spec, items, config, progress)


def replays(name: str) -> bool:
    """Whether a solver replays recorded human answers (it has `replay(ids)`) rather than reading images."""
    from solvers.registry import SolverError, resolve

    try:
        return callable(getattr(resolve(name), "replay", None))
    except SolverError:
        return False


def _replay(run_id: str, spec: SolverSpec, started: Replayer, items: Sequence[tuple[ds.Sample, Pixels]],
            config: RunConfig, case_sensitive: bool, done: Collection[str]) -> Iterator[Attempt | Timing]:
    """Recorded answers as attempts, in process: the solver sees item ids and nothing else."""
    skip = set(done)
    ids = [s.id for s, _ in items if s.id not in skip]
    answers = started.solver.replay(ids)
    for sample, _ in items:
        for r in answers.get(sample.id, ()):
            yield Attempt(
                run_id=run_id,
                solver=spec.name,
                item_id=sample.id,
                expected=sample.answer,
                predicted=r.answer,
                correct=not r.skipped and is_correct(sample.answer, r.answer, case_sensitive),
                cer=cer(sample.answer, r.answer, case_sensitive),
                seconds=r.seconds if r.seconds is not None else float("nan"),
                error=SKIPPED if r.skipped else "",
                participant=r.participant,
                attempt=r.attempt,
            )
    yield Timing(spec.name, None, None, 0, config.batch_size, 0)


def _throughput(host: SolverHost, spec: SolverSpec, items: Sequence[tuple[ds.Sample, Pixels]], config: RunConfig,
                progress: Callable[[int, int], None] | None = None) -> Timing:
    batch = [s.id for s, _ in items[: config.throughput_items]]
    seconds, answered = 0.0, 0
    for k in range(0, len(batch), config.batch_size):
        chunk = batch[k : k + config.batch_size]
        reply = host.solve(chunk, config.timeout * len(chunk))
        if progress:
            progress(k + len(chunk), len(batch))
        if reply.error:
            continue  # failed batches are left out of the rate, and counted in restarts if they hung
        seconds += reply.seconds
        answered += len(chunk)
    rate = answered / seconds if answered and seconds > 0 else None
    return Timing(spec.name, host.cold_start, rate, answered, config.batch_size, host.restarts)
