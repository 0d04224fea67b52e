"""Past one process: shards on several local solver processes or a Dask cluster give the same
attempts, in the same order, as one process; a killed worker loses and duplicates nothing; the
manifest and the summaries are read as streams."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import benchmark
from bench.runfolder import files as results
from bench.runfolder.records import COLUMNS
from bench.executors import DaskExecutor, LocalExecutor
from bench.run import ConfigError, RunConfig, SolverSpec
from captchas import dataset as ds
from captchas import images
from tests.fakes import edit_manifest

FAKE, FAULTY = "tests.fakes:FakeSolver", "tests.fakes:FaultySolver"
pytest.importorskip("distributed", reason="the dask extra is not installed (pip install 'captcha-bench[dask]')")


@pytest.fixture(scope="module")
def cluster() -> Iterator[DaskExecutor]:
    """One LocalCluster of two worker processes for the module (it takes seconds to start)."""
    executor = DaskExecutor(workers=2)
    yield executor
    executor.close()


def _config(dataset: ds.Dataset) -> RunConfig:
    answers = {s.id: s.answer if k % 3 else "?" for k, s in enumerate(dataset.samples)}  # right, and some wrong
    return RunConfig((SolverSpec(FAKE, {"answers": answers}), SolverSpec(FAULTY, {"raise_on": ("000004",)})),
                     throughput_items=4, batch_size=2)


def _rows(out: Path) -> list[tuple[str, ...]]:
    """attempts.csv without its times: what must not depend on where the work ran."""
    keep = [c for c in COLUMNS if c not in ("seconds", "run_id")]  # the run id is the folder name
    return [tuple(str(getattr(a, c)) for c in keep) for a in results.read_attempts(out / results.ATTEMPTS)]


def test_two_local_processes_and_a_dask_cluster_give_the_same_attempts_in_the_same_order(
        tmp_path: Path, tiny_dataset: ds.Dataset, cluster: DaskExecutor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(benchmark, "SHARD", 3)  # 8 items: three shards per solver, so they can finish out of order
    config = _config(tiny_dataset)
    one = benchmark.run_benchmark(tiny_dataset, config, tmp_path / "one")
    two = benchmark.run_benchmark(tiny_dataset, config, tmp_path / "two", executor=LocalExecutor(2))
    dask = benchmark.run_benchmark(tiny_dataset, config, tmp_path / "dask", executor=cluster)
    assert cluster.cluster is not None
    existing = DaskExecutor(scheduler=cluster.cluster.scheduler_address)  # an existing cluster: images go as bytes
    try:
        assert existing.images_by == "bytes" and existing.workers == 2
        sent = benchmark.run_benchmark(tiny_dataset, config, tmp_path / "bytes", executor=existing)
    finally:
        existing.close()
    assert cluster.client.status == "running"  # closing a client of an existing cluster leaves the cluster up
    expected = _rows(tmp_path / "one")
    assert len(expected) == 16 and [r[1] for r in expected[:8]] == [s.id for s in tiny_dataset.samples]
    assert {r[-3] for r in expected} >= {"", "RuntimeError: model exploded"}  # errors travel too
    for out in ("two", "dask", "bytes"):
        assert _rows(tmp_path / out) == expected, out
    for result in (two, dask, sent):
        assert [(s.n, s.correct, s.errors) for s in result.summaries] == [(s.n, s.correct, s.errors)
                                                                        for s in one.summaries]
    recorded = [results.read_request(tmp_path / out)["provenance"]["executor"]
                for out in ("one", "two", "dask", "bytes")]
    assert [r["kind"] for r in recorded] == ["local", "local", "dask", "dask"]
    assert recorded[1]["workers"] == 2 and recorded[3]["images_by"] == "bytes"


def test_a_local_run_resumes_on_dask_without_redoing_or_duplicating(
        tmp_path: Path, tiny_dataset: ds.Dataset, cluster: DaskExecutor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(benchmark, "SHARD", 2)
    config = _config(tiny_dataset)
    out = tmp_path / "run"

    def interrupt(solver: str, done: int, total: int) -> None:
        if solver == FAKE and done == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        benchmark.run_benchmark(tiny_dataset, config, out, progress=interrupt)
    before = _rows(out)
    assert len(before) == 4
    benchmark.run_benchmark(tiny_dataset, config, out, resume=True, executor=cluster)
    after = _rows(out)
    assert after[:4] == before and len(after) == 16 and len({(r[0], r[1]) for r in after}) == 16
    benchmark.run_benchmark(tiny_dataset, config, tmp_path / "whole")
    assert sorted(after) == sorted(_rows(tmp_path / "whole"))


def test_a_bad_image_stops_a_dask_run_in_one_line(tmp_path: Path, tiny_dataset: ds.Dataset,
                                                  cluster: DaskExecutor) -> None:
    """Checked before anything is written, as locally; a file changed after the check stops the run there."""
    config = RunConfig((SolverSpec("constant"),), throughput_items=0)
    (tiny_dataset.path / "000002.png").write_bytes(b"garbage")
    with pytest.raises(ds.DatasetError, match="000002.png \\(item 000002\\) does not match its sha256"):
        benchmark.run_benchmark(tiny_dataset, config, tmp_path / "run", executor=cluster)
    assert not (tmp_path / "run").exists()


def test_a_gpu_solver_needs_a_worker_that_offers_one(tmp_path: Path, tiny_dataset: ds.Dataset,
                                                     cluster: DaskExecutor) -> None:
    config = RunConfig((SolverSpec("cnn", {"device": "cuda"}),), throughput_items=0)
    with pytest.raises(ConfigError, match="needs {'GPU': 1.0} of a worker and no Dask worker offers it: start "
                                          "workers with e.g. dask worker ADDRESS --resources GPU=1"):
        benchmark.run_benchmark(tiny_dataset, config, tmp_path / "run", executor=cluster)


def test_generating_on_dask_gives_the_same_bytes(tmp_path: Path, tiny_spec: object, cluster: DaskExecutor) -> None:
    from captchas.generate import make_dataset
    from captchas.schemes import ImageScheme

    scheme = ImageScheme(tiny_spec)  # type: ignore[arg-type]
    here = make_dataset(scheme, 40, 3, tmp_path / "here", preset="medium")
    there = make_dataset(scheme, 40, 3, tmp_path / "there", preset="medium", mapper=cluster.map_ordered)
    assert there.hash == here.hash and images.check_files(there) == []


def test_a_worker_killed_mid_run_loses_and_repeats_no_attempt(tmp_path: Path, tiny_dataset: ds.Dataset,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Its shard is redone on another worker (Dask reschedules it); attempts are written once, in order."""
    monkeypatch.setattr(benchmark, "SHARD", 1)
    executor = DaskExecutor(workers=2)
    config = RunConfig((SolverSpec(FAULTY, {"slow_on": tuple(s.id for s in tiny_dataset.samples), "slow": 0.3}),),
                       throughput_items=0)
    killed: list[int] = []

    def kill(solver: str, done: int, total: int) -> None:
        if solver == FAULTY and done == 2 and not killed:
            pids = executor.client.run(os.getpid)
            killed.append(next(iter(pids.values())))
            os.kill(killed[0], signal.SIGKILL)

    try:
        result = benchmark.run_benchmark(tiny_dataset, config, tmp_path / "run", progress=kill, executor=executor)
    finally:
        executor.close()
    rows = _rows(tmp_path / "run")
    assert killed and [r[1] for r in rows] == [s.id for s in tiny_dataset.samples]
    assert all(r[-3] == "" for r in rows) and result.summaries[0].n == 8


