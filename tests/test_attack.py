"""The attack-cost curve (bench/attack.py, `captcha-bench attack`): tiny sets, end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from bench import attack  # noqa: E402
from bench.cli import cli  # noqa: E402
from captchas import dataset as ds  # noqa: E402
from captchas.generate import make_dataset  # noqa: E402
from captchas.schemes import image_scheme  # noqa: E402
from captchas.turingpass import EMBEDDED_HUMANS  # noqa: E402


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("attack")
    train = make_dataset(image_scheme("easy"), 48, 1, root / "train").path
    test = make_dataset(image_scheme("easy"), 16, 2, root / "test").path
    return train, test


def test_attack_trains_on_growing_subsets_tests_each_and_resumes(sets: tuple[Path, Path], tmp_path: Path) -> None:
    train, test = sets
    out = tmp_path / "a"
    result = CliRunner().invoke(cli, ["attack", "--dataset", str(train), "--test", str(test), "--labels", "40,20",
                                      "--epochs", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "start    labels  test accuracy [95% CI]" in result.output and str(out / "attack.png") in result.output
    rows = (out / "attack.csv").read_text().splitlines()
    assert rows[0].startswith("start,labels,accuracy,low,high,test_items,cpu_minutes") and len(rows) == 3
    points = attack.run_attack(train, test, out, [20, 40], epochs=1)  # the same request: nothing is redone
    assert [p.labels for p in points.points] == [20, 40] and all(p.test_items == 16 for p in points.points)
    assert all(0 <= p.low <= p.accuracy <= p.high <= 1 and p.cpu_minutes > 0 for p in points.points)
    assert (out / "attack.csv").read_text().splitlines() == rows  # no point measured twice
    from solvers.cnn.checkpoint import load_checkpoint

    state = load_checkpoint(out / "general" / "labels-20" / "model.pt")
    assert state["data"]["limit"] == 20 and state["data"]["train_items"] == 18  # its first tenth validates
    assert (out / "attack.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(("labels", "message"), [
    ([5], "give one or more counts of 10 labelled images or more"),
    ([100], "holds only 48 labelled images"),
])
def test_attack_refuses_what_cannot_be_measured(sets: tuple[Path, Path], tmp_path: Path, labels: list[int],
                                                 message: str) -> None:
    train, test = sets
    with pytest.raises(ValueError, match=message):
        attack.run_attack(train, test, tmp_path / "a", labels, epochs=1)
    with pytest.raises(ValueError, match="--test is the training set"):
        attack.run_attack(train, train, tmp_path / "b", [20], epochs=1)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.parametrize(("args", "message", "code"), [
    (["--minutes", "0"], "--minutes must be a finite number above 0, got 0.0", 1),
    (["--minutes", "inf"], "Invalid value for '--minutes': 'inf' is not a finite number", 2),
    (["--minutes", "nan"], "Invalid value for '--minutes': 'nan' is not a finite number", 2),
    (["--epochs", "0"], "--epochs must be a finite number above 0, got 0.0", 1),
    (["--from-scratch", "--init", "x.pt"], "--from-scratch and --init x.pt contradict each other", 1),
    (["--init", "general,"], "--init: give one or more of scratch, general, ddddocr", 1),
])
def test_attack_checks_every_training_setting_before_it_writes(sets: tuple[Path, Path], tmp_path: Path,
                                                               args: list[str], message: str, code: int) -> None:
    train, test = sets
    out = tmp_path / "a"
    result = CliRunner().invoke(cli, ["attack", "--dataset", str(train), "--test", str(test), "--labels", "20",
                                      "--out", str(out), *args])
    assert result.exit_code == code and message in result.output and "Traceback" not in result.output, result.output
    assert not out.exists()


def test_attack_will_not_mix_two_attacks_in_one_folder(sets: tuple[Path, Path], tmp_path: Path) -> None:
    train, test = sets
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not an empty folder and holds no attack"):
        attack.run_attack(train, test, tmp_path / "busy", [20], epochs=1)
    attack._check_out(tmp_path / "c", {"labels": [20]})
    with pytest.raises(ValueError, match="holds another attack"):
        attack._check_out(tmp_path / "c", {"labels": [40]})


def test_people_on_the_test_set_are_the_reference_line() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        people = attack._people(ds.read_dataset(EMBEDDED_HUMANS), Path(tmp) / "people", None)
    assert people is not None and people[1] < people[0] < people[2]
    assert people[0] == pytest.approx(0.735, abs=0.001)  # all 1,817 answers, as docs/humans.md says
    point = attack.Point("general", 250, 0.5, 0.45, 0.55, 500, 3.0, 2.0, 0.5, "m.pt")
    assert attack.figure([point], people)[:4] == b"\x89PNG"


def test_one_curve_per_start_in_one_csv_and_figure_with_the_cheapest_named(sets: tuple[Path, Path],
                                                                           tmp_path: Path) -> None:
    pytest.importorskip("ddddocr")
    train, test = sets
    out = tmp_path / "a"
    result = CliRunner().invoke(cli, ["attack", "--dataset", str(train), "--test", str(test), "--labels", "20",
                                      "--epochs", "1", "--init", "scratch,ddddocr", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = (out / "attack.csv").read_text().splitlines()
    assert [r.split(",")[:2] for r in rows[1:]] == [["scratch", "20"], ["ddddocr", "20"]]
    assert (out / "scratch" / "labels-20" / "model.pt").is_file() and (out / "ddddocr" / "labels-20" / "model.pt").is_file()
    assert (out / "attack.png").read_bytes()[:4] == b"\x89PNG"
    points = [attack.Point("scratch", 250, 0.2, 0.1, 0.3, 500, 1.0, 1.0, 0.2, "a"),
              attack.Point("ddddocr", 250, 0.8, 0.7, 0.9, 500, 2.0, 1.0, 0.8, "b"),
              attack.Point("ddddocr", 1000, 0.9, 0.85, 0.95, 500, 3.0, 1.0, 0.9, "c"),
              attack.Point("general", 250, 0.75, 0.7, 0.8, 500, 0.5, 1.0, 0.7, "d")]
    said = attack.cheapest(attack.Attack(points, (0.74, 0.72, 0.76), out))
    assert said == "cheapest: general, 250 labels and 0.5 CPU minutes read 75.0%, the people 74.0%"
    assert attack.cheapest(attack.Attack(points[:1], (0.74, 0.72, 0.76), out)) == (
        "no start reached the people's 74.0%: the best was scratch with 250 labels, 20.0%")
    assert attack.cheapest(attack.Attack(points, None, out)) is None
