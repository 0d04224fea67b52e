"""Stand-ins for two human solving services' APIs on 127.0.0.1: 2Captcha's in.php/res.php and Anti-Captcha's
JSON API, over HTTPS with a certificate made for the test (their clients speak HTTPS only; `requests` trusts
the certificate through REQUESTS_CA_BUNDLE). They answer by a rule that sees only the image, never an item's
answer, and record every call."""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

PRICE = "0.00099"  # what the stubs say each solve cost, in US dollars


@dataclass
class Service:
    reply: Callable[[dict[str, str]], str] = lambda form: "ABCD"
    submitted: list[dict[str, str]] = field(default_factory=list)  # each in.php form
    polled: list[dict[str, str]] = field(default_factory=list)  # each res.php query
    server: str = ""  # host:port, as the client's `server` option takes it
    answers: dict[str, str] = field(default_factory=dict)
    key: str = ""  # the key Anti-Captcha's stand-in accepts
    lock: threading.Lock = field(default_factory=threading.Lock)


def certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, made with openssl."""
    cert, key = folder / "stub.crt", folder / "stub.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


class _Handler(BaseHTTPRequestHandler):
    service: Service

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, text: str) -> None:
        data = text.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextmanager
def _tls(folder: Path, handler: type[_Handler], service: Service) -> Iterator[tuple[Service, Path]]:
    """`handler` serving `service` over HTTPS on 127.0.0.1 until the block ends; the certificate to trust."""
    cert, key = certificate(folder)
    handler.service = service
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    service.server = f"127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield service, cert
    finally:
        server.shutdown()
        server.server_close()


def serving(folder: Path, service: Service | None = None) -> Any:
    """2Captcha's stand-in (`server` option: service.server) and the certificate to trust."""
    service = service or Service()

    class Handler(_Handler):
        def do_POST(self) -> None:  # noqa: N802
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode()).items()}
            with service.lock:
                service.submitted.append(form)
                ident = str(1000 + len(service.submitted))
                service.answers[ident] = service.reply(form)
            self._send(f"OK|{ident}")

        def do_GET(self) -> None:  # noqa: N802
            query = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
            with service.lock:
                service.polled.append(query)
            action = query.get("action")
            if action == "getbalance":
                return self._send("12.5")
            answer = service.answers.get(query.get("id", ""))
            if answer is None:
                return self._send("ERROR_WRONG_CAPTCHA_ID")
            if action == "get2":
                return self._send(f"OK|{answer}|{PRICE}")
            return self._send(json.dumps({"status": 1, "request": answer}))

    return _tls(folder, Handler, service)


def serving_anticaptcha(folder: Path, service: Service | None = None) -> Any:
    """Anti-Captcha's stand-in (`api_url` option: https://service.server/) and the certificate to trust."""
    service = service or Service()

    class Handler(_Handler):
        def do_POST(self) -> None:  # noqa: N802
            method = self.path.strip("/")
            data = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with service.lock:
                service.polled.append({"method": method, **{k: v for k, v in data.items() if k != "task"}})
                if data.get("clientKey") != service.key:
                    return self._send(json.dumps({"errorId": 1, "errorCode": "ERROR_KEY_DOES_NOT_EXIST",
                                                  "errorDescription": "Account authorization key not found"}))
                if method == "getBalance":
                    return self._send(json.dumps({"errorId": 0, "balance": 12.5}))
                if method == "createTask":
                    service.submitted.append(data["task"])
                    ident = str(1000 + len(service.submitted))
                    service.answers[ident] = service.reply(data["task"])
                    return self._send(json.dumps({"errorId": 0, "taskId": int(ident)}))
                answer = service.answers[str(data["taskId"])]
            self._send(json.dumps({"errorId": 0, "status": "ready", "solution": {"text": answer}, "cost": PRICE,
                                   "createTime": 1700000000, "endTime": 1700000007, "solveCount": 1}))

    return _tls(folder, Handler, service)
