"""ddddocr, the most used off-the-shelf CAPTCHA OCR on PyPI (its ONNX model ships in the wheel).

What a user would pick instead of training a model, so it is our main external anchor. It is held
to the data set's characters, as every reader here is (the `cnn` writes only its charset, `ocr`
has Tesseract's whitelist), so that no comparison handicaps it: out of the box its 8,210 classes
write CJK glyphs and punctuation into a set of letters and digits. docs/solvers.md has the rule
and the figures that chose the default `hold`.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

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

    def __init__(self, beta: bool = False, threads: int = 1, charset: str = "", case_sensitive: bool = True,
                 hold: str = "argmax") -> None:
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise ValueError(f"threads must be a whole number of at least 1, got {threads!r}")
        if hold not in HOLDS:
            raise ValueError(f"hold is how ddddocr keeps to the data set's characters, one of {', '.join(HOLDS)}; "
                             f"got {hold!r}")
        with contextlib.redirect_stdout(io.StringIO()):  # it advertises on stdout
            import ddddocr

            self._ocr: Any = ddddocr.DdddOcr(show_ad=False, beta=beta)
        self._engine = self._ocr.ocr_engine
        self._engine.session = session(model_path(beta), threads)
        self._input = self._engine.session.get_inputs()[0].name
        self._classes: list[str] = self._engine.charset_manager.get_charset()
        self.hold = hold if charset else "off"  # with no charset given there is nothing to hold to
        self._allowed = allowed(self._classes, charset, bool(case_sensitive)) if charset else None

    def solve(self, batch: Sequence[Challenge]) -> list[str]:
        return [self.read(c.image) for c in batch]

    def read(self, image: Any) -> str:
        """ddddocr's classification of one image, held to the charset as `hold` says. Its own steps:
        its preprocessing (64 rows, aspect kept, grey), its session, greedy CTC over the columns."""
        with contextlib.redirect_stdout(io.StringIO()):
            x = self._engine._preprocess_image(image.copy(), False)
        (scores,) = self._engine.session.run(None, {self._input: x})
        scores = scores.reshape(scores.shape[0], -1, scores.shape[-1])[:, 0]  # (T, classes) of the one image
        if self.hold == "argmax" and self._allowed is not None:
            best = self._allowed[scores[:, self._allowed].argmax(1)]
        else:
            best = scores.argmax(1)
        keep = self._allowed if self.hold == "filter" else None
        return collapse(best.tolist(), self._classes, keep)


HOLDS = ("argmax", "filter", "off")  # the best of the set's classes per column; ddddocr's set_ranges (argmax over all,
# then characters outside the set dropped); ddddocr as shipped


def allowed(classes: Sequence[str], charset: str, case_sensitive: bool) -> np.ndarray:
    """The indices of ddddocr's classes that write a character of `charset` (either case of a letter
    where scoring folds case), with the blank (class 0) first."""
    wanted = set(charset) if case_sensitive else {c.casefold() for c in charset}
    return np.array([0] + [k for k, c in enumerate(classes) if k and c and
                           (c if case_sensitive else c.casefold()) in wanted], dtype=np.int64)


def collapse(path: Sequence[int], classes: Sequence[str], keep: np.ndarray | None = None) -> str:
    """Greedy CTC as ddddocr decodes: repeats merged, blanks (0) dropped, then, with `keep`, classes
    outside it dropped (what its set_ranges does)."""
    kept = set(keep.tolist()) if keep is not None else None
    out, previous = [], None
    for k in path:
        if k != previous and k != 0 and (kept is None or k in kept):
            out.append(classes[k])
        previous = k
    return "".join(out)


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
