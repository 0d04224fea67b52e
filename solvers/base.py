"""The solver contract: a batch of challenges in, one answer each out, in the same order.

A solver is any class constructed with keyword options whose `solve(batch)` returns a list of
str. Heavy setup (models, engines) happens in the constructor, never at import. A solver sees a
`Challenge` (opaque id and decoded image) and nothing else: no answer, file name or path.

Beside `name` and `solve`, a solver class may declare these optional hooks; the runner asks for
them only through the functions below, which give the default when a hook is absent:

- `check() -> str | None` (static): why the solver cannot run on this machine, or None.
  Default: it can. (`can_run`)
- `files(**options) -> dict[str, str]` (static): the files these options make it load, name to
  path (e.g. shipped weights chosen by preset); a run records their sha256. Default: none.
  (`declared_files`)
- `notes(about, **options) -> list[str]` (static): warnings about reading this data set with these
  options, e.g. weights trained on another scheme or image size, or on these very items. `about`
  describes the data set: `sha256`, `scheme` (None for an imported folder), `image` (the median
  image's [width, height]), `charset`, `case_sensitive`. The run puts them in its summary and says
  them. Default: none. (`notes_for`)
- `resources(**options) -> dict[str, float]` (static): what one copy of the solver with these
  options needs of a worker, as Dask resources: `{"GPU": 1}` for a model on a CUDA device, so
  that a Dask cluster places it on workers started with `--resources GPU=1`. Default: nothing.
  (`resources_for`)
- `threads(**options) -> int` (static): the CPU threads one solve() call is meant to use. The
  runner starts the solver's process with its math libraries held to that many
  (`OMP_NUM_THREADS` and kin), so that a timed call does not wait on idle threads of a pool
  that other load on the machine has slowed down. A solver whose libraries keep pools of their
  own (ONNX Runtime's) sizes them to it too. Default: 1; a solver that asks for more says why
  in this hook's docstring. (`threads_for`)
- `in_default_run: bool` (class attribute): False for baselines and solvers that need options
  to work, which a run without `--solver` then leaves out. Default: True. (`in_default_run`)
- `paid(**options) -> bool` (static), or a `paid: bool` class attribute: each answer costs money (a
  hosted model, a solving service). The runner then asks each item once: no warm-up, no throughput
  pass, and a shard of one item, so that every answer is written as it comes and a resumed run
  asks no answered item again. Default: False. (`is_paid`)
- `details() -> list[dict]`: what the last solve() call did for each challenge, as JSON-able
  dicts (a reply's text, its tokens, its price in `usd`); the run keeps them in details.jsonl and
  sums `usd` into a cost per 1,000 solves. Default: nothing but the CPU time the runner measures.
- `replay(ids) -> dict[str, list[Recorded]]`: the solver replays recorded human answers rather
  than reading images; the runner asks it for the answers to item ids, in process. A replaying
  solver also has `dataset_sha256` (the data set its answers were recorded on, or None) and
  `item_ids()` (every item it has an answer for), which the runner checks against the data set
  before it writes anything. (`replays`, and the `Replaying` protocol)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from captchas.dataset import Challenge

if TYPE_CHECKING:
    from captchas.recorded import Recorded


@runtime_checkable
class Solver(Protocol):
    name: str

    def solve(self, batch: Sequence[Challenge]) -> list[str]:
        """One answer per challenge, in the order given."""
        ...


class Replaying(Protocol):
    """A solver that replays recorded answers (see the module's notes)."""

    name: str
    dataset_sha256: str | None

    def item_ids(self) -> set[str]: ...

    def replay(self, ids: Sequence[str]) -> dict[str, list[Recorded]]: ...


def can_run(cls: Any) -> str | None:
    """The class's `check()`: why it cannot run here, or None."""
    check = getattr(cls, "check", None)
    return check() if callable(check) else None  # type: ignore[no-any-return]


def declared_files(cls: Any, options: dict[str, Any]) -> dict[str, str]:
    """The class's `files(**options)`: files those options load, name -> path."""
    files = getattr(cls, "files", None)
    return {key: str(path) for key, path in files(**options).items()} if callable(files) else {}


def notes_for(cls: Any, about: dict[str, Any], options: dict[str, Any]) -> list[str]:
    """The class's `notes(about, **options)`: warnings about this data set, in one line each."""
    notes = getattr(cls, "notes", None)
    if not callable(notes):
        return []
    try:
        return [" ".join(str(n).split()) for n in notes(about, **options)]
    except Exception as e:  # a plugin's hook must not cost the run its summary
        return [f"its notes hook failed ({type(e).__name__}: {' '.join(str(e).split())[:200]})"]


def resources_for(cls: Any, options: dict[str, Any]) -> dict[str, float]:
    """The class's `resources(**options)`: what one copy needs of a Dask worker, e.g. {"GPU": 1}."""
    resources = getattr(cls, "resources", None)
    return {str(k): float(v) for k, v in resources(**options).items()} if callable(resources) else {}


def threads_for(cls: Any, options: dict[str, Any]) -> int:
    """The class's `threads(**options)`: the CPU threads one solve() call is meant to use, 1 when absent."""
    threads = getattr(cls, "threads", None)
    if not callable(threads):
        return 1
    n = threads(**options)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"its threads hook gave {n!r}, not a whole number of threads of at least 1")
    return n


def in_default_run(cls: Any) -> bool:
    """The class's `in_default_run`, True when absent."""
    return bool(getattr(cls, "in_default_run", True))


def is_paid(cls: Any, options: dict[str, Any]) -> bool:
    """The class's `paid(**options)` (or `paid` attribute): whether each answer costs money; False when absent."""
    paid = getattr(cls, "paid", False)
    return bool(paid(**options) if callable(paid) else paid)


def replays(cls: Any) -> bool:
    """Whether the class replays recorded answers (it has `replay(ids)`)."""
    return callable(getattr(cls, "replay", None))


__all__ = ["Challenge", "Replaying", "Solver", "can_run", "declared_files", "in_default_run", "is_paid", "notes_for",
           "replays", "resources_for", "threads_for"]
