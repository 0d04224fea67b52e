"""Difficulty sweeps: one data set per value of a knob, every solver on each, one report against each knob.

Each `--vary KNOB=v1,v2,...` is its own axis: its values are tried one at a time with every other
knob at the preset (or `--set`) value. Every point uses the same seed, so item i has the same answer
at every point and only the distortion changes. People join a point where a study of that very
data set exists (`<studies>/<sha256 prefix>.sqlite` or `.csv`, as `captcha-bench record` names them).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.run import RunConfig, SolverSpec
from bench.benchmark import Executor, RunProgress, RunResult
from bench.suite import DATASETS, PEOPLE, Part, check_resumable, run_collection
from captchas import dataset as ds
from captchas import output, schemes


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
        raise ds.DatasetError(f"--vary needs KNOB=v1,v2,... with at least one value, got {text!r}")
    return tuple(values)


def label(knob: str, value: Any) -> str:
    shown = ",".join(str(v) for v in value) if isinstance(value, (tuple, list)) else str(value)
    return f"{knob}={shown}"


def run_sweep(sweep: Sweep, machines: Sequence[SolverSpec], config: RunConfig, out: Path, *, resume: bool = False,
              workers: int = 1, studies: Path = Path("results/studies"), progress: RunProgress | None = None,
              generating: ds.Progress | None = None, executor: Executor | None = None) -> list[RunResult]:
    """Make (or reuse, once checked) each point's data set under `out`/datasets, run the solvers on it into
    `out`/<point>, as a collection that `captcha-bench report` reads; resumable like a run. With a Dask
    `executor`, the cluster generates the data sets (into `out`, which its workers must see) and asks the solvers."""
    output.check_writable(out)
    if not sweep.vary:
        raise ds.DatasetError("nothing to sweep: give --vary KNOB=v1,v2,...")
    if sweep.count < 1:
        raise ds.DatasetError(f"--count must be at least 1, got {sweep.count}")
    made = []  # every point's scheme first, so a bad knob value fails before anything is written
    for knob, values in sweep.vary:
        if knob in sweep.base:
            raise ds.DatasetError(f"{knob} is both varied and --set: give it once")
        for k, value in enumerate(values):
            scheme = schemes.load(sweep.scheme, sweep.preset, {**sweep.base, knob: value})
            made.append((knob, value, f"{_slug(knob)}-{k}", scheme))
    request = {"kind": "sweep", "vary": [[k, list(v)] for k, v in sweep.vary], "preset": sweep.preset,
               "scheme": sweep.scheme, "base": sweep.base, "count": sweep.count, "seed": sweep.seed,
               "solvers": [{"name": s.name, "options": s.options} for s in machines]}
    if resume:
        check_resumable(out, {"kind": "sweep", "request": request}, ("kind", "request"))  # before any generating
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ds.DatasetError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
    from captchas.generate import make_dataset

    parts = []
    for knob, value, folder, scheme in made:
        data = make_dataset(scheme, sweep.count, sweep.seed, out / DATASETS / folder, workers=workers, reuse=True,
                            scheme_name=sweep.scheme, preset=sweep.preset, progress=generating,
                            mapper=getattr(executor, "map_ordered", None))
        solvers = tuple(machines)
        answers = next((p for p in (studies / f"{data.hash[:12]}.sqlite", studies / f"{data.hash[:12]}.csv")
                        if p.is_file()), None)
        if answers is not None and all(s.name != PEOPLE for s in solvers):
            solvers += (SolverSpec(PEOPLE, {"answers": str(answers)}),)
        point = {"knob": knob, "value": value, "label": label(knob, value)}
        parts.append(Part(folder, data, solvers, label(knob, value), point))
    return run_collection(parts, config, out, request, resume=resume, progress=progress, executor=executor)


def _slug(knob: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", knob)
