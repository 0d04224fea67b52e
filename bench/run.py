"""Pit a solver against a data set: ask, score, time. The solver process that answers is bench.host.

Work goes in shards of items (`attempt_shard`): the image bytes of a shard, read and hash-checked
(`read_shard`), go to a solver process, which decodes them, is asked each item alone, and forgets
them before the next shard, so memory does not grow with the data set. `bench.executors` decides
where shards run (local processes, or Dask workers). Scoring is the data set's rule
(`bench.runfolder.records.scored`), applied by the caller, which alone holds the answers.
Timing follows DESIGN.md: latency is each item alone (batch size 1) with the solver warm;
throughput is batched (`throughput`); cold start is apart.

Each machine solver lives in its own process (`bench.host.SolverHost`), so that a hang, a crash or
a leak cannot take the run down; it sends back answers with the seconds its solve() call took,
measured inside it: from decoded image in to answer out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.host import Encoded, SolverHost
from captchas import dataset as ds
from captchas import images
from captchas.errors import UserError

SHARD = 64  # items per shard: a unit of work, and of memory (about 64 images, decoded, in a solver process)
# US dollars for one vCPU for an hour, on demand: AWS EC2 m7g.large (2 vCPU), Linux, us-east-1, $0.0816 an hour in
# June 2026 (factualminds.com, "Amazon EC2 On-Demand Pricing: Instance Families, Regional Multipliers, and the
# Graviton Crossover (2026)"). What a machine solver's measured CPU seconds cost, unless --price-core-hour says.
PRICE_CORE_HOUR = 0.0816 / 2


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
    price_core_hour: float = PRICE_CORE_HOUR  # US dollars per vCPU-hour: what a solver's CPU seconds cost
    margin: float | None = None  # accuracy points within which machine and people count as equivalent, stated before

    def __post_init__(self) -> None:
        """Refuse a setting that cannot work, naming the one option at fault and what it takes."""
        if not (isinstance(self.timeout, (int, float)) and math.isfinite(self.timeout) and self.timeout > 0):
            raise ConfigError(f"--timeout must be a finite number of seconds above 0, got {self.timeout}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.throughput_items < 0:
            raise ConfigError(f"--throughput-items must be 0 (no throughput pass) or more, got {self.throughput_items}")
        if not (isinstance(self.price_core_hour, (int, float)) and 0 <= self.price_core_hour < math.inf):
            raise ConfigError(f"--price-core-hour is US dollars per vCPU-hour, 0 or more, got {self.price_core_hour}")
        if self.margin is not None and not (isinstance(self.margin, (int, float)) and 0 < self.margin < 100):
            raise ConfigError(f"--margin is accuracy points above 0 and below 100, got {self.margin}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"--limit must be at least 1, got {self.limit}")


class ConfigError(UserError):
    """Run settings that cannot work; the message names the option and what it takes."""


@dataclass(frozen=True)
class Answered:
    """A solver's reply to one item, before scoring (which needs the answer, held by the caller alone)."""

    item_id: str
    predicted: str
    seconds: float
    error: str = ""
    cpu_seconds: float = 0.0  # the solver process's CPU time for this item (its threads together)
    details: dict[str, Any] | None = None  # what the solver's `details` hook said of this item


@dataclass(frozen=True)
class ShardDone:
    """What a shard gave back: an answer per item in order, and its host's figures."""

    answers: list[Answered]
    cold_start: float  # seconds the host's solver took to start (once per process)
    restarts: int  # restarts of the host during this shard
    decode_seconds: float = 0.0  # decoding the shard's images in the solver process


def read_shard(folder: Path, samples: Sequence[tuple[str, str, str]]) -> list[Encoded]:
    """The bytes of (id, file, sha256) items, each checked against its sha256: what a solver process decodes."""
    return [(item, images.checked_bytes(folder, item, file, sha256)) for item, file, sha256 in samples]


def attempt_shard(host: SolverHost, encoded: list[Encoded], timeout: float) -> ShardDone:
    """Ask the host each item of a shard alone (batch size 1), after one unrecorded warm-up on a fresh
    host. Raises ds.DatasetError if an image does not decode (naming the item, not the file)."""
    restarts, decoding = host.restarts, host.decode_seconds
    problems = host.load(encoded)
    if problems:
        item, problem = problems[0]
        raise ds.DatasetError(f"item {item} is {problem}: re-import or regenerate the data set")
    if not host.warm and encoded:
        host.solve([encoded[0][0]], timeout)  # warm-up, not recorded
        host.warm = True
    answers = []
    items = [item for item, _ in encoded]
    for item, reply in zip(items, list(host.solve_each(items, timeout)), strict=True):
        predicted = reply.answers[0] if reply.answers else ""  # no answer: scored wrong, CER 1
        details = reply.details[0] if reply.details else None
        answers.append(Answered(item, predicted, reply.seconds, reply.error, reply.cpu_seconds, details))
    return ShardDone(answers, host.cold_start, host.restarts - restarts, host.decode_seconds - decoding)


def throughput(host: SolverHost, encoded: list[Encoded], batch_size: int, timeout: float,
               progress: Callable[[int, int], None] | None = None) -> tuple[float, int]:
    """Seconds spent and items answered, asking `encoded` in batches; failed batches are left out."""
    host.load(encoded)
    batch = [item for item, _ in encoded]
    seconds, answered = 0.0, 0
    for k in range(0, len(batch), batch_size):
        chunk = batch[k : k + batch_size]
        reply = host.solve(chunk, timeout * len(chunk))
        if progress:
            progress(k + len(chunk), len(batch))
        if reply.error:
            continue  # failed batches are left out of the rate, and counted in restarts if they hung
        seconds += reply.seconds
        answered += len(chunk)
    return seconds, answered


def start_error(name: str, message: str) -> str:
    return message if message.startswith("solver ") else f"solver {name!r} cannot start: {message}"


