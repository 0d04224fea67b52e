"""The command line: help for every command, the happy paths, and one-line errors for bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from bench.cli import cli
from captchas import dataset as ds

SMALL = ["--set", "width=96", "--set", "height=36", "--set", "font_sizes=(26,30,34)", "--set", "length=3"]


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in group.commands.items():
        found.append(prefix + (name,))
        if isinstance(command, click.Group):
            found += _commands(command, prefix + (name,))
    return found


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def assert_one_line_error(result: Result, message: str) -> None:
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(lines) == 1 and message in lines[0], result.output


@pytest.mark.parametrize("command", _commands(cli), ids=" ".join)
def test_every_command_has_help_with_an_example(command: tuple[str, ...]) -> None:
    result = invoke(*command, "--help")
    assert result.exit_code == 0
    target = cli
    for name in command:
        target = target.commands[name]  # type: ignore[attr-defined]
    assert target.help, f"{command} has no docstring"
    if not isinstance(target, click.Group):
        assert "Example: captcha-bench" in result.output


ROOT = Path(__file__).resolve().parents[1]
INPUTS = ("dataset", "db", "src", "runs", "labels", "run", "run_a", "run_b", "source")  # parameters that name something that must exist already


def _examples() -> list[list[str]]:
    """Every `captcha-bench ...` example in the helps, in the order the commands are listed."""
    import shlex

    found = []
    for command in _commands(cli):
        target: click.Command = cli
        for name in command:
            target = target.commands[name]  # type: ignore[attr-defined]
        for line in (target.help or "").splitlines():
            text = line.strip().removeprefix("Example:").strip()
            if text.startswith("captcha-bench ") and "Example" in line or line.startswith("      captcha-bench "):
                found.append(shlex.split(text.split("  #")[0])[1:])
    top = [line.strip() for line in (cli.help or "").splitlines() if line.strip().startswith("captcha-bench ")]
    return [shlex.split(t.split("  #")[0])[1:] for t in top] + found


def _parse(args: list[str]) -> tuple[str, dict]:
    """The command an example runs and its parsed parameters (click checks every option and type)."""
    ctx = cli.make_context("captcha-bench", list(args))
    command: click.Command = cli
    rest = ctx._protected_args + ctx.args  # type: ignore[attr-defined]
    names = []
    while isinstance(command, click.Group):
        name, command, rest = command.resolve_command(ctx, rest)  # type: ignore[assignment]
        names.append(name)
        ctx = command.make_context(name, rest, parent=ctx)
        rest = ctx._protected_args + ctx.args  # type: ignore[attr-defined]
    return " ".join(n for n in names if n), ctx.params


def test_the_help_examples_work_from_a_fresh_clone() -> None:
    """Each example parses, and what it reads ships with the project or an earlier example makes it
    (run in the order a newcomer would: generate, verify, run, report, record, export, ...)."""
    from captchas.dataset import read_dataset
    from captchas.turingpass import EMBEDDED_HUMANS

    study = f"results/studies/{read_dataset(EMBEDDED_HUMANS).hash[:12]}.sqlite"  # record's default --db
    order = ["generate", "verify", "run", "report", "sweep", "record", "humans", "humans export", "import",
             "import folder", "import turingpass", "train", "attack"]
    parsed = [_parse(args) for args in _examples()]
    made: set[str] = set()
    for command, params in sorted(parsed, key=lambda cp: order.index(cp[0]) if cp[0] in order else len(order)):
        if command == "import turingpass":  # reads a clone of the TuringPass repository (its help says where
            made.update(f"{params['out']}/{split}" for split in ("humans", "train"))  # from); makes two splits
            continue
        if command == "train":
            assert not str(params["out"]).startswith("solvers/"), "train's example would overwrite shipped weights"
        for key in INPUTS if command != "attack" else ("dataset", "test"):  # attack's --labels are counts
            for value in (params.get(key) or ()) if key == "runs" else [params.get(key)]:
                if value is not None:
                    assert str(value) in made or (ROOT / value).exists(), f"{command}: {value} does not exist yet"
        if params.get("out") is not None:
            made.add(str(params["out"]))
        if command == "record":
            made.add(study)
    assert {c for c, _ in parsed} >= {"generate", "run", "report", "verify", "record", "humans export", "import folder"}


# What the examples run with here: the same command and options, at a test's size.
SMALLER = {"--count": "12", "--rounds": "1", "--items": "10", "--solvers": "2", "--participants": "2", "--workers": "1",
           "--counts": "20,40", "--measure": "4"}
ADDED = {"run": ["--throughput-items", "0"], "sweep": ["--count", "6", "--throughput-items", "0"],
         "speed latency": ["--rounds", "1"]}
# Examples this test does not run (by command, or by the whole example), and why: each is run elsewhere, as named.
NOT_HERE = {
    "run (no arguments)": "tests/test_suite.py runs it from a fresh clone, as make bench does",
    "record": "it serves the study until stopped (tests/test_study.py drives the app in a browser)",
    "humans export": "it reads the study record makes (tests/test_study.py exports one)",
    "import turingpass": "it reads a clone of the TuringPass repository (tests/test_humans.py imports ../shared's)",
    "attack": "it trains a model per label count on that import (tests/test_attack.py runs a tiny attack)",
    "speed scale": "its least is 512 items per contender and a Dask cluster (tests/test_scale.py runs the same "
                   "executors on 8 items)",
}


def _small(command: str, args: list[str]) -> list[str]:
    """An example's arguments at a test's size, with the project's own paths made absolute."""
    out: list[str] = []
    it = iter(args)
    for arg in it:
        if command == "train" and arg == "--minutes":  # a budget's worth of rendering: two steps instead
            next(it)
            out += ["--count", "64", "--val-count", "16", "--epochs", "1", "--batch-size", "32", "--workers", "1"]
        elif arg in SMALLER:
            next(it)
            out += [arg, SMALLER[arg]]
        else:
            out.append(str(ROOT / arg) if arg.startswith("captchas/") else arg)
    return out + ADDED.get(command, [])


