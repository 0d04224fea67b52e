"""Recorded human answers: the human solver's replay, coverage, and the TuringPass import."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from bench import benchmark
from bench.cli import cli
from bench.run import RunConfig, SolverSpec
from bench.study.app import create_app
from captchas import recorded
from captchas import dataset as ds
from captchas.turingpass import TURINGPASS_ANSWERS, TURINGPASS_IMAGES, import_turingpass
from tests.conftest import SHARED

TURINGPASS = SHARED / "data" / "turingpass"


def answers_csv(path: Path, dataset: ds.Dataset, rows: list[tuple[str, int, str, int, float]]) -> Path:
    """(participant, item index, answer, attempt, seconds) rows on `dataset` as an answers CSV."""
    recorded.write_csv(path, [
        recorded.Recorded(participant=p, item_id=dataset.samples[i].id, answer=a, skipped=a == "", attempt=n,
                          server_seconds=t, client_seconds=None, dataset_sha256=dataset.hash)
        for p, i, a, n, t in rows
    ])
    return path


def run_human(tmp_path: Path, dataset: ds.Dataset, name: str = "run", case: bool | None = None,
              **options: object) -> tuple[benchmark.RunResult, list[dict[str, str]]]:
    config = RunConfig((SolverSpec("human", dict(options)),), case_sensitive=case)
    result = benchmark.run_benchmark(dataset, benchmark.with_dataset_options(config, dataset), tmp_path / name)
    return result, list(csv.DictReader((tmp_path / name / "attempts.csv").read_text().splitlines()))


def test_replay_writes_a_row_per_answer_and_leaves_unanswered_items_out(tmp_path: Path, tiny_dataset: ds.Dataset) -> None:
    s = tiny_dataset.samples
    path = answers_csv(tmp_path / "a.csv", tiny_dataset, [
        ("p1", 0, s[0].answer.lower(), 1, 4.0),  # right (case-insensitive set)
        ("p1", 1, "WRONG", 1, 6.0),
        ("p1", 1, s[1].answer, 2, 8.0),  # right on the second try
        ("p2", 0, "", 1, 2.0),  # skipped
        ("p2", 2, s[2].answer, 1, 10.0),
    ])
    result, rows = run_human(tmp_path, tiny_dataset, answers=str(path))
    (summary,) = result.summaries
    assert (summary.n, summary.items, summary.correct, summary.skipped, summary.errors) == (5, 3, 3, 1, 0)
    assert summary.coverage == pytest.approx(3 / 8)  # five items nobody answered: not attempted, not wrong
    assert summary.median_seconds == pytest.approx(7.0)  # of the four answers given; the skip is left out
    assert [(r["participant"], r["attempt"], r["correct"], r["error"]) for r in rows] == [
        ("p1", "1", "1", ""), ("p2", "1", "0", "skipped"), ("p1", "1", "0", ""), ("p1", "2", "1", ""), ("p2", "1", "1", "")]
    assert [float(r["seconds"]) for r in rows] == [4.0, 2.0, 6.0, 8.0, 10.0]  # the recorded times
    provenance = json.loads((tmp_path / "run" / "run.json").read_text())["provenance"]
    assert provenance["solver_files"] == {"human": {"answers": ds.sha256_bytes(path.read_bytes())}}  # which answers
    first, _ = run_human(tmp_path, tiny_dataset, "first", answers=str(path), attempts="first")
    assert (first.summaries[0].n, first.summaries[0].correct) == (4, 2)
    only, _ = run_human(tmp_path, tiny_dataset, "p2", answers=str(path), participants="p2")
    assert (only.summaries[0].n, only.summaries[0].items, only.summaries[0].skipped) == (2, 2, 1)
    strict, _ = run_human(tmp_path, tiny_dataset, "strict", case=True, answers=str(path))
    assert strict.summaries[0].correct == 2  # the lower-case answer is wrong when case counts


def test_replay_refuses_answers_of_another_data_set_and_bad_options(tmp_path: Path, tiny_dataset: ds.Dataset) -> None:
    from solvers.registry import SolverError

    path = answers_csv(tmp_path / "a.csv", tiny_dataset, [("p1", 0, "X", 1, 1.0)])
    text = path.read_text().replace(tiny_dataset.hash, "f" * 64)
    (tmp_path / "other.csv").write_text(text)
    header = ",".join(recorded.COLUMNS)
    row = path.read_text().splitlines()[1]
    bad_files = {
        "noitem.csv": "participant,answer\np1,X\n",
        "nan.csv": "item_id,answer,server_seconds\n000000,A,nan\n",
        "negative.csv": "item_id,answer,server_seconds\n000000,A,-3\n",
        "unknown.csv": "item_id,answer\n999999,A\n",
        "attempt.csv": "item_id,answer,attempt\n000000,A,0\n",
        "maybe.csv": "item_id,answer,skipped\n000000,,maybe\n",
    }
    for name, content in bad_files.items():
        (tmp_path / name).write_text(content)
    for options, words in [({"answers": str(tmp_path / "other.csv")}, "recorded on data set ffffffffffff"),
                           ({"answers": str(path), "attempts": "some"}, "'all' or 'first'"),
                           ({"answers": str(path), "participants": "p9"}, "p9 gave no answer"),
                           ({"answers": str(tmp_path / "none.csv")}, "does not exist"),
                           ({}, "give -o answers=FILE"),
                           ({"answers": str(tmp_path / "noitem.csv")}, "lacks the column(s) item_id"),
                           ({"answers": str(tmp_path / "nan.csv")}, "line 2: time 'nan' is not a non-negative number"),
                           ({"answers": str(tmp_path / "negative.csv")}, "line 2: time '-3' is not a non-negative"),
                           ({"answers": str(tmp_path / "unknown.csv")}, "1 recorded answer(s) name items this data set "
                                                                         "does not have (e.g. '999999')"),
                           ({"answers": str(tmp_path / "attempt.csv")}, "line 2: attempt 0 is not 1 or more"),
                           ({"answers": str(tmp_path / "maybe.csv")}, "line 2: skipped 'maybe' is not 0/1")]:
        with pytest.raises(SolverError, match=None) as caught:
            run_human(tmp_path, tiny_dataset, "bad", **options)
        assert words in str(caught.value) and "\n" not in str(caught.value)
        assert not (tmp_path / "bad").exists()  # refused before the run folder is made
    (tmp_path / "bom.csv").write_bytes("\ufeff".encode() + f"{header}\n{row}\n".encode())  # as a spreadsheet saves it
    result, rows = run_human(tmp_path, tiny_dataset, "bom", answers=str(tmp_path / "bom.csv"))
    assert [r["participant"] for r in rows] == ["p1"] and result.summaries[0].n == 1


def test_replay_reads_the_study_database_directly(tmp_path: Path, tiny_dataset: ds.Dataset) -> None:
    db = tmp_path / "s.db"
    client = create_app(tiny_dataset, str(db)).test_client()
    view = client.post("/api/participants", json={"consent": True}).json
    for _ in range(3):
        client.get(view["image"])
        view = client.post(f"/api/participants/{view['participant']}/answers",
                           json={"token": view["token"], "answer": "ZZZ"}).json
    result, rows = run_human(tmp_path, tiny_dataset, answers=str(db))
    assert (result.summaries[0].n, result.summaries[0].items, result.summaries[0].correct) == (3, 3, 0)
    assert {r["participant"] for r in rows} == {view["participant"]}


def make_turingpass(root: Path, answers: list[str], rows: list[tuple[int, int, str, str]]) -> Path:
    """A TuringPass-shaped folder: images named by answer, and (time ms, attempt, actual, response) rows."""
    images = root / TURINGPASS_IMAGES
    images.mkdir(parents=True)
    for k, a in enumerate(answers):
        Image.new("RGB", (150, 40), (k * 20 % 256, 90, 200)).save(images / f"{a}.jpg")
    table = root / TURINGPASS_ANSWERS
    table.parent.mkdir(parents=True)
    with table.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["time_taken", "is_correct", "attempts", "key_presses", "backspace_presses", "mouse_movements",
                    "actual", "response"])
        for ms, n, actual, response in rows:
            w.writerow([ms, int(actual == response), n, 5, 0, "[]", actual, response])
    return root


def test_turingpass_import_splits_and_keeps_attempts(tmp_path: Path) -> None:
    src = make_turingpass(tmp_path / "tp", ["1aBcd", "2eFgh", "3iJkl", "4mNpq"], [
        (5000, 1, "1aBcd", "1ABCD"), (7000, 1, "2eFgh", "2efgx"), (3000, 2, "2eFgh", "2eFgh"), (9000, 1, "3iJkl", "SKIPPED"),
        (1000, 1, "9zzzz", "9zzzz"),  # no such image: reported, not imported
    ])
    result = import_turingpass(src, tmp_path / "out")
    assert len(result.humans.samples) == 3 and len(result.train.samples) == 1 and result.answers == 4
    assert [s.reason for s in result.skipped] == ["no image 9zzzz.jpg"]
    assert {s.answer for s in result.train.samples} == {"4mNpq"}
    assert not result.humans.case_sensitive and result.humans.info["preset"] == "turingpass"
    files = {p.name for p in result.humans.path.iterdir()}
    assert not any(a in name for a in ("1aBcd", "2eFgh", "3iJkl") for name in files)  # opaque names
    rows = recorded.read_csv(result.humans.path / "answers.csv")
    assert [(r.attempt, r.skipped, r.client_seconds, r.server_seconds) for r in rows] == [
        (1, False, 5.0, None), (1, False, 7.0, None), (2, False, 3.0, None), (1, True, 9.0, None)]
    assert "1aBcd" not in (result.humans.path / "answers.csv").read_text()  # answers file holds responses, not truth
    run, attempts = run_human(tmp_path, result.humans)  # the data set names its answers file
    assert (run.summaries[0].n, run.summaries[0].correct, run.summaries[0].coverage) == (4, 2, 1.0)
    strict, _ = run_human(tmp_path, result.humans, "strict", case=True)
    assert strict.summaries[0].correct == 1


def test_turingpass_import_bad_inputs(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["import", "turingpass", str(tmp_path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and "is not a TuringPass folder" in result.output and "Traceback" not in result.output
    src = make_turingpass(tmp_path / "tp", ["1aBcd"], [(5000, 1, "1aBcd", "1ABCD")])
    table = src / TURINGPASS_ANSWERS
    table.write_text(table.read_text().replace("time_taken", "time"))
    result = runner.invoke(cli, ["import", "turingpass", str(src), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and "lacks the column(s) time_taken" in result.output
    table.write_text("time_taken,attempts,actual,response\nfast,1,1aBcd,x\n")
    result = runner.invoke(cli, ["import", "turingpass", str(src), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and "line 2" in result.output
    assert not (tmp_path / "out").exists()  # nothing half-written


@pytest.mark.skipif(not TURINGPASS.is_dir(), reason=f"TuringPass data set absent: expected at {TURINGPASS}")
def test_the_turingpass_import_reproduces_the_source_figures(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["import", "turingpass", str(TURINGPASS), "--out", str(tmp_path / "tp")])
    assert result.exit_code == 0, result.output
    humans, train = ds.read_dataset(tmp_path / "tp" / "humans"), ds.read_dataset(tmp_path / "tp" / "train")
    assert (len(humans.samples), len(train.samples)) == (1398, 8493 - 1398)
    assert not {s.answer for s in humans.samples} & {s.answer for s in train.samples}
    everyone, _ = run_human(tmp_path, humans, "all")
    (s,) = everyone.summaries
    assert (s.n, s.items, s.coverage) == (1817, 1398, 1.0)
    assert round(s.accuracy * 100, 1) == 73.5 and round(s.median_seconds or 0, 1) == 7.9  # SOURCE.md's figures
    first, _ = run_human(tmp_path, humans, "first", attempts="first")
    assert (first.summaries[0].n, round(first.summaries[0].accuracy * 100, 1)) == (1529, 79.6)
    strict, _ = run_human(tmp_path, humans, "strict", case=True)
    assert round(strict.summaries[0].accuracy * 100, 1) == 53.1
    shutil.rmtree(tmp_path / "tp")
