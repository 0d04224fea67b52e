"""ddddocr, the most used off-the-shelf CAPTCHA OCR on PyPI (its ONNX model ships in the wheel).

What a user would pick instead of training a model, so it is our main external anchor.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

from captchas.dataset import Challenge


class DdddOcrSolver:
    """ddddocr's default classifier, as a user gets it out of the box."""

    name = "ddddocr"

    @staticmethod
    def check() -> str | None:
        try:
            import ddddocr  # noqa: F401
        except ImportError:
            return "ddddocr is not installed: pip install ddddocr"
        return None

    def __init__(self, beta: bool = False) -> None:
        with contextlib.redirect_stdout(io.StringIO()):  # it advertises on stdout
            import ddddocr

            self._ocr: Any = ddddocr.DdddOcr(show_ad=False, beta=beta)

    def solve(self, batch: Sequence[Challenge]) -> list[str]:
        with contextlib.redirect_stdout(io.StringIO()):
            return [str(self._ocr.classification(c.image)) for c in batch]
