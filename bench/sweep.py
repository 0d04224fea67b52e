"""Difficulty sweeps: one data set per value of a knob, every solver on each, one report against each knob.

Each `--vary KNOB=v1,v2,...` is its own axis: its values are tried one at a time with every other
knob at the preset (or `--set`) value. Every point uses the same seed, so item i has the same answer
at every point and only the distortion changes. People join a point where a study of that very
data set exists (`<studies>/<sha256 prefix>.sqlite` or `.csv`, as `captcha-bench record` names them).
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.benchmark import RunProgress, RunResult
from bench.executors import Executor
from bench.run import ConfigError, RunConfig, SolverSpec
from bench.runfolder.files import COLLECTION, RunError
from bench.runfolder.resume import check_collection_resumable
from bench.suite import DATASETS, PEOPLE, Part, run_collection
from captchas import dataset as ds
from captchas import output, schemes
from captchas.generate import encode_png, item_rng, make_dataset


@dataclass(frozen=True)
class Sweep:
    """What to vary, around which knobs."""

    vary: tuple[tuple[str, tuple[Any, ...]], ...]  # (knob, values): one axis each
    preset: str | None = "medium"
    scheme: str = schemes.DEFAULT_SCHEME
    base: dict[str, Any] = field(default_factory=dict)  # --set: knobs for every point
    count: int = 300  # items per point
    seed: int = 0  # the same at every point


def parse_values(text: str) -> tuple[Any, ...]:
    """`v1,v2,...` as Python literals, a tuple being one value: `(-10,10),(-30,30)` is two values,
    `10,30` two numbers; words that are no literals are split on commas (`DejaVuSerif,DroidSansMono`)."""
    try:
        values = ast.literal_eval("[" + text + "]")
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        values = [v.strip() for v in text.split(",")]
    if not values or any(v == "" for v in values):
        raise ConfigError(f"--vary needs KNOB=v1,v2,... with at least one value, got {text!r}")
    return tuple(values)


def label(knob: str, value: Any) -> str:
    shown = ",".join(str(v) for v in value) if isinstance(value, (tuple, list)) else str(value)
    return f"{knob}={shown}"


@dataclass(frozen=True)
class Point:
    """One point of a sweep, its scheme loaded and a few of its items rendered."""

    knob: str
    value: Any
    folder: str  # its data set's folder under datasets/, and its run's folder
    scheme: schemes.Scheme
    seconds: float  # per item, rendering and encoding in one process
    size: float  # bytes per item's PNG


@dataclass(frozen=True)
class Plan:
    """What a sweep will make: its points, checked, and what they will cost."""

    points: tuple[Point, ...]
    count: int  # items per point
    probed: int  # items rendered per point to check and measure it

    @property
    def items(self) -> int:
        return len(self.points) * self.count

    @property
    def bytes(self) -> float:
        """The images on disk, estimated from the probe."""
        return sum(p.size for p in self.points) * self.count

    def seconds(self, workers: int) -> float:
        """Generating every point's data set with `workers` processes, estimated from the probe."""
        return sum(p.seconds for p in self.points) * self.count / max(1, workers)


PROBE = 8  # items of each point rendered before anything is written


def plan_sweep(sweep: Sweep, out: Path, resume: bool = False, progress: ds.Progress | None = None) -> Plan:
    """Check every point before anything is written: its knobs, a few of its items rendered (a value that
    cannot be drawn, such as a width too small for the text, is named with its point), the disk space its
    data sets will take, and for a resume that `out` holds this very sweep (naming what differs)."""
    output.check_writable(out)
    if not sweep.vary:
        raise ConfigError("nothing to sweep: give --vary KNOB=v1,v2,...")
    if sweep.count < 1:
        raise ConfigError(f"--count must be at least 1, got {sweep.count}")
    if resume:
        _check_same_sweep(out, sweep)
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RunError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
    total = sum(len(values) for _, values in sweep.vary)
    points: list[Point] = []
    for knob, values in sweep.vary:
        if knob in sweep.base:
            raise ConfigError(f"{knob} is both varied and --set: give it once")
        for k, value in enumerate(values):
            where = f"--vary {label(knob, value)} (point {len(points) + 1} of {total})"
            try:
                scheme = schemes.load(sweep.scheme, sweep.preset, {**sweep.base, knob: value})
            except ValueError as e:
                raise ds.DatasetError(f"{where}: {e}") from None
            start, size = time.perf_counter(), 0
            for i in range(min(PROBE, sweep.count)):
                rng = item_rng(sweep.seed, i)  # the point's own first items, as generation will draw them
                try:
                    size += len(encode_png(scheme.render(scheme.sample_answer(rng), rng)))
                except Exception as e:  # a knob value the scheme takes but cannot draw: said with its point
                    raise ds.DatasetError(f"{where}: its items cannot be drawn ({' '.join(str(e).split())[:300]}); "
                                          "choose another value") from None
            probed = min(PROBE, sweep.count)
            points.append(Point(knob, value, f"{_slug(knob)}-{k}", scheme, (time.perf_counter() - start) / probed,
                                size / probed))
            if progress:
                progress(len(points), total)
    plan = Plan(tuple(points), sweep.count, min(PROBE, sweep.count))
    disk = output.nearest_existing(out)
    free = shutil.disk_usage(disk).free
    if plan.bytes * 1.1 > free and not resume:
        raise ds.DatasetError(f"the sweep's {plan.items:,} images would take about {_size(plan.bytes)}, and {disk} "
                              f"has {_size(free)} free: give fewer --vary values or a smaller --count")
    return plan


