"""Importing a folder of labelled images."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from captchas import dataset as ds
from captchas import images
from captchas.folder import import_folder

SHARED_SET = Path(__file__).resolve().parents[2] / "shared" / "data" / "turingpass" / "static" / "dataset"


def _image(fmt: str = "PNG", shade: int = 0) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (30, 12), (shade, 100, 200)).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture
def labelled(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "AB3D.png").write_bytes(_image(shade=1))
    (src / "xy9.jpg").write_bytes(_image("JPEG", shade=2))
    (src / "K7MP.png").write_bytes(_image(shade=3))
    (src / "notes.png").write_text("this is text, not an image")
    (src / "cut.png").write_bytes(_image(shade=4)[:60])  # truncated
    (src / "again.png").write_bytes(_image(shade=1))  # same bytes as AB3D.png
    (src / ".hidden.png").write_bytes(_image(shade=5))
    (src / "sub").mkdir()
    return src


def test_imports_labels_from_names_and_reports_bad_files(tmp_path: Path, labelled: Path) -> None:
    result = import_folder(labelled, tmp_path / "out")
    answers = sorted(s.answer for s in result.dataset.samples)
    assert answers == ["AB3D", "K7MP", "xy9"]
    reasons = {s.file: s.reason for s in result.skipped}
    assert reasons["notes.png"].startswith("not an image")
    assert reasons["cut.png"].startswith("a truncated or damaged PNG")
    assert reasons["again.png"] == "same bytes as AB3D.png"  # the first in name order is kept
    assert len(result.skipped) == 3
    info = json.loads((tmp_path / "out" / "dataset.json").read_text())
    assert info["kind"] == "imported" and info["count"] == 3 and info["skipped"] == 3
    assert info["case_sensitive"] is False


def test_imported_bytes_are_unchanged_and_names_are_opaque(tmp_path: Path, labelled: Path) -> None:
    data = import_folder(labelled, tmp_path / "out").dataset
    for s in data.samples:
        assert (data.path / s.file).read_bytes() == (labelled / s.source).read_bytes()
        assert s.answer.lower() not in s.file.lower()
        assert s.file.split(".")[0] == s.id and s.id.isdigit()
    assert {Path(s.file).suffix for s in data.samples} == {".png", ".jpg"}
    assert images.check_files(data) == []


def test_ids_follow_a_seeded_shuffle_not_the_names(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for k in range(30):
        (src / f"{k:02d}AAA.png").write_bytes(_image(shade=k))
    a = import_folder(src, tmp_path / "a", seed=1).dataset
    b = import_folder(src, tmp_path / "b", seed=1).dataset
    c = import_folder(src, tmp_path / "c", seed=2).dataset
    order = [s.answer for s in a.samples]
    assert order == [s.answer for s in b.samples]  # reproducible
    assert order != sorted(order)  # the id order does not follow the (answer-bearing) names
    assert order != [s.answer for s in c.samples]


def test_labels_from_a_csv(tmp_path: Path, labelled: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("file,answer\nAB3D.png,first\nK7MP.png, second \nxy9.jpg,\nmissing.png,gone\n")
    result = import_folder(labelled, tmp_path / "out", labels=labels, case_sensitive=True)
    assert sorted(s.answer for s in result.dataset.samples) == ["first", "second"]
    reasons = {s.file: s.reason for s in result.skipped}
    assert reasons["xy9.jpg"] == "empty label"
    assert reasons["missing.png"] == "listed in the labels file but missing"
    assert reasons["notes.png"] == "not in the labels file"
    assert result.dataset.case_sensitive


def test_labels_from_a_pattern(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "AB3D_1.png").write_bytes(_image(shade=1))
    (src / "AB3D_2.png").write_bytes(_image(shade=2))
    (src / "plain.png").write_bytes(_image(shade=3))
    result = import_folder(src, tmp_path / "out", pattern=r"(.+)_\d+")
    assert [s.answer for s in result.dataset.samples] == ["AB3D", "AB3D"]
    assert [(s.file, s.reason) for s in result.skipped] == [("plain.png", "name does not match --pattern")]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pattern": "(unclosed"}, "is not a regular expression"),
        ({"pattern": "no-group"}, "needs one group"),
        ({"labels": "nope.csv"}, "labels file .* does not exist"),
    ],
)
def test_bad_options_are_refused(tmp_path: Path, labelled: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ds.DatasetError, match=message):
        import_folder(labelled, tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_a_labels_csv_without_the_columns_is_refused(tmp_path: Path, labelled: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("name,text\nAB3D.png,x\n")
    with pytest.raises(ds.DatasetError, match="needs a header with the columns file,answer"):
        import_folder(labelled, tmp_path / "out", labels=labels)


def test_nothing_importable_is_an_error(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.png").write_text("text")
    with pytest.raises(ds.DatasetError, match="no image in .* could be imported \\(1 skipped; e.g. a.png: not an image "):
        import_folder(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ds.DatasetError, match="does not exist"):
        import_folder(tmp_path / "absent", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ds.DatasetError, match="holds no files"):
        import_folder(tmp_path / "empty", tmp_path / "out")


def test_refuses_a_non_empty_output(tmp_path: Path, labelled: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("keep")
    with pytest.raises(ds.DatasetError, match="is not empty"):
        import_folder(labelled, tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").read_text() == "keep"


def test_force_replaces_only_a_data_set(tmp_path: Path, labelled: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(ds.DatasetError, match="is not wholly a data set: it holds thesis.tex.* --force replaces only a data set"):
        import_folder(labelled, mine, force=True)
    assert (mine / "thesis.tex").read_text() == "years of work"
    first = import_folder(labelled, tmp_path / "set").dataset
    again = import_folder(labelled, tmp_path / "set", force=True, seed=1).dataset  # a data set: replaced
    assert again.hash != first.hash and images.check_files(again) == []


@pytest.mark.parametrize("where", ["the source", "inside it", "holding it"])
def test_the_output_may_not_overlap_the_source(tmp_path: Path, labelled: Path, where: str) -> None:
    out = {"the source": labelled, "inside it": labelled / "sub" / "set", "holding it": tmp_path}[where]
    before = sorted(p.name for p in labelled.iterdir())
    with pytest.raises(ds.DatasetError, match="the source folder .*: choose an --out outside the source"):
        import_folder(labelled, out, force=True)
    assert sorted(p.name for p in labelled.iterdir()) == before


def test_images_are_named_for_what_they_are(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "ok.png").write_bytes(_image())
    (src / "empty.png").write_bytes(b"")
    big = io.BytesIO()
    Image.new("L", (2100, 2000)).save(big, format="PNG")  # 4.2 M pixels of one colour: a small file
    (src / "bomb.png").write_bytes(big.getvalue())
    large = io.BytesIO()
    Image.frombytes("L", (2100, 2000), bytes(range(256)) * (2100 * 2000 // 256) + bytes(2100 * 2000 % 256)).save(
        large, format="BMP")  # the same size, uncompressed
    (src / "large.bmp").write_bytes(large.getvalue())
    reasons = {s.file: s.reason for s in import_folder(src, tmp_path / "out").skipped}
    assert reasons["empty.png"] == "an empty file (0 bytes), not an image"
    assert reasons["bomb.png"].startswith("a decompression bomb: 2100x2000 = 4,200,000 pixels")
    assert reasons["large.bmp"].startswith("too large: 2100x2000") and "CAPTCHA_BENCH_MAX_PIXELS" in reasons["large.bmp"]


def test_the_pixel_limit_can_be_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "wide.png").write_bytes(_image())  # 30x12 = 360 pixels
    monkeypatch.setenv(images.MAX_PIXELS_ENV, "100")
    with pytest.raises(ds.DatasetError, match="too large: 30x12 = 360 pixels"):
        import_folder(src, tmp_path / "out")
    monkeypatch.setenv(images.MAX_PIXELS_ENV, "360")
    assert len(import_folder(src, tmp_path / "out").dataset.samples) == 1
    monkeypatch.setenv(images.MAX_PIXELS_ENV, "lots")
    with pytest.raises(ds.DatasetError, match="is not a whole number of pixels"):
        images.max_pixels()


@pytest.mark.skipif(not SHARED_SET.is_dir(), reason="../shared/data/turingpass is absent (it is present in CI)")
def test_real_turingpass_images_import(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for path in sorted(SHARED_SET.iterdir())[:25]:
        (src / path.name).symlink_to(path)
    data = import_folder(src, tmp_path / "out").dataset
    assert len(data.samples) == 25
    assert all(len(s.answer) == 5 and s.file.endswith(".jpg") for s in data.samples)
    assert images.check_files(data) == []
