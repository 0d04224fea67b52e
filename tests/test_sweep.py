"""Sweeps: one data set per knob value, every solver on each, people where a study exists, resumable."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bench.cli import cli
from bench.report import build_report
from bench.runfolder.files import RunError
from bench.report.tables import crossings
from bench.run import RunConfig, SolverSpec
from bench.sweep import Sweep, parse_values, run_sweep
from captchas import recorded
from captchas import dataset as ds
from captchas.generate import make_dataset
from captchas.schemes import load

SMALL = {"width": 96, "height": 36, "font_sizes": (26, 30, 34), "length": 3}
SOLVER = SolverSpec("tests.fakes:FakeSolver", {"default": "ABC"})


@pytest.mark.parametrize("text, values", [
    ("0,30,60", (0, 30, 60)),
    ("(-10,10),(-30,30)", ((-10, 10), (-30, 30))),
    ("(-10,10)", ((-10, 10),)),
    ("DejaVuSerif,DroidSansMono", ("DejaVuSerif", "DroidSansMono")),
    ("0.5", (0.5,)),
])
def test_vary_values_are_literals_and_a_tuple_is_one_value(text: str, values: tuple[Any, ...]) -> None:
    assert parse_values(text) == values


def sweep(tmp_path: Path, **changes: Any) -> Sweep:
    return Sweep(**{"vary": (("noise_dots", (0, 60)),), "base": dict(SMALL), "count": 6, "seed": 3, **changes})


def config() -> RunConfig:
    return RunConfig((SOLVER,), throughput_items=0)


def test_a_sweep_runs_every_point_and_reports_against_the_knob(tmp_path: Path) -> None:
    results = run_sweep(sweep(tmp_path), (SOLVER,), config(), tmp_path / "sweep", studies=tmp_path / "none")
    assert [len(r.summaries) for r in results] == [1, 1]
    collection = json.loads((tmp_path / "sweep" / "collection.json").read_text())
    assert [p["label"] for p in collection["parts"]] == ["noise_dots=0", "noise_dots=60"]
    hashes = [p["dataset_sha256"] for p in collection["parts"]]
    assert len(set(hashes)) == 2  # two data sets, the same answers (one seed), other noise
    answers = [[s.answer for s in ds.read_dataset(tmp_path / "sweep" / "datasets" / p["path"]).samples]
               for p in collection["parts"]]
    assert answers[0] == answers[1]
    report = build_report([tmp_path / "sweep"])
    assert [g.point["label"] for g in report.groups] == ["noise_dots=0", "noise_dots=60"]
    assert report.people_reference is not None and report.people_reference.answers == 1529  # TuringPass first tries
    assert round(report.people_reference.accuracy, 3) == 0.796  # as its SOURCE.md says
    assert crossings(report) == [["noise_dots", SOLVER.name, "0.0%, 0.0%", "noise_dots=0", "noise_dots=0"]]


def test_a_sweep_resumes_without_redoing_and_refuses_other_settings(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    run_sweep(sweep(tmp_path), (SOLVER,), config(), out, studies=tmp_path / "none")
    before = {p: p.read_bytes() for p in out.rglob("attempts.csv")}
    run_sweep(sweep(tmp_path), (SOLVER,), config(), out, resume=True, studies=tmp_path / "none")
    assert {p: p.read_bytes() for p in out.rglob("attempts.csv")} == before
    with pytest.raises(RunError, match="already holds a run"):
        run_sweep(sweep(tmp_path), (SOLVER,), config(), out, studies=tmp_path / "none")
    with pytest.raises(RunError, match="cannot resume"):
        run_sweep(sweep(tmp_path, count=7), (SOLVER,), config(), out, resume=True, studies=tmp_path / "none")


def test_a_point_with_a_study_of_its_data_set_gets_the_people(tmp_path: Path) -> None:
    plan = sweep(tmp_path)
    point = make_dataset(load("image", "medium", {**SMALL, "noise_dots": 60}), 6, 3, tmp_path / "probe",
                         preset="medium")  # the very data set the sweep will make at noise_dots=60
    studies = tmp_path / "studies"
    studies.mkdir()
    recorded.write_csv(studies / f"{point.hash[:12]}.csv", [
        recorded.Recorded("p1", s.id, s.answer, False, 1, 4.0 + k, None, dataset_sha256=point.hash)
        for k, s in enumerate(point.samples)])
    run_sweep(plan, (SOLVER,), config(), tmp_path / "sweep", studies=studies)
    report = build_report([tmp_path / "sweep"])
    assert [(c.group, c.machine, c.human, c.accuracy.items) for c in report.comparisons] == [
        ("noise_dots=60", SOLVER.name, "human", 6)]
    run = json.loads((tmp_path / "sweep" / "noise_dots-1" / "run.json").read_text())
    assert [s["name"] for s in run["solvers"]] == [SOLVER.name, "human"]


def test_a_bad_knob_value_fails_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(ds.DatasetError, match=r"--vary noise_dots=-5 \(point 2 of 2\): noise_dots=-5 is out of range"):
        run_sweep(sweep(tmp_path, vary=(("noise_dots", (0, -5)),)), (SOLVER,), config(), tmp_path / "sweep")
    assert not (tmp_path / "sweep").exists()


def test_a_value_whose_items_cannot_be_drawn_is_named_before_anything_is_written(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["sweep", "--vary", "width=96,16", *[a for k, v in SMALL.items() if k != "width"
                                                                          for a in ("--set", f"{k}={v}")],
                                      "--count", "4", "--solver", SOLVER.name, "--out", str(tmp_path / "s")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "Error: --vary width=16 (point 2 of 2): its items cannot be drawn" in result.output
    assert not (tmp_path / "s").exists()


def test_the_sweep_states_its_cost_first_and_a_resume_names_what_differs(tmp_path: Path) -> None:
    sets = [arg for knob, value in SMALL.items() for arg in ("--set", f"{knob}={value}")]
    args = ["sweep", "--vary", "rotate=(-10,10),(-40,40)", *sets, "--solver", SOLVER.name, "--throughput-items", "0",
            "--workers", "1", "--studies", str(tmp_path / "none"), "--out", str(tmp_path / "s")]
    first = CliRunner().invoke(cli, [*args, "--count", "4"])
    assert first.exit_code == 0, first.output
    said = next(line for line in first.output.splitlines() if line.startswith("sweep: "))
    assert said.startswith("sweep: 2 point(s) x 4 items: about ") and "of images and" in said
    again = CliRunner().invoke(cli, [*args, "--count", "5", "--resume"])
    assert again.exit_code == 1 and "--count was 4, now 5" in again.output
    other = CliRunner().invoke(cli, [*args[:2], "rotate=(-10,10)", *args[3:], "--count", "4", "--resume"])
    assert other.exit_code == 1 and "--vary was rotate=(-10,10),(-40,40), now rotate=(-10,10)" in other.output


def test_a_sweep_bigger_than_the_free_disk_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import collections

    import bench.sweep

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(bench.sweep.shutil, "disk_usage", lambda path: usage(10**6, 10**6 - 1000, 1000))
    with pytest.raises(ds.DatasetError, match="would take about .* has 1.0 KB free: give fewer --vary values"):
        run_sweep(sweep(tmp_path, vary=(("noise_dots", (0, 5)),)), (SOLVER,), config(), tmp_path / "sweep")
    assert not (tmp_path / "sweep").exists()


def test_the_sweep_command_prints_where_the_report_is(tmp_path: Path) -> None:
    sets = [arg for knob, value in SMALL.items() for arg in ("--set", f"{knob}={value}")]
    result = CliRunner().invoke(cli, ["sweep", "--vary", "rotate=(-10,10),(-40,40)", *sets, "--count", "4",
                                      "--solver", SOLVER.name, "-o", "default=ABC", "--throughput-items", "0",
                                      "--workers", "1", "--studies", str(tmp_path / "none"),
                                      "--out", str(tmp_path / "s")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "report: " in result.output and (tmp_path / "s" / "report.html").is_file()
    assert (tmp_path / "s" / "figures" / "sweep-rotate.png").is_file()
    with (tmp_path / "s" / "rotate-1" / "attempts.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 4
