"""The attack-cost curve: how many labelled images, and how many CPU minutes, break a scheme.

`run_attack` trains the CNN on growing subsets of a labelled data set (its first N items), each run
with the same settings, from each starting point asked for (random weights, the general CNN,
ddddocr's published model, or a checkpoint), and tests every model on the same test set, beside the
people where the test set has recorded answers. Each point is written as it finishes
(`attack.csv`), so an interrupted attack resumes where it stopped; `attack.json` holds the request
and provenance, and `attack.png` draws one curve of accuracy against labels per start.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.benchmark import RunResult, run_benchmark, with_dataset_options
from bench.provenance import git_state
from bench.runfolder.files import RunError
from bench.run import ConfigError, RunConfig, SolverSpec
from captchas import dataset as ds
from captchas import output

CSV = "attack.csv"
REQUEST = "attack.json"
FIGURE = "attack.png"
LABELS = (250, 1000, 4000)
WITH_UNLABELLED = "+unlabelled"  # a start's second curve, trained with --unlabelled too
STARTS = ("scratch", "general", "ddddocr")  # random weights; the shipped general CNN (train's default); ddddocr's model


@dataclass(frozen=True)
class Point:
    """One subset: the model trained on its first `labels` items from one start, tested."""

    start: str  # scratch, general, ddddocr, or a checkpoint's path
    labels: int  # labelled items given to training (its first tenth validates)
    accuracy: float  # on the test set, exact match
    low: float  # Wilson 95 % interval
    high: float
    test_items: int
    cpu_minutes: float  # CPU time of the training process, all threads
    wall_minutes: float
    validation: float  # the best validation accuracy during training
    checkpoint: str


@dataclass(frozen=True)
class Attack:
    points: list[Point]
    people: tuple[float, float, float] | None  # the people's accuracy on the test set, with its interval
    path: Path


Progress = Callable[[str, int, int], None]  # (label, done, total)
START_NAMES = {"scratch": "random weights", "general": "the general CNN", "ddddocr": "ddddocr's model"}


def run_attack(train: Path, test: Path, out: Path, labels: Sequence[int] = LABELS, minutes: float | None = None,
               starts: Sequence[str] = ("general",), seed: int = 0, epochs: float | None = None,
               progress: Progress | None = None, unlabelled: Path | None = None) -> Attack:
    """Train on the first N items of `train` for each N of `labels` and each start of `starts` (STARTS,
    or a checkpoint's path), test each model on `test`; write everything under `out`. With `unlabelled` (a
    folder of the scheme's images without answers), each start is measured without and with them: a
    second curve, "<start>+unlabelled". Points already in `out`'s attack.csv are kept, not redone."""
    from solvers.cnn.checkpoint import load_checkpoint  # torch: loaded when an attack trains, not by the CLI
    from solvers.cnn.train import train as run_training  # torch, likewise

    output.check_writable(out)
    data, held_out = ds.read_dataset(train), ds.read_dataset(test)
    sizes = sorted(set(labels))
    if not sizes or sizes[0] < 10:
        raise ConfigError("--labels: give one or more counts of 10 labelled images or more, e.g. 250,1000,4000")
    if sizes[-1] > len(data.samples):
        raise ConfigError(f"--labels {sizes[-1]}: {train} holds only {len(data.samples)} labelled images")
    if data.hash == held_out.hash:
        raise ConfigError("--test is the training set: test on other images, with answers the training never saw")
    starts = list(dict.fromkeys(starts))
    if not starts or not all(starts) or any(s.endswith(WITH_UNLABELLED) for s in starts):
        raise ConfigError(f"--init: give one or more of {', '.join(STARTS)} (or a checkpoint), comma-separated")
    if unlabelled is not None:
        starts = [s + suffix for s in starts for suffix in ("", WITH_UNLABELLED)]
    for start in starts:
        for n in sizes:  # every training run's settings, checked before the folder is touched
            config = _config(out, train, n, minutes, start, seed, epochs, unlabelled, test)
            config.check(resume=True)  # done points stay
    if unlabelled is not None:  # refused here, before anything is written, if it shares an image with the test set
        from solvers.cnn.data import unlabelled_for  # torch, likewise

        unlabelled_for(config, None)
    request = {"train": str(train), "train_sha256": data.hash, "test": str(test), "test_sha256": held_out.hash,
               "labels": sizes, "minutes": minutes, "starts": starts, "seed": seed, "epochs": epochs,
               "unlabelled": str(unlabelled) if unlabelled else None}
    done = _check_out(out, request)
    people = _people(held_out, out / "people", progress)
    for start, n in ((start, n) for start in starts for n in sizes):
        if (start, n) in done:
            continue
        where = _folder(out, start, n)
        where.mkdir(parents=True, exist_ok=True)
        config = _config(out, train, n, minutes, start, seed, epochs, unlabelled, test)
        cpu, wall = time.process_time(), time.perf_counter()
        report = (lambda p: progress(f"train {start} {n}", p.done, p.total)) if progress else None
        meta = run_training(config, resume=(where / "model.pt.last").is_file(), progress=report)  # an interrupted one goes on
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        solver = SolverSpec("cnn", {"checkpoint": str(where / "model.pt")})
        result = _test(held_out, solver, where / "test", progress)
        s = result.summaries[0]
        best = max(h["val_accuracy"] for h in (meta.get("history") or load_checkpoint(where / "model.pt")["history"]))
        point = Point(start, n, s.accuracy, s.accuracy_low, s.accuracy_high, s.items, cpu / 60, wall / 60, best,
                      str(where / "model.pt"))
        _append(out / CSV, point)
        done[(start, n)] = point
        (out / FIGURE).write_bytes(figure(_ordered(done, starts), people))
    return Attack(_ordered(done, starts), people, out)


def _ordered(done: dict[tuple[str, int], Point], starts: Sequence[str]) -> list[Point]:
    return sorted(done.values(), key=lambda p: (starts.index(p.start) if p.start in starts else len(starts), p.labels))


def _folder(out: Path, start: str, n: int) -> Path:
    """Where the point's model and test run go: <start>/labels-<n>, a checkpoint's start by its file name."""
    base = start.removesuffix(WITH_UNLABELLED)
    name = (base if base in STARTS else f"init-{Path(base).stem}") + start[len(base):]
    return out / name / f"labels-{n}"


def _config(out: Path, train: Path, n: int, minutes: float | None, start: str, seed: int, epochs: float | None,
            unlabelled: Path | None = None, test: Path | None = None) -> Any:
    """The TrainConfig of the point trained on the first `n` labels from `start` (with the unlabelled images
    where it ends in +unlabelled)."""
    from solvers.cnn.config import DDDDOCR, TrainConfig  # torch, likewise

    base = start.removesuffix(WITH_UNLABELLED)
    init = None if base in ("scratch", "general") else Path(DDDDOCR) if base == "ddddocr" else Path(base)
    return TrainConfig(out=_folder(out, start, n) / "model.pt", preset=None, dataset=train, seed=seed, epochs=epochs,
                       minutes=minutes, init=init, limit=n, from_scratch=base == "scratch",
                       unlabelled=unlabelled if start != base else None, held_out=test)


def cheapest(attack: Attack) -> str | None:
    """Which start reaches the people's accuracy with the fewest labels (then the fewest CPU minutes), in
    words; None where the test set has no people."""
    if attack.people is None:
        return None
    reaching = [p for p in attack.points if p.accuracy >= attack.people[0]]
    if not reaching:
        best = max(attack.points, key=lambda p: p.accuracy)
        return (f"no start reached the people's {attack.people[0]:.1%}: the best was {best.start} with {best.labels:,} "
                f"labels, {best.accuracy:.1%}")
    p = min(reaching, key=lambda q: (q.labels, q.cpu_minutes))
    return (f"cheapest: {p.start}, {p.labels:,} labels and {p.cpu_minutes:.1f} CPU minutes read {p.accuracy:.1%}, "
            f"the people {attack.people[0]:.1%}")


def _check_out(out: Path, request: dict[str, Any]) -> dict[tuple[str, int], Point]:
    """The points already measured in `out` for this same request; a new folder otherwise."""
    if (out / REQUEST).is_file():
        before = json.loads((out / REQUEST).read_text(encoding="utf-8"))
        if {k: v for k, v in before.items() if k != "provenance"} != request:
            raise RunError(f"{out} holds another attack: give a new --out, or the same settings to continue it")
        if not (out / CSV).is_file():  # stopped before its first point was written
            _header(out / CSV)
        with (out / CSV).open(encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        fields = dataclasses.fields(Point)
        points = [Point(**{f.name: _cast(f.type, r[f.name]) for f in fields}) for r in rows]
        return {(p.start, p.labels): p for p in points}
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RunError(f"{out} is not an empty folder and holds no attack: give a new or empty --out")
    out.mkdir(parents=True, exist_ok=True)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    (out / REQUEST).write_text(json.dumps({**request, "provenance": {"git": git_state(), "time": now}}, indent=2) + "\n")
    _header(out / CSV)
    return {}


def _header(path: Path) -> None:
    path.write_text(",".join(f.name for f in dataclasses.fields(Point)) + "\n")


def _cast(kind: Any, text: str) -> Any:
    return int(text) if kind in (int, "int") else text if kind in (str, "str") else float(text)


def _append(path: Path, p: Point) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(",".join(str(v) for v in dataclasses.asdict(p).values()) + "\n")


def _test(data: ds.Dataset, solver: SolverSpec, out: Path, progress: Progress | None) -> RunResult:
    config = with_dataset_options(RunConfig((solver,), throughput_items=0), data)
    return run_benchmark(data, config, out, resume=(out / "run.json").is_file(), progress=progress)


def _people(data: ds.Dataset, out: Path, progress: Progress | None) -> tuple[float, float, float] | None:
    """The recorded people's accuracy on the test set (all their answers), where it has any."""
    if not (data.info.get("human_answers") or {}).get("file"):
        return None
    result = _test(data, SolverSpec("human"), out, progress)
    s = result.summaries[0]
    return (s.accuracy, s.accuracy_low, s.accuracy_high)


def figure(points: Sequence[Point], people: tuple[float, float, float] | None) -> bytes:
    """Accuracy on the test set against labelled images (log), with intervals; the people as a band."""
    from matplotlib.figure import Figure

    from bench.report.figures import png  # matplotlib: only when the figure is drawn

    fig = Figure(figsize=(5.2, 3.6))
    ax = fig.add_subplot()
    for i, start in enumerate(dict.fromkeys(p.start for p in points)):
        line = [p for p in points if p.start == start]
        errors = [[max(0.0, p.accuracy - p.low) for p in line], [max(0.0, p.high - p.accuracy) for p in line]]
        base = start.removesuffix(WITH_UNLABELLED)
        label = f"cnn from {START_NAMES.get(base, base)}" + (", with unlabelled images" if start != base else "")
        bars = ax.errorbar([p.labels for p in line], [p.accuracy for p in line], yerr=errors, marker="o", capsize=3,
                           label=label)
        for p in line:  # each curve's minutes a line above the last's, in its colour
            ax.annotate(f"{p.cpu_minutes:.0f} CPU-min", (p.labels, max(q.high for q in points if q.labels == p.labels)),
                        xytext=(0, 6 + 9 * i), ha="center", textcoords="offset points", fontsize=7,
                        color=bars.lines[0].get_color())
    x = sorted({p.labels for p in points})
    if people is not None:
        ax.axhspan(people[1], people[2], color="0.85", zorder=0)
        ax.axhline(people[0], color="black", linestyle="--", label="people (all answers)")
    ax.set_xscale("log")
    ax.set_xticks(x, [f"{n:,}" for n in x])  # the counts measured, not the log scale's powers of ten
    ax.minorticks_off()
    ax.set_xlim(min(x) / 1.6, max(x) * 1.6)
    ax.set_ylim(0, 1)
    ax.set_xlabel("labelled images trained on")
    ax.set_ylabel("test accuracy (exact match)")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return png(fig)


def table(attack: Attack) -> list[list[str]]:
    """The points as rows for the terminal: start, labels, accuracy [interval], CPU and wall minutes."""
    rows = [[p.start, f"{p.labels:,}", f"{p.accuracy:.1%} [{p.low:.1%}, {p.high:.1%}]", f"{p.cpu_minutes:.1f}",
             f"{p.wall_minutes:.1f}", f"{p.validation:.1%}"] for p in attack.points]
    if attack.people is not None:
        a, low, high = attack.people
        rows.append(["people", "-", f"{a:.1%} [{low:.1%}, {high:.1%}]", "-", "-", "-"])
    return rows
