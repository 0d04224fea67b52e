"""Anti-Captcha, a human CAPTCHA-solving service, as a solver: people paid per solve, through the official
client (`anticaptchaofficial`).

Each image goes as an ImageToTextTask (base64 PNG, with the set's case rule, and digits or letters only
where the set has only those); the client polls for the result. Per item the run keeps the answer, the
service's own times (created to solved) and the price it charged (`cost`). The key is read from the
environment variable `api_key_env` names, never an option. Every answer is paid for: the run asks each
item once. The client reaches only api.anti-captcha.com; `api_url` sends its requests to another address
(a compatible proxy, or a test's stand-in) through a transport of its session.
"""

from __future__ import annotations

import time
from typing import Any

from solvers.remote import Remote, png_base64, service_key, whole_numbers
from solvers.twocaptcha import numeric_rule

OFFICIAL = "https://api.anti-captcha.com/"


def _redirect(to: str) -> Any:
    """A requests transport that sends the client's requests for OFFICIAL to `to` instead."""
    from requests.adapters import HTTPAdapter

    class Redirect(HTTPAdapter):
        def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            request.url = to + request.url[len(OFFICIAL):]
            return super().send(request, *args, **kwargs)

    return Redirect()


class AntiCaptchaSolver(Remote):
    """Sends each image to Anti-Captcha's workers and waits for their answer."""

    name = "anticaptcha"
    in_default_run = False  # needs a key, and money
    paid = True  # every answer is billed: the run asks each item once (solvers/base.py)

    def __init__(self, api_key_env: str = "ANTICAPTCHA_API_KEY", api_url: str = OFFICIAL, timeout: int = 120,
                 concurrency: int = 8, charset: str = "", case_sensitive: bool = True) -> None:
        from anticaptchaofficial import antinetworking  # requests loads where this solver runs

        key = service_key(api_key_env, "Anti-Captcha", "anticaptcha")
        whole_numbers(timeout=timeout, concurrency=concurrency)
        url = api_url if api_url.endswith("/") else api_url + "/"
        if url != OFFICIAL:
            antinetworking.session.mount(OFFICIAL, _redirect(url))
        self.client_class, self.key, self.timeout, self.url = antinetworking.antiNetworking, key, timeout, url
        super().__init__(concurrency, "anticaptcha")
        self.task = {"type": "ImageToTextTask", "case": bool(case_sensitive), "numeric": numeric_rule(charset)}
        client = self._client()
        try:  # a service that is not there, or a key it refuses, stops the run before it writes
            said = client.make_request("getBalance", {"clientKey": key}) or {}
        except ValueError as e:  # a reply that is not JSON
            said = {"errorCode": f"not the Anti-Captcha API ({type(e).__name__})"}
        if not said or said.get("errorId"):
            why = said.get("errorCode") or client.err_string or "no answer"
            raise ValueError(f"Anti-Captcha at {url} refused or could not be reached ({why}): check {api_key_env} "
                             "and -o anticaptcha.api_url")

    def _client(self) -> Any:
        """A client of its own per request: the official one keeps its task's id on itself."""
        client = self.client_class()
        client.set_key(self.key)
        return client

    def read(self, image: Any) -> tuple[str, dict[str, Any]]:
        client = self._client()
        start = time.perf_counter()
        task = {**self.task, "body": png_base64(image)}
        if client.create_task({"clientKey": self.key, "task": task, "softId": 0}) != 1:
            raise RuntimeError(f"Anti-Captcha took no task: {client.err_string or client.error_code}")
        result = client.wait_for_result(self.timeout)
        if not result:
            raise RuntimeError(f"Anti-Captcha gave no answer: {client.err_string or client.error_code}")
        answer = str((result.get("solution") or {}).get("text") or "")
        created, ended = result.get("createTime"), result.get("endTime")
        cost = result.get("cost")
        return answer, {"service_id": str(client.task_id), "reply": answer, "service_seconds": time.perf_counter() - start,
                        "service_solve_seconds": ended - created if isinstance(created, int) and isinstance(ended, int)
                        else None, "usd": float(cost) if cost is not None else None}
