"""Pit a solver against a data set: load and check the images, ask, score, time.

`run_solver` yields one Attempt per item as it goes (the caller writes them), then a Timing. Scoring
is the data set's rule (`captchas.dataset.is_correct`, `cer`). Timing follows DESIGN.md: latency is
each item alone (batch size 1) with the solver warm; throughput is batched; cold start is apart.

Each machine solver lives in its own process (`SolverHost`), so that a hang, a crash or a leak cannot
take the run down. The process is a fresh interpreter (`python -m bench.run FD`), so it holds no copy
of the answers and re-imports nothing of the caller; it works in an empty temporary folder, its
stdout goes nowhere (solvers that advertise on stdout cannot garble anything), and it talks over a
socket. It receives challenges (id and pixels) and sends back answers with the seconds its solve()
call took, measured inside it: from decoded image in to answer out.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Union

from PIL import Image

from bench.results import SKIPPED, Attempt, Timing
from bench.replay import Replayer, replays
from captchas import dataset as ds
from captchas.dataset import Challenge, cer, is_correct

Pixels = tuple[str, str, tuple[int, int], bytes]  # id, mode, size, raw bytes: cheap to send
START_TIMEOUT = 300.0  # seconds for the process to start and the solver to load
LOAD_CHUNK = 256  # images per message when the images are handed over


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


Started = Union["SolverHost", Replayer]  # SolverHost: below, with the solver process


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


# The solver process

@dataclass(frozen=True)
class Reply:
    """The outcome of one solve() call."""

    answers: list[str] | None  # one str per challenge, or None on error
    seconds: float  # inside the solver process, the solve() call alone
    error: str = ""


class HostError(RuntimeError):
    """The solver could not be started."""


def pixels(challenge: Challenge) -> Pixels:
    image = challenge.image
    return (challenge.id, image.mode, image.size, image.tobytes())


class SolverHost:
    """A solver living in a child process; restart() after a timeout or crash.

    Constructing one starts the process and the solver (HostError if it cannot start); `load`
    then hands it the images, which a restart hands over again."""

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        self.name, self.options = name, options
        self._images: list[Pixels] = []  # sent once per process start; solve() then names items by id
        self.cold_start = 0.0  # seconds to import and construct the solver in a fresh process
        self.restarts = 0
        self._process: Any = None
        self._conn: Connection | None = None
        self._start()

    def load(self, images: list[Pixels]) -> None:
        """Hand the solver process the images it will be asked about."""
        self._images = images
        self._send_images()

    def _send_images(self) -> None:
        assert self._conn is not None
        for k in range(0, len(self._images), LOAD_CHUNK):
            self._conn.send(("load", self._images[k : k + LOAD_CHUNK]))

    def _start(self) -> None:
        ours, theirs = socket.socketpair()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.run", str(theirs.fileno())],
            pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
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
            if not self._conn.poll(timeout):
                self.restart()
                return Reply(None, timeout, f"timeout: no answer within {timeout:g} s")
            kind, answers, seconds, error = self._conn.recv()
        except (EOFError, OSError):
            code = self._process.poll() if self._process is not None else None
            self.restart()
            return Reply(None, 0.0, f"solver process died (exit code {code})")
        if kind != "ok":
            return Reply(None, seconds, error)
        problem = _check_error(answers, len(batch))
        return Reply(None, seconds, problem) if problem else Reply(answers, seconds)

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


def _answer(conn: Connection, solver: Any) -> None:
    images: dict[str, Image.Image] = {}
    while True:
        try:
            kind, payload = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if kind == "stop":
            return
        if kind == "load":
            images.update((i, Image.frombytes(mode, size, data)) for i, mode, size, data in payload)
            continue
        # A fresh copy each time, so a solver that draws on its image cannot change a later attempt.
        challenges = [Challenge(i, images[i].copy()) for i in payload]
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
            return
        except Exception as e:  # an answer that cannot be pickled
            try:
                conn.send(("error", None, reply[2], f"solve() returned something unsendable: {type(e).__name__}"))
            except OSError:
                return


if __name__ == "__main__":
    _serve(Connection(int(sys.argv[1])))
