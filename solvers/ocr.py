"""Tesseract OCR baseline, in process through tesserocr (a process spawn per image costs ~200 ms).

Preprocessing: grey, 2x upscale, median filter against the noise dots; one text line (PSM 8,
single word); a character whitelist from the data set's charset.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageFilter

from captchas.dataset import Challenge

TESSDATA_DIRS = ("/usr/share/tesseract-ocr/5/tessdata", "/usr/share/tesseract-ocr/4.00/tessdata", "/usr/share/tessdata")


def _tessdata() -> Path | None:
    candidates = [os.environ["TESSDATA_PREFIX"]] if os.environ.get("TESSDATA_PREFIX") else []
    for folder in map(Path, [*candidates, *TESSDATA_DIRS]):
        if (folder / "eng.traineddata").is_file():
            return folder
    return None


class OCRSolver:
    """Tesseract with light preprocessing; `charset` restricts the characters it may answer."""

    name = "ocr"

    @staticmethod
    def check() -> str | None:
        try:
            import tesserocr  # noqa: F401
        except ImportError:
            return "tesserocr is not installed: pip install tesserocr"
        if _tessdata() is None:
            return "tesseract's eng.traineddata not found: install tesseract-ocr-eng (or set TESSDATA_PREFIX)"
        return None

    def __init__(self, charset: str = "", psm: int = 8, scale: int = 2, median: int = 3) -> None:
        import tesserocr

        if scale < 1 or median < 0 or median % 2 == 0 and median:
            raise ValueError("scale must be >= 1 and median an odd size or 0")
        self.scale, self.median = scale, median
        tessdata = _tessdata()
        if tessdata is None:
            raise ValueError(OCRSolver.check() or "tessdata not found")
        self._api: Any = tesserocr.PyTessBaseAPI(
            path=str(tessdata) + "/", lang="eng", psm=psm, oem=tesserocr.OEM.LSTM_ONLY
        )
        if charset:
            self._api.SetVariable("tessedit_char_whitelist", charset)

    def _prepare(self, image: Image.Image) -> Image.Image:
        grey = image.convert("L")
        if self.scale > 1:
            grey = grey.resize((grey.width * self.scale, grey.height * self.scale), Image.Resampling.BICUBIC)
        if self.median:
            grey = grey.filter(ImageFilter.MedianFilter(self.median))
        return grey

    def solve(self, batch: Sequence[Challenge]) -> list[str]:
        answers = []
        for challenge in batch:
            self._api.SetImage(self._prepare(challenge.image))
            answers.append("".join(self._api.GetUTF8Text().split()))
        return answers
