"""The default benchmark: the embedded TuringPass humans split, machines and people on it, the report;
and `make bench`'s command on a fresh clone."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import cli
from captchas import dataset as ds
from captchas import images
from captchas.turingpass import EMBEDDED_HUMANS

ROOT = Path(__file__).resolve().parents[1]


def test_the_embedded_humans_split_is_whole_and_matches_its_source_note() -> None:
    data = ds.read_dataset(EMBEDDED_HUMANS)
    assert images.check_files(data) == []
    note = (EMBEDDED_HUMANS.parent / "SOURCE.md").read_text()
    assert data.hash in note and data.info["human_answers"]["sha256"] in note
    assert "MIT License" in (EMBEDDED_HUMANS.parent / "LICENSE").read_text()
    with (EMBEDDED_HUMANS / "answers.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert (len(data.samples), len(rows), len({r["item_id"] for r in rows})) == (1398, 1817, 1398)
    assert {r["dataset_sha256"] for r in rows} == {data.hash}
    assert data.info["preset"] == "turingpass" and not data.case_sensitive
    size = sum(p.stat().st_size for p in EMBEDDED_HUMANS.parent.rglob("*") if p.is_file())
    assert size < 8_000_000  # the budget for the shipped split


def test_verify_catches_an_edited_answers_file(tmp_path: Path) -> None:
    copy = tmp_path / "humans"
    shutil.copytree(EMBEDDED_HUMANS, copy)
    text = (copy / "answers.csv").read_text()
    (copy / "answers.csv").write_text(text.replace(",0,1,,", ",0,1,,9", 1))  # one time changed
    assert images.check_files(ds.read_dataset(copy)) == ["answers.csv: does not match its sha256 in dataset.json"]


def test_the_default_run_has_machines_and_people_then_the_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the default set is made under results/ of the working folder
    args = ["run", "--limit", "12", "--solver", "constant", "-o", "constant.answer=AAAAA", "--throughput-items", "0",
            "--out", "out"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Verdict on TuringPass humans split" in result.output and "Rule: " in result.output
    assert "No human answers on medium, seed 7, 300 items" in result.output
    assert "report: out/report.html" in result.output and (tmp_path / "out" / "report.html").is_file()
    collection = json.loads((tmp_path / "out" / "collection.json").read_text())
    assert collection["kind"] == "default"
    solvers = {p["path"]: [s["name"] for s in json.loads((tmp_path / "out" / p["path"] / "run.json").read_text())["solvers"]]
               for p in collection["parts"]}
    assert solvers == {"turingpass-humans": ["constant", "human"], "default-medium": ["constant"]}
    before = {p: p.read_bytes() for p in (tmp_path / "out").rglob("attempts.csv")}
    again = CliRunner().invoke(cli, [*args, "--resume"], catch_exceptions=False)
    assert again.exit_code == 0, again.output
    assert {p: p.read_bytes() for p in (tmp_path / "out").rglob("attempts.csv")} == before  # nothing redone
    refused = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert refused.exit_code == 1 and "already holds a run" in refused.output
    resumed = CliRunner().invoke(cli, ["run", "--out", "out", "--resume"], catch_exceptions=False)  # its own settings
    assert resumed.exit_code == 0, resumed.output
    assert {p: p.read_bytes() for p in (tmp_path / "out").rglob("attempts.csv")} == before
    broken = CliRunner().invoke(cli, [*args[:-1], "broken", "-o", "constant.answer=123"], catch_exceptions=False)
    assert broken.exit_code == 1 and "answer must be text, got 123" in broken.output
    assert not (tmp_path / "broken").exists()  # refused before any part began: no collection left behind


def test_make_bench_prints_the_verdict_on_a_fresh_clone(tmp_path: Path) -> None:
    """`captcha-bench run` (what `make bench` runs) in a fresh clone of this repository's HEAD, with every
    solver that can run here, on the first 20 items of each part: the verdict table comes out."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: nothing to clone")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", "--depth", "1", f"file://{ROOT}", str(clone)], check=True)
    env = {**os.environ, "PYTHONPATH": str(clone)}  # the clone's code, in this process and the solver processes
    done = subprocess.run([sys.executable, "-c", "from bench.cli import cli; cli()", "run", "--limit", "20",
                           "--throughput-items", "32"], cwd=clone, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert re.search(r"Verdict on TuringPass humans split \(\d+ items paired", done.stdout), done.stdout
    assert re.search(r"^cnn\s+\d", done.stdout, re.M) and "Rule: " in done.stdout
    assert list((clone / "results").glob("run-*/report.html"))
