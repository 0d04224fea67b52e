"""The solver contract: a batch of challenges in, one answer each out, in the same order.

A solver is any class constructed with keyword options whose `solve(batch)` returns a list of
str. Heavy setup (models, engines) happens in the constructor, never at import. A solver sees a
`Challenge` (opaque id and decoded image) and nothing else: no answer, file name or path.
An optional `check()` static method tells whether the solver can run on this machine, and an
optional `files(**options)` static method names the files those options make it load (name -> path),
whose sha256 a run records in its provenance beside those of file-valued options.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from captchas.dataset import Challenge


@runtime_checkable
class Solver(Protocol):
    name: str

    def solve(self, batch: Sequence[Challenge]) -> list[str]:
        """One answer per challenge, in the order given."""
        ...


__all__ = ["Challenge", "Solver"]
