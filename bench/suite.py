"""Several runs as one: the default benchmark and difficulty sweeps, each a folder of run folders.

`collection.json` names the parts (run folders inside the collection) and the request that made
them, so that `--resume` continues every part and `captcha-bench report` reads them as one.
The default benchmark (`captcha-bench run` with no arguments, `make bench`) has two parts: every
machine solver and the recorded people on the embedded TuringPass humans split, and every machine
solver on the generated default set.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.benchmark import RunProgress, RunResult, run_benchmark, with_dataset_options
from bench.executors import Executor
from bench.replay import replays
from bench.run import RunConfig, SolverSpec
from bench.runfolder.attest import attest_collection
from bench.runfolder.files import COLLECTION, RUN, write_collection
from bench.runfolder.resume import check_collection_resumable, check_new_run
from captchas import dataset as ds
from captchas.generate import make_dataset
from captchas.schemes import image_scheme
from captchas.turingpass import EMBEDDED_HUMANS

# The embedded default: what `captcha-bench run` with no arguments (and `make bench`) uses.
DEFAULT_DATASET = Path("results/datasets/default-medium-s7-n300")
DEFAULT_PRESET, DEFAULT_COUNT, DEFAULT_SEED = "medium", 300, 7

PEOPLE = "human"  # the solver that replays recorded answers, added wherever a data set has them
DATASETS = "datasets"  # a sweep's generated data sets, inside its folder


@dataclass(frozen=True)
class Part:
    """One run of a collection."""

    folder: str  # the run folder's name inside the collection
    dataset: ds.Dataset
    solvers: tuple[SolverSpec, ...]
    label: str  # what the report calls its data set
    point: dict[str, Any] = field(default_factory=dict)  # a sweep's point: knob, value, label


def default_dataset(workers: int = 1, progress: ds.Progress | None = None) -> ds.Dataset:
    """Generate the default data set, or reuse it if it is already there and intact."""
    scheme = image_scheme(DEFAULT_PRESET)
    return make_dataset(scheme, DEFAULT_COUNT, DEFAULT_SEED, DEFAULT_DATASET, workers=workers, reuse=True,
                        preset=DEFAULT_PRESET, progress=progress)


def default_parts(machines: Sequence[SolverSpec], generated: ds.Dataset) -> list[Part]:
    """The default benchmark: machines and people on the TuringPass humans split, machines on `generated`."""
    humans = ds.read_dataset(EMBEDDED_HUMANS)
    mine = [s for s in machines if not replays(s.name)]
    people = [s for s in machines if replays(s.name)] or [SolverSpec(PEOPLE)]
    info = generated.info
    return [Part("turingpass-humans", humans, tuple(mine + people), "TuringPass humans split"),
            Part("default-" + str(info.get("preset") or "set"), generated, tuple(mine),
                 f"{info.get('preset')}, seed {info.get('seed')}, {len(generated.samples)} items (generated)")]


def run_default(config: RunConfig, generated: ds.Dataset, out: Path, resume: bool = False,
                progress: RunProgress | None = None, executor: Executor | None = None) -> list[tuple[Part, RunResult]]:
    """The default benchmark into `out`: `config`'s solvers as `default_parts` shares them out."""
    parts = default_parts(config.solvers, generated)
    request = {"kind": "default", "solvers": [{"name": s.name, "options": s.options} for s in config.solvers]}
    return list(zip(parts, run_collection(parts, config, out, request, resume=resume, progress=progress,
                                          executor=executor)))


def run_collection(parts: Sequence[Part], config: RunConfig, out: Path, request: dict[str, Any],
                   resume: bool = False, progress: RunProgress | None = None,
                   executor: Executor | None = None) -> list[RunResult]:
    """Run every part into `out`/<folder>, as it goes; `--resume` continues what an interruption left.

    `config` gives the settings (its solvers are replaced by each part's); `request` is what must
    match for a resume (the kind of collection and its parameters)."""
    document = {"kind": request.get("kind", "collection"), "request": request,
                "parts": [{"path": p.folder, "label": p.label, "point": p.point, "dataset_sha256": p.dataset.hash}
                          for p in parts]}
    made = False
    if resume:
        check_collection_resumable(out, document)
    else:
        check_new_run(out, allowed=(DATASETS,))  # a sweep generates its data sets first
        made = not out.exists()
        out.mkdir(parents=True, exist_ok=True)
        write_collection(out, document)
    results = []
    try:
        for part in parts:
            part_config = with_dataset_options(dataclasses.replace(config, solvers=part.solvers), part.dataset)
            results.append(run_benchmark(part.dataset, part_config, out / part.folder,
                                         resume=resume and (out / part.folder / RUN).is_file(),
                                         progress=_labelled(progress, part.folder), executor=executor))
        attest_collection(out)
    except BaseException:
        if not resume and not any((out / p.folder).exists() for p in parts):  # refused before any run began
            (out / COLLECTION).unlink(missing_ok=True)
            if made and not any(out.iterdir()):
                out.rmdir()
        raise
    return results


def _labelled(progress: RunProgress | None, folder: str) -> RunProgress | None:
    """The progress callback with each solver named as `solver @ part`, so two parts' bars differ."""
    if progress is None:
        return None
    report = progress
    return lambda solver, done, total: report(f"{solver} @ {folder}", done, total)


