"""Run a solver in its own process, so that a hang, a crash or a leak cannot take the run down.

The process is a fresh interpreter (`python -m bench.host FD`), so it holds no copy of the answers
and re-imports nothing of the caller; it works in an empty temporary folder, its stdout goes
nowhere (solvers that advertise on stdout cannot garble anything), and it talks over a socket. It receives challenges (id and pixels) and sends back answers with the
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
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from PIL import Image

from captchas.dataset import Challenge

Pixels = tuple[str, str, tuple[int, int], bytes]  # id, mode, size, raw bytes: cheap to send
START_TIMEOUT = 300.0  # seconds for the process to start and the solver to load
LOAD_CHUNK = 256  # images per message when the images are handed over


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
            [sys.executable, "-m", "bench.host", str(theirs.fileno())],
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
