"""A small OpenAI-compatible server on 127.0.0.1 and a free port, for the `vlm` solver's tests: GET /v1/models
and POST /v1/chat/completions. It records every request, answers by a rule that sees only the request (never
an item's answer), and can be told to fail (a status and headers, in turn) or to take its time."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image


def image_of(body: dict[str, Any]) -> Image.Image:
    """The image a chat request carries, decoded from its PNG data URL."""
    parts = body["messages"][0]["content"]
    url = next(p["image_url"]["url"] for p in parts if p["type"] == "image_url")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


@dataclass
class Stub:
    reply: Callable[[dict[str, Any]], str] = lambda body: "ABCD"
    delay: Callable[[dict[str, Any]], float] = lambda body: 0.0
    failures: list[tuple[int, dict[str, str]]] = field(default_factory=list)  # served first, one per request
    requests: list[dict[str, Any]] = field(default_factory=list)  # each chat request: its JSON and headers
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def serving(stub: Stub | None = None) -> Iterator[Stub]:
    """The stub, serving at `stub.url` (a /v1 base URL) until the block ends."""
    stub = stub or Stub()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, document: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            data = json.dumps(document).encode()
            self.send_response(status)
            for key, value in {"Content-Type": "application/json", **(headers or {})}.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            if self.path.rstrip("/").endswith("/models"):
                return self._send(200, {"object": "list", "data": [{"id": "stub-vl", "object": "model"}]})
            return self._send(404, {"error": {"message": "not found"}})

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with stub.lock:
                stub.requests.append({"body": body, "headers": dict(self.headers)})
                failure = stub.failures.pop(0) if stub.failures else None
            if failure:
                status, headers = failure
                return self._send(status, {"error": {"message": f"stub says {status}"}}, headers)
            time.sleep(stub.delay(body))
            text = stub.reply(body)
            try:
                self._send(200, {"id": "stub", "object": "chat.completion", "created": 0, "model": body["model"],
                                 "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": text}}],
                                 "usage": {"prompt_tokens": 100, "completion_tokens": len(text),
                                           "total_tokens": 100 + len(text)}})
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (a timeout under test)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    stub.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
