"""Where commands write: --force replaces only a folder that is wholly a data set, an unwritable or
odd --out is refused before any work, and a report keeps what it did not write."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from captchas import dataset as ds
from tests.test_cli import SMALL, assert_one_line_error, invoke


def _tree(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


@pytest.fixture
def labelled(tmp_path: Path) -> Path:
    """A folder of labelled images (their answers as names), from a small generated set."""
    made = tmp_path / "made"
    assert invoke("generate", "--count", "4", "--seed", "3", "--out", str(made), *SMALL).exit_code == 0
    src = tmp_path / "labelled"
    src.mkdir()
    for s in ds.read_dataset(made).samples:
        shutil.copy(made / s.file, src / f"{s.answer}.png")
    shutil.rmtree(made)
    return src


def _generate(out: Path, *more: str) -> object:
    return invoke("generate", "--count", "3", "--seed", "1", "--out", str(out), "--force", *SMALL, *more)


def _import(src: Path, out: Path) -> object:
    return invoke("import", "folder", str(src), "--out", str(out), "--force")


@pytest.mark.parametrize("command", ["generate", "import"])
def test_force_refuses_a_folder_with_someone_elses_manifest(tmp_path: Path, labelled: Path, command: str) -> None:
    mine = tmp_path / "d"
    mine.mkdir()
    (mine / "manifest.csv").write_text("name,amount\nrent,900\n")
    (mine / "thesis.txt").write_text("years of work")
    before = _tree(mine)
    result = _generate(mine) if command == "generate" else _import(labelled, mine)
    assert_one_line_error(result, "is not wholly a data set: it holds thesis.txt, which is not one of the set's files")
    assert _tree(mine) == before
    alone = tmp_path / "e"
    alone.mkdir()
    (alone / "manifest.csv").write_text("name,amount\nrent,900\n")
    result = _generate(alone) if command == "generate" else _import(labelled, alone)
    assert_one_line_error(result, "it holds manifest.csv, which is not one of the set's files")
    assert (alone / "manifest.csv").read_text() == "name,amount\nrent,900\n"


@pytest.mark.parametrize("added", ["NOTES.txt", "analysis/plot.py", ".hidden"])
@pytest.mark.parametrize("command", ["generate", "import"])
def test_force_refuses_a_data_set_that_holds_a_users_files(tmp_path: Path, labelled: Path, command: str,
                                                           added: str) -> None:
    out = tmp_path / "ds"
    assert _generate(out).exit_code == 0
    (out / added).parent.mkdir(exist_ok=True)
    (out / added).write_text("mine")
    before = _tree(out)
    result = _generate(out, "--seed", "2") if command == "generate" else _import(labelled, out)
    assert_one_line_error(result, f"it holds {added.split('/')[0] + ('/' if '/' in added else '')}, which is not "
                                  "one of the set's files")
    assert _tree(out) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_force_still_replaces_a_set_that_is_wholly_a_set(tmp_path: Path, labelled: Path) -> None:
    out = tmp_path / "ds"
    assert _generate(out).exit_code == 0
    assert _import(labelled, out).exit_code == 0
    assert ds.read_dataset(out).info["kind"] == "imported"
    assert _generate(out).exit_code == 0 and ds.read_dataset(out).info["kind"] == "generated"


def test_the_working_folder_is_never_an_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "ds"
    assert _generate(out).exit_code == 0
    monkeypatch.chdir(out)
    before = _tree(out)
    for where in (".", str(out), str(tmp_path)):
        assert_one_line_error(_generate(Path(where)), "the current folder")
    assert _tree(out) == before


UNWRITABLE = "/proc/captcha-bench-test/out"  # even root cannot make a folder there


@pytest.mark.parametrize("args", [
    ["generate", "--count", "2", *SMALL],
    ["import", "folder", "LABELLED"],
    ["run", "--dataset", "SET", "--solver", "constant"],
    ["sweep", "--vary", "length=3,4", "--count", "2", "--solver", "constant", *SMALL[:6]],
    ["report", "RUN"],
    ["train", "--dataset", "SET", "--epochs", "1"],
    ["attack", "--dataset", "SET", "--test", "SET2", "--labels", "10"],
])
def test_an_out_that_cannot_be_written_is_refused_before_any_work(tmp_path: Path, labelled: Path,
                                                                   args: list[str]) -> None:
    data = tmp_path / "set"
    assert invoke("generate", "--count", "12", "--seed", "5", "--out", str(data), *SMALL).exit_code == 0
    other = tmp_path / "set2"
    assert invoke("generate", "--count", "4", "--seed", "6", "--out", str(other), *SMALL).exit_code == 0
    run = tmp_path / "run"
    assert invoke("run", "--dataset", str(other), "--solver", "constant", "--out", str(run)).exit_code == 0
    names = {"LABELLED": str(labelled), "SET": str(data), "SET2": str(other), "RUN": str(run)}
    before = _tree(tmp_path)
    result = invoke(*[names.get(a, a) for a in args], "--out", UNWRITABLE + (".pt" if args[0] == "train" else ""))
    assert_one_line_error(result, "cannot be written")
    assert _tree(tmp_path) == before


def test_an_out_under_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    assert_one_line_error(_generate(tmp_path / "file" / "ds"), "lies under")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert_one_line_error(_generate(locked / "ds"), "cannot be written")
    finally:
        locked.chmod(0o755)
