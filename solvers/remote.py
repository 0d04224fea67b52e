"""What the solvers that ask someone else share (`vlm`, `2captcha`, `anticaptcha`): the image as base64 PNG, one
request per image, `concurrency` of them at a time, and each request's details kept for the run."""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from captchas.dataset import Challenge


def png_base64(image: Any) -> str:
    """The image's pixels as a base64 PNG: no file name, no metadata."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def service_key(api_key_env: str, service: str, solver: str) -> str:
    """The key in the environment variable `api_key_env`; a one-line refusal where it is not set."""
    key = os.environ.get(api_key_env)
    if not key:
        raise ValueError(f"set {api_key_env} to your {service} key (or name another variable with "
                         f"-o {solver}.api_key_env=NAME): the key is never an option")
    return key


def whole_numbers(**values: Any) -> None:
    """Refuse, naming the option, a value that is not a whole number of at least 1."""
    for option, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{option} must be a whole number of at least 1, got {value!r}")


class Remote:
    """solve() and details() for a solver whose `read(image)` gives one image's answer and its details."""

    def __init__(self, concurrency: int, name: str) -> None:
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix=name)
        self._last: list[dict[str, Any]] = []  # the last solve() call's details, per challenge

    def read(self, image: Any) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def solve(self, batch: Sequence[Challenge]) -> list[str]:
        """One request per image, `concurrency` at a time; the answers in the batch's order."""
        read = list(self._pool.map(lambda c: self.read(c.image), batch))
        self._last = [details for _, details in read]
        return [answer for answer, _ in read]

    def details(self) -> list[dict[str, Any]]:
        """Per challenge of the last solve() call, what its request did (the run keeps it in details.jsonl)."""
        return self._last