def test_a_sweep_generates_and_runs_on_dask(tmp_path: Path, cluster: DaskExecutor) -> None:
    from bench.sweep import Sweep, run_sweep

    knobs = {"width": 96, "height": 36, "font_sizes": (26, 30, 34), "length": 3}
    plan = Sweep((("rotate", ((-5, 5), (-30, 30))),), "medium", "image", knobs, 12, 1)
    config = RunConfig((SolverSpec("constant"),), throughput_items=0)
    here = run_sweep(plan, config.solvers, config, tmp_path / "here", workers=1)
    there = run_sweep(plan, config.solvers, config, tmp_path / "there", executor=cluster)
    for a, b in zip(here, there, strict=True):
        assert _rows(a.path) == _rows(b.path) and len(_rows(a.path)) == 12
    assert [p.name for p in sorted((tmp_path / "there" / "datasets").iterdir())] == ["rotate-0", "rotate-1"]


def test_the_manifest_is_read_as_needed_and_may_not_change_meanwhile(tiny_dataset: ds.Dataset) -> None:
    samples = tiny_dataset.samples
    assert isinstance(samples, ds.Manifest) and len(samples) == 8 and len(samples[:3]) == 3
    assert [s.id for s in samples[:3]] == [s.id for s in list(samples)[:3]] and samples[-1] == list(samples)[-1]
    assert samples[5:7] == tuple(list(samples)[5:7])
    edit_manifest(tiny_dataset.path, samples[2].sha256, "0" * 64)
    with pytest.raises(ds.DatasetError, match="changed while the data set was in use"):
        list(samples)


