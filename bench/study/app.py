"""The study web app (Flask): consent, then one CAPTCHA at a time, Submit or Skip, a progress count.

Pages, JSON and URLs carry opaque tokens only, never an answer or anything derived from one:
images are re-encoded from pixels (no metadata) and served under per-participant tokens. The
server times each answer from the moment it sent the image to the moment the answer arrived.
"""

from __future__ import annotations

import io
import json
import math
import threading
import unicodedata
from dataclasses import dataclass
from importlib import resources
from typing import Any

from flask import Flask, Response, jsonify, request
from PIL import Image
from werkzeug.exceptions import HTTPException
from werkzeug.serving import BaseWSGIServer, make_server

from bench.study.store import StudyError, Store
from captchas import dataset as ds

MAX_ANSWER = 32  # characters; longer answers are refused (the text box stops there too)
MAX_BODY = 4096  # bytes of a request body
MAX_CLIENT_SECONDS = 86_400.0


def create_app(dataset: ds.Dataset, db: str, title: str = "Read the characters") -> Flask:
    """The study app for `dataset`, recording into the SQLite file `db` (made if absent)."""
    store = Store.create(db, dataset.hash, [s.id for s in dataset.samples], str(dataset.path.resolve()))
    files = {s.id: s for s in dataset.samples}
    images: dict[str, bytes] = {}
    lock = threading.Lock()
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    page = resources.files("bench.study").joinpath("page.html").read_text(encoding="utf-8").replace("{{title}}", title)
    script = resources.files("bench.study").joinpath("study.js").read_bytes()

    def png(item_id: str) -> bytes:
        """The item's pixels as a fresh PNG, checked against the manifest's sha256 first."""
        with lock:
            if item_id in images:
                return images[item_id]
        sample = files[item_id]
        data = (dataset.path / sample.file).read_bytes()
        if ds.sha256_bytes(data) != sample.sha256:
            raise StudyError(500, "an image of the data set changed on disk: run captcha-bench verify")
        with Image.open(io.BytesIO(data)) as im:
            out = io.BytesIO()
            im.convert("RGB").save(out, format="PNG")  # pixels only: no text chunks, no EXIF
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
        pid = store.new_participant(request.headers.get("User-Agent", ""))
        return jsonify(participant=pid, **_next(store, pid)), 201

    @app.get("/api/participants/<pid>/next")
    def next_item(pid: str) -> Response:
        return jsonify(participant=pid, **_next(store, pid))

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
        timing = [_client_number(body, k, limit) for k, limit in
                  (("client_seconds", MAX_CLIENT_SECONDS), ("shown_at", 1e14), ("submitted_at", 1e14))]
        after = store.answer(pid, token, text, skipped, *timing)
        return jsonify(participant=pid, **_view(pid, after)), 201

    return app


def _next(store: Store, pid: str) -> dict[str, Any]:
    return _view(pid, store.next(pid))


def _view(pid: str, step: Any) -> dict[str, Any]:
    view: dict[str, Any] = {"position": step.position, "total": step.total, "done": step.token is None}
    if step.token is not None:
        view["token"] = step.token
        view["image"] = f"/api/participants/{pid}/images/{step.token}"
    return view


def _json() -> dict[str, Any]:
    raw = request.get_data(cache=False)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise StudyError(400, "the request body is not UTF-8: send JSON text") from None
    try:
        body = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError:
        raise StudyError(400, "the request body is not JSON") from None
    if not isinstance(body, dict):
        raise StudyError(400, "the request body must be a JSON object")
    return body


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


def serve(app: Flask, host: str = "127.0.0.1", port: int = 8000, background: bool = False) -> Server:
    """Serve `app` with threads (several participants at once); port 0 picks a free one.

    In the background the server runs in a daemon thread until close(); else the caller runs
    `server.serve_forever()` itself.
    """
    if port:  # werkzeug would print and exit on a busy port; raise OSError instead, for a one-line message
        import socket

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    server = Server(make_server(host, port, app, threaded=True))
    if background:
        server.thread = threading.Thread(target=server.server.serve_forever, name="study-server", daemon=True)
        server.thread.start()
    return server
