"""The runner: scoring, statistics, faults, resume, and what a solver can see."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from bench import benchmark
from bench.runfolder import files as results
from bench.runfolder.files import RunError
from bench.summary import glyph_accuracy, glyph_table, percentile, summarize, wilson
from bench.run import RunConfig, SolverSpec
from bench.runfolder.records import Attempt
from captchas.scoring import cer, is_correct
from captchas import dataset as ds
from tests.fakes import edit_manifest

FAKE, FAULTY, SPY = "tests.fakes:FakeSolver", "tests.fakes:FaultySolver", "tests.fakes:SpySolver"


@pytest.mark.parametrize(
    ("expected", "predicted", "case_sensitive", "correct"),
    [
        ("AB3D", "AB3D", False, True),
        ("AB3D", "ab3d", False, True),
        ("AB3D", "ab3d", True, False),
        ("AB3D", " A B3D\n", False, True),  # white space never counts
        ("AB3D", "AB3", False, False),
        ("AB3D", "", False, False),
        ("straße", "STRASSE", False, True),  # casefold, not lower
    ],
)
def test_is_correct(expected: str, predicted: str, case_sensitive: bool, correct: bool) -> None:
    assert is_correct(expected, predicted, case_sensitive) is correct


@pytest.mark.parametrize(
    ("expected", "predicted", "value"),
    [("ABCD", "ABCD", 0.0), ("ABCD", "ABXD", 0.25), ("ABCD", "ABC", 0.25), ("ABCD", "", 1.0),
     ("ABCD", "ABCDEFGH", 1.0), ("ABCD", "BCDA", 0.5), ("AB", "ab", 0.0)],
)
def test_cer(expected: str, predicted: str, value: float) -> None:
    assert cer(expected, predicted) == pytest.approx(value)


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [(0, 0, 0.0, 1.0), (5, 10, 0.2366, 0.7634), (10, 10, 0.7225, 1.0), (0, 10, 0.0, 0.2775), (81, 100, 0.7222, 0.8749)],
)
def test_wilson_interval(k: int, n: int, low: float, high: float) -> None:
    lo, hi = wilson(k, n)
    assert lo == pytest.approx(low, abs=1e-4) and hi == pytest.approx(high, abs=1e-4)


def test_percentile() -> None:
    assert percentile([1, 2, 3, 4, 5], 50) == 3
    assert percentile([1, 2, 3, 4, 5], 90) == pytest.approx(4.6)
    assert percentile([7], 90) == 7


def _said(solver: str, expected: str, predicted: str, error: str = "") -> Attempt:
    return Attempt("r", solver, expected, expected, predicted, False, 0.0, 0.0, error)


def test_glyph_accuracy_aligns_answers_and_keeps_the_answers_case() -> None:
    rows = [
        _said("cnn", "4IlX", "4llx"),  # I read as l: only I is wrong (case folded, as scored)
        _said("cnn", "abc", "ac"),  # b dropped
        _said("cnn", "abc", "xabc"),  # an extra character costs no answer character
        _said("cnn", "ab", "", error="solver raised"),  # no reading: left out
        _said("human", "aB", "ab"),
        _said("human", "aB", "", error="skipped"),
    ]
    got = {(g.solver, g.glyph): (g.n, g.right) for g in glyph_accuracy(rows)}
    assert got == {("cnn", "4"): (1, 1), ("cnn", "I"): (1, 0), ("cnn", "l"): (1, 1), ("cnn", "X"): (1, 1),
                   ("cnn", "a"): (2, 2), ("cnn", "b"): (2, 1), ("cnn", "c"): (2, 2),
                   ("human", "a"): (1, 1), ("human", "B"): (1, 1)}
    sensitive = {(g.solver, g.glyph): (g.n, g.right) for g in glyph_accuracy(rows, case_sensitive=True)}
    assert sensitive[("human", "B")] == (1, 0) and sensitive[("cnn", "X")] == (1, 0)
    order = [g.glyph for g in glyph_accuracy(rows) if g.solver == "cnn"]
    assert order[:2] == ["I", "b"]  # worst first: 0 %, then 50 %


def test_glyph_table_shows_each_solvers_worst() -> None:
    rows = [_said("cnn", "abc", "abx"), _said("human", "abc", "xbc")]
    table = glyph_table(glyph_accuracy(rows), worst=1).splitlines()
    assert table[0].split() == ["solver", "glyph", "n", "read", "right", "accuracy"]
    assert [line.split() for line in table[2:]] == [["cnn", "c", "1", "0", "0.0%"], ["human", "a", "1", "0", "0.0%"]]


def test_summarize_counts_errors_as_wrong_and_leaves_them_out_of_latency() -> None:
    rows = [Attempt("r", "s", str(i), "A", "A", True, 0.0, 0.01 * (i + 1), "") for i in range(3)]
    rows.append(Attempt("r", "s", "9", "A", "", False, 1.0, 5.0, "timeout"))
    summary = summarize("s", rows, None)
    assert (summary.n, summary.correct, summary.errors) == (4, 3, 1)
    assert summary.accuracy == 0.75 and summary.median_seconds == pytest.approx(0.02)
    assert summary.cer == 0.25


def _answers(data: ds.Dataset) -> dict[str, str]:
    return {s.id: s.answer for s in data.samples}


def test_run_scores_records_and_summarises(tmp_path: Path, tiny_dataset: ds.Dataset) -> None:
    truth = _answers(tiny_dataset)
    canned = {i: (a.lower() if k % 2 == 0 else "WRONG") for k, (i, a) in enumerate(sorted(truth.items()))}
    config = RunConfig((SolverSpec(FAKE, {"answers": canned}), SolverSpec("constant")), throughput_items=4, batch_size=3)
    result = benchmark.run_benchmark(tiny_dataset, config, tmp_path / "run")
    fake, constant = result.summaries
    assert (fake.n, fake.correct, fake.errors) == (8, 4, 0) and fake.accuracy == 0.5
    assert constant.correct == 0 and constant.cold_start is not None and constant.throughput and constant.throughput > 0
    with (tmp_path / "run" / "attempts.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["run_id", "solver", "item_id", "expected", "predicted", "correct", "cer", "seconds", "error",
                            "participant", "attempt"]
    assert len(rows) == 16 and all(r["expected"] == truth[r["item_id"]] for r in rows)
    assert all(float(r["seconds"]) >= 0 for r in rows)
    with (tmp_path / "run" / "summary.csv").open() as f:
        summary_rows = list(csv.DictReader(f))
    assert [r["solver"] for r in summary_rows] == [FAKE, "constant"]
    assert summary_rows[0]["dataset_sha256"] == tiny_dataset.hash
    report = json.loads((tmp_path / "run" / "summary.json").read_text())
    prov = report["provenance"]
    assert report["dataset_sha256"] == tiny_dataset.hash
    assert set(prov) >= {"started", "dataset", "solver_versions", "libraries", "git", "machine", "python"}
    assert prov["libraries"]["captcha"] == "0.7.1" and report["solvers"][0]["options"] == {"answers": canned}
    low, high = wilson(4, 8)
    assert math.isclose(report["solvers_summary"][0]["accuracy_low"], low)


def test_faults_are_recorded_and_the_run_goes_on(tmp_path: Path, tiny_dataset: ds.Dataset) -> None:
    ids = [s.id for s in tiny_dataset.samples]
    options = {"raise_on": [ids[1]], "wrong_count_on": [ids[2]], "non_text_on": [ids[3]], "crash_on": [ids[4]],
               "hang_on": [ids[5]]}
    config = RunConfig((SolverSpec(FAULTY, options),), timeout=2.0, throughput_items=0)
    result = benchmark.run_benchmark(tiny_dataset, config, tmp_path / "run")
    errors = {a.item_id: a.error for a in results.read_attempts(tmp_path / "run" / "attempts.csv")}
    assert errors[ids[0]] == "" and errors[ids[6]] == "" and errors[ids[7]] == ""
    assert errors[ids[1]] == "RuntimeError: model exploded"
    assert errors[ids[2]] == "solve() returned 2 answers for 1 challenges"
    assert errors[ids[3]] == "solve() returned a int answer, not str"
    assert errors[ids[4]].startswith("solver process died")
    assert errors[ids[5]] == "timeout: no answer within 2 s"
    summary = result.summaries[0]
    assert summary.n == 8 and summary.errors == 5 and summary.restarts == 2


def test_an_interrupted_run_keeps_its_rows_and_resumes_without_duplicates(tmp_path: Path, tiny_dataset: ds.Dataset,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    config = RunConfig((SolverSpec("constant"), SolverSpec(FAKE)), throughput_items=0)
    out = tmp_path / "run"
    monkeypatch.setattr(benchmark, "SHARD", 3)  # rows are written a shard at a time

    def interrupt(solver: str, done: int, total: int) -> None:
        if solver == "constant" and done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        benchmark.run_benchmark(tiny_dataset, config, out, progress=interrupt)
    assert len(results.read_attempts(out / "attempts.csv")) == 3
    with (out / "attempts.csv").open("a") as f:
        f.write("run,constant,000003,AB")  # a kill in the middle of a row
    with pytest.raises(RunError, match="already holds a run: pass --resume"):
        benchmark.run_benchmark(tiny_dataset, config, out)
    result = benchmark.run_benchmark(tiny_dataset, config, out, resume=True)
    rows = results.read_attempts(out / "attempts.csv")
    assert len(rows) == 16 and len({(a.solver, a.item_id) for a in rows}) == 16
    assert [s.n for s in result.summaries] == [8, 8]


def test_resume_refuses_a_different_request(tmp_path: Path, tiny_dataset: ds.Dataset) -> None:
    out = tmp_path / "run"
    benchmark.run_benchmark(tiny_dataset, RunConfig((SolverSpec("constant"),), throughput_items=0), out)
    other = RunConfig((SolverSpec("constant", {"answer": "ZZZ"}),), throughput_items=0)
    with pytest.raises(RunError, match="cannot resume .*: solver constant's options were {}, now {'answer': 'ZZZ'}"):
        benchmark.run_benchmark(tiny_dataset, other, out, resume=True)
    slower = RunConfig((SolverSpec("constant"),), throughput_items=0, timeout=5.0)
    with pytest.raises(RunError, match="cannot resume .*: it ran with --timeout 30, this command asks --timeout 5: give the run.s own"):
        benchmark.run_benchmark(tiny_dataset, slower, out, resume=True)
    more = RunConfig((SolverSpec("constant"), SolverSpec(SPY)), throughput_items=0)
    with pytest.raises(RunError, match="its solvers are constant, this command's constant, tests.fakes"):
        benchmark.run_benchmark(tiny_dataset, more, out, resume=True)
    with pytest.raises(RunError, match="holds no run to resume"):
        benchmark.run_benchmark(tiny_dataset, other, tmp_path / "fresh", resume=True)


def test_no_solver_sees_an_answer_a_file_name_or_a_path(tmp_path: Path, tiny_dataset: ds.Dataset) -> None:
    report = tmp_path / "seen.jsonl"
    config = RunConfig((SolverSpec(SPY, {"report": str(report)}),), throughput_items=8, batch_size=4)
    benchmark.run_benchmark(tiny_dataset, config, tmp_path / "run")
    seen = [json.loads(line) for line in report.read_text().splitlines()]
    text = report.read_text()
    for sample in tiny_dataset.samples:
        assert f'"{sample.answer}' not in text and sample.answer not in "".join(r["reprs"][0] for r in seen)
        assert sample.file not in text
    assert str(tiny_dataset.path) not in text and tiny_dataset.path.name not in text
    assert all(r["fields"][0] == ["id", "image"] for r in seen)
    assert all(f == "" for r in seen for f in r["filenames"])
    assert all(r["cwd_files"] == [] for r in seen)


@pytest.mark.parametrize(
    ("spec", "message"),
    [(SolverSpec("nosuch"), "unknown solver 'nosuch'"),
     (SolverSpec("constant", {"colour": 1}), "solver 'constant' has no option 'colour': its options are answer"),
     (SolverSpec("tests.fakes:Nothing"), "cannot load solver")],
)
def test_unknown_solvers_and_options_fail_before_anything_is_written(
    tmp_path: Path, tiny_dataset: ds.Dataset, spec: SolverSpec, message: str
) -> None:
    from solvers.registry import SolverError

    with pytest.raises(SolverError, match=message):
        benchmark.run_benchmark(tiny_dataset, RunConfig((spec,)), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_tampered_or_undecodable_image_stops_the_run(tmp_path: Path, tiny_dataset: ds.Dataset) -> None:
    config = RunConfig((SolverSpec("constant"),))
    (tiny_dataset.path / "000002.png").write_bytes(b"garbage")
    with pytest.raises(ds.DatasetError, match="000002.png \\(item 000002\\) does not match its sha256"):
        benchmark.run_benchmark(tiny_dataset, config, tmp_path / "run")
    edit_manifest(tiny_dataset.path, tiny_dataset.samples[2].sha256, ds.sha256_bytes(b"garbage"))
    with pytest.raises(ds.DatasetError, match="is not an image"):
        benchmark.run_benchmark(ds.read_dataset(tiny_dataset.path), config, tmp_path / "run")
    (tiny_dataset.path / "000002.png").unlink()
    with pytest.raises(ds.DatasetError, match="is missing"):
        benchmark.run_benchmark(ds.read_dataset(tiny_dataset.path), config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("options", "message"), [
    ({"answer": 5}, "solver 'constant': answer must be text, got 5"),
    ({"answer": "A", "colour": 1}, "solver 'constant' has no option 'colour'"),
])
def test_a_solver_that_cannot_start_stops_the_run_before_it_writes(tmp_path: Path, tiny_dataset: ds.Dataset,
                                                                    options: dict, message: str) -> None:
    from solvers.registry import SolverError

    config = RunConfig((SolverSpec(FAKE), SolverSpec("constant", options)), throughput_items=0)
    with pytest.raises(SolverError, match=message):
        benchmark.run_benchmark(tiny_dataset, config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_solver_without_attempts_has_empty_scores_not_zero(tmp_path: Path, tiny_dataset: ds.Dataset) -> None:
    out = tmp_path / "run"
    benchmark.run_benchmark(tiny_dataset, RunConfig((SolverSpec(FAKE), SolverSpec("constant")), throughput_items=0), out)
    lines = (out / "attempts.csv").read_text().splitlines()
    (out / "attempts.csv").write_text("\n".join(line for line in lines if ",constant," not in line) + "\n")
    fake, constant = results.write_summaries(out)  # as if the run had stopped before constant began
    assert fake.n == 8 and constant.n == 0
    row = next(r for r in csv.DictReader((out / "summary.csv").read_text().splitlines()) if r["solver"] == "constant")
    assert [row[k] for k in ("accuracy", "accuracy_low", "accuracy_high", "cer")] == ["", "", "", ""]
    saved = json.loads((out / "summary.json").read_text())["solvers_summary"][1]
    assert saved["accuracy"] is None and saved["accuracy_low"] is None and saved["n"] == 0


def test_the_default_charset_goes_to_solvers_that_take_one(tiny_dataset: ds.Dataset) -> None:
    config = benchmark.with_dataset_options(RunConfig((SolverSpec("ocr"), SolverSpec("constant"))), tiny_dataset)
    assert config.solvers[0].options == {"charset": tiny_dataset.info["charset"]}
    assert config.solvers[1].options == {}


def test_relative_paths_in_options_mean_the_callers_folder(tmp_path: Path, tiny_dataset: ds.Dataset,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "answer.txt").write_text("FROMFILE")
    config = RunConfig((SolverSpec("tests.fakes:FileSolver", {"path": "answer.txt"}),), throughput_items=0)
    result = benchmark.run_benchmark(tiny_dataset, config, tmp_path / "run")
    assert result.summaries[0].failure == ""
    assert {a.predicted for a in results.read_attempts(tmp_path / "run" / "attempts.csv")} == {"FROMFILE"}


def test_edit_table_matches_the_textbook_recurrence() -> None:
    import random

    from captchas.scoring import edit_table

    def reference(a: str, b: str) -> list[list[int]]:
        d = [[max(i, j) if min(i, j) == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
        for i in range(1, len(a) + 1):
            for j in range(1, len(b) + 1):
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
        return d

    rng = random.Random(4)
    for _ in range(300):
        a = "".join(rng.choice("abc") for _ in range(rng.randint(0, 7)))
        b = "".join(rng.choice("abc") for _ in range(rng.randint(0, 7)))
        assert edit_table(a, b) == reference(a, b), (a, b)


def test_answers_with_line_breaks_read_back_exactly(tmp_path: Path, tiny_dataset: ds.Dataset) -> None:
    answers = {tiny_dataset.samples[0].id: "A\rB", tiny_dataset.samples[1].id: "x\ny", tiny_dataset.samples[2].id: "ok"}
    out = tmp_path / "run"
    benchmark.run_benchmark(tiny_dataset, RunConfig((SolverSpec(FAKE, {"answers": answers}),), throughput_items=0), out)
    read = {a.item_id: a.predicted for a in results.read_attempts(out / "attempts.csv")}
    assert all(read[i] == text for i, text in answers.items()) and len(read) == 8
    again = benchmark.run_benchmark(tiny_dataset, RunConfig((SolverSpec(FAKE, {"answers": answers}),), throughput_items=0),
                                  out, resume=True)  # resume reads the file back too: nothing redone
    assert again.summaries[0].n == 8 and len(results.read_attempts(out / "attempts.csv")) == 8
