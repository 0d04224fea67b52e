"""Pit a solver against a data set: ask, score, time; and the solver process that answers.

Work goes in shards of items (`attempt_shard`): the image bytes of a shard, read and hash-checked
(`read_shard`), go to a solver process, which decodes them, is asked each item alone, and forgets
them before the next shard, so memory does not grow with the data set. `bench.executors` decides
where shards run (local processes, or Dask workers). Scoring is the data set's rule
(`captchas.dataset.is_correct`, `cer`), applied by the caller, which alone holds the answers.
Timing follows DESIGN.md: latency is each item alone (batch size 1) with the solver warm;
throughput is batched (`throughput`); cold start is apart.

Each machine solver lives in its own process (`SolverHost`), so that a hang, a crash or a leak cannot
take the run down. The process is a fresh interpreter (`python -m bench.run FD`), so it holds no copy
of the answers and re-imports nothing of the caller; it works in an empty temporary folder, its
stdout goes nowhere (solvers that advertise on stdout cannot garble anything), and it talks over a
socket. It receives image bytes by item id, decodes them with the project's checked decoder, and
sends back answers with the seconds its solve() call took, measured inside it: from decoded image in
to answer out.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from PIL import Image

from bench.results import SKIPPED, Attempt
from bench.replay import Replayer
from captchas import dataset as ds
from captchas.dataset import Challenge, cer, is_correct

Encoded = tuple[str, bytes]  # an item id and its image file's bytes: what a solver process is handed
START_TIMEOUT = 300.0  # seconds for the process to start and the solver to load
LOAD_CHUNK = 256  # images per message when the images are handed over
SHARD = 64  # items per shard: a unit of work, and of memory (about 64 images, decoded, in a solver process)


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
        """Refuse a setting that cannot work, naming the one option at fault and what it takes."""
        if not (isinstance(self.timeout, (int, float)) and math.isfinite(self.timeout) and self.timeout > 0):
            raise ConfigError(f"--timeout must be a finite number of seconds above 0, got {self.timeout}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.throughput_items < 0:
            raise ConfigError(f"--throughput-items must be 0 (no throughput pass) or more, got {self.throughput_items}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"--limit must be at least 1, got {self.limit}")


class ConfigError(ValueError):
    """Run settings that cannot work; the message names the option and what it takes."""


@dataclass(frozen=True)
class Answered:
    """A solver's reply to one item, before scoring (which needs the answer, held by the caller alone)."""

    item_id: str
    predicted: str
    seconds: float
    error: str = ""


@dataclass(frozen=True)
class ShardDone:
    """What a shard gave back: an answer per item in order, and its host's figures."""

    answers: list[Answered]
    cold_start: float  # seconds the host's solver took to start (once per process)
    restarts: int  # restarts of the host during this shard
    decode_seconds: float = 0.0  # decoding the shard's images in the solver process


def read_shard(folder: Path, samples: Sequence[tuple[str, str, str]]) -> list[Encoded]:
    """The bytes of (id, file, sha256) items, each checked against its sha256: what a solver process decodes."""
    return [(item, ds.checked_bytes(folder, item, file, sha256)) for item, file, sha256 in samples]


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
        answers.append(Answered(item, predicted, reply.seconds, reply.error))
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


def scored(run_id: str, solver: str, sample: ds.Sample, predicted: str, seconds: float, error: str,
           case_sensitive: bool, participant: str = "", attempt: int = 1) -> Attempt:
    """One attempt, scored by the one rule: wrong whenever there is an error (a fault, or a skip)."""
    return Attempt(run_id=run_id, solver=solver, item_id=sample.id, expected=sample.answer, predicted=predicted,
                   correct=not error and is_correct(sample.answer, predicted, case_sensitive),
                   cer=cer(sample.answer, predicted, case_sensitive), seconds=seconds, error=error,
                   participant=participant, attempt=attempt)


def replayed(run_id: str, spec: SolverSpec, started: Replayer, samples: Iterable[ds.Sample], case_sensitive: bool,
             done: Collection[str]) -> Iterator[Attempt]:
    """Recorded answers as attempts, in process: the solver sees item ids and nothing else."""
    todo = [s for s in samples if s.id not in done]
    answers = started.solver.replay([s.id for s in todo])
    for sample in todo:
        for r in answers.get(sample.id, ()):
            yield scored(run_id, spec.name, sample, r.answer, r.seconds if r.seconds is not None else float("nan"),
                         SKIPPED if r.skipped else "", case_sensitive, r.participant, r.attempt)


# The solver process

@dataclass(frozen=True)
class Reply:
    """The outcome of one solve() call."""

    answers: list[str] | None  # one str per challenge, or None on error
    seconds: float  # inside the solver process, the solve() call alone
    error: str = ""


