"""The one checked image loader: a listed file is read only if it is a regular file (no link, device or
folder), matches its sha256, and decodes within the pixel limit; `check_files` verifies every file of a
data set that way."""

from __future__ import annotations

import io
import os
import stat
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from captchas.dataset import INFO, MANIFEST, Dataset, DatasetError, Progress, Sample, plain_name, sha256_bytes

# The most pixels an image may have (width x height), anywhere: import, run, the study app.
# CAPTCHAs are far smaller (160x60 is 9,600); the limit keeps a huge or hostile image from
# stalling a solver or filling memory. Override it with the environment variable.
MAX_PIXELS_ENV = "CAPTCHA_BENCH_MAX_PIXELS"


DEFAULT_MAX_PIXELS = 4_000_000  # 2000 x 2000


class ImageError(DatasetError):
    """An image file that cannot be used; the message says what it is (empty, too large, ...)."""


def max_pixels() -> int:
    """The pixel limit: $CAPTCHA_BENCH_MAX_PIXELS when set, else DEFAULT_MAX_PIXELS."""
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    if not text.isdigit() or int(text) < 1:
        raise DatasetError(f"{MAX_PIXELS_ENV}={text!r} is not a whole number of pixels: set it to e.g. 4000000")
    return int(text)


def decode_image(data: bytes, limit: int | None = None) -> Image.Image:
    """Fully decode image bytes, or raise ImageError naming what they are.

    Refuses empty files, bytes in no image format, images over `limit` pixels (default
    `max_pixels()`; checked on the declared size, before any pixel is decoded, so a
    decompression bomb costs nothing) and truncated or damaged files.
    """
    im = open_image(data, limit)
    try:
        im.load()  # every pixel: a truncated file fails here, not in a solver (bytes in memory: no file to close)
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(f"a truncated or damaged {im.format or 'image'} ({e})") from None
    return im


