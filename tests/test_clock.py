"""Honest clocks: a solver's process runs with the threads it is meant to have, the latency benchmark
starts and stops its own load, and every run records what else the machine was doing."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from bench import load
from bench.benchmark import run_benchmark
from bench.run import RunConfig, SolverSpec
from bench.runfolder.files import read_attempts
from bench.measure import busy_loops
from captchas import dataset as ds
from captchas.images import load_image
from tests.test_cli import invoke

THREADS = "tests.fakes:ThreadsSolver"


def _answers(out: Path) -> set[str]:
    return {a.predicted for a in read_attempts(out / "attempts.csv")}


def test_a_solver_process_has_one_thread_unless_its_hook_asks_for_more(tmp_path: Path, tiny_dataset: ds.Dataset,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "7")  # the user's shell: not what a timed solver runs with
    run_benchmark(tiny_dataset, RunConfig((SolverSpec(THREADS, {"torch": True}),)), tmp_path / "one")
    assert _answers(tmp_path / "one") == {"1/1"}  # torch, too, reads one thread
    run_benchmark(tiny_dataset, RunConfig((SolverSpec(THREADS, {"wanted": 2}),)), tmp_path / "two")
    assert _answers(tmp_path / "two") == {"2"}
    provenance = json.loads((tmp_path / "two" / "run.json").read_text())["provenance"]
    assert provenance["solver_threads"] == {THREADS: 2}


def test_several_solver_processes_share_the_cores(tmp_path: Path, tiny_dataset: ds.Dataset) -> None:
    from bench.executors import LocalExecutor

    cores = os.cpu_count() or 1
    run_benchmark(tiny_dataset, RunConfig((SolverSpec(THREADS, {"wanted": 64}),)), tmp_path / "run",
                  executor=LocalExecutor(2))
    assert _answers(tmp_path / "run") == {str(max(1, cores // 2))}


def test_a_threads_hook_that_gives_no_count_is_refused_before_anything_is_written(
        tmp_path: Path, tiny_dataset: ds.Dataset) -> None:
    result = invoke("run", "--dataset", str(tiny_dataset.path), "--solver", THREADS, "-o", "wanted=0",
                    "--out", str(tmp_path / "run"))
    assert result.exit_code == 1 and "threads hook gave 0" in result.output
    assert not (tmp_path / "run").exists()


def test_ddddocr_reads_as_it_does_out_of_the_box_on_one_thread(tiny_dataset: ds.Dataset) -> None:
    ddddocr = pytest.importorskip("ddddocr")
    import contextlib
    import io

    from captchas.dataset import Challenge
    from solvers.ddddocr import DdddOcrSolver

    images = [load_image(tiny_dataset, s) for s in tiny_dataset.samples]
    ours = DdddOcrSolver()
    assert ours._ocr.ocr_engine.session.get_session_options().intra_op_num_threads == 1
    with contextlib.redirect_stdout(io.StringIO()):
        theirs = ddddocr.DdddOcr(show_ad=False)
    assert ours.solve([Challenge(str(k), im) for k, im in enumerate(images)]) == [theirs.classification(im)
                                                                                 for im in images]
    assert DdddOcrSolver.threads(threads=3) == 3
    with pytest.raises(ValueError, match="threads must be a whole number"):
        DdddOcrSolver(threads=0)


def test_busy_loops_run_niced_in_sessions_of_their_own_and_stop() -> None:
    with busy_loops(2) as loops:
        for p in loops:
            assert p.poll() is None
            assert os.getpgid(p.pid) == p.pid != os.getpgid(0)  # its own session and group
            stat = Path(f"/proc/{p.pid}/stat").read_text()
            assert int(stat[stat.rfind(")") + 2 :].split()[16]) == 19  # nice
    assert all(p.poll() is not None for p in loops)


def test_the_latency_benchmark_prints_quiet_and_busy_figures(tmp_path: Path, tiny_dataset: ds.Dataset) -> None:
    before = subprocess.run(["pgrep", "-f", "os.nice\\(19\\)"], capture_output=True, text=True).stdout.split()
    result = invoke("speed", "latency", "--dataset", str(tiny_dataset.path), "--solver", "constant", "--items", "8",
                    "--rounds", "1")
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if line.startswith("constant "))
    assert len(row.split()) == 8 and row.split()[-1] in ("yes", "no")
    assert "1 busy loop(s) at nice 19" in result.output
    after = subprocess.run(["pgrep", "-f", "os.nice\\(19\\)"], capture_output=True, text=True).stdout.split()
    assert after == before  # the loops it started are gone
    refused = invoke("speed", "latency", "--dataset", str(tiny_dataset.path), "--solver", "human")
    assert refused.exit_code == 1 and "recorded people are not timed" in refused.output


def _snap(wall: float, busy: float | None, niced: float | None, own: float, loadavg=(0.5, 0.4, 0.3)) -> load.Snapshot:
    return load.Snapshot(wall, loadavg, busy, niced, own)


@pytest.mark.parametrize("busy, niced, own, cores, warned", [
    (10.0, 0.0, 9.0, 2, False),  # others used 0.1 core: quiet
    (19.0, 9.0, 9.0, 2, True),  # a niced loop kept a core busy while the run used 0.9: every core taken
    (14.0, 0.0, 9.0, 4, False),  # 0.5 core of others on 4 cores: room to spare
    (38.0, 0.0, 9.0, 4, True),  # 2.9 cores of others and 0.9 of the run: all four
])
def test_the_load_warning_says_when_other_work_took_the_cores(busy: float, niced: float, own: float, cores: int,
                                                              warned: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(load, "cores", lambda: cores)
    record = load.between(_snap(0.0, 100.0, 50.0, 1.0), _snap(10.0, 100.0 + busy, 50.0 + niced, 1.0 + own))
    assert record["own_cores"] == pytest.approx(own / 10) and record["cores"] == cores
    assert record["others_cores"] == pytest.approx(max(0.0, (busy - own) / 10))
    assert record["others_niced_cores"] == pytest.approx(niced / 10)
    said = load.warning(record)
    assert (said is not None) == warned
    if said:
        assert f"{record['others_cores']:.1f} of its {cores} cores" in said


def test_without_cpu_counters_the_load_average_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(load, "cores", lambda: 2)
    quiet = load.between(_snap(0, None, None, 0), _snap(1, None, None, 1))
    assert "others_cores" not in quiet and load.warning(quiet) is None
    busy = load.between(_snap(0, None, None, 0, (2.5, 2, 2)), _snap(1, None, None, 1, (3, 2, 2)))
    assert "load average was 2.5 on 2 cores" in str(load.warning(busy))


def test_a_run_records_each_session_of_load_and_warns_after_its_table(tmp_path: Path, tiny_dataset: ds.Dataset,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    first = invoke("run", "--dataset", str(tiny_dataset.path), "--solver", "constant", "--out", str(out), "--limit", "4")
    assert first.exit_code == 0
    sessions = json.loads((out / "run.json").read_text())["provenance"]["load"]
    assert len(sessions) == 1 and {"cores", "seconds", "own_cores", "loadavg_start", "loadavg_end"} <= set(sessions[0])
    assert json.loads((out / "summary.json").read_text())["provenance"]["load"] == sessions
    rows = (out / "attempts.csv").read_text().splitlines(keepends=True)
    (out / "attempts.csv").write_text("".join(rows[:3]))  # as a kill before the end leaves it
    (out / "timing.jsonl").unlink()
    monkeypatch.setattr(load, "warning", lambda record: "the machine was busy (a test says so)")
    again = invoke("run", "--out", str(out), "--resume")
    assert again.exit_code == 0, again.output
    lines = again.output.splitlines()
    table_end = max(k for k, line in enumerate(lines) if line.startswith("constant"))
    assert lines[table_end + 1] == "warning: the machine was busy (a test says so)"
    assert len(json.loads((out / "run.json").read_text())["provenance"]["load"]) == 2
    assert invoke("report", str(out)).exit_code == 0
    assert "load while it ran" in (out / "report.html").read_text()