class HostError(RuntimeError):
    """The solver could not be started."""


class SolverHost:
    """A solver living in a child process; restart() after a timeout or crash.

    Constructing one starts the process and the solver (HostError if it cannot start); `load`
    then hands it a shard's images in place of the last shard's, which a restart hands over again."""

    def __init__(self, name: str, options: dict[str, Any], threads: int = 1) -> None:
        self.name, self.options, self.threads = name, options, threads
        self._images: list[Encoded] = []  # the current shard; solve() then names items by id
        self.cold_start = 0.0  # seconds to import and construct the solver in a fresh process
        self.restarts = 0
        self.warm = False  # whether it has been asked once (a warm-up) since it started
        self.decode_seconds = 0.0  # spent decoding images in the solver process, all loads together
        self._process: Any = None
        self._conn: Connection | None = None
        self._start()

    def load(self, images: list[Encoded]) -> list[tuple[str, str]]:
        """Hand the solver process the images it will be asked about next (the last ones are dropped);
        return (item id, problem) for images that do not decode."""
        self._images = images
        return self._send_images()

    def _send_images(self) -> list[tuple[str, str]]:
        assert self._conn is not None
        problems: list[tuple[str, str]] = []
        self._conn.send(("clear", None))
        for k in range(0, len(self._images), LOAD_CHUNK):
            self._conn.send(("load", self._images[k : k + LOAD_CHUNK]))
            if not self._conn.poll(START_TIMEOUT):
                raise HostError(f"solver {self.name!r} did not take its images within {START_TIMEOUT:.0f} s")
            kind, value, seconds = self._conn.recv()
            problems += value
            self.decode_seconds += seconds
        return problems

    def _start(self) -> None:
        ours, theirs = socket.socketpair()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.run", str(theirs.fileno())],
            pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p), **_thread_limits(self.threads)},
        )
        theirs.close()
        self._conn = parent = Connection(ours.detach())
        parent.send((self.name, self.options))
        if not parent.poll(START_TIMEOUT):
            self.close()
            raise HostError(f"solver {self.name!r} did not start within {START_TIMEOUT:.0f} s")
        try:
            kind, value = parent.recv()
        except (EOFError, OSError):
            code = self._process.wait()
            self.close()
            raise HostError(f"solver {self.name!r} process died while starting (exit code {code})") from None
        if kind != "ready":
            self.close()
            raise HostError(value)
        self.cold_start = value
        self.warm = False
        if self._images:
            self._send_images()

    def restart(self) -> None:
        self.close(kill=True)  # a hung solver is not waited for
        self.restarts += 1
        self._start()

    def solve(self, batch: list[str], timeout: float) -> Reply:
        """Answers for a batch of item ids; on timeout or crash the process is replaced and the reply says why."""
        assert self._conn is not None
        try:
            self._conn.send(("solve", batch))
        except OSError:
            pass  # the process has gone: _receive says so
        return self._receive(len(batch), timeout)[0]

    def solve_each(self, ids: list[str], timeout: float) -> Iterator[Reply]:
        """A reply for each id asked alone (batch size 1), in order. The process answers one after
        another without waiting to be asked again; after a timeout or crash it is replaced and asked
        the rest anew. Leaving early replaces the process too, so that no stale answer is read later."""
        k, finished = 0, False
        try:
            while k < len(ids):
                assert self._conn is not None
                try:
                    self._conn.send(("each", ids[k:]))
                except OSError:
                    pass  # the process has gone: _receive says so
                while k < len(ids):
                    reply, replaced = self._receive(1, timeout)
                    k += 1
                    yield reply
                    if replaced:
                        break
            finished = True
        finally:
            if not finished:
                self.restart()

    def _receive(self, n: int, timeout: float) -> tuple[Reply, bool]:
        """The next reply to a call of `n` challenges, and whether the process had to be replaced."""
        assert self._conn is not None
        try:
            if not self._conn.poll(timeout):
                self.restart()
                return Reply(None, timeout, f"timeout: no answer within {timeout:g} s"), True
            kind, answers, seconds, error = self._conn.recv()
        except (EOFError, OSError):
            code = self._process.poll() if self._process is not None else None
            self.restart()
            return Reply(None, 0.0, f"solver process died (exit code {code})"), True
        if kind != "ok":
            return Reply(None, seconds, error), False
        problem = _check_error(answers, n)
        return (Reply(None, seconds, problem) if problem else Reply(answers, seconds)), False

    def close(self, kill: bool = False) -> None:
        """Stop the process: ask it to stop and wait a little, or (`kill`) end it at once."""
        if self._process is not None and kill:
            self._process.kill()
        if self._conn is not None:
            try:
                self._conn.send(("stop", None))
            except OSError:
                pass
            self._conn.close()
            self._conn = None
        if self._process is not None:
            try:
                self._process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                    "NUMEXPR_NUM_THREADS")


