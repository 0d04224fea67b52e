"""A vision-language model as a solver, through any OpenAI-compatible Chat Completions endpoint (OpenAI,
vLLM, llama.cpp's server, Ollama, LM Studio), with the official `openai` client.

Each image goes as a PNG data URL in one request, with a prompt that may name the data set's characters,
never the answer. The reply is parsed down to the answer (`parse`). Requests within a batch run
`concurrency` at a time; a 429 or 5xx is retried with backoff, honouring Retry-After; an item whose
request still fails raises, so the run records that item's error and goes on. The key is read from the
environment variable named by `api_key_env` and is never an option, so it never reaches a run's files.
"""

from __future__ import annotations

import email.utils
import os
import re
import threading
import time
import urllib.parse
from typing import Any

from solvers.remote import Remote, png_base64

DEFAULT_URL = "http://127.0.0.1:8000/v1"  # vLLM's default; Ollama's is http://127.0.0.1:11434/v1
DEFAULT_PROMPT = ("This image is a CAPTCHA. Read the characters it shows{length}{charset}. Reply with those characters "
                  "only: no quotes, no spaces, no other words.")
CHARSET_CLAUSE = "; they are drawn from {charset!r}"
LENGTH_CLAUSE = " ({length} of them)"
NO_KEY = "unused"  # what the client sends where no key is set: local servers (vLLM, Ollama, llama.cpp) take any
QUOTED = re.compile(r"[\"'`“”‘’«»]\s*([^\"'`“”‘’«»\n]+?)\s*[\"'`“”‘’«»]")  # "AB3D", `AB3D`, «AB3D»
BACKOFF = 0.5  # seconds before the first retry where the server names no Retry-After; doubled each time
LONGEST_WAIT = 60.0  # seconds: the most one Retry-After is honoured for


def parse(reply: str, charset: str = "", case_sensitive: bool = True) -> str:
    """The answer in a model's reply: the last text inside quotes or backticks if there is any, else what
    follows the last colon ("Answer: AB3D"), else the reply's last word; then only the characters of
    `charset` (either case of them where the set is scored without case; letters and digits where no
    charset is given). Empty where nothing is left."""
    text = re.sub(r"^```\w*\s*|\s*```$", "", reply.strip())
    quoted = QUOTED.findall(text)
    if quoted:
        text = quoted[-1]
    elif ":" in text:
        text = text.rsplit(":", 1)[1]
    words = text.split()
    text = words[-1] if words else ""
    if not charset:
        return "".join(c for c in text if c.isalnum())
    allowed = set(charset) if case_sensitive else {c.casefold() for c in charset}
    return "".join(c for c in text if (c if case_sensitive else c.casefold()) in allowed)


def png_data_url(image: Any) -> str:
    """The image as a PNG data URL: its pixels only (no file name, no metadata)."""
    return "data:image/png;base64," + png_base64(image)


def retry_after(headers: Any) -> float | None:
    """Seconds a Retry-After header asks to wait (a number of seconds, or an HTTP date); None without one."""
    value = headers.get("retry-after") if headers is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time()) if when else None


