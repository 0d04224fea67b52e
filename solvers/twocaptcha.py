"""2Captcha, a human CAPTCHA-solving service, as a solver: people paid per solve, through the official
client (`2captcha-python`). The "human farm" bots use, and a human baseline on any scheme on demand.

Each image goes as a normal CAPTCHA (base64 PNG, with the set's case rule, and digits or letters only where
the set has only those); the client polls for the answer. Per item the run keeps the answer, the service's
own time (sent to answered) and the price it charged (`action=get2`). The key is read from the environment
variable `api_key_env` names, never an option. Every answer is paid for: the run asks each item once.
"""

from __future__ import annotations

import string
import time
from typing import Any

from solvers.remote import Remote, png_base64, service_key, whole_numbers


def numeric_rule(charset: str) -> int:
    """2Captcha's `numeric`: 1 digits only, 2 letters only, 0 no preference."""
    if charset and set(charset) <= set(string.digits):
        return 1
    if charset and set(charset) <= set(string.ascii_letters):
        return 2
    return 0


class TwoCaptchaSolver(Remote):
    """Sends each image to 2Captcha's workers and waits for their answer."""

    name = "2captcha"
    in_default_run = False  # needs a key, and money
    paid = True  # every answer is billed: the run asks each item once (solvers/base.py)

    def __init__(self, api_key_env: str = "TWOCAPTCHA_API_KEY", server: str = "2captcha.com", polling: int = 5,
                 timeout: float = 120.0, concurrency: int = 8, charset: str = "", case_sensitive: bool = True) -> None:
        from twocaptcha import TwoCaptcha  # requests loads where this solver runs, not where solvers are listed
        from twocaptcha.api import ApiException, NetworkException

        key = service_key(api_key_env, "2Captcha", "2captcha")
        whole_numbers(polling=polling, concurrency=concurrency)
        self.client = TwoCaptcha(key, server=server, pollingInterval=polling, defaultTimeout=float(timeout),
                                 extendedResponse=True)
        super().__init__(concurrency, "2captcha")
        self.key, self.server, self.errors = key, server, (ApiException, NetworkException)
        self.rules = {"caseSensitive": int(bool(case_sensitive)), "numeric": numeric_rule(charset)}
        try:
            self.balance = self.client.balance()  # a service that is not there, or a key it refuses, stops the run first
        except (ApiException, NetworkException, ValueError) as e:
            raise ValueError(f"2Captcha at {server} refused or could not be reached ({type(e).__name__}: "
                             f"{' '.join(str(e).split())[:200]}): check {api_key_env} and -o 2captcha.server") from None

    def read(self, image: Any) -> tuple[str, dict[str, Any]]:
        start = time.perf_counter()
        done = self.client.normal(png_base64(image), **self.rules)
        answer, ident = str(done.get("code") or ""), str(done["captchaId"])
        seconds = time.perf_counter() - start
        details: dict[str, Any] = {"service_id": ident, "reply": answer, "service_seconds": seconds}
        try:  # get2: the answer again, with the price this solve was charged
            said = self.client.api_client.res(key=self.key, action="get2", id=ident).split("|")
            details["usd"] = float(said[2]) if len(said) == 3 and said[0] == "OK" else None
        except (*self.errors, ValueError):
            details["usd"] = None  # the answer stands; its price is unknown
        return answer, details
