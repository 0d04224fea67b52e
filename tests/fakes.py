"""Test doubles loaded by "module:attr" strings or through a fake installed entry point."""

from __future__ import annotations

import json
import os
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw

from captchas.dataset import Challenge


@dataclass(frozen=True)
class FakeScheme:
    """A third-party generator: digits drawn as plain text on grey, any colour knob."""

    length: int = 3
    shade: int = 200
    name: str = "fake"
    case_sensitive: bool = False

    def sample_answer(self, rng: random.Random) -> str:
        return "".join(rng.choice("0123456789") for _ in range(self.length))

    def render(self, answer: str, rng: random.Random) -> Image.Image:
        image = Image.new("L", (20 + 10 * len(answer), 24), self.shade)
        ImageDraw.Draw(image).text((rng.randint(0, 8), rng.randint(0, 8)), answer, fill=0)
        return image

    def knobs(self) -> dict[str, Any]:
        return {"length": self.length, "shade": self.shade}

    def versions(self) -> dict[str, str]:
        return {"fake": "1.0"}


def make_fake_scheme(preset: str | None = None, **knobs: Any) -> FakeScheme:
    if preset not in (None, "plain"):
        raise ValueError(f"unknown preset {preset!r}: the fake scheme has only 'plain'")
    unknown = set(knobs) - {"length", "shade"}
    if unknown:
        raise ValueError(f"unknown knob {sorted(unknown)[0]!r}: valid knobs are length, shade")
    return FakeScheme(**knobs)


class NotAScheme:
    """Lacks every method of the Scheme protocol."""

    def __init__(self, preset: str | None = None, **knobs: Any) -> None:
        pass


class FakeSolver:
    """Canned answers by item id (the test knows them; the solver is told, not shown)."""

    name = "fake"

    def __init__(self, answers: dict[str, str] | None = None, default: str = "") -> None:
        self.answers = answers or {}
        self.default = default

    def solve(self, batch: Sequence[Challenge]) -> list[str]:
        return [self.answers.get(c.id, self.default) for c in batch]


class FaultySolver:
    """Misbehaves on chosen items: raise, hang, crash the process, or answer malformed."""

    name = "faulty"

    def __init__(self, raise_on: tuple[str, ...] = (), hang_on: tuple[str, ...] = (), crash_on: tuple[str, ...] = (),
                 wrong_count_on: tuple[str, ...] = (), non_text_on: tuple[str, ...] = (), answer: str = "X",
                 slow_on: tuple[str, ...] = (), slow: float = 0.0) -> None:
        self.raise_on, self.hang_on, self.crash_on = set(raise_on), set(hang_on), set(crash_on)
        self.slow_on, self.slow = set(slow_on), slow  # answers, but only after `slow` seconds
        self.wrong_count_on, self.non_text_on, self.answer = set(wrong_count_on), set(non_text_on), answer

    def solve(self, batch: Sequence[Challenge]) -> list[Any]:
        ids = {c.id for c in batch}
        if ids & self.raise_on:
            raise RuntimeError("model exploded")
        if ids & self.hang_on:
            time.sleep(3600)
        if ids & self.slow_on:
            time.sleep(self.slow)
        if ids & self.crash_on:
            os._exit(3)
        if ids & self.wrong_count_on:
            return [self.answer] * (len(batch) + 1)
        if ids & self.non_text_on:
            return [42] * len(batch)
        return [self.answer] * len(batch)


class SpySolver:
    """Writes down everything a solver can see, to check that no answer, file name or path is among it."""

    name = "spy"

    def __init__(self, report: str) -> None:
        self.report = report  # where to write; given by the test, so not data set knowledge

    def solve(self, batch: Sequence[Challenge]) -> list[str]:
        seen = {
            "fields": [sorted(vars(c)) if hasattr(c, "__dict__") else sorted(c.__dataclass_fields__) for c in batch],
            "reprs": [repr(c) for c in batch],
            "filenames": [getattr(c.image, "filename", "") for c in batch],
            "infos": [repr(c.image.info) for c in batch],
            "cwd": os.getcwd(),
            "cwd_files": os.listdir("."),
            "argv": sys.argv,
            "environ": dict(os.environ),
        }
        with open(self.report, "a") as f:
            f.write(json.dumps(seen) + "\n")
        return ["?"] * len(batch)


class FileSolver:
    """Reads its answer from a file named in its options, as a checkpoint or answers file is read."""

    name = "file"

    def __init__(self, path: str) -> None:
        with open(path) as f:  # relative to the folder the run was started from
            self.answer = f.read().strip()

    def solve(self, batch: Sequence[Challenge]) -> list[str]:
        return [self.answer] * len(batch)


class ThreadsSolver:
    """Answers with the thread limits its process was started with: OMP_NUM_THREADS, and torch's count when
    asked (`torch=True`), which the solver's `threads` hook (`-o wanted=N`) sets through the runner."""

    name = "threads"

    @staticmethod
    def threads(wanted: int = 1, **_: Any) -> int:
        return wanted

    def __init__(self, wanted: int = 1, torch: bool = False) -> None:
        self.seen = os.environ.get("OMP_NUM_THREADS", "unset")
        if torch:
            import torch as t

            self.seen += f"/{t.get_num_threads()}"

    def solve(self, batch: Sequence[Challenge]) -> list[str]:
        return [self.seen] * len(batch)


def write_run(folder: Any, dataset_sha256: str, attempts: Sequence[Any], *, people: Sequence[str] = ("human",),
              case_sensitive: bool = False, finished: bool = True, config: dict[str, Any] | None = None) -> Any:
    """A run folder as `captcha-bench run` writes it (run.json, attempts.csv, summary.json), from attempts
    a test constructs: the report reads only these files, so the verdict rule can be tested on any data."""
    import csv
    from pathlib import Path

    from bench.runfolder.files import ATTEMPTS, RUN, SUMMARY_JSON
    from bench.runfolder.records import COLUMNS

    folder = Path(folder)
    folder.mkdir(parents=True)
    solvers = list(dict.fromkeys(a.solver for a in attempts))
    request = {"dataset": str(folder / "set"), "dataset_sha256": dataset_sha256, "case_sensitive": case_sensitive,
               "solvers": [{"name": s, "options": {}} for s in solvers], "config": config or {}}
    provenance = {"dataset": {"kind": "generated", "preset": "medium", "seed": 1, "count": 100,
                              "case_sensitive": case_sensitive}, "recorded_solvers": list(people)}
    (folder / RUN).write_text(json.dumps({**request, "provenance": provenance}))
    with (folder / ATTEMPTS).open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for a in attempts:
            writer.writerow([folder.name, a.solver, a.item_id, a.expected, a.predicted, int(a.correct), f"{a.cer:.6f}",
                             f"{a.seconds:.9f}", a.error, a.participant, a.attempt])
    if finished:
        (folder / SUMMARY_JSON).write_text("{}")
    return folder


def edit_manifest(folder: Path, old: str, new: str, count: int = -1) -> None:
    """Edit a data set's manifest.csv and record its new hash in dataset.json, as a deliberate
    (consistent) change would: tests of what checks beyond the manifest's own hash catch."""
    from captchas import dataset as ds

    manifest = folder / ds.MANIFEST
    manifest.write_text(manifest.read_text().replace(old, new, count))
    info = json.loads((folder / ds.INFO).read_text())
    info["manifest_sha256"] = ds.sha256_bytes(manifest.read_bytes())
    (folder / ds.INFO).write_text(json.dumps(info))
