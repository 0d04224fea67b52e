"""The data set on disk: opaque image files, manifest.csv (answers and hashes), dataset.json. The checked
image loader is captchas.images; the scoring rule that every reader applies to its answers is
captchas.scoring.

A data set is immutable once written. Its identity is the sha256 of manifest.csv, which holds the
sha256 of every image, so one hash covers every byte a solver can see.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import os
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

from PIL import Image

from captchas.errors import UserError

MANIFEST = "manifest.csv"
INFO = "dataset.json"
FORMAT_VERSION = 1
COLUMNS = ("id", "file", "answer", "sha256")

Progress = Callable[[int, int], None]  # (done, total)



class DatasetError(UserError):
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
    samples: Sequence[Sample]  # a Manifest when read from disk: read as needed
    hash: str  # sha256 of manifest.csv

    @property
    def case_sensitive(self) -> bool:
        return bool(self.info.get("case_sensitive", False))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def item_id(index: int, count: int) -> str:
    """Zero-padded position: ids sort in order and say nothing about the answer."""
    return str(index).zfill(max(6, len(str(count - 1))))


class CsvWriter:
    """csv.writer with "\n" line ends, the one line ending of every CSV the project writes.

    The csv module quotes a cell holding "\n" but not one holding a lone "\r" unless "\r" ends its
    lines, and its reader then refuses the file; so a row with a "\r" in a cell is written with
    every cell quoted. Rows without one keep their bytes (a data set's hash depends on them)."""

    def __init__(self, f: Any) -> None:
        self._plain = csv.writer(f, lineterminator="\n")
        self._quoted = csv.writer(f, lineterminator="\n", quoting=csv.QUOTE_ALL)

    def writerow(self, row: Iterable[Any]) -> None:
        row = list(row)
        carriage = any(isinstance(cell, str) and "\r" in cell for cell in row)
        (self._quoted if carriage else self._plain).writerow(row)


def write_manifest(folder: Path, samples: Iterable[Sample]) -> str:
    """Write manifest.csv and return its sha256, the data set's hash."""
    samples = list(samples)
    columns = COLUMNS + (("source",) if any(s.source for s in samples) else ())
    buffer = io.StringIO()
    writer = CsvWriter(buffer)
    writer.writerow(columns)
    for s in samples:
        writer.writerow([getattr(s, c) for c in columns])
    data = buffer.getvalue().encode("utf-8")
    (folder / MANIFEST).write_bytes(data)
    return sha256_bytes(data)


def write_info(folder: Path, info: dict[str, Any]) -> None:
    (folder / INFO).write_text(json.dumps(info, indent=2, sort_keys=False) + "\n", encoding="utf-8")


class Manifest(Sequence[Sample]):
    """A data set's items, read from manifest.csv as they are needed, never all held at once.

    A million-item manifest is about 100 MB as Sample objects; this keeps the file's path, its row
    count and its columns, and parses rows again on each pass (about 1 s per million rows), so a
    run's memory does not grow with its data set. `[:n]` is a lazy view of the first n items. The
    file must not change while it is read (a data set is immutable): a pass that finds it changed
    raises DatasetError.
    """

    def __init__(self, path: Path, count: int, stamp: tuple[int, int], stop: int | None = None) -> None:
        self.path, self._count, self._stamp, self._stop = path, count, stamp, stop

    def __len__(self) -> int:
        return self._count if self._stop is None else min(self._stop, self._count)

    def __iter__(self) -> Iterator[Sample]:
        if _stamp(self.path) != self._stamp:
            raise DatasetError(f"{self.path} changed while the data set was in use: a data set is immutable; "
                               "restore it, or start again on the new one")
        with self.path.open(newline="", encoding="utf-8") as f:
            for k, row in enumerate(_rows(csv.DictReader(f))):
                if self._stop is not None and k >= self._stop:
                    return
                yield row

    @overload
    def __getitem__(self, index: int) -> Sample: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Sample]: ...
    def __getitem__(self, index: int | slice) -> Sample | Sequence[Sample]:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if start == 0 and step == 1:
                return Manifest(self.path, self._count, self._stamp, stop)
            return tuple(itertools.islice(self, start, stop, step))
        k = index + len(self) if index < 0 else index
        if not 0 <= k < len(self):
            raise IndexError(index)
        return next(itertools.islice(self, k, None))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and len(self) == len(other) and all(a == b for a, b in zip(self, other))

    def __hash__(self) -> int:
        return hash((self.path, self._stamp, len(self)))

    def __repr__(self) -> str:
        return f"Manifest({str(self.path)!r}, {len(self)} items)"


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def _rows(reader: csv.DictReader[str]) -> Iterator[Sample]:
    for r in reader:
        yield Sample(id=r["id"], file=r["file"], answer=r["answer"], sha256=r["sha256"], source=r.get("source") or "")