class VLMSolver(Remote):
    """Asks a vision-language model to read each image."""

    name = "vlm"
    in_default_run = False  # needs an endpoint

    @staticmethod
    def paid(base_url: str = DEFAULT_URL, paid: bool | None = None, **_: Any) -> bool:
        """Whether each request costs money, so that the run asks each item once (solvers/base.py): as
        `paid` says, else yes for any host but this machine's (a local server costs only time)."""
        if paid is not None:
            return bool(paid)
        host = urllib.parse.urlparse(base_url).hostname or ""
        return not (host == "localhost" or host == "::1" or host.startswith("127."))

    def __init__(self, base_url: str = DEFAULT_URL, model: str = "", api_key_env: str = "OPENAI_API_KEY",
                 prompt: str = DEFAULT_PROMPT, max_tokens: int = 16, temperature: float = 0.0, concurrency: int = 8,
                 timeout: float = 60.0, retries: int = 4, price_in: float | None = None, price_out: float | None = None,
                 paid: bool | None = None, charset: str = "", case_sensitive: bool = True, length: str = "") -> None:
        # `paid` is the runner's to read (VLMSolver.paid); an option here so that -o vlm.paid= is taken
        import openai  # the client (and httpx, pydantic) load where this solver runs, not where solvers are listed

        if not model:
            raise ValueError("model is the name the endpoint serves: give -o vlm.model=NAME (e.g. qwen2.5-vl-7b)")
        for option, value, least in (("max_tokens", max_tokens, 1), ("concurrency", concurrency, 1),
                                     ("retries", retries, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ValueError(f"{option} must be a whole number of at least {least}, got {value!r}")
        if not (isinstance(timeout, (int, float)) and 0 < timeout < float("inf")):
            raise ValueError(f"timeout must be a number of seconds above 0, got {timeout!r}")
        for option, price in (("price_in", price_in), ("price_out", price_out)):
            if price is not None and not (isinstance(price, (int, float)) and 0 <= price < float("inf")):
                raise ValueError(f"{option} is US dollars per million tokens, 0 or more, got {price!r}")
        if "{" in prompt.replace("{charset}", "").replace("{length}", ""):
            raise ValueError("prompt may name {charset} and {length} (the set's) and no other {field}: nothing of an "
                             "item is given")
        self.model, self.max_tokens, self.temperature = model, max_tokens, float(temperature)
        self.retries = retries
        self.charset, self.case_sensitive, self.base_url = charset, bool(case_sensitive), base_url
        self.prompt = (prompt.replace("{charset}", CHARSET_CLAUSE.format(charset=charset) if charset else "")
                       .replace("{length}", LENGTH_CLAUSE.format(length=length) if length else ""))
        self.openai = openai
        self.client = openai.OpenAI(base_url=base_url, api_key=os.environ.get(api_key_env) or NO_KEY,
                                    timeout=float(timeout), max_retries=0)
        self.prices = (price_in, price_out) if price_in is not None or price_out is not None else None
        super().__init__(concurrency, "vlm")
        self.usage = {"requests": 0, "tokens_in": 0, "tokens_out": 0}  # this process's, all together
        self._lock = threading.Lock()
        try:
            self.client.models.list()  # a run against an endpoint that is not there stops before it writes
        except (openai.APIConnectionError, openai.APITimeoutError) as e:
            cause = e.__cause__ or e
            raise ValueError(f"cannot reach {base_url} ({type(cause).__name__}: {cause}): start the server, or give "
                             "-o vlm.base_url=URL") from None
        except openai.APIStatusError as e:
            if e.status_code in (401, 403):
                raise ValueError(f"{base_url} refused the key ({e.status_code}): set {api_key_env} to a valid key, or "
                                 "name another variable with -o vlm.api_key_env=NAME") from None
            # some compatible servers have no /models: the first request says more

    def read(self, image: Any) -> tuple[str, dict[str, Any]]:
        """One image's answer and its details, retried on a 429, a 5xx, a lost connection or a timeout."""
        reply, usage, requests = self._ask(png_data_url(image))
        details: dict[str, Any] = {"reply": reply, **usage, "requests": requests}
        if self.prices:
            price_in, price_out = (p or 0.0 for p in self.prices)
            details["usd"] = (usage["tokens_in"] * price_in + usage["tokens_out"] * price_out) / 1e6
        return parse(reply, self.charset, self.case_sensitive), details

    def _ask(self, url: str) -> tuple[str, dict[str, int], int]:
        messages = [{"role": "user", "content": [{"type": "text", "text": self.prompt},
                                                 {"type": "image_url", "image_url": {"url": url}}]}]
        e: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self._wait(e, attempt))
            try:
                done = self.client.chat.completions.create(model=self.model, messages=messages,  # type: ignore[arg-type]
                                                           max_tokens=self.max_tokens, temperature=self.temperature)
            except (self.openai.RateLimitError, self.openai.InternalServerError, self.openai.APIConnectionError,
                    self.openai.APITimeoutError) as failed:
                e = failed
                continue
            usage = self._count(done.usage)
            return (done.choices[0].message.content or "" if done.choices else ""), usage, attempt + 1
        assert e is not None
        raise e

    def _wait(self, e: Exception | None, attempt: int) -> float:
        asked = retry_after(getattr(getattr(e, "response", None), "headers", None))
        return min(asked, LONGEST_WAIT) if asked is not None else BACKOFF * 2 ** (attempt - 1)

    def _count(self, usage: Any) -> dict[str, int]:
        """One answered request's tokens, added to the process's `usage`."""
        tokens = {"tokens_in": int(getattr(usage, "prompt_tokens", 0) or 0),
                  "tokens_out": int(getattr(usage, "completion_tokens", 0) or 0)}
        with self._lock:
            self.usage["requests"] += 1
            self.usage["tokens_in"] += tokens["tokens_in"]
            self.usage["tokens_out"] += tokens["tokens_out"]
        return tokens

    @staticmethod
    def threads(**_: Any) -> int:
        return 1  # its work is waiting on the endpoint; the requests run on their own threads