def _thread_limits(threads: int) -> dict[str, str]:
    """Environment that keeps a solver process's math libraries (OpenMP, BLAS) to `threads` threads.

    A pool of one thread per core makes every call wait for its slowest thread: when any other
    process is runnable (even at nice 19, started from another session), that wait is a scheduler
    time slice. On 2 cores the CNN's batch-1 median was 15.7 ms beside such a job, 0.6 ms with one
    thread (docs/speed.md); two CNN processes with a thread per core read 15 ms instead of 1 ms."""
    return {key: str(threads) for key in THREAD_VARIABLES}


def solver_threads(name: str, options: dict[str, Any]) -> int:
    """The threads one solve() call of this solver is meant to use (its `threads` hook; 1 by default)."""
    from solvers.base import threads_for
    from solvers.registry import SolverError, resolve

    cls = resolve(name)
    try:
        return threads_for(cls, options)
    except ValueError as e:
        raise SolverError(f"solver {name!r}: {e}") from None


def _check_error(answers: Any, n: int) -> str | None:
    """Why a solver's return value is not one str per challenge, or None."""
    if not isinstance(answers, list):
        return f"solve() returned {type(answers).__name__}, not a list"
    if len(answers) != n:
        return f"solve() returned {len(answers)} answers for {n} challenges"
    for a in answers:
        if not isinstance(a, str):
            return f"solve() returned a {type(a).__name__} answer, not str"
    return None


def _serve(conn: Connection) -> None:
    """The child process: load the solver, then answer batches until told to stop.

    The solver is constructed in the caller's folder, so relative paths in its options (a
    checkpoint, an answers file) mean what the user meant; it solves in an empty folder.
    """
    from solvers.registry import load

    name, options = conn.recv()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    start = time.perf_counter()
    try:
        solver = load(name, **options)
    except Exception as e:  # sent back as one line, never a traceback
        text = str(e) if isinstance(e, ValueError) else f"{type(e).__name__}: {e}"
        conn.send(("error", " ".join(text.split())[:500]))  # one line, even from a library's long message
        return
    conn.send(("ready", time.perf_counter() - start))
    with tempfile.TemporaryDirectory(prefix="captcha-bench-solver-") as empty:
        os.chdir(empty)  # nothing of the data set nearby
        _answer(conn, solver)


def _decode(payload: list[Encoded], images: dict[str, Image.Image]) -> list[tuple[str, str]]:
    """Decode a chunk of images into `images` by id, as RGB or L; (id, problem) for those that fail."""
    problems = []
    for item, data in payload:
        try:
            image = ds.decode_image(data)
        except ds.ImageError as e:
            problems.append((item, str(e)))
            continue
        images[item] = image if image.mode in ("RGB", "L") else image.convert("RGB")
    return problems


def _answer(conn: Connection, solver: Any) -> None:
    images: dict[str, Image.Image] = {}
    while True:
        try:
            kind, payload = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if kind == "stop":
            return
        if kind == "clear":
            images.clear()
            continue
        if kind == "load":
            start = time.perf_counter()
            problems = _decode(payload, images)
            conn.send(("loaded", problems, time.perf_counter() - start))
            continue
        calls = [[i] for i in payload] if kind == "each" else [payload]  # "each": every item alone, in turn
        for ids in calls:
            if not _reply(conn, solver, [Challenge(i, images[i].copy()) for i in ids]):
                return
        # (a fresh copy of each image, so a solver that draws on its image cannot change a later attempt)


def _reply(conn: Connection, solver: Any, challenges: list[Challenge]) -> bool:
    """Ask the solver and send back what it said and how long it took; False if the parent has gone."""
    start = time.perf_counter()
    try:
        answers = solver.solve(challenges)
        seconds = time.perf_counter() - start
        reply: tuple[Any, ...] = ("ok", answers, seconds, "")
    except Exception as e:
        reply = ("error", None, time.perf_counter() - start, f"{type(e).__name__}: {e}")
    try:
        conn.send(reply)
    except OSError:  # the parent has gone (it gave up waiting): nothing to tell, nobody to tell it to
        return False
    except Exception as e:  # an answer that cannot be pickled
        try:
            conn.send(("error", None, reply[2], f"solve() returned something unsendable: {type(e).__name__}"))
        except OSError:
            return False
    return True


if __name__ == "__main__":
    _serve(Connection(int(sys.argv[1])))