def test_a_repeated_id_is_found_among_many(tmp_path: Path, tiny_dataset: ds.Dataset) -> None:
    manifest = tiny_dataset.path / ds.MANIFEST
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join(lines + [lines[5]]) + "\n")
    with pytest.raises(ds.DatasetError, match="repeats an id"):
        ds.read_dataset(tiny_dataset.path)


def test_the_cli_says_where_dask_runs_and_refuses_what_cannot_work(tmp_path: Path, tiny_dataset: ds.Dataset) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", "from bench.cli import cli; cli()", "run", "--dataset",
                               str(tiny_dataset.path),
                               "--solver", "constant", "--throughput-items", "0", *args],
                              capture_output=True, text=True, cwd=tmp_path, timeout=300)

    done = run("--executor", "dask", "--solver-workers", "1", "--out", "dask")
    assert done.returncode == 0, done.stderr
    assert "Dask: a LocalCluster on 127.0.0.1, 1 worker(s); dashboard: http://127.0.0.1:" in done.stderr
    for args, message in [(("--scheduler", "tcp://127.0.0.1:9"), "--scheduler and --images-by go with --executor dask"),
                          (("--executor", "dask", "--scheduler", "tcp://127.0.0.1:9"),
                           "cannot reach the Dask scheduler at tcp://127.0.0.1:9")]:
        failed = run(*args, "--out", "refused")
        assert failed.returncode == 1 and message in failed.stderr and "Traceback" not in failed.stderr
        assert not (tmp_path / "refused").exists()


def test_the_memory_benchmark_repeats_images_as_separate_items_and_measures_whole_runs(
        tmp_path: Path, tiny_dataset: ds.Dataset) -> None:
    from bench.measure import measure_memory, repeated_dataset

    repeated = repeated_dataset(tiny_dataset, 20, tmp_path / "repeated")
    files = [repeated.path / s.file for s in repeated.samples]
    assert len(repeated.samples) == 20 and len({s.id for s in repeated.samples}) == 20 and images.check_files(repeated) == []
    assert os.path.samefile(files[0], files[8]) and not os.path.samefile(files[0], files[1])
    memory = measure_memory(tiny_dataset, tmp_path / "scratch", [10, 30], "constant", ["--throughput-items", "0"])
    assert set(memory.peaks) == {10, 30} and all(20 < mb < 2000 for mb in memory.peaks.values())
    assert list((tmp_path / "scratch").iterdir()) == []  # its data sets and runs are gone


def test_an_image_that_fails_to_decode_mid_run_stops_it_in_one_line_and_keeps_what_was_done(
        tmp_path: Path, tiny_dataset: ds.Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before the run, images are checked by hash and header; the pixels are decoded once, in the solver
    process. A file whose header is fine but whose data is cut short (and that the manifest vouches for)
    stops the run when its shard comes, naming the item; earlier shards stay written, for --resume."""
    monkeypatch.setattr(benchmark, "SHARD", 2)
    sample = tiny_dataset.samples[5]
    whole = (tiny_dataset.path / sample.file).read_bytes()
    cut = whole[: len(whole) // 2]
    (tiny_dataset.path / sample.file).write_bytes(cut)
    edit_manifest(tiny_dataset.path, sample.sha256, ds.sha256_bytes(cut))
    data = ds.read_dataset(tiny_dataset.path)
    config = RunConfig((SolverSpec("constant"),), throughput_items=0)
    with pytest.raises(ds.DatasetError, match=f"item {sample.id} is a truncated or damaged PNG .*: re-import or "
                                              "regenerate the data set"):
        benchmark.run_benchmark(data, config, tmp_path / "run")
    assert [r[1] for r in _rows(tmp_path / "run")] == [s.id for s in data.samples][:4]
