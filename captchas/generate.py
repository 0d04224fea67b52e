"""Make a data set from a scheme and a seed, in parallel worker processes, and regenerate it to verify.

Item i is drawn from its own `random.Random(f"{seed}:{i}")`: the answer first, then the image.
So an item does not depend on the others, and the worker count never changes a byte.
"""

from __future__ import annotations

import json
import multiprocessing
import platform
import random
import shutil
import struct
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import PIL
from PIL import Image
from zlib_ng import zlib_ng

from captchas import dataset as ds
from captchas import images
from captchas import output
from captchas.schemes import Scheme, load

PNG_LEVEL = 1  # deflate level: the fastest; files about 20 % larger than at level 6
CHUNK = 16  # most items per task handed to a worker; fewer for small runs, so workers finish together


@dataclass(frozen=True)
class Job:
    """What every worker needs to make items: picklable, sent once per worker."""

    scheme: Scheme
    seed: int
    count: int  # size of the data set, for the width of the ids
    folder: Path | None  # where to write the PNGs; None only hashes them (regeneration)


@dataclass(frozen=True)
class Item:
    """One generated image, as a worker reports it."""

    index: int
    answer: str
    sha256: str  # of the PNG bytes
    pixels: str = ""  # sha256 of the pixels, when regenerating (PNG bytes also depend on the deflate build)

    def sample(self, count: int) -> ds.Sample:
        sample_id = ds.item_id(self.index, count)
        return ds.Sample(sample_id, f"{sample_id}.png", self.answer, self.sha256)


def item_rng(seed: int, index: int) -> random.Random:
    """The random source of item `index`; str seeds hash with SHA-512, stable across processes."""
    return random.Random(f"{seed}:{index}")


def make_item(job: Job, index: int) -> Item:
    """Draw the answer, render it, encode it, write it; the same job and index give the same bytes."""
    rng = item_rng(job.seed, index)
    answer = job.scheme.sample_answer(rng)
    image = _storable(job.scheme.render(answer, rng))
    png = encode_png(image)
    if job.folder is None:
        return Item(index, answer, ds.sha256_bytes(png), pixels_sha256(image))
    item = Item(index, answer, ds.sha256_bytes(png))
    (job.folder / item.sample(job.count).file).write_bytes(png)
    return item


def pixels_sha256(image: Image.Image) -> str:
    """A digest of what an image shows, whatever file format or encoder holds it."""
    return ds.sha256_bytes(f"{image.mode} {image.width}x{image.height}\n".encode() + image.tobytes())


def _storable(image: Image.Image) -> Image.Image:
    return image if image.mode in _COLOUR_TYPE else image.convert("RGB")


def encode_png(image: Image.Image) -> bytes:
    """A plain PNG: no row filters, deflated by zlib-ng at level 1.

    Pillow's encoder tries five row filters per row and takes 0.7 ms per 160x60 image; this takes
    0.1 ms, for files about a fifth larger (10 KB). Any PNG reader decodes it. The bytes depend on
    the zlib-ng version, which dataset.json records.
    """
    image = _storable(image)
    width, height = image.size
    raw = image.tobytes()
    stride = len(raw) // height
    rows = b"".join(b"\0" + raw[k : k + stride] for k in range(0, len(raw), stride))  # filter 0 per row
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOUR_TYPE[image.mode], 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib_ng.compress(rows, PNG_LEVEL)) + _chunk(b"IEND", b"")


_COLOUR_TYPE = {"L": 0, "RGB": 2, "RGBA": 6}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


Mapper = Callable[[Callable[[Job, Sequence[int]], list[Item]], Job, Sequence[Sequence[int]]], Iterable[list[Item]]]


