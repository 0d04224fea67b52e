"""A benchmark run on disk: results/<run>/ with run.json, attempts.csv, timing.jsonl, summaries.

Attempts are appended and flushed one by one, so an interrupted run keeps every finished one;
`resume=True` continues it without redoing or duplicating rows.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import platform
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.summary import Summary, summarize
from bench.results import (ATTEMPTS, COLUMNS, RUN, SUMMARY_CSV, SUMMARY_JSON, TIMING, Attempt, attempt_row,
                           read_attempts, read_timings, timing_line)
from bench.run import Pixels, RunConfig, SolverSpec, Started, load_challenges, replays, run_solver, start_solver
from captchas import dataset as ds
from solvers.registry import check_options

LIBRARIES = ("captcha", "pillow", "click", "numpy", "scipy", "statsmodels", "tesserocr", "ddddocr", "onnxruntime",
             "torch", "torchvision")

RunProgress = Callable[[str, int, int], None]  # (label: a solver, or a stage of the run, done, total)
STARTING = "starting solvers"

# The embedded default: what `captcha-bench run` with no arguments (and `make bench`) uses.
DEFAULT_DATASET = Path("results/datasets/default-medium-s7-n300")
DEFAULT_PRESET, DEFAULT_COUNT, DEFAULT_SEED = "medium", 300, 7


@dataclass(frozen=True)
class RunResult:
    path: Path
    run_id: str
    summaries: list[Summary]


def run_benchmark(
    dataset: ds.Dataset, config: RunConfig, out: str | Path, resume: bool = False, progress: RunProgress | None = None
) -> RunResult:
    """Run every solver of `config` on `dataset`, writing results under `out` as it goes.

    Everything that can be checked is checked before `out` is touched: the solvers and their
    options, every image, the folder itself, and that every solver starts (a machine solver's
    process is up, a replay's answers are read and belong to this data set). `progress` hears
    (label, done, total): "starting solvers", then each solver's attempts, then "NAME throughput".
    """
    out = Path(out)
    names = [s.name for s in config.solvers]
    if not names:
        raise ds.DatasetError("no solver to run: give --solver NAME (see captcha-bench solvers)")
    if len(set(names)) != len(names):
        raise ds.DatasetError(f"solver {next(n for n in names if names.count(n) > 1)!r} is given twice: give it once")
    for spec in config.solvers:
        check_options(spec.name, spec.options)  # unknown solvers and options fail before anything is written
    items = load_challenges(dataset, config.limit)  # so do bad images
    request = _request(dataset, config)
    if resume:
        _check_resumable(out, request)
        _check_columns(out / ATTEMPTS)
    else:
        check_new_run(out)
    started: dict[str, Started] = {}
    try:
        for k, spec in enumerate(config.solvers):  # so does a solver that cannot start
            if progress:
                progress(STARTING, k, len(config.solvers))
            started[spec.name] = start_solver(spec, dataset)
        if progress:
            progress(STARTING, len(config.solvers), len(config.solvers))
        if not resume:
            out.mkdir(parents=True, exist_ok=True)
            (out / RUN).write_text(json.dumps({**request, "provenance": provenance(dataset, config)}, indent=2) + "\n")
        _run_all(out, config, started, items, case_sensitive(dataset, config), progress)
    finally:
        for solver in started.values():
            solver.close()
    summaries = write_summaries(out, {s.id for s, _ in items}, solver_notes(dataset, config, items))
    return RunResult(out, out.name, summaries)


def _run_all(out: Path, config: RunConfig, started: dict[str, Started], items: list[tuple[ds.Sample, Any]],
             case: bool, progress: RunProgress | None) -> None:
    done = _done(out / ATTEMPTS)
    with (out / ATTEMPTS).open("a", newline="", encoding="utf-8") as f:
        writer = ds.CsvWriter(f)
        if f.tell() == 0:
            writer.writerow(COLUMNS)
        for spec in config.solvers:
            finished = {item for solver, item in done if solver == spec.name}
            count = len(finished & {s.id for s, _ in items})
            if progress:
                progress(spec.name, count, len(items))
            report = progress
            throughput = (lambda k, n, name=spec.name: report(f"{name} throughput", k, n)) if report else None
            for record in run_solver(out.name, spec, started[spec.name], items, config, case, finished, throughput):
                if isinstance(record, Attempt):
                    writer.writerow(attempt_row(record))
                    f.flush()
                    count += 1
                    if progress:
                        progress(spec.name, count, len(items))
                else:
                    with (out / TIMING).open("a", encoding="utf-8") as t:
                        t.write(timing_line(record, _now()))
            started[spec.name].close()  # its memory back before the next solver


def check_new_run(out: Path, allowed: tuple[str, ...] = ()) -> None:
    """Refuse an --out that is a file or a folder holding anything (but `allowed` names), naming what it holds."""
    if out.exists() and not out.is_dir():
        raise ds.DatasetError(f"--out {out} is a file: give a folder for the run")
    if not out.is_dir() or all(p.name in allowed for p in out.iterdir()):
        return
    if (out / RUN).is_file() or (out / "collection.json").is_file():
        raise ds.DatasetError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
    if (out / ds.MANIFEST).is_file():
        raise ds.DatasetError(f"--out {out} is a data set, not a run folder: give a new folder for the run "
                              "(the data set goes in --dataset)")
    raise ds.DatasetError(f"--out {out} holds other files, not a run: choose an empty or new folder")


def default_dataset(workers: int = 1, progress: ds.Progress | None = None) -> ds.Dataset:
    """Generate the default data set, or reuse it if it is already there and intact."""
    from captchas.generate import make_dataset
    from captchas.schemes import image_scheme

    scheme = image_scheme(DEFAULT_PRESET)
    return make_dataset(scheme, DEFAULT_COUNT, DEFAULT_SEED, DEFAULT_DATASET, workers=workers, reuse=True,
                        preset=DEFAULT_PRESET, progress=progress)


def case_sensitive(dataset: ds.Dataset, config: RunConfig) -> bool:
    """How this run scores: as the command says, else as the data set says."""
    return dataset.case_sensitive if config.case_sensitive is None else config.case_sensitive


def with_dataset_options(config: RunConfig, dataset: ds.Dataset) -> RunConfig:
    """Give the data set's charset, preset and recorded human answers file to solvers that take
    such options and were not given them."""
    from solvers.registry import accepts

    known: dict[str, Any] = {k: dataset.info[k] for k in ("charset", "preset") if dataset.info.get(k)}
    known["case_sensitive"] = case_sensitive(dataset, config)  # a reader may fold case where it is not scored
    answers = (dataset.info.get("human_answers") or {}).get("file")
    if answers:
        known["answers"] = str((dataset.path / answers).resolve())
    specs = []
    for s in config.solvers:
        extra = {k: v for k, v in known.items() if k not in s.options and accepts(s.name, k)}
        specs.append(dataclasses.replace(s, options={**extra, **s.options}) if extra else s)
    return dataclasses.replace(config, solvers=tuple(specs))


def solver_notes(dataset: ds.Dataset, config: RunConfig, items: Sequence[tuple[ds.Sample, Pixels]]
                 ) -> dict[str, list[str]]:
    """Each solver's warnings about this data set (its `notes` hook), given what the data set is."""
    from solvers.base import notes_for
    from solvers.registry import SolverError, resolve

    sizes = sorted(size for _, (_, _, size, _) in items)
    about = {"sha256": dataset.hash, "scheme": dataset.info.get("scheme") or dataset.info.get("source_name"),
             "image": list(sizes[len(sizes) // 2]) if sizes else None, "charset": dataset.info.get("charset") or "",
             "case_sensitive": case_sensitive(dataset, config)}
    notes = {}
    for spec in config.solvers:
        try:
            notes[spec.name] = notes_for(resolve(spec.name), about, spec.options)
        except SolverError:
            pass  # the run reports it
    return notes


def write_summaries(out: Path, item_ids: set[str] | None = None, notes: dict[str, list[str]] | None = None
                    ) -> list[Summary]:
    """Summarise attempts.csv (and the latest timing of each solver) into summary.csv and .json."""
    request = json.loads((out / RUN).read_text())
    attempts = [a for a in read_attempts(out / ATTEMPTS) if item_ids is None or a.item_id in item_ids]
    timings = read_timings(out / TIMING)
    total = len(item_ids) if item_ids is not None else None
    summaries = [
        summarize(spec["name"], [a for a in attempts if a.solver == spec["name"]], timings.get(spec["name"]), total,
                  (notes or {}).get(spec["name"], ()))
        for spec in request["solvers"]
    ]
    fields = [f.name for f in dataclasses.fields(Summary)]
    with (out / SUMMARY_CSV).open("w", newline="", encoding="utf-8") as f:
        writer = ds.CsvWriter(f)
        writer.writerow(["run_id", "dataset_sha256", *fields])
        for s in summaries:
            writer.writerow([out.name, request["dataset_sha256"], *(_cell(getattr(s, k)) for k in fields)])
    report = {"run_id": out.name, **request, "solvers_summary": [
        {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in dataclasses.asdict(s).items()}
        for s in summaries]}
    (out / SUMMARY_JSON).write_text(json.dumps(report, indent=2) + "\n")
    return summaries


def _check_columns(path: Path) -> None:
    if path.is_file() and path.stat().st_size:
        with path.open(newline="", encoding="utf-8") as f:
            header = next(csv.reader(f), [])
        if header != COLUMNS:
            raise ds.DatasetError(f"{path} was written by another version of captcha-bench (other columns): "
                                  "start a new run instead of --resume")


def _cell(value: Any) -> Any:
    """A summary.csv cell: no value (None, NaN) is an empty cell, never 0."""
    if value is None or isinstance(value, float) and math.isnan(value):
        return ""
    return f"{value:.6g}" if isinstance(value, float) else value


def _done(path: Path) -> set[tuple[str, str]]:
    """(solver, item) pairs already in attempts.csv, after cutting off a half-written last line."""
    if not path.is_file():
        return set()
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as f:  # a kill mid-write: drop the partial row, it will be redone
            f.truncate(data.rfind(b"\n") + 1)
    return {(a.solver, a.item_id) for a in read_attempts(path)}


def _request(dataset: ds.Dataset, config: RunConfig) -> dict[str, Any]:
    """What must match for --resume to continue a run."""
    return {
        "dataset": str(dataset.path.resolve()),
        "dataset_sha256": dataset.hash,
        "case_sensitive": case_sensitive(dataset, config),
        "solvers": [{"name": s.name, "options": s.options} for s in config.solvers],
        "config": {k: v for k, v in dataclasses.asdict(config).items() if k != "solvers"},
    }


def recorded_request(out: Path) -> dict[str, Any] | None:
    """What the run (or collection of runs) in `out` was asked: its data set folder (None for a
    collection), solvers as SolverSpecs, and config; None when `out` holds no run."""
    from bench.results import COLLECTION

    if (out / RUN).is_file():
        request = _read_json(out / RUN)
        dataset = request.get("dataset")
    elif (out / COLLECTION).is_file():
        collection = _read_json(out / COLLECTION)
        request = {"solvers": collection.get("request", {}).get("solvers", []), "config": {}}
        parts = [out / str(p.get("path")) / RUN for p in collection.get("parts", []) if isinstance(p, dict)]
        config = next((_read_json(p).get("config") for p in parts if p.is_file()), None)
        request["config"] = config or {}
        dataset = None
    else:
        return None
    try:
        solvers = tuple(SolverSpec(str(s["name"]), dict(s.get("options") or {})) for s in request.get("solvers", []))
    except (TypeError, KeyError, AttributeError):
        raise ds.DatasetError(f"{out} holds a damaged run record: start a new run instead of --resume") from None
    config = request.get("config") if isinstance(request.get("config"), dict) else {}
    return {"dataset": dataset, "solvers": solvers, "config": config}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ds.DatasetError(f"{path} is damaged ({e}): start a new run instead of --resume") from None
    if not isinstance(value, dict):
        raise ds.DatasetError(f"{path} is damaged (not a JSON object): start a new run instead of --resume")
    return value


def _check_resumable(out: Path, request: dict[str, Any]) -> None:
    if not (out / RUN).is_file():
        raise ds.DatasetError(f"{out} holds no run to resume: drop --resume to start one")
    before = json.loads((out / RUN).read_text())
    differences = resume_conflicts(before, json.loads(json.dumps(request)))
    if differences:
        raise ds.DatasetError(f"cannot resume {out}: {'; '.join(differences)}: give the run's own settings, or "
                              "start a new run")


def resume_conflicts(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What differs between a run folder's request and this command's, one phrase per setting."""
    found = []
    if before.get("dataset_sha256") != now["dataset_sha256"]:
        found.append(f"it ran on data set {str(before.get('dataset_sha256'))[:12]}, this command gives "
                     f"{now['dataset_sha256'][:12]}")
    old = {s["name"]: s.get("options", {}) for s in before.get("solvers", [])}
    new = {s["name"]: s.get("options", {}) for s in now["solvers"]}
    if list(old) != list(new):
        found.append(f"its solvers are {', '.join(old) or 'none'}, this command's {', '.join(new)}")
    else:
        found += [f"solver {name}'s options were {old[name]}, now {new[name]}" for name in old if old[name] != new[name]]
    config = before.get("config", {})
    found += [f"{key.replace('_', '-')} was {config.get(key)}, now {value}"
              for key, value in now["config"].items() if config.get(key) != value]
    return found


def provenance(dataset: ds.Dataset, config: RunConfig) -> dict[str, Any]:
    """Where a result comes from: data set, solvers, libraries, code, machine, time."""
    return {
        "started": _now(),
        "command": sys.argv,
        "dataset": {k: dataset.info.get(k) for k in ("kind", "scheme", "preset", "seed", "count", "source",
                                                      "source_name", "split", "case_sensitive")},
        "recorded_solvers": [s.name for s in config.solvers if replays(s.name)],  # people, not machines
        "solver_versions": {s.name: _solver_version(s.name) for s in config.solvers},
        "solver_files": {s.name: files for s in config.solvers if (files := _solver_files(s.name, s.options))},
        "libraries": {name: _version(name) for name in LIBRARIES},
        "python": platform.python_version(),
        "git": git_state(),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "node": platform.node()},
    }


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "absent"


def _solver_files(name: str, options: dict[str, Any]) -> dict[str, str]:
    """sha256 of every file a solver option names (weights, recorded answers), and of the files the
    solver says these options make it load (its optional `files(**options)`, e.g. shipped weights
    chosen by preset), so a result says which."""
    from solvers.registry import SolverError, resolve

    from solvers.base import declared_files

    paths = {key: value for key, value in options.items() if isinstance(value, str) and value}
    try:
        paths.update(declared_files(resolve(name), options))
    except SolverError:
        pass  # the run reports it
    return {key: ds.sha256_bytes(Path(path).read_bytes()) for key, path in paths.items() if Path(path).is_file()}


def _solver_version(name: str) -> str:
    from solvers.registry import available

    ep = available().get(name)
    if ep is not None and ep.dist is not None:
        return f"{ep.dist.name} {ep.dist.version}"
    return f"{name} (module:attr, not installed)"


def git_state() -> dict[str, Any]:
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": "unknown"}
    if commit.returncode != 0:
        return {"commit": "unknown"}
    return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
