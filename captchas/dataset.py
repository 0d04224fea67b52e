"""The data set on disk: opaque image files, manifest.csv (answers and hashes), dataset.json.

A data set is immutable once written. Its identity is the sha256 of manifest.csv, which holds the
sha256 of every image, so one hash covers every byte a solver can see.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

MANIFEST = "manifest.csv"
INFO = "dataset.json"
FORMAT_VERSION = 1
COLUMNS = ("id", "file", "answer", "sha256")

Progress = Callable[[int, int], None]  # (done, total)


class DatasetError(ValueError):
    """A data set or output folder that cannot be used; the message names the problem and the fix."""


@dataclass(frozen=True)
class Sample:
    """One item as the runner knows it. Only the runner reads `answer`."""

    id: str  # opaque: reveals nothing about the answer
    file: str  # file name inside the data set folder: the id plus the image format's extension
    answer: str
    sha256: str  # of the image file's bytes
    source: str = ""  # imported sets: the original file name (may hold the answer)


@dataclass(frozen=True)
class Challenge:
    """What a solver sees: an opaque id and the decoded image, nothing else."""

    id: str
    image: Image.Image


@dataclass(frozen=True)
class Dataset:
    """A data set read from disk."""

    path: Path
    info: dict[str, Any]  # dataset.json
    samples: tuple[Sample, ...]
    hash: str  # sha256 of manifest.csv

    @property
    def case_sensitive(self) -> bool:
        return bool(self.info.get("case_sensitive", False))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def item_id(index: int, count: int) -> str:
    """Zero-padded position: ids sort in order and say nothing about the answer."""
    return str(index).zfill(max(6, len(str(count - 1))))


def write_manifest(folder: Path, samples: Iterable[Sample]) -> str:
    """Write manifest.csv and return its sha256, the data set's hash."""
    samples = list(samples)
    columns = COLUMNS + (("source",) if any(s.source for s in samples) else ())
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for s in samples:
        writer.writerow([getattr(s, c) for c in columns])
    data = buffer.getvalue().encode("utf-8")
    (folder / MANIFEST).write_bytes(data)
    return sha256_bytes(data)


def write_info(folder: Path, info: dict[str, Any]) -> None:
    (folder / INFO).write_text(json.dumps(info, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def read_dataset(path: str | os.PathLike[str]) -> Dataset:
    """Read a data set folder; raise DatasetError naming what is missing or malformed."""
    folder = Path(path)
    if not folder.is_dir():
        raise DatasetError(f"data set folder {folder} does not exist: make one with 'captcha-bench generate'")
    manifest = folder / MANIFEST
    if not manifest.is_file():
        raise DatasetError(f"{manifest} is missing: {folder} is not a data set (make one with 'captcha-bench generate')")
    data = manifest.read_bytes()
    try:
        rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
    except (UnicodeDecodeError, csv.Error) as e:
        raise DatasetError(f"{manifest} is not a readable CSV ({e}): regenerate the data set") from None
    if not rows or any(c not in rows[0] for c in COLUMNS):
        raise DatasetError(f"{manifest} needs the columns {', '.join(COLUMNS)} and at least one row")
    samples = tuple(
        Sample(id=r["id"], file=r["file"], answer=r["answer"], sha256=r["sha256"], source=r.get("source") or "")
        for r in rows
    )
    ids = [s.id for s in samples]
    if len(set(ids)) != len(ids):
        raise DatasetError(f"{manifest} repeats an id: a data set needs unique ids")
    info_path = folder / INFO
    try:
        info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(f"{info_path} is not valid JSON ({e}): regenerate the data set") from None
    if not isinstance(info, dict):
        raise DatasetError(f"{info_path} is not a JSON object: regenerate the data set")
    return Dataset(path=folder, info=info, samples=samples, hash=sha256_bytes(data))


def check_files(dataset: Dataset, progress: Progress | None = None) -> list[str]:
    """Compare every file with the manifest; return one line per problem (empty: all good)."""
    problems = []
    total = len(dataset.samples)
    for done, s in enumerate(dataset.samples, 1):
        path = dataset.path / s.file
        if Path(s.file).name != s.file or s.file.startswith("."):
            problems.append(f"{s.id}: file name {s.file!r} points outside the data set")
        elif not path.is_file():
            problems.append(f"{s.id}: {s.file} is missing")
        elif sha256_bytes(path.read_bytes()) != s.sha256:
            problems.append(f"{s.id}: {s.file} does not match its sha256 in the manifest")
        if progress:
            progress(done, total)
    listed = {s.file for s in dataset.samples} | {MANIFEST, INFO}
    answers = dataset.info.get("human_answers") or {}
    if answers.get("file"):  # recorded human answers shipped with the set (TuringPass's humans split)
        listed.add(answers["file"])
        path = dataset.path / answers["file"]
        if Path(answers["file"]).name != answers["file"] or not path.is_file():
            problems.append(f"{answers['file']}: the recorded answers that dataset.json names are missing")
        elif answers.get("sha256") and sha256_bytes(path.read_bytes()) != answers["sha256"]:
            problems.append(f"{answers['file']}: does not match its sha256 in dataset.json")
    extra = sorted(p.name for p in dataset.path.iterdir() if p.name not in listed)
    problems += [f"{name}: not in the manifest" for name in extra]
    return problems


def check_output(out: Path, force: bool) -> None:
    """Refuse an output that is a file, or a non-empty folder unless `force`."""
    if out.exists() and not out.is_dir():
        raise DatasetError(f"output {out} is a file: choose a folder for --out")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise DatasetError(f"output folder {out} is not empty: choose another --out, or pass --force to replace it")


def prepare_output(out: Path, force: bool) -> Path:
    """Check `out` can take a new data set and return a fresh staging folder beside it.

    Writing goes to the staging folder and `publish` moves it into place, so an interrupted run
    never leaves a half-written data set under `out`, and `--force` replaces the old one only
    once the new one is complete.
    """
    check_output(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    return staging


def publish(staging: Path, out: Path) -> None:
    """Move a complete staging folder to `out`, replacing what `prepare_output` allowed."""
    if out.is_dir() and any(out.iterdir()):
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
        staging.rename(out)
        shutil.rmtree(old)
    else:
        if out.is_dir():
            out.rmdir()
        staging.rename(out)
