"""The study web app (Flask): consent, then one CAPTCHA at a time, Submit or Skip, a progress count.

Pages, JSON and URLs carry opaque tokens only, never an answer or anything derived from one:
images are re-encoded from pixels (no metadata) and served under per-participant tokens. The
server times each answer from the moment it sent the image to the moment the answer arrived.
"""

from __future__ import annotations

import html
import io
import ipaddress
import json
import math
import socket
import threading
import time
import unicodedata
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from bench.study.store import JOINS_PER_HOUR, StudyError, Store
from captchas import dataset as ds
from captchas.images import load_image
from captchas import recorded

MAX_ANSWER = 32  # characters; longer answers are refused (the text box stops there too)
MAX_BODY = 4096  # bytes of a request body
MAX_CLIENT_SECONDS = recorded.MAX_SECONDS  # what a replay accepts as a solve time
MAX_REASON = 100  # characters of a skip's reason
RULES = {
    True: "Case matters: type capital letters as capitals and small letters as small ones.",
    False: "Case does not matter: capital and small letters count the same.",
}


def check_images(dataset: ds.Dataset, progress: ds.Progress | None = None) -> None:
    """Every image exists, matches the manifest's sha256 and decodes; DatasetError names the first that does not.

    Run before a study starts, so that no participant meets a broken image."""
    for done, sample in enumerate(dataset.samples, 1):
        load_image(dataset, sample)
        if progress:
            progress(done, len(dataset.samples))


def create_app(dataset: ds.Dataset, db: str, title: str = "Read the characters", *,
               joins_per_hour: int | None = JOINS_PER_HOUR, completion_code: str = "",
               checked: bool = False) -> Flask:
    """The study app for `dataset`, recording into the SQLite file `db` (made if absent).

    Every image is checked first (unless `checked` says the caller did). `joins_per_hour` limits
    the new participants per client address; `completion_code` is shown on the done page."""
    if not checked:
        check_images(dataset)
    store = Store.create(db, dataset.hash, [s.id for s in dataset.samples], str(dataset.path.resolve()))
    files = {s.id: s for s in dataset.samples}
    images: dict[str, bytes] = {}
    lock = threading.Lock()
    joins = _RateLimit(joins_per_hour, 3600.0)
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    page = (resources.files("bench.study").joinpath("page.html").read_text(encoding="utf-8")
            .replace("{{title}}", html.escape(title)).replace("{{rule}}", RULES[dataset.case_sensitive]))
    script = resources.files("bench.study").joinpath("study.js").read_bytes()

    def png(item_id: str) -> bytes:
        """The item's pixels as a fresh PNG, checked against the manifest's sha256 first."""
        with lock:
            if item_id in images:
                return images[item_id]
        try:
            image = load_image(dataset, files[item_id])
        except ds.DatasetError:
            raise StudyError(500, "this image cannot be shown (it changed on disk): press Skip to go on") from None
        out = io.BytesIO()
        image.convert("RGB").save(out, format="PNG")  # pixels only: no text chunks, no EXIF
        with lock:
            images[item_id] = out.getvalue()
        return images[item_id]

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Content-Security-Policy"] = "default-src 'self'; img-src 'self'; style-src 'self' 'unsafe-inline'"
        return response

    @app.errorhandler(StudyError)
    def refused(e: StudyError) -> tuple[Response, int]:
        return jsonify(error=str(e)), e.status

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException) -> tuple[Response, int]:
        if e.code == 413:
            return jsonify(error=f"the request body is larger than {MAX_BODY} bytes: send one short answer"), 413
        if e.code == 500:
            return jsonify(error="the study server failed on this request; try again"), 500
        return jsonify(error=e.description or e.name), e.code or 500

    @app.get("/")
    def index() -> Response:
        return Response(page, mimetype="text/html")

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status=204)

    @app.get("/study.js")
    def study_js() -> Response:
        return Response(script, mimetype="text/javascript")

    @app.post("/api/participants")
    def join() -> tuple[Response, int]:
        body = _json()
        if body.get("consent") is not True:
            raise StudyError(400, "consent is required to take part: tick the box to agree")
        if not joins.allow(request.remote_addr or ""):
            raise StudyError(429, "too many new participants from this address: continue the study you started, "
                                  "or try again later")
        pid = store.new_participant(request.headers.get("User-Agent", ""))
        return jsonify(participant=pid, **view(pid, store.next(pid))), 201

    @app.get("/api/participants/<pid>/next")
    def next_item(pid: str) -> Response:
        return jsonify(participant=pid, **view(pid, store.next(pid)))

    @app.get("/api/participants/<pid>/images/<token>")
    def image(pid: str, token: str) -> Response:
        return Response(png(store.send(pid, token)), mimetype="image/png")

    @app.post("/api/participants/<pid>/answers")
    def answer(pid: str) -> tuple[Response, int]:
        body = _json()
        token, skipped = body.get("token"), body.get("skipped", False)
        if not isinstance(token, str) or not token:
            raise StudyError(400, "token is missing: answer the image you were sent")
        if not isinstance(skipped, bool):
            raise StudyError(400, "skipped must be true or false")
        text = "" if skipped else _answer(body.get("answer"))
        reason = _reason(body.get("reason")) if skipped else ""
        after = store.answer(pid, token, text, skipped, _client_number(body, "client_seconds", MAX_CLIENT_SECONDS),
                             _client_number(body, "shown_at", 1e14), _client_number(body, "submitted_at", 1e14),
                             skip_reason=reason)
        return jsonify(participant=pid, **view(pid, after)), 201

    def view(pid: str, step: Any) -> dict[str, Any]:
        shown: dict[str, Any] = {"position": step.position, "total": step.total, "done": step.token is None}
        if step.token is not None:
            shown["token"] = step.token
            shown["image"] = f"/api/participants/{pid}/images/{step.token}"
        else:
            shown["skipped"] = store.skipped(pid)
            shown["code"] = completion_code
        return shown

    return app


