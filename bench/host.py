"""The solver process: one machine solver in a fresh interpreter of its own, asked over a socket.

A hang, a crash or a leak in a solver cannot take the run down. The process (`python -m bench.host
FD`) holds no copy of the answers and re-imports nothing of the caller; it works in an empty temporary
folder, its stdout goes nowhere (solvers that advertise on stdout cannot garble anything), and its
math libraries have the threads the solver is meant to have (`solver_threads`). It receives image
bytes by item id, decodes them with the project's checked decoder, and sends back answers with the
seconds its solve() call took, measured inside it: from decoded image in to answer out.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from PIL import Image

from captchas.images import ImageError, decode_image
from captchas.dataset import Challenge
from solvers.base import is_paid, threads_for
from solvers.registry import SolverError, load, resolve

Encoded = tuple[str, bytes]  # an item id and its image file's bytes: what a solver process is handed
START_TIMEOUT = 300.0  # seconds for the process to start and the solver to load
LOAD_CHUNK = 256  # images per message when the images are handed over

@dataclass(frozen=True)
class Reply:
    """The outcome of one solve() call."""

    answers: list[str] | None  # one str per challenge, or None on error
    seconds: float  # inside the solver process, the solve() call alone
    error: str = ""
    cpu_seconds: float = 0.0  # the solver process's CPU time during that call, all its threads together
    details: list[dict[str, Any]] | None = None  # per challenge, what the solver's `details` hook said of it


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
        self.paid = is_paid(resolve(name), options)  # each answer costs money: never asked a warm-up
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
            [sys.executable, "-m", "bench.host", str(theirs.fileno())],
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
        self.warm = self.paid  # a paid solver is asked no question it is not paid to answer
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
            kind, answers, seconds, error, extra = self._conn.recv()
        except (EOFError, OSError):
            code = self._process.poll() if self._process is not None else None
            self.restart()
            return Reply(None, 0.0, f"solver process died (exit code {code})"), True
        cpu, details = extra.get("cpu_seconds", 0.0), extra.get("details")
        if kind != "ok":
            return Reply(None, seconds, error, cpu), False
        problem = _check_error(answers, n) or _check_details(details, n)
        return (Reply(None, seconds, problem, cpu) if problem else Reply(answers, seconds, "", cpu, details)), False

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


def _check_details(details: Any, n: int) -> str | None:
    """Why a `details` hook's value is unusable (not None or one dict per challenge), or None."""
    if details is None or isinstance(details, list) and len(details) == n and all(isinstance(d, dict) for d in details):
        return None
    return f"details() must return one dict per challenge ({n}), got {type(details).__name__}"


def _serve(conn: Connection) -> None:
    """The child process: load the solver, then answer batches until told to stop.

    The solver is constructed in the caller's folder, so relative paths in its options (a
    checkpoint, an answers file) mean what the user meant; it solves in an empty folder.
    """
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
            image = decode_image(data)
        except ImageError as e:
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
    """Ask the solver and send back what it said, how long it took and the CPU it used (and what its
    `details` hook says of each challenge); False if the parent has gone."""
    start, cpu = time.perf_counter(), time.process_time()
    try:
        answers = solver.solve(challenges)
        seconds = time.perf_counter() - start
        used = time.process_time() - cpu
        details = solver.details() if callable(getattr(solver, "details", None)) else None
        reply: tuple[Any, ...] = ("ok", answers, seconds, "", {"cpu_seconds": used, "details": details})
    except Exception as e:
        reply = ("error", None, time.perf_counter() - start, f"{type(e).__name__}: {e}",
                 {"cpu_seconds": time.process_time() - cpu})
    try:
        conn.send(reply)
    except OSError:  # the parent has gone (it gave up waiting): nothing to tell, nobody to tell it to
        return False
    except Exception as e:  # an answer that cannot be pickled
        try:
            conn.send(("error", None, reply[2], f"solve() returned something unsendable: {type(e).__name__}", {}))
        except OSError:
            return False
    return True


if __name__ == "__main__":
    _serve(Connection(int(sys.argv[1])))
