"""The instrument's science commands: attestation and verify-run on real runs, compare with its regression
gate, the leaderboard, the items audit, plan, and every refusal, each in one line."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bench import benchmark
from bench.cli import cli
from bench.run import RunConfig, SolverSpec
from bench.runfolder.attest import ATTESTATION
from bench.suite import Part, run_collection
from captchas import dataset as ds
from tests.fakes import write_run
from tests.test_humans import answers_csv
from tests.test_report import attempt


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def refused(result: Result, message: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and message in errors[0], result.output


def real_run(tmp_path: Path, dataset: ds.Dataset, name: str = "run") -> Path:
    """The constant solver (always wrong) and people who read the first four items."""
    s = dataset.samples
    answers = answers_csv(tmp_path / "answers.csv", dataset, [("p1", i, s[i].answer, 1, 3.0 + i) for i in range(4)]
                          + [("p2", 4, "WRONG", 1, 5.0), ("p2", 5, "", 1, 2.0)])
    config = RunConfig((SolverSpec("constant", {}), SolverSpec("human", {"answers": str(answers)})),
                       throughput_items=0)
    benchmark.run_benchmark(dataset, benchmark.with_dataset_options(config, dataset), tmp_path / name)
    return tmp_path / name


# attestation


def test_a_finished_run_attests_its_files_and_verify_run_accepts_them(tmp_path: Path,
                                                                       tiny_dataset: ds.Dataset) -> None:
    run = real_run(tmp_path, tiny_dataset)
    attestation = json.loads((run / ATTESTATION).read_text())
    assert set(attestation["files"]) == {"run.json", "attempts.csv", "timing.jsonl", "details.jsonl", "summary.csv",
                                         "summary.json"}
    assert attestation["dataset"]["manifest_sha256"] == tiny_dataset.hash
    assert attestation["solver_files"]["human"]["answers"]["sha256"] == ds.sha256_bytes((tmp_path / "answers.csv").read_bytes())
    assert len(attestation["results_sha256"]) == 64 and attestation["git"]
    result = invoke("verify-run", run)
    assert result.exit_code == 0, result.output
    assert "attempts.csv: matches" in result.output and "the data set's manifest" in result.output
    assert attestation["results_sha256"] in result.output


@pytest.mark.parametrize("change, message", [
    (lambda run, tmp: (run / "attempts.csv").write_text((run / "attempts.csv").read_text().replace(",0,", ",1,", 1)),
     "attempts.csv no longer matches its attestation"),
    (lambda run, tmp: (run / "summary.json").unlink(), "summary.json is missing"),
    (lambda run, tmp: (run / ATTESTATION).write_text((run / ATTESTATION).read_text().replace('"version": 1', '"version": 2')),
     "attestation.json was edited"),
    (lambda run, tmp: (tmp / "answers.csv").write_text("participant\n"), "answers.csv no longer matches"),
    (lambda run, tmp: (tmp / "tiny" / ds.MANIFEST).write_text("id,file,answer,sha256\n"), "manifest.csv no longer matches"),
    (lambda run, tmp: (run / ATTESTATION).unlink(), "has no attestation.json"),
    (lambda run, tmp: (run / ATTESTATION).write_text("{"), "is not valid JSON"),
])
def test_verify_run_refuses_a_changed_file_naming_it(tmp_path: Path, tiny_dataset: ds.Dataset, change: object,
                                                      message: str) -> None:
    run = real_run(tmp_path, tiny_dataset)
    change(run, tmp_path)  # type: ignore[operator]
    refused(invoke("verify-run", run), message)


def test_verify_run_says_what_it_could_not_check_and_refuses_a_non_run(tmp_path: Path,
                                                                       tiny_dataset: ds.Dataset) -> None:
    run = real_run(tmp_path, tiny_dataset)
    (tmp_path / "answers.csv").unlink()  # a run folder copied to another machine: the answers stayed behind
    result = invoke("verify-run", run)
    assert result.exit_code == 0 and "human's answers" in result.output and "not found here, not checked" in result.output
    refused(invoke("verify-run", tmp_path / "tiny"), "is not a run folder")


def test_a_collection_attests_its_parts(tmp_path: Path, tiny_dataset: ds.Dataset) -> None:
    config = RunConfig((SolverSpec("constant", {}),), throughput_items=0)
    parts = [Part("one", tiny_dataset, config.solvers, "tiny")]
    run_collection(parts, config, tmp_path / "all", {"kind": "test"})
    assert json.loads((tmp_path / "all" / ATTESTATION).read_text())["parts"] == {
        "one": ds.sha256_bytes((tmp_path / "all" / "one" / ATTESTATION).read_bytes())}
    assert invoke("verify-run", tmp_path / "all").exit_code == 0
    (tmp_path / "all" / "one" / "summary.csv").write_text("edited\n")
    refused(invoke("verify-run", tmp_path / "all"), "summary.csv no longer matches")


# compare


def machine_runs(tmp_path: Path, a_right: float, b_right: float, n: int = 400, sha: str = "f" * 64) -> tuple[Path, Path]:
    rng = random.Random(3)
    runs = []
    for name, share in (("a", a_right), ("b", b_right)):
        rows = []
        for i in range(n):
            answer = f"A{i:04d}"
            rows.append(attempt("cnn", i, answer, answer if rng.random() < share else "X", 0.01 * rng.uniform(0.5, 2)))
            rows.append(attempt("ocr", i, answer, answer if i % 2 else "X", 0.02))
        runs.append(write_run(tmp_path / name, sha, rows, people=()))
    return runs[0], runs[1]


def test_compare_pairs_two_runs_writes_its_files_and_gates_a_regression(tmp_path: Path) -> None:
    a, b = machine_runs(tmp_path, 0.95, 0.70)
    result = invoke("compare", a, b, "--fail-on-regression", "5")
    assert result.exit_code == 1 and "regression: cnn" in result.output
    assert "B less accurate" in result.output  # cnn lost 25 points; ocr is the same on both
    slow = write_run(tmp_path / "slow", "f" * 64, [attempt("cnn", i, f"A{i:04d}", "X", 0.5) for i in range(400)],
                     people=())
    assert "B slower" in invoke("compare", a, slow, "--out", tmp_path / "s1").output
    assert "B faster" in invoke("compare", slow, a, "--out", tmp_path / "s2").output
    rows = list(csv.DictReader(io.StringIO((b / "compare.csv").read_text())))
    assert [(r["solver_a"], r["solver_b"]) for r in rows] == [("cnn", "cnn"), ("ocr", "ocr")]
    assert float(rows[0]["difference_b_minus_a"]) < -0.2 and float(rows[1]["difference_b_minus_a"]) == 0
    assert json.loads((b / "compare.json").read_text())["pairs"][0]["verdict"].startswith("B less accurate")
    assert (b / "compare.md").read_text().startswith("# ")
    assert invoke("compare", b, a, "--fail-on-regression", "5").exit_code == 0  # the other way round: better
    assert invoke("compare", a, b, "--fail-on-regression", "30").exit_code == 0  # not worse by more than 30 points
    named = invoke("compare", a, b, "--pair", "cnn:ocr", "--out", tmp_path / "cmp")
    assert named.exit_code == 0 and len(list(csv.DictReader(io.StringIO((tmp_path / "cmp" / "compare.csv").read_text())))) == 1


def test_compare_refuses_what_it_cannot_pair(tmp_path: Path) -> None:
    a, b = machine_runs(tmp_path, 0.9, 0.9)
    other = write_run(tmp_path / "other", "0" * 64, [attempt("cnn", 0, "A", "A", 0.01)], people=())
    people = write_run(tmp_path / "people", "f" * 64, [attempt("cnn", 0, "A", "A", 0.01),
                                                       attempt("human", 0, "A", "A", 3.0)])
    lone = write_run(tmp_path / "lone", "f" * 64, [attempt("ddddocr", 0, "A", "A", 0.01)], people=())
    refused(invoke("compare", a, other), "compare runs on the same data set")
    refused(invoke("compare", a, a), "is given twice")
    refused(invoke("compare", a, lone), "no machine solver is in both runs")
    refused(invoke("compare", a, b, "--pair", "cnn"), "--pair expects A_SOLVER:B_SOLVER")
    refused(invoke("compare", a, b, "--pair", "cnn:vlm"), "has no solver 'vlm'")
    refused(invoke("compare", a, people, "--pair", "cnn:human"), "replays recorded people")
    refused(invoke("compare", a, b, "--fail-on-regression", "-1"), "--fail-on-regression is accuracy points")
    refused(invoke("compare", a, tmp_path / "nowhere"), "is not a folder")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "compare.csv").write_text("my own notes\n")
    refused(invoke("compare", a, b, "--out", tmp_path / "mine"), "holds compare.csv, which captcha-bench did not write")
    assert (tmp_path / "mine" / "compare.csv").read_text() == "my own notes\n"


# leaderboard, items, plan


def people_run(tmp_path: Path) -> Path:
    """cnn right on items 0-59, people (first answers) on 20-79; nobody reads 80-99; ocr reads nothing."""
    rows = []
    for i in range(100):
        answer = f"A{i:03d}"
        rows.append(attempt("cnn", i, answer, answer if i < 60 else "X", 0.01))
        rows.append(attempt("ocr", i, answer, "X", 0.02))
        rows.append(attempt("human", i, answer, answer if 20 <= i < 80 else "Y", 4.0, participant=f"p{i % 10}"))
    return write_run(tmp_path / "run", "9" * 64, rows)


def test_the_leaderboard_is_one_row_per_solver_per_data_set(tmp_path: Path) -> None:
    run = people_run(tmp_path)
    assert invoke("leaderboard", run, "--out", tmp_path / "board.csv").exit_code == 0
    rows = list(csv.DictReader(io.StringIO((tmp_path / "board.csv").read_text())))
    assert [r["solver"] for r in rows] == ["cnn", "human (first answers)", "ocr"]  # best first
    assert rows[0]["versus_people"] and rows[1]["versus_people"] == ""
    assert float(rows[0]["accuracy"]) == pytest.approx(0.6) and rows[0]["accuracy_low"]
    assert invoke("leaderboard", run, "--out", tmp_path / "board.json").exit_code == 0
    board = json.loads((tmp_path / "board.json").read_text())
    assert board["rows"][2]["solver"] == "ocr" and board["rows"][2]["accuracy"] == 0.0
    assert invoke("leaderboard", run, "--out", tmp_path / "board.csv").exit_code == 0  # its own file: replaced
    refused(invoke("leaderboard", run, "--out", tmp_path / "board.txt"), "name a .csv or a .json file")
    (tmp_path / "theirs.csv").write_text("x\n")
    refused(invoke("leaderboard", run, "--out", tmp_path / "theirs.csv"), "which captcha-bench did not write")


def test_items_lists_where_people_and_machines_differ(tmp_path: Path) -> None:
    run = people_run(tmp_path)

    def listed(*args: str) -> list[dict[str, str]]:
        result = invoke("items", run, *args)
        assert result.exit_code == 0, result.output
        return list(csv.DictReader(io.StringIO(result.output)))

    people_only = listed("--who", "people-only", "--machine", "cnn")
    assert [r["item_id"] for r in people_only] == [f"{i:06d}" for i in range(60, 80)]
    assert people_only[0]["expected"] == "A060" and people_only[0]["machine_answer"] == "X"
    assert len(listed("--who", "people-only")) == 20 + 60  # cnn's, then ocr's
    assert [r["item_id"] for r in listed("--who", "machine-only", "--machine", "cnn")] == [f"{i:06d}" for i in range(20)]
    nobody = listed("--who", "nobody")
    assert sorted({r["item_id"] for r in nobody}) == [f"{i:06d}" for i in range(80, 100)]
    assert len(nobody) == 40  # a row per machine
    refused(invoke("items", run, "--who", "nobody", "--machine", "vlm"), "is not a machine of")
    alone = write_run(tmp_path / "alone", "8" * 64, [attempt("cnn", 0, "A", "A", 0.01)], people=())
    refused(invoke("items", alone, "--who", "nobody"), "has no people beside its machines")


def test_the_report_shows_the_audit_with_the_solvable_only_accuracy(tmp_path: Path) -> None:
    from bench.report import build_report

    report = build_report([people_run(tmp_path)])
    (audit,) = report.audits
    assert audit.strongest == "cnn"
    assert audit.solvable["cnn"] == (pytest.approx(0.6), pytest.approx(0.75), 80)  # 60 of the 80 anyone read
    assert audit.solvable["human (first answers)"][1] == pytest.approx(0.75)
    assert invoke("report", tmp_path / "run").exit_code == 0
    page = (tmp_path / "run" / "report.md").read_text()
    assert "Where people still win, item by item" in page and "solvable-only accuracy" in page
    assert "the first 12 shown" in page


def test_the_report_shows_each_items_image_where_the_data_set_is(tmp_path: Path, tiny_dataset: ds.Dataset) -> None:
    run = real_run(tmp_path, tiny_dataset)
    assert invoke("report", run).exit_code == 0
    html = (run / "report.html").read_text()
    assert "People read it, constant did not: 4 item(s)" in html
    assert html.count('<img src="data:image/png;base64,') >= 4 + 1  # the items and at least one figure
    assert len(list((run / "figures").glob("item-1-*.png"))) >= 4


def test_plan_prints_the_items_a_gap_needs(tmp_path: Path) -> None:
    result = invoke("plan", "--gap", "3", "--discordance", "0.23")
    assert result.exit_code == 0 and "2,004 paired items" in result.output
    from_run = invoke("plan", "--gap", "10", "--from", people_run(tmp_path))
    assert from_run.exit_code == 0 and "cnn on" in from_run.output and "participants" in from_run.output
    refused(invoke("plan", "--gap", "3"), "give one of --discordance P")
    refused(invoke("plan", "--gap", "3", "--discordance", "0.2", "--from", tmp_path / "run"), "give one of")
    refused(invoke("plan", "--gap", "60", "--discordance", "0.23"), "a gap cannot reach 48.0 points")
    refused(invoke("plan", "--gap", "3", "--discordance", "1.5"), "--discordance is a share of items")
    refused(invoke("plan", "--gap", "3", "--discordance", "0.2", "--power", "1"), "--power is a probability")
    refused(invoke("plan", "--gap", "0", "--discordance", "0.2"), "give a gap above 0")


def test_a_margin_is_stated_before_the_run_and_cannot_change_on_resume(tmp_path: Path, tiny_dataset: ds.Dataset) -> None:
    out = tmp_path / "run"
    first = invoke("run", "--dataset", tiny_dataset.path, "--solver", "constant", "--margin", "5", "--out", out,
                   "--throughput-items", "0")
    assert first.exit_code == 0, first.output
    assert json.loads((out / "run.json").read_text())["config"]["margin"] == 5.0
    refused(invoke("run", "--out", out, "--resume", "--margin", "3"), "it ran with --margin 5, this command asks --margin 3")
    for bad in ("0", "100", "-2"):
        refused(invoke("run", "--dataset", tiny_dataset.path, "--solver", "constant", "--margin", bad,
                       "--out", tmp_path / f"bad{bad}"), "--margin is accuracy points above 0 and below 100")
        assert not (tmp_path / f"bad{bad}").exists()