class _RateLimit:
    """At most `limit` events per key in any `window` seconds (None: no limit)."""

    def __init__(self, limit: int | None, window: float) -> None:
        self.limit, self.window = limit, window
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        if self.limit is None:
            return True
        now = time.monotonic()
        with self._lock:
            seen = self._seen.setdefault(key, deque())
            while seen and seen[0] <= now - self.window:
                seen.popleft()
            if len(seen) >= self.limit:
                return False
            seen.append(now)
            return True


def _body() -> bytes:
    """The request body, at most MAX_BODY bytes: 413 for more, whether its length was declared or it came
    in chunks (werkzeug would cut a chunked body at the limit and hand on the rest as if it were all)."""
    if request.content_length is not None or "wsgi.input_terminated" not in request.environ:
        return request.get_data(cache=False)  # a declared length over MAX_BODY is refused (413) by werkzeug
    stream = request.environ["wsgi.input"]  # chunked: the server ends this stream at the last chunk
    data = b""
    while len(data) <= MAX_BODY:
        more = stream.read(MAX_BODY + 1 - len(data))
        if not more:
            return data
        data += more
    connection = request.environ.get("werkzeug.socket")
    if connection is not None:  # read no more of it: werkzeug would otherwise wait for the whole body
        try:
            connection.shutdown(socket.SHUT_RD)
        except OSError:
            pass
    raise RequestEntityTooLarge()


def _json() -> dict[str, Any]:
    raw = _body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise StudyError(400, "the request body is not UTF-8: send JSON text") from None
    try:
        body = json.loads(text) if text.strip() else {}
    except RecursionError:
        raise StudyError(400, "the request body is nested too deeply: send one flat JSON object") from None
    except ValueError:  # JSONDecodeError, and numbers too long to convert
        raise StudyError(400, "the request body is not JSON") from None
    if not isinstance(body, dict):
        raise StudyError(400, "the request body must be a JSON object")
    return body


def _reason(value: Any) -> str:
    """Why a participant skipped, when the page says (e.g. the image did not load); optional, short, plain."""
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_REASON or any(not c.isprintable() for c in value):
        raise StudyError(400, f"reason must be plain text of at most {MAX_REASON} characters")
    return value.strip()


def _answer(value: Any) -> str:
    """The typed answer, checked: text, not empty, at most MAX_ANSWER characters, no control characters."""
    if not isinstance(value, str):
        raise StudyError(400, "answer must be text")
    text = unicodedata.normalize("NFC", value).strip()
    if not text:
        raise StudyError(400, "the answer is empty: type the characters you see, or press Skip")
    if len(text) > MAX_ANSWER:
        raise StudyError(400, f"the answer is longer than {MAX_ANSWER} characters: type only what the image shows")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") for c in text):
        raise StudyError(400, "the answer holds control or invisible characters: type only what the image shows")
    return text


def _client_number(body: dict[str, Any], key: str, limit: float) -> float | None:
    """A browser-clock figure: optional, but a number within [0, limit] when given."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 <= value <= limit:
        raise StudyError(400, f"{key} must be a number from 0 to {limit:g}")
    return float(value)


@dataclass
class Server:
    """A running study server; `url` to visit, `close()` to stop it."""

    server: BaseWSGIServer
    thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = self.server.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self.thread is not None:
            self.thread.join(timeout=10)


class _Handler(WSGIRequestHandler):
    """werkzeug's request handler without the Server header (it names the server's software and version)."""

    def send_response(self, code: int, message: str | None = None) -> None:
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address (or localhost), reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(app: Flask | Callable[..., Any], host: str = "127.0.0.1", port: int = 8000, background: bool = False) -> Server:
    """Serve `app` with threads (several participants at once); port 0 picks a free one.

    In the background the server runs in a daemon thread until close(); else the caller runs
    `server.serve_forever()` itself. The caller may bind first and set `server.server.app` after.
    Raises OSError when it cannot listen (a busy port, an address this machine does not have).
    """
    if port:  # werkzeug would print and exit on a busy port; raise OSError instead, for a one-line message
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    server = Server(make_server(host, port, app, threaded=True, request_handler=_Handler))
    if background:
        server.thread = threading.Thread(target=server.server.serve_forever, name="study-server", daemon=True)
        server.thread.start()
    return server