def test_the_help_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each example runs and succeeds, in the order a newcomer would take them, in an empty folder, at a
    test's size (SMALLER): the README says the examples in the helps work as written."""
    pytest.importorskip("torch", reason="the examples train and read with the CNN")
    monkeypatch.chdir(tmp_path)
    order = ["generate", "verify", "run", "report", "sweep", "train", "import folder", "solvers", "presets"]
    seen, ran = set(), []
    parsed = [(_parse(args)[0], args) for args in _examples()]
    for command, args in sorted(parsed, key=lambda ca: order.index(ca[0]) if ca[0] in order else len(order)):
        if command in NOT_HERE or (command if args[1:] else f"{command} (no arguments)") in NOT_HERE \
                or tuple(args) in seen:
            continue
        seen.add(tuple(args))
        result = CliRunner().invoke(cli, _small(command, args), catch_exceptions=False)
        assert result.exit_code == 0, f"captcha-bench {' '.join(args)}: {result.output[-800:]}"
        ran.append(command)
    assert set(ran) | set(NOT_HERE) >= {c for c, _ in parsed} and "run" in ran


def test_generate_then_verify(tmp_path: Path) -> None:
    out = tmp_path / "set"
    result = invoke("generate", "--preset", "medium", "--count", "6", "--seed", "7", "--out", str(out), *SMALL)
    assert result.exit_code == 0, result.output
    assert "6 images in" in result.output and "data set sha256" in result.output
    verified = invoke("verify", str(out), "--workers", "1")
    assert verified.exit_code == 0 and "regenerated from the seed: identical" in verified.output


