"""A study's life: check every image, listen, open (or continue) its database, serve until stopped.

`open_study` listens before it creates the database, so a busy port or a wrong host leaves nothing
behind; its errors are StudyError with one line that points at the option to change.
"""

from __future__ import annotations

import errno
import logging
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.study.app import Server, check_images, create_app, is_loopback, serve
from bench.study.store import JOINS_PER_HOUR, Store, StudyError
from captchas import dataset as ds


@dataclass
class Study:
    """A study ready to serve: `server.url` to open, `db` its database."""

    dataset: ds.Dataset
    db: Path
    server: Server
    host: str

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def public_url(self) -> str | None:
        """The address participants on other machines open, when the host is not loopback; else None."""
        return None if is_loopback(self.host) else public_url(self.host, self.server.server.server_port)

    def counts(self) -> tuple[int, int]:
        """(participants, answers) so far."""
        return Store(self.db).counts()

    def serve_forever(self) -> None:
        """Serve until Ctrl-C; then close."""
        try:
            self.server.server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            self.server.server.server_close()


def default_db(dataset: ds.Dataset) -> Path:
    """results/studies/<data set sha256 prefix>.sqlite: what `record`, `sweep` and the examples use."""
    return Path("results") / "studies" / f"{dataset.hash[:12]}.sqlite"


def open_study(dataset: ds.Dataset, host: str = "127.0.0.1", port: int = 8000, db: Path | None = None,
               title: str = "Read the characters", completion_code: str = "",
               joins_per_hour: int | None = JOINS_PER_HOUR, progress: ds.Progress | None = None) -> Study:
    """Check every image, listen on host:port, then open the study database (made if absent)."""
    db = db or default_db(dataset)
    if db.exists() and not db.is_file():
        raise StudyError(400, f"--db {db} is not a file: give a path for the SQLite database")
    check_images(dataset, progress)
    try:
        server = serve(_not_ready, host, port)  # listen first: a failure leaves no empty database behind
    except OSError as e:
        raise StudyError(400, listen_error(host, port, e)) from None
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        server.server.app = create_app(dataset, str(db), title, joins_per_hour=joins_per_hour,
                                       completion_code=completion_code, checked=True)
    except BaseException:
        server.server.server_close()
        raise
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    return Study(dataset, db, server, host)


def _not_ready(environ: Any, start_response: Any) -> list[bytes]:
    """The WSGI app of a server that has bound but not yet opened its study (no request is served then)."""
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"starting"]


def listen_error(host: str, port: int, e: OSError) -> str:
    """Why the study server cannot listen, pointing at the option to change."""
    if isinstance(e, socket.gaierror) or e.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
        return (f"cannot listen on {host} ({e.strerror or e}): it is not an address of this machine; give --host "
                "127.0.0.1 (this machine only) or 0.0.0.0 (every network)")
    if e.errno == errno.EACCES:
        return f"cannot listen on port {port} ({e.strerror}): ports below 1024 need root; choose another --port"
    return f"cannot listen on {host}:{port} ({e.strerror or e}): choose another --port"


def public_url(host: str, port: int) -> str:
    """The address participants on other machines should open: this machine's outward address for 0.0.0.0."""
    if host in ("0.0.0.0", "::", ""):
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.connect(("192.0.2.1", 9))  # a documentation address: nothing is sent, the route picks our address
                host = s.getsockname()[0]
        except OSError:
            host = socket.gethostname()
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"
