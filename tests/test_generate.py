"""Data sets: reproducible bytes, the on-disk format, safe output folders, verification."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from captchas import dataset as ds
from captchas import images
from captchas.generate import Job, encode_png, make_dataset, make_item, regenerate
from captchas.schemes import ImageScheme
from captchas.spec import Spec
from tests.fakes import edit_manifest


def test_writes_images_manifest_and_info(tiny_dataset: ds.Dataset) -> None:
    folder = tiny_dataset.path
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [f"{i:06d}.png" for i in range(8)] + ["manifest.csv", "dataset.json"]
    )
    with (folder / "manifest.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["id", "file", "answer", "sha256"]
    for row in rows:
        assert ds.sha256_bytes((folder / row["file"]).read_bytes()) == row["sha256"]
    info = json.loads((folder / "dataset.json").read_text())
    assert info["kind"] == "generated" and info["seed"] == 7 and info["count"] == 8
    assert info["case_sensitive"] is False and info["knobs"]["length"] == [3, 3]
    assert info["versions"]["captcha"] == "0.7.1" and len(info["versions"]["font DroidSansMono"]) == 64
    assert info["manifest_sha256"] == tiny_dataset.hash


def test_file_names_and_ids_reveal_no_answer(tiny_dataset: ds.Dataset) -> None:
    for s in tiny_dataset.samples:
        assert s.answer.lower() not in s.file.lower() and s.answer.lower() not in s.id.lower()
        assert s.file == f"{s.id}.png"


def test_same_seed_gives_the_same_hashes_twice(tmp_path: Path, tiny_spec: Spec) -> None:
    a = make_dataset(ImageScheme(tiny_spec), 12, 5, tmp_path / "a")
    b = make_dataset(ImageScheme(tiny_spec), 12, 5, tmp_path / "b", workers=2)  # worker count changes nothing
    assert [s.sha256 for s in a.samples] == [s.sha256 for s in b.samples]
    assert a.hash == b.hash
    c = make_dataset(ImageScheme(tiny_spec), 12, 6, tmp_path / "c")
    assert not {s.sha256 for s in a.samples} & {s.sha256 for s in c.samples}


def test_parallel_workers_give_the_same_bytes_on_many_chunks(tmp_path: Path, tiny_spec: Spec) -> None:
    one = make_dataset(ImageScheme(tiny_spec), 40, 1, tmp_path / "one", workers=1)
    two = make_dataset(ImageScheme(tiny_spec), 40, 1, tmp_path / "two", workers=2)
    assert one.hash == two.hash


def test_png_encoding_is_lossless(tiny_spec: Spec) -> None:
    from PIL import Image
    import io
    import random

    image = ImageScheme(tiny_spec).render("AB3", random.Random(0))
    for mode in ("RGB", "L", "RGBA", "P"):
        converted = image.convert(mode)
        decoded = Image.open(io.BytesIO(encode_png(converted)))
        expected = converted if mode != "P" else converted.convert("RGB")
        assert decoded.mode == expected.mode and decoded.tobytes() == expected.tobytes()


def test_refuses_a_non_empty_output_folder(tmp_path: Path, tiny_spec: Spec) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ds.DatasetError, match="is not empty: choose another --out, or pass --force"):
        make_dataset(ImageScheme(tiny_spec), 2, 0, out)
    assert (out / "notes.txt").read_text() == "mine"


def test_force_replaces_only_when_the_new_set_is_complete(tmp_path: Path, tiny_spec: Spec) -> None:
    out = tmp_path / "out"
    old = make_dataset(ImageScheme(tiny_spec), 3, 0, out)

    class Broken(ImageScheme):
        def render(self, answer, rng):  # type: ignore[no-untyped-def]
            if answer:
                raise RuntimeError("renderer crashed")

    with pytest.raises(RuntimeError):
        make_dataset(Broken(tiny_spec), 3, 1, out, force=True)
    assert ds.read_dataset(out).hash == old.hash  # the old set is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging folder left behind
    new = make_dataset(ImageScheme(tiny_spec), 4, 1, out, force=True)
    assert len(new.samples) == 4 and new.hash != old.hash
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_an_empty_existing_folder_is_fine(tmp_path: Path, tiny_spec: Spec) -> None:
    (tmp_path / "empty").mkdir()
    assert len(make_dataset(ImageScheme(tiny_spec), 2, 0, tmp_path / "empty").samples) == 2


def test_output_that_is_a_file_is_refused(tmp_path: Path, tiny_spec: Spec) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ds.DatasetError, match="is a file"):
        make_dataset(ImageScheme(tiny_spec), 2, 0, tmp_path / "file")


@pytest.mark.parametrize(("count", "workers", "message"), [(0, 1, "count must be at least 1, got 0"),
                                                           (-5, 1, "count must be at least 1"),
                                                           (3, 0, "workers must be at least 1")])
def test_bad_counts_are_refused(tmp_path: Path, tiny_spec: Spec, count: int, workers: int, message: str) -> None:
    with pytest.raises(ds.DatasetError, match=message):
        make_dataset(ImageScheme(tiny_spec), count, 0, tmp_path / "x", workers=workers)
    assert not (tmp_path / "x").exists()


def test_reuse_keeps_the_same_set_and_refuses_another(tmp_path: Path, tiny_spec: Spec) -> None:
    first = make_dataset(ImageScheme(tiny_spec), 3, 0, tmp_path / "s")
    again = make_dataset(ImageScheme(tiny_spec), 3, 0, tmp_path / "s", reuse=True)
    assert again.hash == first.hash and again.info["created"] == first.info["created"]
    with pytest.raises(ds.DatasetError, match="holds a different data set \\(seed differ\\)"):
        make_dataset(ImageScheme(tiny_spec), 3, 1, tmp_path / "s", reuse=True)
    (tmp_path / "s" / "000001.png").write_bytes(b"tampered")
    with pytest.raises(ds.DatasetError, match="does not match its manifest"):
        make_dataset(ImageScheme(tiny_spec), 3, 0, tmp_path / "s", reuse=True)


def test_check_files_finds_changed_missing_and_extra_files(tiny_dataset: ds.Dataset) -> None:
    folder = tiny_dataset.path
    assert images.check_files(tiny_dataset) == []
    (folder / "000001.png").write_bytes(b"not the same")
    (folder / "000002.png").unlink()
    (folder / "stray.png").write_bytes(b"")
    problems = images.check_files(tiny_dataset)
    assert problems == [
        "000001: 000001.png does not match its sha256 in the manifest",
        "000002: 000002.png is missing",
        "stray.png: not in the manifest",
    ]


def test_regenerate_matches_and_catches_a_consistent_forgery(tiny_dataset: ds.Dataset) -> None:
    assert regenerate(tiny_dataset).problems == []
    assert regenerate(tiny_dataset, workers=2).problems == []
    # Replace an image and fix up the manifest: the file check passes, regeneration does not.
    folder = tiny_dataset.path
    other = folder / "000003.png"
    (folder / "000000.png").write_bytes(other.read_bytes())
    rows = (folder / "manifest.csv").read_text().splitlines()
    rows[1] = rows[1].replace(rows[1].split(",")[3], ds.sha256_bytes(other.read_bytes()))
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(ds.DatasetError, match="manifest.csv was changed after the data set was made"):
        ds.read_dataset(folder)  # dataset.json still holds the old manifest's hash
    info = json.loads((folder / "dataset.json").read_text())
    info["manifest_sha256"] = ds.sha256_bytes((folder / "manifest.csv").read_bytes())
    (folder / "dataset.json").write_text(json.dumps(info))
    forged = ds.read_dataset(folder)
    assert images.check_files(forged) == []
    assert regenerate(forged).problems == ["000000: regenerated image differs from the data set"]


def test_regenerate_names_changed_versions(tiny_dataset: ds.Dataset) -> None:
    info = dict(tiny_dataset.info, versions={**tiny_dataset.info["versions"], "captcha": "0.6.0"})
    knobs = dict(info["knobs"], noise_dots=31)  # a different render, as a library upgrade would give
    changed = ds.Dataset(tiny_dataset.path, dict(info, knobs=knobs), tiny_dataset.samples, tiny_dataset.hash)
    problems = regenerate(changed).problems
    assert len(problems) == 9 and "captcha 0.6.0 -> 0.7.1" in problems[-1]


def test_regenerate_accepts_the_same_pixels_in_other_png_bytes(tiny_dataset: ds.Dataset) -> None:
    from PIL import Image

    path = tiny_dataset.path / "000004.png"
    with Image.open(path) as im:
        im.load()
        im.save(path, format="PNG", compress_level=9)  # another encoder, same pixels
    edit_manifest(tiny_dataset.path, tiny_dataset.samples[4].sha256, ds.sha256_bytes(path.read_bytes()))
    again = regenerate(ds.read_dataset(tiny_dataset.path))
    assert again.problems == [] and again.reencoded == 1


def test_imported_sets_cannot_be_regenerated(tiny_dataset: ds.Dataset) -> None:
    imported = ds.Dataset(tiny_dataset.path, {"kind": "imported"}, tiny_dataset.samples, tiny_dataset.hash)
    with pytest.raises(ds.DatasetError, match="was not generated from a seed"):
        regenerate(imported)


@pytest.mark.parametrize("info", [{"kind": "generated", "scheme": "image", "knobs": {}},
                                  {"kind": "generated", "scheme": "image", "knobs": [], "seed": 1}])
def test_regenerate_refuses_a_broken_dataset_json(tiny_dataset: ds.Dataset, info: dict) -> None:
    broken = ds.Dataset(tiny_dataset.path, info, tiny_dataset.samples, tiny_dataset.hash)
    with pytest.raises(ds.DatasetError, match="cannot be regenerated"):
        regenerate(broken)


def test_read_dataset_refuses_a_dataset_json_that_is_not_an_object(tiny_dataset: ds.Dataset) -> None:
    (tiny_dataset.path / "dataset.json").write_text("[1, 2]")
    with pytest.raises(ds.DatasetError, match="is not a JSON object"):
        ds.read_dataset(tiny_dataset.path)


def test_make_item_is_independent_of_other_items(tiny_spec: Spec) -> None:
    job = Job(ImageScheme(tiny_spec), 9, 100, None)
    assert make_item(job, 57) == make_item(job, 57)
    assert make_item(job, 57).sha256 != make_item(job, 58).sha256


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "manifest.csv is missing"),
        (b"id,file\n1,a.png\n", "needs the columns id, file, answer, sha256"),
        (b"\xff\xfe\x00bad", "not a readable CSV"),
        (b"id,file,answer,sha256\n1,a.png,X,0\n1,b.png,Y,0\n", "repeats an id"),
    ],
)
def test_read_dataset_refuses_broken_manifests(tmp_path: Path, content: bytes | None, message: str) -> None:
    if content is not None:
        (tmp_path / "manifest.csv").write_bytes(content)
    with pytest.raises(ds.DatasetError, match=message):
        ds.read_dataset(tmp_path)


def test_read_dataset_refuses_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ds.DatasetError, match="does not exist"):
        ds.read_dataset(tmp_path / "nope")


def test_manifest_file_names_cannot_escape_the_folder(tiny_dataset: ds.Dataset) -> None:
    sample = tiny_dataset.samples[0]
    escaped = ds.Dataset(tiny_dataset.path, tiny_dataset.info,
                         (ds.Sample(sample.id, "../outside.png", sample.answer, sample.sha256),), tiny_dataset.hash)
    assert "points outside the data set" in images.check_files(escaped)[0]
