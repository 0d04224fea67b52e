"""ddddocr, the most used off-the-shelf CAPTCHA OCR on PyPI (its ONNX model ships in the wheel).

What a user would pick instead of training a model, so it is our main external anchor.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from pathlib import Path
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

    @staticmethod
    def threads(threads: int = 1, **_: Any) -> int:
        """One by default, as every solver: its ONNX Runtime session otherwise keeps a pool of a thread per
        core, which any other load on the machine stalls (24.8 ms a item beside a nice 19 job, 10.6 ms with
        one thread, on 2 cores: docs/speed.md). `-o threads=N` gives it N."""
        return threads

    def __init__(self, beta: bool = False, threads: int = 1) -> None:
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise ValueError(f"threads must be a whole number of at least 1, got {threads!r}")
        with contextlib.redirect_stdout(io.StringIO()):  # it advertises on stdout
            import ddddocr

            self._ocr: Any = ddddocr.DdddOcr(show_ad=False, beta=beta)
        self._ocr.ocr_engine.session = session(model_path(beta), threads)

    def solve(self, batch: Sequence[Challenge]) -> list[str]:
        with contextlib.redirect_stdout(io.StringIO()):
            return [str(self._ocr.classification(c.image)) for c in batch]


def model_path(beta: bool) -> Path:
    """The ONNX model ddddocr's classifier loads: common.onnx with beta, else common_old.onnx (as ddddocr 1.6 chooses)."""
    import ddddocr

    path = Path(ddddocr.__file__).parent / ("common.onnx" if beta else "common_old.onnx")
    if not path.is_file():
        raise ValueError(f"ddddocr's model {path.name} is not where ddddocr {_version()} keeps it: reinstall ddddocr")
    return path


def session(path: Path, threads: int) -> Any:
    """An ONNX Runtime session of `path` on the CPU with `threads` threads, in place of ddddocr's own (which
    takes the library's default: a spinning pool of a thread per core). Same model, same answers."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: the runtime must not write to the terminal
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _version() -> str:
    from importlib.metadata import version

    return version("ddddocr")
