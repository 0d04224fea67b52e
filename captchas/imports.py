"""Import a folder of labelled images as a data set: opaque ids, hashes, unreadable files reported.

Labels come from the file name (the whole stem, or a regular expression's first group) or from a
CSV with the columns `file,answer`. Ids are given after a seeded shuffle, so their order says
nothing about the labels (a folder sorted by answer would otherwise leak its order).
"""

from __future__ import annotations

import csv
import random
import re
import shutil
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import PIL

from captchas import dataset as ds

EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg", "GIF": ".gif", "BMP": ".bmp", "WEBP": ".webp", "TIFF": ".tif"}


@dataclass(frozen=True)
class Skipped:
    """A source file left out, and why."""

    file: str
    reason: str


@dataclass(frozen=True)
class ImportResult:
    dataset: ds.Dataset
    skipped: tuple[Skipped, ...]


# Writes extra files into the staging folder once the samples are known (samples, manifest sha256)
# and returns what dataset.json should say about them.
Finish = Callable[[Path, list[ds.Sample], str], dict[str, Any]]


def import_folder(
    src: str | Path,
    out: str | Path,
    *,
    labels: str | Path | None = None,
    pattern: str | None = None,
    case_sensitive: bool = False,
    seed: int = 0,
    force: bool = False,
    progress: ds.Progress | None = None,
    only: Collection[str] | None = None,
    info: dict[str, Any] | None = None,
    finish: Finish | None = None,
) -> ImportResult:
    """Copy the images of `src` (not its subfolders) into a new data set at `out`.

    Unreadable, non-image, unlabelled and duplicate files are skipped and returned, not fatal;
    a folder with nothing importable is an error. Image bytes are copied unchanged. `only` keeps
    just those file names; `info` adds to dataset.json; `finish` writes extra files into the
    data set before it is published (see Finish).
    """
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise ds.DatasetError(f"source folder {src} does not exist: give a folder of labelled images")
    ds.check_apart(src, out)
    ds.check_output(out, force)  # before the long first pass
    regex = _compile(pattern)
    table = _read_labels(Path(labels)) if labels is not None else None
    files = sorted(p for p in src.iterdir() if p.is_file() and not p.name.startswith("."))
    if only is not None:
        files = [p for p in files if p.name in only]
    if table is not None:
        files += sorted(src / name for name in set(table) - {p.name for p in files})  # listed but absent
    if not files:
        raise ds.DatasetError(f"source folder {src} holds no files: nothing to import")

    # Pass 1, in name order: labels, full decode, duplicates. Pass 2, in shuffled order: ids, copies.
    kept: list[tuple[Path, str, str, str]] = []  # path, answer, format, sha256
    skipped: list[Skipped] = []
    seen: dict[str, str] = {}  # sha256 -> first file with those bytes
    for done, path in enumerate(files, 1):
        if progress:
            progress(done, 2 * len(files))
        answer, reason = _label(path, table, regex)
        if reason is None:
            data, fmt, reason = _read_image(path)
        if reason is None:
            sha = ds.sha256_bytes(data)
            if sha in seen:
                reason = f"same bytes as {seen[sha]}"
            else:
                seen[sha] = path.name
                kept.append((path, answer, fmt, sha))
        if reason is not None:
            skipped.append(Skipped(path.name, reason))
    if not kept:
        first = skipped[0]
        raise ds.DatasetError(f"no image in {src} could be imported ({len(skipped)} skipped; e.g. {ds.shown(first.file)}: "
                              f"{first.reason})")
    random.Random(seed).shuffle(kept)

    staging = ds.prepare_output(out, force)
    try:
        samples: list[ds.Sample] = []
        for done, (path, answer, fmt, sha) in enumerate(kept, 1):
            if progress:
                progress(len(files) + done * len(files) // len(kept), 2 * len(files))
            data = path.read_bytes()
            if ds.sha256_bytes(data) != sha:
                raise ds.DatasetError(f"{path} changed during the import: import again once the folder is still")
            sample_id = ds.item_id(len(samples), len(kept))
            file = sample_id + EXTENSIONS[fmt]
            (staging / file).write_bytes(data)
            samples.append(ds.Sample(sample_id, file, answer, sha, source=path.name))
        manifest_hash = ds.write_manifest(staging, samples)
        extra = finish(staging, samples, manifest_hash) if finish else {}
        ds.write_info(staging, {
            "format": ds.FORMAT_VERSION,
            "kind": "imported",
            "source": str(src.resolve()),
            "labels": str(Path(labels).resolve()) if labels is not None else ("file name" + (f" ~ {pattern}" if pattern else "")),
            "id_seed": seed,
            "count": len(samples),
            "skipped": len(skipped),
            "case_sensitive": case_sensitive,
            "charset": "".join(sorted({c for s in samples for c in s.answer})),
            "manifest_sha256": manifest_hash,
            "versions": {"pillow": PIL.__version__},
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **(info or {}),
            **extra,
        })
        ds.publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ImportResult(dataset=ds.read_dataset(out), skipped=tuple(skipped))


def _compile(pattern: str | None) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    try:
        regex = re.compile(pattern)
    except re.error as e:
        raise ds.DatasetError(f"--pattern {pattern!r} is not a regular expression ({e})") from None
    if regex.groups < 1:
        raise ds.DatasetError(f"--pattern {pattern!r} needs one group that captures the answer, e.g. '(.+)_\\d+'")
    return regex


def _read_labels(path: Path) -> dict[str, str]:
    """file name -> answer, from a CSV with a header `file,answer`."""
    if not path.is_file():
        raise ds.DatasetError(f"labels file {path} does not exist: give a CSV with the columns file,answer")
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as e:
        raise ds.DatasetError(f"labels file {path} is not a readable UTF-8 CSV ({e})") from None
    if not rows or "file" not in rows[0] or "answer" not in rows[0]:
        raise ds.DatasetError(f"labels file {path} needs a header with the columns file,answer and at least one row")
    table: dict[str, str] = {}
    for row in rows:
        name = Path(row["file"] or "").name
        if name in table and table[name] != row["answer"]:
            raise ds.DatasetError(f"labels file {path} gives {name} two answers: keep one")
        table[name] = row["answer"] or ""
    return table


def _label(path: Path, table: dict[str, str] | None, regex: re.Pattern[str] | None) -> tuple[str, str | None]:
    """(answer, None) or ("", why this file has no usable label)."""
    if table is not None:
        if path.name not in table:
            return "", "not in the labels file"
        if not path.exists():
            return "", "listed in the labels file but missing"
        answer = table[path.name]
    elif regex is not None:
        match = regex.fullmatch(path.stem)
        if not match:
            return "", "name does not match --pattern"
        answer = match.group(1)
    else:
        answer = path.stem
    answer = answer.strip()
    if not answer:
        return "", "empty label"
    if any(not c.isprintable() for c in answer):
        return "", "label holds control characters"
    return answer, None


def _read_image(path: Path) -> tuple[bytes, str, str | None]:
    """(bytes, format, None) for a fully decodable image within the pixel limit, else ("", "", reason)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        return b"", "", f"unreadable ({e.strerror or e})"
    try:
        fmt = ds.decode_image(data).format or ""
    except ds.ImageError as e:
        return b"", "", str(e)
    if fmt not in EXTENSIONS:
        return b"", "", f"unsupported image format {fmt or 'unknown'}"
    return data, fmt, None


# The public TuringPass layout (github.com/amri-tah/TuringPass), paths relative to its root.
TURINGPASS_IMAGES = Path("static/dataset")
TURINGPASS_ANSWERS = Path("models/captcha/human_captcha_solve_data.csv")
TURINGPASS_COLUMNS = ("time_taken", "attempts", "actual", "response")
ANSWERS_FILE = "answers.csv"
# The TuringPass `humans` split, shipped inside the package as the embedded human baseline
# (data/turingpass/SOURCE.md says where it comes from and what was changed).
EMBEDDED_HUMANS = Path(__file__).resolve().parent / "data" / "turingpass" / "humans"


@dataclass(frozen=True)
class TuringPassImport:
    humans: ds.Dataset  # the images people answered, with answers.csv
    train: ds.Dataset  # the rest
    answers: int  # human answers kept
    skipped: tuple[Skipped, ...]  # images and answer rows left out, and why


def import_turingpass(
    src: str | Path, out: str | Path, *, seed: int = 0, force: bool = False, progress: ds.Progress | None = None
) -> TuringPassImport:
    """Import a TuringPass folder as two data sets, `out`/humans and `out`/train.

    `humans` holds the images with recorded answers and an answers file (captchas.recorded format,
    the source's time in client_seconds); `train` holds every other image. Both are marked
    case-insensitive, as the original app judged answers; the manifests keep the case, so a
    case-sensitive score stays available (`captcha-bench run --case-sensitive`).
    """
    from captchas import recorded

    src, out = Path(src), Path(out)
    images, table = src / TURINGPASS_IMAGES, src / TURINGPASS_ANSWERS
    if not images.is_dir() or not table.is_file():
        raise ds.DatasetError(f"{src} is not a TuringPass folder: expected {TURINGPASS_IMAGES}/ and {TURINGPASS_ANSWERS}")
    for split in ("humans", "train"):
        ds.check_apart(src, out / split)
        ds.check_output(out / split, force)
    rows = _read_turingpass(table)
    names = {p.name for p in images.iterdir() if p.is_file()}
    skipped: list[Skipped] = []
    kept_rows = []
    for line, row in rows:
        if row["actual"] + ".jpg" in names:
            kept_rows.append(row)
        else:
            skipped.append(Skipped(f"{TURINGPASS_ANSWERS.name} line {line}", f"no image {row['actual']}.jpg"))
    answered = {row["actual"] + ".jpg" for row in kept_rows}
    if not answered:
        raise ds.DatasetError(f"no answer in {table} matches an image in {images}: nothing to import")

    def write_answers(staging: Path, samples: list[ds.Sample], manifest_hash: str) -> dict[str, Any]:
        ids = {s.source: s.id for s in samples}
        records = [
            recorded.Recorded(
                participant="",  # TuringPass records none
                item_id=ids[row["actual"] + ".jpg"],
                answer="" if row["response"] == "SKIPPED" else row["response"],
                skipped=row["response"] == "SKIPPED",
                attempt=int(row["attempts"]),
                server_seconds=None,
                client_seconds=int(row["time_taken"]) / 1000,
                dataset_sha256=manifest_hash,
            )
            for row in kept_rows
            if row["actual"] + ".jpg" in ids  # an unreadable image was skipped with its answers
        ]
        n = recorded.write_csv(staging / ANSWERS_FILE, records)
        return {"human_answers": {"file": ANSWERS_FILE, "rows": n,
                                  "sha256": ds.sha256_bytes((staging / ANSWERS_FILE).read_bytes()),
                                  "clock": "TuringPass app: page load to submit click (client_seconds)"}}

    info = {"source_name": "TuringPass", "preset": "turingpass"}  # preset: the image family, picks the cnn weights
    rest = names - answered
    humans = import_folder(images, out / "humans", case_sensitive=False, seed=seed, force=force,
                           progress=_share(progress, 0, len(answered), len(names)),
                           only=answered, info={**info, "split": "humans"}, finish=write_answers)
    train = import_folder(images, out / "train", case_sensitive=False, seed=seed, force=force,
                          progress=_share(progress, len(answered), len(rest), len(names)),
                          only=rest, info={**info, "split": "train"})
    rows_kept = int(humans.dataset.info["human_answers"]["rows"])
    return TuringPassImport(humans.dataset, train.dataset, rows_kept, tuple(skipped) + humans.skipped + train.skipped)


def _share(progress: ds.Progress | None, start: int, size: int, total: int) -> ds.Progress | None:
    """One stage's progress as its share [start, start + size) of one bar of `total`."""
    if progress is None:
        return None
    report = progress
    return lambda done, of: report(start + (size * done // of if of else size), total)


def _read_turingpass(path: Path) -> list[tuple[int, dict[str, str]]]:
    """(line, row) of the human answers CSV, checked: known columns, integer times and attempts."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in TURINGPASS_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ds.DatasetError(f"{path} lacks the column(s) {', '.join(missing)}: is it TuringPass's answers file?")
            rows = list(enumerate(reader, 2))
    except (UnicodeDecodeError, csv.Error) as e:
        raise ds.DatasetError(f"{path} is not a readable UTF-8 CSV ({e})") from None
    for line, row in rows:
        if not (row["time_taken"] or "").isdigit() or not (row["attempts"] or "").isdigit() or not row["actual"]:
            raise ds.DatasetError(f"{path} line {line}: time_taken and attempts must be whole numbers and actual set")
    return rows