def make_items(job: Job, indices: Sequence[int], workers: int = 1, progress: ds.Progress | None = None,
               mapper: Mapper | None = None) -> Iterator[Item]:
    """Yield the items in index order, made by `workers` processes (which also write the files), or
    by `mapper(make_chunk, job, chunks)`, which runs make_chunk(job, chunk) elsewhere (a Dask cluster
    that sees `job.folder`) and yields the results in order."""
    total = len(indices)
    if mapper is not None:
        size = max(1, min(CHUNK * 4, total // (workers * 8)))
        done = 0
        for items in mapper(make_chunk, job, [indices[k : k + size] for k in range(0, total, size)]):
            yield from items
            done += len(items)
            if progress:
                progress(done, total)
        return
    if workers <= 1 or total <= CHUNK:
        for done, i in enumerate(indices, 1):
            yield make_item(job, i)
            if progress:
                progress(done, total)
        return
    size = max(1, min(CHUNK, total // (workers * 8)))
    chunks = [indices[k : k + size] for k in range(0, total, size)]
    # fork: the workers inherit the loaded scheme and fonts instead of importing them again.
    context = multiprocessing.get_context("fork" if sys.platform != "win32" else "spawn")
    done = 0
    with context.Pool(workers, initializer=_init_worker, initargs=(job,)) as pool:
        for items in pool.imap(_work, chunks):
            yield from items
            done += len(items)
            if progress:
                progress(done, total)


_job: Job | None = None


def _init_worker(job: Job) -> None:
    global _job
    _job = job


def _work(indices: Sequence[int]) -> list[Item]:
    assert _job is not None, "worker started without _init_worker"
    return make_chunk(_job, indices)


def make_chunk(job: Job, indices: Sequence[int]) -> list[Item]:
    """Make (and write) the items of `indices`: one task of a mapper."""
    return [make_item(job, i) for i in indices]


def make_dataset(
    scheme: Scheme,
    count: int,
    seed: int,
    out: str | Path,
    *,
    workers: int = 1,
    force: bool = False,
    reuse: bool = False,
    scheme_name: str = "image",
    preset: str | None = None,
    progress: ds.Progress | None = None,
    mapper: Mapper | None = None,
) -> ds.Dataset:
    """Write `count` items to `out` (images, manifest.csv, dataset.json) and return the data set.

    Refuses a non-empty `out` unless `force`, or, with `reuse`, returns the data set already in
    `out` when it was made by the same request and its files match its manifest. Writes into a
    staging folder first, so `out` holds either the old data set or the complete new one.
    """
    if count < 1:
        raise ds.DatasetError(f"count must be at least 1, got {count}")
    if workers < 1:
        raise ds.DatasetError(f"workers must be at least 1, got {workers}")
    out = Path(out)
    if reuse and (out / ds.MANIFEST).is_file():
        return _reusable(out, scheme, scheme_name, count, seed)
    staging = output.prepare_output(out, force)
    try:
        job = Job(scheme, seed, count, staging.resolve())  # absolute: a Dask worker writes there too
        samples = [item.sample(count) for item in make_items(job, range(count), workers, progress, mapper)]
        manifest_hash = ds.write_manifest(staging, samples)
        ds.write_info(staging, generation_info(scheme, scheme_name, preset, count, seed, manifest_hash))
        output.publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ds.read_dataset(out)


def _reusable(out: Path, scheme: Scheme, scheme_name: str, count: int, seed: int) -> ds.Dataset:
    existing = ds.read_dataset(out)
    info = existing.info
    asked = {"kind": "generated", "scheme": scheme_name, "knobs": scheme.knobs(), "seed": seed, "count": count}
    differs = [k for k, v in asked.items() if info.get(k) != json.loads(json.dumps(v))]  # as JSON stores it
    if differs:
        raise ds.DatasetError(f"{out} holds a different data set ({', '.join(differs)} differ): choose another --out")
    problems = images.check_files(existing)
    if problems:
        raise ds.DatasetError(f"{out} does not match its manifest ({problems[0]}): regenerate it with --force")
    return existing


def generation_info(
    scheme: Scheme, scheme_name: str, preset: str | None, count: int, seed: int, manifest_hash: str
) -> dict[str, Any]:
    """dataset.json of a generated set: enough to regenerate it and to tell why bytes differ."""
    knobs = scheme.knobs()
    return {
        "format": ds.FORMAT_VERSION,
        "kind": "generated",
        "scheme": scheme_name,
        "preset": preset,
        "knobs": knobs,
        "seed": seed,
        "count": count,
        "case_sensitive": bool(scheme.case_sensitive),
        "charset": knobs.get("charset"),
        "manifest_sha256": manifest_hash,
        "item_seed": "random.Random(f'{seed}:{index}'): answer first, then the image",
        "encoding": {"format": "PNG", "filter": "none", "deflate": "zlib-ng", "level": PNG_LEVEL},
        "versions": versions(scheme),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def versions(scheme: Scheme) -> dict[str, str]:
    """Everything that shapes the bytes of a generated data set."""
    return {
        **scheme.versions(),
        "pillow": PIL.__version__,
        "zlib-ng": str(zlib_ng.ZLIBNG_RUNTIME_VERSION),  # typed int in its stub, a str at run time
        "python": platform.python_version(),
        "captcha-bench": _own_version(),
    }


def _own_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("captcha-bench")
    except PackageNotFoundError:
        return "not installed"


@dataclass(frozen=True)
class Regeneration:
    """What rendering a generated data set again found."""

    problems: list[str]  # one line per item whose answer or pixels differ, then what versions changed
    reencoded: int  # items with the same pixels in different PNG bytes (another deflate build)


def regenerate(dataset: ds.Dataset, workers: int = 1, progress: ds.Progress | None = None) -> Regeneration:
    """Render a generated data set again from its seed and compare it item by item."""
    info = dataset.info
    if info.get("kind") != "generated":
        raise ds.DatasetError(f"{dataset.path} was not generated from a seed: there is nothing to regenerate")
    missing = [k for k in ("scheme", "knobs", "seed") if k not in info]
    if missing or not isinstance(info["knobs"], dict) or not isinstance(info["seed"], int):
        raise ds.DatasetError(f"{dataset.path / ds.INFO} lacks a valid {', '.join(missing) or 'seed or knobs'}: "
                              "it cannot be regenerated (check it with --no-regenerate)")
    scheme = load(info["scheme"], None, info["knobs"])
    by_index = {int(s.id): s for s in dataset.samples if s.id.isdigit()}
    problems = [f"{s.id}: not a generated item id" for s in dataset.samples if not s.id.isdigit()]
    reencoded = 0
    job = Job(scheme, info["seed"], len(dataset.samples), None)
    for item in make_items(job, sorted(by_index), workers, progress):
        sample = by_index[item.index]
        if item.answer == sample.answer and item.sha256 == sample.sha256:
            continue
        if item.answer == sample.answer and item.pixels == _stored_pixels(dataset.path / sample.file):
            reencoded += 1
            continue
        problems.append(f"{sample.id}: regenerated image differs from the data set")
    if problems:
        recorded, now = info.get("versions", {}), versions(scheme)
        changed = [f"{k} {recorded.get(k)} -> {now[k]}" for k in now if recorded.get(k) != now[k]]
        if changed:
            problems.append("versions differ from the ones that made the set: " + "; ".join(changed))
    return Regeneration(problems, reencoded)


def _stored_pixels(path: Path) -> str | None:
    try:
        with Image.open(path) as im:
            im.load()
            return pixels_sha256(im)
    except (OSError, SyntaxError, ValueError):
        return None
