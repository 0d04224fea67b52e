"""A solver that always gives the same answer: the floor any real solver must beat, and the
stand-in that measures the harness's own overhead (no model, no work)."""

from __future__ import annotations

from collections.abc import Sequence

from captchas.dataset import Challenge


class ConstantSolver:
    """Answers `answer` to every challenge."""

    name = "constant"
    in_default_run = False  # a baseline, run only when asked for

    def __init__(self, answer: str = "AAAA") -> None:
        if not isinstance(answer, str):
            raise ValueError(f"answer must be text, got {answer!r}")
        self.answer = answer

    def solve(self, batch: Sequence[Challenge]) -> list[str]:
        return [self.answer] * len(batch)