def open_image(data: bytes, limit: int | None = None) -> Image.Image:
    """Image bytes opened but not decoded: `decode_image`'s checks of the header alone (format, size,
    pixel limit), a tenth of the time of a full decode."""
    limit = max_pixels() if limit is None else limit
    if not data:
        raise ImageError("an empty file (0 bytes), not an image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the limit below is ours
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:  # Pillow's own cap (twice its MAX_IMAGE_PIXELS), said in our words
        cap = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        raise ImageError(f"a decompression bomb: its header declares more than {cap:,} pixels in {len(data):,} bytes, "
                         f"over the limit of {limit:,} pixels (raise it with {MAX_PIXELS_ENV} if the image is meant)"
                         ) from None
    except UnidentifiedImageError:
        raise ImageError(f"not an image ({len(data):,} bytes in no image format Pillow reads)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"a damaged image header ({e})") from None
    width, height = im.size  # declared by the header; nothing decoded yet
    if width * height > limit:
        what = "a decompression bomb" if len(data) * 16 < width * height else "too large"
        raise ImageError(f"{what}: {width}x{height} = {width * height:,} pixels in {len(data):,} bytes, over the "
                         f"limit of {limit:,} pixels (raise it with {MAX_PIXELS_ENV} if the image is meant)")
    if width < 1 or height < 1:
        raise ImageError(f"an image of {width}x{height} pixels: nothing to read")
    return im


def load_image(dataset: Dataset, sample: Sample, decode: bool = True) -> Image.Image:
    """The checked image loader: the file exists, matches the manifest's sha256, and decodes (or,
    with `decode=False`, its header checks out: `open_image`)."""
    data = checked_bytes(dataset.path, sample.id, sample.file, sample.sha256)
    try:
        return decode_image(data) if decode else open_image(data)
    except ImageError as e:
        raise DatasetError(f"{sample.file} (item {sample.id}) is {e}: re-import or regenerate it") from None


class NotRegularFile(DatasetError):
    """A listed path that is not a regular file: `what` says what it is instead (missing, a folder, ...)."""

    def __init__(self, path: Path, what: str) -> None:
        super().__init__(f"{path} is {what}")
        self.what = what


def regular_bytes(path: Path, follow: bool = False) -> bytes:
    """The bytes of `path` if it is a regular file, never waiting on a FIFO or reading a device without end;
    NotRegularFile (missing, a symbolic link, a folder, a FIFO, ...) otherwise. For every path that comes
    from a list (a manifest, a labels file). A data set holds regular files only, so a symbolic link is
    refused unless `follow` (an import's source folder, which may link to images kept elsewhere: the
    link's target must then be a regular file)."""
    nofollow = 0 if follow else getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, os.O_RDONLY | nofollow | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise NotRegularFile(path, "missing") from None
    except OSError as e:
        if path.is_symlink():
            raise NotRegularFile(path, "a symbolic link, not a file (a data set holds regular files only)") from None
        raise NotRegularFile(path, f"unreadable ({e.strerror or e})") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            what = ("a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else
                    "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
                    else "not a regular file")
            raise NotRegularFile(path, f"{what}, not a file")
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read()
    finally:
        os.close(fd)


def checked_bytes(folder: Path, item: str, file: str, sha256: str) -> bytes:
    """An item's file bytes, after checking that the file is there (a regular file, not a link) and matches
    its sha256."""
    try:
        data = regular_bytes(folder / file)
    except NotRegularFile as e:
        fix = "the data set is incomplete" if e.what == "missing" else "the data set is damaged"
        raise DatasetError(f"{file} (item {item}) is {e.what}: {fix}; run captcha-bench verify") from None
    if sha256_bytes(data) != sha256:
        raise DatasetError(f"{file} (item {item}) does not match its sha256 in the manifest: run captcha-bench verify")
    return data


def load_images(dataset: Dataset, limit: int | None = None) -> list[tuple[Sample, Image.Image]]:
    """Every image (or the first `limit`) through `load_image`, as RGB or L: what solvers and training read."""
    loaded = []
    for sample in dataset.samples[:limit] if limit else dataset.samples:
        image = load_image(dataset, sample)
        loaded.append((sample, image if image.mode in ("RGB", "L") else image.convert("RGB")))
    return loaded


def check_files(dataset: Dataset, progress: Progress | None = None) -> list[str]:
    """Check every file against the manifest as a run reads it (a regular file, its sha256, an image that
    decodes within the pixel limit); return one line per problem (empty: all good)."""
    problems = []
    total = len(dataset.samples)
    for done, s in enumerate(dataset.samples, 1):
        if not plain_name(s.file):
            problems.append(f"{s.id}: file name {s.file!r} points outside the data set")
        else:
            try:
                data = regular_bytes(dataset.path / s.file)
            except NotRegularFile as e:
                problems.append(f"{s.id}: {s.file} is {e.what}")
            else:
                if sha256_bytes(data) != s.sha256:
                    problems.append(f"{s.id}: {s.file} does not match its sha256 in the manifest")
                else:
                    try:
                        decode_image(data)
                    except ImageError as e:
                        problems.append(f"{s.id}: {s.file} is {e}")
        if progress:
            progress(done, total)
    listed = {s.file for s in dataset.samples} | {MANIFEST, INFO}
    answers = dataset.info.get("human_answers") or {}
    if answers.get("file"):  # recorded human answers shipped with the set (TuringPass's humans split)
        listed.add(answers["file"])
        path = dataset.path / answers["file"]
        recorded: bytes | None = None
        try:
            recorded = regular_bytes(path) if Path(answers["file"]).name == answers["file"] else None
        except NotRegularFile:
            pass
        if recorded is None:
            problems.append(f"{answers['file']}: the recorded answers that dataset.json names are missing")
        elif answers.get("sha256") and sha256_bytes(recorded) != answers["sha256"]:
            problems.append(f"{answers['file']}: does not match its sha256 in dataset.json")
    extra = sorted(p.name for p in dataset.path.iterdir() if p.name not in listed)
    problems += [f"{name}: not in the manifest" for name in extra]
    return problems
