"""Training without tuning (solvers/cnn/auto.py): the input size from the data, the length of a run
from its size or its minutes, and the warnings when a model did not learn or was still learning."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

pytest.importorskip("torch")

from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from captchas.folder import import_folder  # noqa: E402
from solvers.cnn import auto  # noqa: E402
from solvers.cnn.model import CNNConfig, ink_box, input_bytes  # noqa: E402
from solvers.cnn.train import TrainConfig, train  # noqa: E402

FONT = Path(__file__).resolve().parents[1] / "captchas" / "fonts" / "DejaVuSans-Bold.ttf"


def text_image(answer: str, size: tuple[int, int], band: tuple[int, int] | None = None, seed: int = 0) -> Image.Image:
    """Dark text on a light background, or on a light band across a dark image, with specks of noise."""
    rng = random.Random(seed)
    image = Image.new("RGB", size, (30, 90, 160) if band else (235, 235, 235))
    draw = ImageDraw.Draw(image)
    top, height = band or (0, size[1])
    if band:
        draw.rectangle((0, top, size[0], top + height), fill=(240, 230, 200))
    font = ImageFont.truetype(str(FONT), int(height * 0.6))
    width = draw.textlength(answer, font=font)
    x = rng.randint(0, max(0, size[0] - int(width) - 1)) if not band else (size[0] - int(width)) // 2
    draw.text((x, top + height * 0.15), answer, fill=(20, 20, 20), font=font)
    for _ in range(size[0] * size[1] // 400):
        px, py = rng.randrange(size[0]), rng.randrange(size[1])
        draw.point((px, py), fill=(rng.randrange(256),) * 3)
    return image


def folder(tmp_path: Path, name: str, count: int, size: tuple[int, int], band: tuple[int, int] | None = None) -> Path:
    """A labelled folder imported as a data set: `count` answers of 4-5 digits and capitals."""
    src = tmp_path / f"{name}-src"
    src.mkdir()
    rng = random.Random(name)
    rows = ["file,answer"]
    for k in range(count):
        answer = "".join(rng.choice("0123456789ABCDEFGHKMNPRSTXYZ") for _ in range(rng.randint(4, 5)))
        text_image(answer, size, band, seed=k).save(src / f"{k}.png")
        rows.append(f"{k}.png,{answer}")
    (src / "labels.csv").write_text("\n".join(rows) + "\n")
    return import_folder(src, tmp_path / name, labels=src / "labels.csv").dataset.path


def test_ink_box_finds_text_on_a_band_of_a_larger_image() -> None:
    image = text_image("X7Q2K", (640, 360), band=(140, 80))
    left, top, right, bottom = ink_box(image)
    assert 130 <= top and bottom <= 230  # the band's rows, not the whole image's
    assert 150 <= left and right <= 490 and right - left >= 150  # the text's columns, not the band's 640


def test_pad_keeps_the_aspect_and_fills_with_the_background() -> None:
    square = Image.new("L", (40, 40), 255)
    ImageDraw.Draw(square).rectangle((10, 10, 29, 29), fill=0)
    config = CNNConfig(charset="a", height=16, width=64, fit="pad")
    x = Image.frombytes("L", (64, 16), input_bytes(square, config))
    assert x.getpixel((2, 8)) == 255 and x.getpixel((61, 8)) == 255  # padding: the background, both sides
    dark = [c for c in range(64) if x.getpixel((c, 8)) < 128]
    assert 6 <= len(dark) <= 10 and abs((dark[0] + dark[-1]) / 2 - 31.5) <= 1.5  # a square, centred
    stretched = Image.frombytes("L", (64, 16), input_bytes(square, CNNConfig(charset="a", height=16, width=64)))
    assert sum(stretched.getpixel((c, 8)) < 128 for c in range(64)) > 25  # stretch widens it


def test_geometry_follows_the_images_aspect_and_the_longest_answer() -> None:
    wide = [text_image("AB12X", (250, 75), seed=k) for k in range(20)]
    chosen = auto.geometry(wide, 6, {})
    assert chosen["height"] == 32 and chosen["width"] % 4 == 0 and chosen["width"] >= 16 * 6
    assert (chosen["fit"], chosen["crop"], chosen["channels"], chosen["hidden"]) == ("pad", True, (16, 32, 64, 96), 96)
    banded = [text_image("AB12X", (640, 360), band=(140, 80), seed=k) for k in range(20)]
    assert 96 <= auto.geometry(banded, 5, {})["width"] <= 200  # the band's text, not 640:360
    square = [Image.new("RGB", (60, 60), "white")] * 3
    assert auto.geometry(square, 8, {})["width"] == 128  # at least 16 columns per character
    assert auto.geometry(wide, 6, {"height": 24}) == {}  # a size given: nothing chosen, as before
    assert "hidden" not in auto.geometry(wide, 6, {"hidden": 64})  # given: kept


def test_the_length_of_a_run_follows_the_data() -> None:
    assert auto.epochs_for(4_000) == 50 and auto.epochs_for(100) == 60 and auto.epochs_for(1_000_000) == 3
    assert [auto.eval_every(n) for n in (5, 100, 2_400, 10_000)] == [1, 10, 240, 250]


def test_warnings_say_when_a_model_did_not_learn_or_was_still_learning() -> None:
    flat = [{"step": s, "val_accuracy": 0.01} for s in range(10, 110, 10)]
    assert auto.warnings(flat)[0].startswith("the model did not learn: validation reached 1.0%")
    assert "It started from pre-trained weights: try more labelled" in auto.warnings(flat, started=True)[0]
    assert "It trained on items it rendered: give more --minutes" in auto.warnings(flat, generated=True)[0]
    rising = [{"step": s, "val_accuracy": s / 200} for s in range(10, 110, 10)]
    said = auto.warnings(rising)
    assert len(said) == 1 and "still rising when training stopped: 35.0% to 50.0%" in said[0]
    plateau = [{"step": s, "val_accuracy": min(0.9, s / 50)} for s in range(10, 110, 10)]
    assert auto.warnings(plateau) == []


def test_training_on_a_folder_chooses_its_input_and_says_what_it_trained_on(tmp_path: Path) -> None:
    data = folder(tmp_path, "wide", 40, (250, 75))
    meta = train(TrainConfig(out=tmp_path / "m.pt", preset=None, dataset=data, epochs=1, batch_size=16, device="cpu",
                             from_scratch=True))  # the general reader might read these after two steps
    config = meta["config"]
    assert (config["height"], config["fit"], config["crop"]) == (32, "pad", True) and config["width"] >= 96
    assert meta["data"]["image"] == [250, 75] and meta["data"]["kind"] == "imported"
    assert set(meta["data"]["chosen"]) == {"height", "width", "fit", "crop", "channels", "hidden"}
    assert any(w.startswith("the model did not learn") for w in meta["warnings"])  # two steps cannot
    from solvers.cnn.checkpoint import load_checkpoint

    assert load_checkpoint(tmp_path / "m.pt")["warnings"] == meta["warnings"]  # the checkpoint says so too
    from solvers.cnn.card import model_card

    card = model_card(meta, "cmd")
    assert "- Images: median 250x75 pixels" in card and "- **Warning:** the model did not learn" in card


def test_minutes_fit_the_schedule_and_the_cli_warns_loudly(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from bench.cli import cli

    data = folder(tmp_path, "small", 40, (200, 60))
    result = CliRunner().invoke(cli, ["train", "--dataset", str(data), "--out", str(tmp_path / "m.pt"),
                                      "--minutes", "0.15", "--batch-size", "16", "--device", "cpu", "--from-scratch"])
    assert result.exit_code == 0, result.output
    assert "warning: the model did not learn" in result.output
    card = (tmp_path / "m.md").read_text()
    steps = [int(line.split("|")[1]) for line in card.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(steps) >= 2 and steps == sorted(steps)  # a curve, not one point
