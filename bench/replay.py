"""Replaying recorded human answers: the runner's job, through the `human` solver.

`HumanSolver` is not a model: the runner asks it `replay(ids)` instead of `solve(batch)` and
writes one attempt row per recorded answer (a person, an attempt), with the recorded time. It
sees item ids only, never images or answers. Answers come from the study app's database
(`captcha-bench record`) or an answers CSV (its export, or an import such as TuringPass, whose
data set names its answers file itself).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from pathlib import Path

from bench.run import SolverSpec
from bench.runfolder.records import SKIPPED, Attempt, scored
from bench.study.store import Store
from captchas import recorded
from captchas.dataset import Challenge, Dataset, DatasetError, Sample
from solvers import base
from solvers.base import Replaying
from solvers.registry import SolverError, load, resolve

SQLITE_MAGIC = b"SQLite format 3\x00"


def read_recorded(path: Path) -> list[recorded.Recorded]:
    """Recorded answers from a study database or an answers CSV (told apart by their first bytes)."""
    if not path.is_file():
        raise ValueError(f"answers file {path} does not exist: give a study database (captcha-bench record --db) "
                         "or an answers CSV (captcha-bench humans export)")
    with path.open("rb") as f:
        head = f.read(len(SQLITE_MAGIC))
    try:
        if head == SQLITE_MAGIC:
            return Store.open_existing(path).export()
        return recorded.read_csv(path)
    except DatasetError as e:
        raise ValueError(str(e)) from None


class HumanSolver:
    """Replays people's answers; items nobody answered are left unattempted, not wrong."""

    name = "human"
    in_default_run = False  # needs recorded answers

    @staticmethod
    def files(answers: str = "", **_: object) -> dict[str, str]:
        """The answers file, hashed into a run's provenance."""
        return {"answers": answers} if answers else {}

    def __init__(self, answers: str = "", attempts: str = "all", participants: str = "") -> None:
        if not answers:
            raise ValueError("no recorded answers: give -o answers=FILE (a study database or answers CSV), "
                             "or run on a data set that names its answers file")
        if attempts not in ("all", "first"):
            raise ValueError(f"attempts must be 'all' or 'first', got {attempts!r}")
        rows = read_recorded(Path(answers))
        if not rows:
            raise ValueError(f"{answers} holds no answers yet: record some first (captcha-bench record)")
        wanted = {p.strip() for p in str(participants).split(",") if p.strip()}
        if wanted:
            unknown = sorted(wanted - {r.participant for r in rows})
            if unknown:
                raise ValueError(f"participant(s) {', '.join(unknown)} gave no answer in {answers}: "
                                 "see captcha-bench humans export for the ids")
            rows = [r for r in rows if r.participant in wanted]
        if attempts == "first":
            rows = [r for r in rows if r.attempt == 1]
        hashes = {r.dataset_sha256 for r in rows if r.dataset_sha256}
        if len(hashes) > 1:
            raise ValueError(f"{answers} mixes answers from {len(hashes)} data sets: export one study at a time")
        self.dataset_sha256 = hashes.pop() if hashes else None
        self._by_item: dict[str, list[recorded.Recorded]] = {}
        for r in rows:
            self._by_item.setdefault(r.item_id, []).append(r)

    def item_ids(self) -> set[str]:
        """Every item with a recorded answer (the runner checks that the data set has them all)."""
        return set(self._by_item)

    def replay(self, ids: Sequence[str]) -> dict[str, list[recorded.Recorded]]:
        """The recorded answers to each of `ids` that anyone answered, in recorded order."""
        return {i: self._by_item[i] for i in ids if i in self._by_item}

    def solve(self, batch: Sequence[Challenge]) -> list[str]:
        raise NotImplementedError("human replays recorded answers: the runner calls replay(ids), not solve()")


class Replayer:
    """A replay solver (recorded human answers), loaded in this process (no solver process: it reads no
    image) and checked against the data set: its answers are this data set's."""

    def __init__(self, spec: SolverSpec, dataset: Dataset) -> None:
        self.spec = spec
        solver = load(spec.name, **spec.options)
        lacking = [hook for hook in ("dataset_sha256", "item_ids") if not hasattr(solver, hook)]
        if lacking:
            raise SolverError(f"solver {spec.name!r} replays answers but lacks {', '.join(lacking)}: see solvers/base.py")
        self.solver: Replaying = solver
        recorded_on = self.solver.dataset_sha256
        if recorded_on and recorded_on != dataset.hash:
            raise SolverError(f"solver {spec.name!r}: its answers were recorded on data set {recorded_on[:12]}, not "
                              f"this one ({dataset.hash[:12]}): give the answers of this data set")
        unknown = sorted(self.solver.item_ids() - {s.id for s in dataset.samples})
        if unknown:
            raise SolverError(f"solver {spec.name!r}: {len(unknown)} recorded answer(s) name items this data set does "
                              f"not have (e.g. {unknown[0]!r}): give the answers recorded on this data set")

    def attempts(self, run_id: str, samples: Iterable[Sample], case_sensitive: bool,
                 done: Collection[str]) -> Iterator[Attempt]:
        """Recorded answers as attempts: the solver sees item ids and nothing else."""
        todo = [s for s in samples if s.id not in done]
        answers = self.solver.replay([s.id for s in todo])
        for sample in todo:
            for r in answers.get(sample.id, ()):
                yield scored(run_id, self.spec.name, sample, r.answer,
                             r.seconds if r.seconds is not None else float("nan"), SKIPPED if r.skipped else "",
                             case_sensitive, r.participant, r.attempt)


def replays(name: str) -> bool:
    """Whether a solver replays recorded human answers (it has `replay(ids)`) rather than reading images."""
    try:
        return base.replays(resolve(name))
    except SolverError:
        return False
