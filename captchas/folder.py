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
from captchas import images
from captchas import output

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
    output.check_apart(src, out)
    output.check_output(out, force)  # before the long first pass
    regex = _compile(pattern)
    table = _read_labels(Path(labels)) if labels is not None else None
    # the folder's files (or links to files), not its subfolders or hidden files
    files = sorted(p for p in src.iterdir() if not p.name.startswith(".") and p.is_file())
    if only is not None:
        files = [p for p in files if p.name in only]
    if table is not None:  # every name the labels list, whatever it is: each is imported or said why not
        files += sorted(src / name for name in set(table) - {p.name for p in files})
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

    staging = output.prepare_output(out, force)
    try:
        samples: list[ds.Sample] = []
        for done, (path, answer, fmt, sha) in enumerate(kept, 1):
            if progress:
                progress(len(files) + done * len(files) // len(kept), 2 * len(files))
            data = images.regular_bytes(path, follow=True)
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
        output.publish(staging, out)
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
    if path.name.startswith("."):
        return "", "a hidden file (its name starts with '.'): hidden files are not imported"
    if table is not None:
        if path.name not in table:
            return "", "not in the labels file"
        if not path.exists() and not path.is_symlink():
            return "", "listed in the labels file but missing"
        answer = table[path.name]
    elif regex is not None:
        match = regex.fullmatch(path.stem)
        if not match:
            return "", "name does not match --pattern"
        if match.group(1) is None:
            return "", "--pattern's first group took no part in the match: make the answer's group the first one"
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
        data = images.regular_bytes(path, follow=True)  # a FIFO or device (or a link to one) would block or never end
    except images.NotRegularFile as e:
        return b"", "", e.what
    try:
        fmt = images.decode_image(data).format or ""
    except images.ImageError as e:
        return b"", "", str(e)
    if fmt not in EXTENSIONS:
        return b"", "", f"unsupported image format {fmt or 'unknown'}"
    return data, fmt, None
