"""--unlabelled: a scheme's images without answers, learnt from by pseudo-labels; never the test items."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed")

from click.testing import CliRunner  # noqa: E402

from bench.cli import cli  # noqa: E402
from captchas import dataset as ds  # noqa: E402
from solvers.cnn.checkpoint import load_checkpoint  # noqa: E402
from solvers.cnn.train import PSEUDO_ROUNDS, TrainConfig, train  # noqa: E402
from tests.test_auto import folder, text_image  # noqa: E402


def _scraped(tmp_path: Path, count: int) -> Path:
    """A folder of images without answers, none of them any data set's."""
    out = tmp_path / "scraped"
    out.mkdir()
    for k in range(count):
        text_image(f"K{k:03d}", (160, 60), None, seed=1000 + k).save(out / f"{k}.png")
    return out


def test_pseudo_labels_join_training_in_rounds(tmp_path: Path) -> None:
    pytest.importorskip("ddddocr")
    data = folder(tmp_path, "small", 24, (160, 60))
    scraped = _scraped(tmp_path, 16)
    out = tmp_path / "m.pt"
    train(TrainConfig(out=out, preset=None, dataset=data, init=Path("ddddocr"), epochs=4, batch_size=8, freeze=1.0,
                      unlabelled=scraped, device="cpu"))
    record = load_checkpoint(out)["data"]["unlabelled"]
    assert record["folder"] == str(scraped) and record["images"] == 16
    assert len(record["rounds"]) == len(PSEUDO_ROUNDS)
    assert all(0 <= r["kept"] <= 16 for r in record["rounds"]) and any(r["kept"] for r in record["rounds"])


def test_unlabelled_images_that_are_held_out_items_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    data = folder(tmp_path, "small", 24, (160, 60))
    test = folder(tmp_path, "test", 12, (160, 60))
    scraped = _scraped(tmp_path, 3)
    first = ds.read_dataset(data).samples[0]  # a validation item (the first tenth validates)
    shutil.copy(data / first.file, scraped / "copy.png")
    out = tmp_path / "m.pt"
    with pytest.raises(ValueError, match=rf"shares 1 image\(s\) with .*copy.png is validation item {first.id}"):
        train(TrainConfig(out=out, preset=None, dataset=data, epochs=1, unlabelled=scraped, device="cpu"))
    assert not out.exists()
    (scraped / "copy.png").unlink()
    item = ds.read_dataset(test).samples[5]
    shutil.copy(test / item.file, scraped / "leak.png")
    result = CliRunner().invoke(cli, ["attack", "--dataset", str(data), "--test", str(test), "--labels", "20",
                                      "--epochs", "1", "--unlabelled", str(scraped), "--out", str(tmp_path / "a")])
    assert result.exit_code == 1 and f"leak.png is test item {item.id}" in result.output, result.output
    assert not (tmp_path / "a").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        train(TrainConfig(out=out, preset=None, dataset=data, epochs=1, unlabelled=empty, device="cpu"))
    with pytest.raises(ValueError, match="--unlabelled learns from a scheme's images beside its labelled --dataset"):
        TrainConfig(out=out, preset="easy", unlabelled=scraped).check()


def test_attack_draws_each_start_without_and_with_the_unlabelled_images(tmp_path: Path) -> None:
    data = folder(tmp_path, "small", 80, (160, 60))  # enough answers to write every character the test's use
    test = folder(tmp_path, "test", 12, (160, 60))
    scraped = _scraped(tmp_path, 8)
    out = tmp_path / "a"
    result = CliRunner().invoke(cli, ["attack", "--dataset", str(data), "--test", str(test), "--labels", "20",
                                      "--epochs", "1", "--unlabelled", str(scraped), "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = (out / "attack.csv").read_text().splitlines()
    assert [r.split(",")[:2] for r in rows[1:]] == [["general", "20"], ["general+unlabelled", "20"]]
    assert load_checkpoint(out / "general+unlabelled" / "labels-20" / "model.pt")["data"]["unlabelled"]["images"] == 8
    assert "unlabelled" not in load_checkpoint(out / "general" / "labels-20" / "model.pt")["data"]