def plan_text(plan: Plan, workers: int, solvers: int) -> str:
    """What a sweep will take, said before it starts."""
    return (f"sweep: {len(plan.points)} point(s) x {plan.count:,} items: about {_size(plan.bytes)} of images and "
            f"{_duration(plan.seconds(workers))} to generate with {workers} worker(s) (from {plan.probed} items of each "
            f"point), then {solvers} solver(s) on each point")


def run_sweep(sweep: Sweep, machines: Sequence[SolverSpec], config: RunConfig, out: Path, *, resume: bool = False,
              workers: int = 1, studies: Path = Path("results/studies"), progress: RunProgress | None = None,
              generating: ds.Progress | None = None, executor: Executor | None = None,
              plan: Plan | None = None) -> list[RunResult]:
    """Make (or reuse, once checked) each point's data set under `out`/datasets, run the solvers on it into
    `out`/<point>, as a collection that `captcha-bench report` reads; resumable like a run. With a Dask
    `executor`, the cluster generates the data sets (into `out`, which its workers must see) and asks the
    solvers. `plan`: `plan_sweep`'s, when the caller has made it already (to say what the sweep will take)."""
    plan = plan or plan_sweep(sweep, out, resume)
    request = _request(sweep, machines)
    if resume:
        check_collection_resumable(out, {"kind": "sweep", "request": request}, ("kind", "request"))  # before generating
    parts = []
    for point in plan.points:
        knob, value, folder, scheme = point.knob, point.value, point.folder, point.scheme
        data = make_dataset(scheme, sweep.count, sweep.seed, out / DATASETS / folder, workers=workers, reuse=True,
                            scheme_name=sweep.scheme, preset=sweep.preset, progress=generating,
                            mapper=executor.mapper() if executor else None)
        solvers = tuple(machines)
        answers = next((p for p in (studies / f"{data.hash[:12]}.sqlite", studies / f"{data.hash[:12]}.csv")
                        if p.is_file()), None)
        if answers is not None and all(s.name != PEOPLE for s in solvers):
            solvers += (SolverSpec(PEOPLE, {"answers": str(answers)}),)
        parts.append(Part(folder, data, solvers, label(knob, value), {"knob": knob, "value": value,
                                                                      "label": label(knob, value)}))
    return run_collection(parts, config, out, request, resume=resume, progress=progress, executor=executor)


def _slug(knob: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", knob)


def _request(sweep: Sweep, machines: Sequence[SolverSpec]) -> dict[str, Any]:
    """What a sweep was asked, as collection.json records it (and a resume must match)."""
    return {"kind": "sweep", "vary": [[k, list(v)] for k, v in sweep.vary], "preset": sweep.preset,
            "scheme": sweep.scheme, "base": sweep.base, "count": sweep.count, "seed": sweep.seed,
            "solvers": [{"name": s.name, "options": s.options} for s in machines]}


OPTIONS = {"vary": "--vary", "preset": "--preset", "scheme": "--scheme", "base": "--set", "count": "--count",
           "seed": "--seed"}


def _check_same_sweep(out: Path, sweep: Sweep) -> None:
    """Refuse to resume `out` with another grid, naming each option that differs (solvers are checked later)."""
    try:
        before = json.loads((out / COLLECTION).read_text(encoding="utf-8")).get("request") or {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return  # check_collection_resumable says what is wrong with the folder
    if not isinstance(before, dict) or before.get("kind") != "sweep":
        return
    now = json.loads(json.dumps(_request(sweep, ())))
    differ = [f"{option} was {_shown(key, before.get(key))}, now {_shown(key, now[key])}"
              for key, option in OPTIONS.items() if before.get(key) != now[key]]
    if differ:
        raise RunError(f"cannot resume {out}: {'; '.join(differ)}: give the sweep's own options, or start a new "
                       "sweep in another --out")


def _shown(key: str, value: Any) -> str:
    if key == "vary" and isinstance(value, list):
        return " ".join(f"{k}={','.join(_literal(v) for v in values)}" for k, values in value)
    if key == "base" and isinstance(value, dict):
        return " ".join(f"{k}={_literal(v)}" for k, v in value.items()) or "none"
    return str(value)


def _literal(value: Any) -> str:
    return f"({','.join(str(v) for v in value)})" if isinstance(value, (list, tuple)) else str(value)


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1000
    raise AssertionError


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"