def test_the_same_seed_twice_prints_the_same_hash(tmp_path: Path) -> None:
    hashes = []
    for name in ("a", "b"):
        result = invoke("generate", "--count", "5", "--seed", "3", "--workers", "2", "--out", str(tmp_path / name), *SMALL)
        hashes.append(result.output.split("data set sha256 ")[1].strip())
    assert hashes[0] == hashes[1]


def test_reuse_says_so(tmp_path: Path) -> None:
    args = ["generate", "--count", "3", "--out", str(tmp_path / "s"), "--reuse", *SMALL]
    assert invoke(*args).exit_code == 0
    again = invoke(*args)
    assert again.exit_code == 0 and again.output.startswith("Reused 3 images")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--preset", "brutal"], "unknown preset 'brutal': choose one of easy, medium, hard, extreme"),
        (["--set", "blur=3"], "unknown knob 'blur': valid knobs are length"),
        (["--set", "blur"], "--set expects KEY=VALUE, got 'blur'"),
        (["--count", "0"], "count must be at least 1, got 0"),
        (["--count", "-3"], "count must be at least 1, got -3"),
        (["--set", "charset=''"], "charset is empty"),
        (["--set", "length=(6,2)"], "length (6, 2) is impossible"),
        (["--set", "length=0"], "length (0, 0) is impossible"),
        (["--set", "fonts=Comic"], "font 'Comic' not found"),
        (["--set", "fonts=/etc/passwd"], "font '/etc/passwd' is not a TrueType/OpenType font file"),
        (["--set", "charset=日本語字"], "font 'DroidSansMono' has no glyph for 4 character(s) of the charset (日本語字)"),
        (["--scheme", "lined", "--set", "charset=AB日"], "has no glyph for 1 character(s) of the charset (日)"),
        (["--set", "length=(5,)"], "knob length=(5,) needs two values, (low, high)"),
        (["--scheme", "nosuch"], "unknown scheme 'nosuch'"),
        (["--workers", "0"], "Invalid value for '--workers': 0 is not in the range x>=1"),
        (["--workers", "-1"], "Invalid value for '--workers': -1 is not in the range x>=1"),
        (["--set", "height=20", "--set", "font_sizes=(60,)"], "clipped or squeezed in all 100 tries"),
    ],
)
def test_bad_generate_input_gets_a_one_line_error(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "out"
    result = invoke("generate", "--count", "2", "--out", str(out), *args)
    assert_one_line_error(result, message)
    assert not out.exists() and list(tmp_path.iterdir()) == []  # nothing half-written


def test_non_empty_output_is_refused_then_forced(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("precious")
    result = invoke("generate", "--count", "2", "--out", str(out), *SMALL)
    assert_one_line_error(result, "is not empty: choose another --out, or pass --force to replace the data set in it")
    assert (out / "mine.txt").read_text() == "precious"
    forced = invoke("generate", "--count", "2", "--out", str(out), "--force", *SMALL)
    assert_one_line_error(forced, "is not wholly a data set: it holds mine.txt, which is not one of the set's files, "
                                  "and --force replaces only a data set")
    assert (out / "mine.txt").read_text() == "precious"
    other = tmp_path / "set"
    assert invoke("generate", "--count", "2", "--out", str(other), *SMALL).exit_code == 0
    assert invoke("generate", "--count", "3", "--out", str(other), "--force", *SMALL).exit_code == 0
    assert len(ds.read_dataset(other).samples) == 3 and sorted(p.name for p in tmp_path.iterdir()) == ["out", "set"]


def test_verify_reports_tampering(tmp_path: Path) -> None:
    out = tmp_path / "set"
    invoke("generate", "--count", "4", "--out", str(out), *SMALL)
    (out / "000002.png").write_bytes(b"tampered")
    result = invoke("verify", str(out))
    assert "000002: 000002.png does not match its sha256 in the manifest" in result.output
    assert_one_line_error(result, "1 problem(s) in")


def test_verify_missing_folder(tmp_path: Path) -> None:
    assert_one_line_error(invoke("verify", str(tmp_path / "none")), "does not exist")
    assert_one_line_error(invoke("verify", str(tmp_path)), "manifest.csv is missing")


def test_import_folder_reports_and_counts_skips(tmp_path: Path) -> None:
    from PIL import Image

    src = tmp_path / "src"
    src.mkdir()
    Image.new("RGB", (20, 10), "white").save(src / "AB3D.png")
    (src / "broken.png").write_bytes(b"\x89PNG but not really")
    result = invoke("import", "folder", str(src), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0
    assert "skipped broken.png: not an image" in result.output
    assert "1 images imported" in result.output and "1 skipped" in result.output


def test_import_errors_are_one_line(tmp_path: Path) -> None:
    result = invoke("import", "folder", str(tmp_path / "absent"), "--out", str(tmp_path / "out"))
    assert_one_line_error(result, "source folder")
    (tmp_path / "src").mkdir()
    result = invoke("import", "folder", str(tmp_path / "src"), "--out", str(tmp_path / "o"), "--pattern", "(")
    assert_one_line_error(result, "is not a regular expression")


def test_presets_lists_every_preset_and_knob_and_measures() -> None:
    result = invoke("presets", "--measure", "20")
    assert result.exit_code == 0
    header = result.stdout.splitlines()[0].split()
    assert header == ["knob", "easy", "medium", "hard", "extreme"]
    assert "redrawn (either)" in result.output and "max_clip" in result.output
    assert "schemes: image" in result.output
    assert max(len(line) for line in result.stdout.splitlines()) <= 100  # fits a terminal
    assert "The lined scheme" in result.output and "overflow" in result.output and "line_width" in result.output


def test_exit_status_is_2_for_a_command_line_click_cannot_parse_and_1_for_a_refusal(tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    assert invoke("generate", "--count", "abc", "--out", out).exit_code == 2  # not a number: a usage error
    assert invoke("generate", "--count", "2", "--out", out, "--no-such-option").exit_code == 2
    assert invoke("generate", "--count", "0", "--out", out).exit_code == 1  # a number, refused
    assert invoke("verify", str(tmp_path / "absent")).exit_code == 1
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "exit status 2" in readme and "exit status 1" in readme  # the README says the same


def test_generator_speed_runs_and_reports_the_targets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("speed", "generator", "--count", "3", "--rounds", "2", "--workers", "2")
    assert result.exit_code == 0, result.output
    assert "x the library in memory" in result.output and "target >= 1.70" in result.output
    assert list(tmp_path.iterdir()) == []  # scratch files are gone


def test_importing_the_cli_does_not_import_torch() -> None:
    code = "import sys, bench.cli; sys.exit('torch' in sys.modules or 'torchvision' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1]).returncode == 0


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "captcha-bench"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "generate" in result.stdout


@pytest.fixture
def small_set(tmp_path: Path) -> Path:
    out = tmp_path / "set"
    assert invoke("generate", "--count", "6", "--seed", "2", "--out", str(out), *SMALL).exit_code == 0
    return out


def test_run_prints_the_table_and_writes_the_csvs(tmp_path: Path, small_set: Path) -> None:
    out = tmp_path / "run"
    result = invoke("run", "--dataset", str(small_set), "--solver", "constant", "--solver", "tests.fakes:FakeSolver",
                    "-o", "constant.answer=ZZZ", "-o", "tests.fakes:FakeSolver.default=Q", "--out", str(out),
                    "--throughput-items", "4")
    assert result.exit_code == 0, result.output
    assert "accuracy [95% CI]" in result.stdout and "constant" in result.stdout
    assert f"results in {out}/" in result.stdout
    assert {p.name for p in out.iterdir()} == {"run.json", "attempts.csv", "details.jsonl", "timing.jsonl", "summary.csv",
                                             "summary.json", "attestation.json"}
    rows = (out / "attempts.csv").read_text().splitlines()
    assert len(rows) == 13 and ",constant," in rows[1] and ",ZZZ," in rows[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--solver", "nosuch"], "unknown solver 'nosuch'"),
        (["--solver", "constant", "-o", "colour=red"], "solver 'constant' has no option 'colour'"),
        (["--solver", "constant", "-o", "colour"], "-o expects KEY=VALUE, got 'colour'"),
        (["--solver", "constant", "-o", "ocr.psm=7"], "'ocr' is not one of the solvers of this run"),
        (["--solver", "constant", "--solver", "constant"], "solver 'constant' is given twice"),
        (["--solver", "constant", "--timeout", "0"], "--timeout must be a finite number of seconds above 0, got 0.0"),
        (["--solver", "constant", "--timeout", "inf"], "Invalid value for '--timeout': 'inf' is not a finite number"),
        (["--solver", "constant", "--timeout", "nan"], "Invalid value for '--timeout': 'nan' is not a finite number"),
        (["--solver", "constant", "--limit", "0"], "Error: --limit must be at least 1, got 0"),
        (["--solver", "constant", "--batch-size", "0"], "Error: --batch-size must be at least 1, got 0"),
        (["--solver", "constant", "--throughput-items", "-1"], "Error: --throughput-items must be 0 (no throughput "
                                                               "pass) or more, got -1"),
        (["--solver", "constant", "--resume"], "holds no run to resume"),
    ],
)
def test_bad_run_input_gets_a_one_line_error(tmp_path: Path, small_set: Path, args: list[str], message: str) -> None:
    result = invoke("run", "--dataset", str(small_set), "--out", str(tmp_path / "run"), *args)
    assert_one_line_error(result, message)
    assert not (tmp_path / "run").exists()


def test_run_on_a_missing_or_broken_data_set(tmp_path: Path, small_set: Path) -> None:
    assert_one_line_error(invoke("run", "--dataset", str(tmp_path / "none"), "--solver", "constant"), "does not exist")
    (small_set / "000001.png").write_bytes(b"bad")
    result = invoke("run", "--dataset", str(small_set), "--solver", "constant", "--out", str(tmp_path / "run"))
    assert_one_line_error(result, "000001.png (item 000001) does not match its sha256 in the manifest")


def test_run_refuses_to_overwrite_and_resumes(tmp_path: Path, small_set: Path) -> None:
    args = ["run", "--dataset", str(small_set), "--solver", "constant", "--out", str(tmp_path / "run"), "--throughput-items", "0"]
    assert invoke(*args).exit_code == 0
    assert_one_line_error(invoke(*args), "already holds a run: pass --resume to continue it, or choose another --out")
    again = invoke(*args, "--resume")
    assert again.exit_code == 0 and len((tmp_path / "run" / "attempts.csv").read_text().splitlines()) == 7


def test_solvers_lists_each_with_origin_and_status() -> None:
    result = invoke("solvers")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["solver", "from", "entry", "point", "can", "run", "here"]
    assert any(line.startswith("constant") and line.rstrip().endswith("yes") for line in lines)


def test_runner_speed_reports_the_loop_rate(small_set: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("speed", "runner", "--dataset", str(small_set), "--rounds", "1")
    assert result.exit_code == 0, result.output
    assert "target: loop >= 5,000 items/s" in result.stdout and "6 attempts" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]


def test_the_progress_bar_says_the_rate_since_it_began() -> None:
    from bench.cli.common import Bars

    now = [100.0]
    bars = Bars(clock=lambda: now[0])
    bars("vlm", 10, 100)  # a resumed run: ten were done before
    assert bars.rate(10) == ""
    now[0] += 8.0
    assert bars.rate(14) == "2.0 s each"  # a paid service: seconds per item
    now[0] += 2.0
    assert bars.rate(40) == "3.0/s"
    bars.close()
