"""Where a result comes from: the data set, the solvers (their versions, threads and the files they
load), the libraries, the code, the machine and the time, as a run's run.json records them; the code
(`git_state`), the versions and the time also go into a report and an attack. A floor: it imports no
runner and no report."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.run import RunConfig
from captchas import dataset as ds
from solvers.base import declared_files
from solvers.registry import SolverError, available, resolve

LIBRARIES = ("captcha", "pillow", "click", "numpy", "scipy", "statsmodels", "tesserocr", "ddddocr", "onnxruntime",
             "torch", "torchvision")


def provenance(dataset: ds.Dataset, config: RunConfig, executor: dict[str, Any], threads: dict[str, int],
               recorded: list[str]) -> dict[str, Any]:
    """Where a result comes from: data set, solvers, libraries, code, machine, time, and where it ran
    (`executor`: its description; `threads`: each machine solver's; `recorded`: the solvers that replay people)."""
    return {
        "started": now(),
        "command": sys.argv,
        "executor": executor,
        "dataset": {k: dataset.info.get(k) for k in ("kind", "scheme", "preset", "seed", "count", "source",
                                                      "source_name", "split", "case_sensitive")},
        "recorded_solvers": recorded,  # people, not machines
        "solver_versions": {s.name: _solver_version(s.name) for s in config.solvers},
        "solver_threads": threads,
        "solver_files": {s.name: files for s in config.solvers if (files := _solver_files(s.name, s.options))},
        "libraries": versions(LIBRARIES),
        "python": platform.python_version(),
        "git": git_state(),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "node": platform.node()},
    }


def versions(distributions: tuple[str, ...]) -> dict[str, str]:
    """Each installed distribution's version, or "absent"."""
    found = {}
    for name in distributions:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def _solver_files(name: str, options: dict[str, Any]) -> dict[str, str]:
    """sha256 of the files the solver says these options make it load (`solver_files`), by option."""
    return {key: sha for key, (_, sha) in solver_files(name, options).items()}


def solver_files(name: str, options: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """The files the solver says these options make it load (its `files(**options)` hook: weights, recorded
    answers, shipped weights chosen by preset), by option: (path, sha256), so a result says which. Only
    those: an option that is a word (an answer, a prompt) is never taken for a file, whatever file shares
    its name."""
    try:
        paths = declared_files(resolve(name), options)
    except SolverError:
        return {}  # the run reports it
    hashed = {}
    for key, path in paths.items():
        try:
            if Path(path).is_file():
                hashed[key] = (str(Path(path).resolve()), ds.sha256_bytes(Path(path).read_bytes()))
        except OSError:
            continue  # a name no file system takes: the solver itself says what is wrong
    return hashed


def _solver_version(name: str) -> str:
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


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
