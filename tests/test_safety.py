"""Nothing lost, nothing trusted: what the commands refuse before they touch data, and how they say it."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path

import pytest

from captchas import dataset as ds
from captchas import images
from tests.fakes import edit_manifest
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
    assert_one_line_error(conflict, "it ran with --timeout 10, this command asks --timeout 5")
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


# What a new user hit, each refused in one line (or repaired where a kill is the cause)

def _run(small_set: Path, out: Path, *more: str) -> object:
    return invoke("run", "--dataset", str(small_set), "--solver", "constant", "--throughput-items", "0", "--out",
                  str(out), *more)


@pytest.mark.parametrize("answer", ["x" * 256, "secret.txt"])
def test_a_text_option_is_never_taken_for_a_file(tmp_path: Path, small_set: Path, answer: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "secret.txt").write_text("my password")
    result = _run(small_set, tmp_path / "run", "-o", f"constant.answer={answer}")
    assert result.exit_code == 0, result.output
    provenance = json.loads((tmp_path / "run" / "run.json").read_text())["provenance"]
    assert provenance["solver_files"] == {}  # the constant solver loads no file, whatever its answer spells


def test_a_pattern_whose_first_group_takes_no_part_skips_the_file_with_the_reason(tmp_path: Path,
                                                                                  small_set: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for s in ds.read_dataset(small_set).samples:
        shutil.copy(small_set / s.file, src / f"{s.answer}_1.png")
    shutil.copy(small_set / "000000.png", src / "xABC_2.png")
    result = invoke("import", "folder", str(src), "--pattern", r"(x)?(.+)_\d+", "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert "--pattern's first group took no part in the match: make the answer's group the first one" in result.output
    assert {s.answer for s in ds.read_dataset(tmp_path / "out").samples} == {"x"}


@pytest.mark.parametrize("damage, message", [
    ("abc in seconds", "line 3 is damaged (could not convert string to float: 'abc')"),
    ("an extra field", "line 3 is damaged (12 fields, not 11)"),
    ("random bytes", "is not UTF-8 text"),
])
def test_resume_refuses_a_damaged_attempts_file_in_one_line(tmp_path: Path, small_set: Path, damage: str,
                                                            message: str) -> None:
    out = tmp_path / "run"
    assert _run(small_set, out).exit_code == 0
    lines = (out / "attempts.csv").read_text().splitlines(keepends=True)
    if damage == "abc in seconds":
        cells = lines[2].split(",")
        cells[7] = "abc"
        lines[2] = ",".join(cells)
    elif damage == "an extra field":
        lines[2] = lines[2].rstrip("\n") + ",more\n"
    (out / "attempts.csv").write_bytes("".join(lines[:4]).encode() + (b"\xff\xfe\x00garbage\n" if damage ==
                                                                      "random bytes" else b""))
    before = (out / "attempts.csv").read_bytes()
    assert_one_line_error(invoke("run", "--out", str(out), "--resume"), message)
    assert (out / "attempts.csv").read_bytes() == before
    report = invoke("report", str(out))
    assert_one_line_error(report, "start a new run (another --out), or restore attempts.csv")
    assert "--resume" not in report.output  # the report does not advise what resume refuses


def test_resume_repairs_a_row_a_kill_cut_short_and_the_report_says_so(tmp_path: Path, small_set: Path) -> None:
    out = tmp_path / "run"
    assert _run(small_set, out).exit_code == 0
    data = (out / "attempts.csv").read_bytes()
    (out / "attempts.csv").write_bytes(data[: data.index(b"\n", data.index(b"000002")) - 5])  # mid-row
    (out / "timing.jsonl").unlink()
    assert_one_line_error(invoke("report", str(out)), f"is cut short (its last line is incomplete, as a kill leaves "
                                                      f"it): resume the run (captcha-bench run --out {out} --resume)")
    again = invoke("run", "--out", str(out), "--resume")
    assert again.exit_code == 0, again.output
    ids = [row.split(",")[2] for row in (out / "attempts.csv").read_text().splitlines()[1:]]
    assert ids == [s.id for s in ds.read_dataset(small_set).samples]  # every item once, in order
    assert invoke("report", str(out)).exit_code == 0


def test_resume_on_a_finished_run_has_nothing_to_do_and_changes_nothing(tmp_path: Path, small_set: Path) -> None:
    out = tmp_path / "run"
    assert invoke("run", "--dataset", str(small_set), "--solver", "constant", "--out", str(out)).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    again = invoke("run", "--out", str(out), "--resume")
    assert again.exit_code == 0, again.output
    assert f"\nnothing to do: {out} already holds every attempt and timing" in again.output
    assert "constant" in again.output  # its results, as they were
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_the_report_refuses_rows_the_scoring_rule_does_not_give(tmp_path: Path, small_set: Path) -> None:
    out = tmp_path / "run"
    assert _run(small_set, out, "-o", "constant.answer=ZZZ").exit_code == 0
    text = (out / "attempts.csv").read_text()
    (out / "attempts.csv").write_text(text.replace(",ZZZ,0,", ",ZZZ,1,", 2))  # "correct" flipped by hand
    result = invoke("report", str(out))
    assert_one_line_error(result, "line 2 says correct=1 for expected")
    assert "which the case-insensitive scoring rule does not give: the file was edited" in result.output
    (out / "attempts.csv").write_text(text.replace(",1.000000,", ",0.100000,", 1))
    assert_one_line_error(invoke("report", str(out)), "says cer=0.1 for expected")


@pytest.fixture
def labelled(tmp_path: Path, small_set: Path) -> Path:
    src = tmp_path / "labelled"
    src.mkdir()
    rows = ["file,answer"]
    for s in ds.read_dataset(small_set).samples:
        shutil.copy(small_set / s.file, src / s.file)
        rows.append(f"{s.file},{s.answer}")
    (src / "labels.csv").write_text("\n".join(rows) + "\n")
    return src


@pytest.mark.parametrize("kind, reason", [
    ("fifo", "a FIFO, not a file"),
    ("device link", "a device, not a file"),
    ("folder", "a folder, not a file"),
    ("hidden", "a hidden file (its name starts with '.'): hidden files are not imported"),
])
def test_labels_import_only_regular_files_of_the_folder(tmp_path: Path, labelled: Path, kind: str,
                                                        reason: str) -> None:
    name = {"fifo": "pipe.png", "device link": "zero.png", "folder": "sub.png", "hidden": ".secret.png"}[kind]
    if kind == "fifo":
        os.mkfifo(labelled / name)
    elif kind == "device link":
        (labelled / name).symlink_to("/dev/zero")
    elif kind == "folder":
        (labelled / name).mkdir()
    else:
        shutil.copy(labelled / "000000.png", labelled / name)
    with (labelled / "labels.csv").open("a") as f:
        f.write(f"{name},XYZ\n")
    result = invoke("import", "folder", str(labelled), "--labels", str(labelled / "labels.csv"), "--out",
                    str(tmp_path / "out"))  # a FIFO would block here for ever, /dev/zero read without end
    assert result.exit_code == 0, result.output
    assert f"skipped {name}: {reason}" in result.output
    assert "XYZ" not in {s.answer for s in ds.read_dataset(tmp_path / "out").samples}


@pytest.mark.parametrize("kind, said", [
    ("link", "is a symbolic link, not a file (a data set holds regular files only)"),
    ("folder", "is a folder, not a file"),
])
def test_a_data_set_holds_regular_files_only(tmp_path: Path, small_set: Path, kind: str, said: str) -> None:
    image = small_set / "000001.png"
    outside = tmp_path / "outside.png"
    shutil.move(image, outside)
    if kind == "link":
        image.symlink_to(outside)  # the same bytes, but not inside the folder
    else:
        image.mkdir()
    result = invoke("verify", str(small_set), "--no-regenerate")
    assert result.exit_code == 1 and f"000001: 000001.png {said}" in result.output
    assert_one_line_error(_run(small_set, tmp_path / "run"), f"000001.png (item 000001) {said}")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("content, said", [
    (b"not an image at all", "not an image (19 bytes in no image format Pillow reads)"),
    ("bomb", "a decompression bomb"),
])
def test_verify_decodes_what_a_run_would_refuse(tmp_path: Path, small_set: Path, content: object, said: str) -> None:
    from PIL import Image

    if content == "bomb":
        buffer = io.BytesIO()
        Image.new("L", (5000, 5000)).save(buffer, format="PNG")  # 25 M pixels in a few KB
        content = buffer.getvalue()
    assert isinstance(content, bytes)
    old = ds.read_dataset(small_set).samples[2].sha256
    (small_set / "000002.png").write_bytes(content)
    edit_manifest(small_set, old, ds.sha256_bytes(content))  # manifest and dataset.json updated to match
    result = invoke("verify", str(small_set), "--no-regenerate")
    assert result.exit_code == 1 and f"000002: 000002.png is {said}" in result.output, result.output
    assert_one_line_error(_run(small_set, tmp_path / "run"), said)


def test_a_bomb_is_described_in_the_projects_words_only() -> None:
    from PIL import Image

    header = io.BytesIO()
    Image.new("1", (20000, 20000)).save(header, format="PNG")  # 400 M pixels: past Pillow's own cap too
    with pytest.raises(images.ImageError) as caught:
        images.open_image(header.getvalue())
    assert str(caught.value).startswith("a decompression bomb: its header declares more than")
    assert "DOS attack" not in str(caught.value) and "could be decompression bomb" not in str(caught.value)


def test_resume_names_the_case_option_as_the_user_gives_it(tmp_path: Path, small_set: Path) -> None:
    out = tmp_path / "run"
    assert _run(small_set, out).exit_code == 0
    result = invoke("run", "--out", str(out), "--resume", "--case-sensitive")
    assert_one_line_error(result, "it ran with the data set's case rule, this command asks --case-sensitive")
    assert "None" not in result.output


@pytest.mark.parametrize("rows, message", [
    ([], "holds no answers, only its header"),
    ([["p1", "000000", "ABC", "0", "1", "1e308"]], "time '1e308' is more than a day"),
    ([["p1", "000000", "ABC", "0", "1", "5"], ["p1", "000000", "ABD", "0", "1", "6"]],
     "participant 'p1''s try 1 at item 000000 is also on line 2: keep one of the two rows"),
])
def test_an_answers_file_that_cannot_be_replayed_is_refused(tmp_path: Path, small_set: Path, rows: list[list[str]],
                                                             message: str) -> None:
    path = tmp_path / "answers.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["participant", "item_id", "answer", "skipped", "attempt", "server_seconds"])
        writer.writerows(rows)
    result = invoke("run", "--dataset", str(small_set), "--solver", "human", "-o", f"human.answers={path}", "--out",
                    str(tmp_path / "run"))
    assert_one_line_error(result, message)
    assert not (tmp_path / "run").exists()
    two_people = [["p1", "000000", "ABC", "0", "1", "5"], ["", "000000", "ABD", "0", "1", "6"],
                  ["", "000000", "ABE", "0", "1", "7"]]  # anonymous people may repeat a first try
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([["participant", "item_id", "answer", "skipped", "attempt", "server_seconds"],
                                 *two_people])
    assert invoke("run", "--dataset", str(small_set), "--solver", "human", "-o", f"human.answers={path}", "--out",
                  str(tmp_path / "run")).exit_code == 0


def test_train_on_a_set_too_small_names_the_data_set_not_the_count(tmp_path: Path, small_set: Path) -> None:
    one = tmp_path / "one"
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(small_set / "000000.png", src / "ABC.png")
    assert invoke("import", "folder", str(src), "--out", str(one)).exit_code == 0
    result = invoke("train", "--dataset", str(one), "--out", str(tmp_path / "m.pt"), "--epochs", "1")
    assert_one_line_error(result, "give a data set of 2 items or more")
    assert "--count" not in result.output
