"""Pit a solver against a data set: load and check the images, ask, score, time.

`run_solver` yields one Attempt per item as it goes (the caller writes them), then a Timing.
Scoring is `captchas.scoring` (`is_correct`, `cer`), used everywhere. Timing follows DESIGN.md: latency is each
item alone (batch size 1) with the solver warm; throughput is batched; cold start is apart.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from bench.host import HostError, Pixels, SolverHost, pixels
from bench.results import SKIPPED, Attempt, Timing
from bench.replay import Replayer, replays
from captchas import dataset as ds
from captchas.scoring import cer, is_correct


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

    def __post_init__(self) -> None:
        if not self.timeout > 0 or self.batch_size < 1 or self.throughput_items < 0 or (
                self.limit is not None and self.limit < 1):
            raise ConfigError("--timeout must be > 0, --batch-size and --limit >= 1, --throughput-items >= 0")


class ConfigError(ValueError):
    """Run settings that cannot work; the message names the option and what it takes."""


def load_challenges(dataset: ds.Dataset, limit: int | None = None) -> list[tuple[ds.Sample, Pixels]]:
    """Read, hash-check and decode every image once (`captchas.dataset.load_images`), as pixels for solvers."""
    return [(s, pixels(ds.Challenge(s.id, image))) for s, image in ds.load_images(dataset, limit)]


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
        predicted = reply.answers[0] if reply.answers else ""  # no answer: scored wrong, CER 1
        yield scored(run_id, spec.name, sample, predicted, reply.seconds, reply.error, case_sensitive)
    yield _throughput(host, spec, items, config, progress)


def scored(run_id: str, solver: str, sample: ds.Sample, predicted: str, seconds: float, error: str,
           case_sensitive: bool, participant: str = "", attempt: int = 1) -> Attempt:
    """One attempt, scored by the one rule: wrong whenever there is an error (a fault, or a skip)."""
    return Attempt(run_id=run_id, solver=solver, item_id=sample.id, expected=sample.answer, predicted=predicted,
                   correct=not error and is_correct(sample.answer, predicted, case_sensitive),
                   cer=cer(sample.answer, predicted, case_sensitive), seconds=seconds, error=error,
                   participant=participant, attempt=attempt)


def _replay(run_id: str, spec: SolverSpec, started: Replayer, items: Sequence[tuple[ds.Sample, Pixels]],
            config: RunConfig, case_sensitive: bool, done: Collection[str]) -> Iterator[Attempt | Timing]:
    """Recorded answers as attempts, in process: the solver sees item ids and nothing else."""
    skip = set(done)
    ids = [s.id for s, _ in items if s.id not in skip]
    answers = started.solver.replay(ids)
    for sample, _ in items:
        for r in answers.get(sample.id, ()):
            yield scored(run_id, spec.name, sample, r.answer, r.seconds if r.seconds is not None else float("nan"),
                         SKIPPED if r.skipped else "", case_sensitive, r.participant, r.attempt)
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