def read_dataset(path: str | os.PathLike[str]) -> Dataset:
    """Read a data set folder; raise DatasetError naming what is missing or malformed.

    The manifest is checked in one streaming pass (columns, plain file names, unique ids, its
    sha256) and its items are then read as needed (`Manifest`), so memory stays flat however
    many items it lists."""
    folder = Path(path)
    if not folder.is_dir():
        raise DatasetError(f"data set folder {folder} does not exist: make one with 'captcha-bench generate'")
    manifest = folder / MANIFEST
    if not manifest.is_file():
        raise DatasetError(f"{manifest} is missing: {folder} is not a data set (make one with 'captcha-bench generate')")
    stamp = _stamp(manifest)
    digest, count = _check_manifest(manifest)
    info_path = folder / INFO
    try:
        info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(f"{info_path} is not valid JSON ({e}): regenerate the data set") from None
    if not isinstance(info, dict):
        raise DatasetError(f"{info_path} is not a JSON object: regenerate the data set")
    recorded = info.get("manifest_sha256")
    if recorded and recorded != digest:
        raise DatasetError(f"{manifest} was changed after the data set was made (its sha256 {digest[:12]} is not the "
                           f"{str(recorded)[:12]} that {INFO} records): restore it, or regenerate or re-import the set")
    if _stamp(manifest) != stamp:
        raise DatasetError(f"{manifest} changed while it was read: a data set is immutable; read it again when it "
                           "is complete")
    return Dataset(path=folder, info=info, samples=Manifest(manifest, count, stamp), hash=digest)


class _Hashing(io.RawIOBase):
    """A binary file that hashes what is read from it."""

    def __init__(self, f: Any) -> None:
        self.f, self.sha = f, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n: int = self.f.readinto(buffer)
        self.sha.update(memoryview(buffer)[:n])
        return n


def _check_manifest(manifest: Path) -> tuple[str, int]:
    """The manifest's sha256 and row count, after checking its columns, file names and ids in one pass.

    Ids are compared by 8-byte digests (8 bytes an item), and a clash of digests is checked on the
    ids themselves, so a repeat is never missed and memory stays small."""
    ids = array("Q")
    with manifest.open("rb") as raw:
        hashing = _Hashing(raw)
        text = io.TextIOWrapper(io.BufferedReader(hashing), encoding="utf-8", newline="")
        try:
            reader = csv.DictReader(text)
            if reader.fieldnames is None or any(c not in reader.fieldnames for c in COLUMNS):
                raise DatasetError(f"{manifest} needs the columns {', '.join(COLUMNS)} and at least one row")
            for line, s in enumerate(_rows(reader), 2):
                if not plain_name(s.file):
                    raise DatasetError(f"{manifest} line {line}: file {s.file!r} is not a plain file name inside the "
                                       "data set folder: a manifest may not point elsewhere")
                ids.append(int.from_bytes(hashlib.blake2b(s.id.encode("utf-8"), digest_size=8).digest(), "little"))
            while text.read(1 << 16):  # the hash covers every byte, even after a last row the reader stopped at
                pass
        except (UnicodeDecodeError, csv.Error) as e:
            raise DatasetError(f"{manifest} is not a readable CSV ({e}): regenerate the data set") from None
        except KeyError:
            raise DatasetError(f"{manifest} needs the columns {', '.join(COLUMNS)} and at least one row") from None
    if not ids:
        raise DatasetError(f"{manifest} needs the columns {', '.join(COLUMNS)} and at least one row")
    if _repeats(ids, manifest):
        raise DatasetError(f"{manifest} repeats an id: a data set needs unique ids")
    return hashing.sha.hexdigest(), len(ids)


def _repeats(digests: array[int], manifest: Path) -> bool:
    """Whether two rows share an id: digests first, then the ids behind any digest that repeats."""
    import numpy as np

    ordered = np.sort(np.frombuffer(digests, dtype=np.uint64))
    clashes = set(ordered[1:][ordered[1:] == ordered[:-1]].tolist())
    if not clashes:
        return False
    seen: set[str] = set()
    with manifest.open(newline="", encoding="utf-8") as f:
        for s in _rows(csv.DictReader(f)):
            if int.from_bytes(hashlib.blake2b(s.id.encode("utf-8"), digest_size=8).digest(), "little") in clashes:
                if s.id in seen:
                    return True
                seen.add(s.id)
    return False


def shown(name: str) -> str:
    """A file name as a one-line message may show it: as is when printable, else quoted with escapes."""
    return name if name.isprintable() else repr(name)


def plain_name(name: str) -> bool:
    """Whether `name` is a plain file name: no folder part, not hidden, not '.' or '..', no absolute path."""
    return bool(name) and name == Path(name).name and "/" not in name and "\\" not in name and not name.startswith(".")


