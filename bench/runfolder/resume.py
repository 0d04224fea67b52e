"""Whether a folder may take a run: a new run's --out holds nothing, a resumed one was asked the same
things, and what it already holds (attempts, timings) is read back so that nothing is asked twice. Every
refusal is a RunError naming the fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.run import SolverSpec
from bench.runfolder.files import (COLLECTION, RUN, SUMMARY_JSON, TIMING, RunError, iter_attempts,
                                   read_timings, repair_cut_row)
from captchas import dataset as ds

PRICES = ("price_core_hour",)  # settings a resume may change: they price what was measured, they ask nothing


def check_new_run(out: Path, allowed: tuple[str, ...] = ()) -> None:
    """Refuse an --out that is a file or a folder holding anything (but `allowed` names), naming what it holds."""
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out} is a file: give a folder for the run")
    if not out.is_dir() or all(p.name in allowed for p in out.iterdir()):
        return
    if (out / RUN).is_file() or (out / COLLECTION).is_file():
        raise RunError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
    if (out / ds.MANIFEST).is_file():
        raise RunError(f"--out {out} is a data set, not a run folder: give a new folder for the run "
                       "(the data set goes in --dataset)")
    raise RunError(f"--out {out} holds other files, not a run: choose an empty or new folder")


def recorded_request(out: Path) -> dict[str, Any] | None:
    """What the run (or collection of runs) in `out` was asked: its data set folder (None for a
    collection), solvers as SolverSpecs, and config; None when `out` holds no run."""
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
        raise RunError(f"{out} holds a damaged run record: start a new run instead of --resume") from None
    config = request.get("config") if isinstance(request.get("config"), dict) else {}
    return {"dataset": dataset, "solvers": solvers, "config": config}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunError(f"{path} is damaged ({e}): start a new run instead of --resume") from None
    if not isinstance(value, dict):
        raise RunError(f"{path} is damaged (not a JSON object): start a new run instead of --resume")
    return value


def check_resumable(out: Path, request: dict[str, Any]) -> None:
    """Refuse to resume `out` unless it holds a run asked the same things (`resume_conflicts` names each)."""
    if not (out / RUN).is_file():
        raise RunError(f"{out} holds no run to resume: drop --resume to start one")
    before = json.loads((out / RUN).read_text())
    differences = resume_conflicts(before, json.loads(json.dumps(request)))
    if differences:
        raise RunError(f"cannot resume {out}: {'; '.join(differences)}: give the run's own settings, or "
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
    found += [f"it ran with {_setting(key, config.get(key))}, this command asks {_setting(key, value)}"
              for key, value in now["config"].items() if config.get(key) != value and key not in PRICES]
    return found


def _setting(key: str, value: Any) -> str:
    """A run setting as the command line says it: `--case-sensitive`, `no --limit`, `--timeout 30`."""
    if key == "case_sensitive":
        return "the data set's case rule" if value is None else "--case-sensitive" if value else "--case-insensitive"
    option = "--" + key.replace("_", "-")
    return f"no {option}" if value is None else f"{option} {value:g}" if isinstance(value, float) else f"{option} {value}"


def done(path: Path) -> set[tuple[str, str]]:
    """(solver, item) pairs already in attempts.csv, after dropping a last line a kill cut short (its
    shard is redone); RunError for a file damaged otherwise, which a resume cannot mend."""
    repair_cut_row(path)
    return {(a.solver, a.item_id) for a in iter_attempts(path)}


def finished(out: Path, solvers: list[str], machines: list[str], items: list[str], done: set[tuple[str, str]]) -> bool:
    """Whether a run folder holds its summaries, every solver's timing (written once its pass is over)
    and, for every machine solver, an attempt at every item of the run."""
    timed = read_timings(out / TIMING)
    if not (out / SUMMARY_JSON).is_file() or any(name not in timed for name in solvers):
        return False
    return all((name, item) in done for item in items for name in machines)


def check_collection_resumable(out: Path, document: dict[str, Any],
                                keys: tuple[str, ...] = ("kind", "request", "parts")) -> None:
    """Refuse to resume `out` unless it holds a collection made by the same request (and parts)."""
    if not (out / COLLECTION).is_file():
        raise RunError(f"{out} holds no collection of runs to resume: drop --resume to start one")
    try:
        before = json.loads((out / COLLECTION).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunError(f"{out / COLLECTION} is damaged ({e}): start a new run instead of --resume") from None
    same = json.loads(json.dumps(document))
    for key in keys:
        if before.get(key) != same[key]:
            raise RunError(f"cannot resume {out}: its {key} differ from this command's (another kind of run, "
                           "other settings or other data sets): start a new run instead")
