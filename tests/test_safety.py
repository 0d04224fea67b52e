"""Nothing lost, nothing trusted: what the commands refuse before they touch data, and how they say it."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest

from captchas import dataset as ds
from tests.test_cli import SMALL, assert_one_line_error, invoke


@pytest.fixture
def small_set(tmp_path: Path) -> Path:
    out = tmp_path / "set"
    assert invoke("generate", "--count", "4", "--seed", "2", "--out", str(out), *SMALL).exit_code == 0
    return out


@pytest.fixture
def imported(tmp_path: Path, small_set: Path) -> Path:
    src = tmp_path / "labelled"
    src.mkdir()
    for s in ds.read_dataset(small_set).samples:
        shutil.copy(small_set / s.file, src / f"{s.answer}.png")
    assert invoke("import", "folder", str(src), "--out", str(tmp_path / "imported")).exit_code == 0
    return tmp_path / "imported"


def test_import_onto_its_own_source_is_refused(tmp_path: Path, small_set: Path) -> None:
    src = tmp_path / "labelled"
    shutil.copytree(small_set, src)
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    result = invoke("import", "folder", str(src), "--out", str(src), "--force")
    assert_one_line_error(result, "is the source folder")
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before


@pytest.mark.parametrize("name", ["../outside.png", "/etc/hostname", "sub/000000.png", ".hidden.png", ""])
def test_a_manifest_may_not_point_outside_the_set(tmp_path: Path, small_set: Path, name: str) -> None:
    (tmp_path / "outside.png").write_bytes((small_set / "000000.png").read_bytes())
    rows = (small_set / "manifest.csv").read_text().splitlines()
    rows[1] = rows[1].replace("000000.png", name, 1)
    (small_set / "manifest.csv").write_text("\n".join(rows) + "\n")
    info = json.loads((small_set / "dataset.json").read_text())
    info["manifest_sha256"] = ds.sha256_bytes((small_set / "manifest.csv").read_bytes())
    (small_set / "dataset.json").write_text(json.dumps(info))  # even a consistent edit
    for args in (["run", "--dataset", str(small_set), "--solver", "constant", "--out", str(tmp_path / "run")],
                 ["verify", str(small_set)], ["record", "--dataset", str(small_set), "--port", "0"]):
        assert_one_line_error(invoke(*args), f"file {name!r} is not a plain file name inside the data set folder")
    assert not (tmp_path / "run").exists()


def test_an_edited_manifest_of_an_imported_set_is_caught(tmp_path: Path, imported: Path) -> None:
    first = ds.read_dataset(imported).samples[0]
    text = (imported / "manifest.csv").read_text()
    (imported / "manifest.csv").write_text(text.replace(f",{first.answer},", ",WRONG,", 1))
    message = "manifest.csv was changed after the data set was made"
    assert_one_line_error(invoke("verify", str(imported)), message)
    assert_one_line_error(invoke("run", "--dataset", str(imported), "--solver", "constant", "--out",
                                 str(tmp_path / "run")), message)
    assert_one_line_error(invoke("record", "--dataset", str(imported), "--port", "0", "--db",
                                 str(tmp_path / "s.sqlite")), message)
    assert not (tmp_path / "run").exists() and not (tmp_path / "s.sqlite").exists()


def test_record_checks_every_image_before_it_serves(tmp_path: Path, small_set: Path) -> None:
    data = bytearray((small_set / "000003.png").read_bytes())
    data[40] ^= 1  # one flipped byte
    (small_set / "000003.png").write_bytes(bytes(data))
    result = invoke("record", "--dataset", str(small_set), "--port", "0", "--db", str(tmp_path / "s.sqlite"))
    assert_one_line_error(result, "000003.png (item 000003) does not match its sha256 in the manifest")
    assert not (tmp_path / "s.sqlite").exists()


def test_resume_takes_the_settings_from_the_run_folder(tmp_path: Path, small_set: Path) -> None:
    out = tmp_path / "run"
    first = invoke("run", "--dataset", str(small_set), "--solver", "constant", "--solver", "tests.fakes:FakeSolver",
                   "-o", "constant.answer=ZZZ", "--timeout", "10", "--throughput-items", "0", "--out", str(out))
    assert first.exit_code == 0, first.output
    lines = (out / "attempts.csv").read_text().splitlines()
    (out / "attempts.csv").write_text("\n".join(lines[:3]) + "\n")  # as if killed after two attempts
    again = invoke("run", "--out", str(out), "--resume")  # as the README shows it
    assert again.exit_code == 0, again.output
    rows = (out / "attempts.csv").read_text().splitlines()
    assert len(rows) == 9 and sum(",ZZZ," in r for r in rows) == 4  # every item once, the option kept
    conflict = invoke("run", "--out", str(out), "--resume", "--timeout", "5")
    assert_one_line_error(conflict, "timeout was 10.0, now 5.0")
    other = invoke("run", "--out", str(out), "--resume", "-o", "constant.answer=AAA", "--solver", "constant",
                   "--solver", "tests.fakes:FakeSolver")
    assert_one_line_error(other, "solver constant's options were {'answer': 'ZZZ'}, now {'answer': 'AAA'}")


@pytest.mark.parametrize(("what", "message"), [
    ("data set", "is a data set, not a run folder: give a new folder for the run"),
    ("file", "is a file: give a folder for the run"),
    ("other files", "holds other files, not a run: choose an empty or new folder"),
])
def test_run_says_what_its_out_holds(tmp_path: Path, small_set: Path, what: str, message: str) -> None:
    out = {"data set": small_set, "file": tmp_path / "notes.txt", "other files": tmp_path / "mine"}[what]
    if what == "file":
        out.write_text("notes")
    elif what == "other files":
        out.mkdir()
        (out / "notes.txt").write_text("notes")
    result = invoke("run", "--dataset", str(small_set), "--solver", "constant", "--out", str(out))
    assert_one_line_error(result, message)


@pytest.mark.parametrize(("options", "message"), [
    (["--solver", "ocr", "-o", "ocr.psm=abc"], "solver 'ocr' rejected its options (an integer is required)"),
    (["--solver", "constant", "-o", "constant.answer=123"], "solver 'constant': answer must be text, got 123"),
    (["--solver", "cnn", "-o", "cnn.checkpoint=README.md"], "solver 'cnn'"),
    (["--solver", "human", "-o", "human.answers=missing.csv"], "answers file missing.csv does not exist"),
])
def test_a_solver_that_cannot_start_exits_1_and_writes_nothing(tmp_path: Path, small_set: Path, options: list[str],
                                                                message: str) -> None:
    from solvers.registry import problem

    name = options[1]
    if problem(name):
        pytest.skip(f"{name} cannot run here: {problem(name)}")
    out = tmp_path / "run"
    result = invoke("run", "--dataset", str(small_set), *options, "--out", str(out))
    assert result.exit_code == 1
    assert_one_line_error(result, message)
    assert not out.exists()


def test_a_solver_that_answers_after_its_timeout_prints_no_traceback(tmp_path: Path, small_set: Path) -> None:
    import subprocess
    import sys

    script = Path(sys.executable).parent / "captcha-bench"
    done = subprocess.run([str(script), "run", "--dataset", str(small_set), "--solver", "tests.fakes:FaultySolver",
                           "-o", "slow_on=('000001',)", "-o", "slow=1.5", "--timeout", "0.5", "--throughput-items", "0",
                           "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1],
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
    rows = (tmp_path / "run" / "attempts.csv").read_text().splitlines()
    assert any("timeout: no answer within 0.5 s" in r for r in rows)


def test_progress_reaches_the_start_and_the_throughput_pass(tmp_path: Path, small_set: Path) -> None:
    from bench import benchmark
    from bench.run import RunConfig, SolverSpec

    heard: list[tuple[str, int, int]] = []
    config = RunConfig((SolverSpec("constant"),), throughput_items=4, batch_size=2)
    benchmark.run_benchmark(ds.read_dataset(small_set), config, tmp_path / "run", progress=lambda *a: heard.append(a))
    labels = [label for label, _, _ in heard]
    checked = [(done, total) for label, done, total in heard if label == benchmark.CHECKING]
    assert labels[0] == benchmark.CHECKING and checked[-1][0] == checked[-1][1] > 0
    assert labels.index(benchmark.CHECKING) < labels.index(benchmark.STARTING) < labels.index("constant")
    assert ("constant throughput", 4, 4) in heard and labels.index("constant") < labels.index("constant throughput")


def test_import_turingpass_progress_stays_within_its_total(tmp_path: Path) -> None:
    from captchas.turingpass import TURINGPASS_ANSWERS, TURINGPASS_IMAGES, import_turingpass
    from tests.conftest import SHARED

    shared = SHARED / "data" / "turingpass"
    if not shared.is_dir():
        pytest.skip("../shared/data/turingpass is absent (it is present in CI)")
    src = tmp_path / "tp"  # a small TuringPass: 40 images, the answers to those of them people answered
    (src / TURINGPASS_IMAGES).mkdir(parents=True)
    (src / TURINGPASS_ANSWERS).parent.mkdir(parents=True)
    with (shared / TURINGPASS_ANSWERS).open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames, list(reader)
    answered = {r["actual"] + ".jpg" for r in rows}
    every = sorted((shared / TURINGPASS_IMAGES).iterdir())
    images = [p for p in every if p.name in answered][:20] + [p for p in every if p.name not in answered][:20]
    for path in images:
        (src / TURINGPASS_IMAGES / path.name).symlink_to(path)
    with (src / TURINGPASS_ANSWERS).open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields or [])
        writer.writeheader()
        writer.writerows(r for r in rows if r["actual"] + ".jpg" in {p.name for p in images})
    heard: list[tuple[int, int]] = []
    result = import_turingpass(src, tmp_path / "out", progress=lambda done, total: heard.append((done, total)))
    assert len(result.humans.samples) >= 1 and len(result.train.samples) >= 1  # both splits, one after the other
    assert len({total for _, total in heard}) == 1 and all(0 <= d <= t for d, t in heard)
    assert heard[-1][0] == heard[-1][1]
