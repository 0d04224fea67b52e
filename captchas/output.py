"""Where a command writes, checked before any work: a folder it can write, that is not the working
folder, and, when `--force` replaces one, wholly a data set; then staged and published whole.

A folder that is not wholly the project's own is never deleted: replacing a data set means every entry
of the folder is one of the set's files (its manifest, dataset.json, the images the manifest lists and
the answers file dataset.json names), so a user's notes, scripts or another program's manifest.csv
stop the command, by name, before it writes. A single file is replaced whole (`replacing`, `write_atomic`):
a reader, or a kill, sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from captchas import dataset as ds


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary file beside `path` to write; when the block ends without an error it replaces `path` in
    one step (a rename within the folder), and either way no temporary file is left behind."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: Path, data: str | bytes) -> None:
    """`path` holds `data` (text is written as UTF-8), replaced whole (`replacing`)."""
    with replacing(path) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding="utf-8")


def check_writable(out: Path, option: str = "--out", file: bool = False, what: str = "output") -> None:
    """Refuse, in one line, an output folder (or, with `file`, an output file) this process could not create
    or write: one whose nearest existing folder is not writable (tried with a probe file, since root passes
    every permission check), or whose path runs through a file."""
    if file:
        if out.is_dir():
            raise ds.DatasetError(f"{option} {out} is a folder: give a file name")
        out = out.parent
    here = nearest_existing(out)
    if here.exists() and not here.is_dir():
        where = "is a file" if here == out else f"lies under {here}, which is a file"
        raise ds.DatasetError(f"{option} {out} {where}: give a folder for the {what}")
    try:
        fd, probe = tempfile.mkstemp(prefix=".captcha-bench-probe-", dir=here)
    except OSError as e:
        raise ds.DatasetError(f"{option} {out}: {here} cannot be written ({e.strerror or e}): choose an {option} "
                              "you can write to") from None
    os.close(fd)
    os.unlink(probe)


def nearest_existing(path: Path) -> Path:
    """`path`, or the nearest folder above it that exists (or a link there): where it would be made."""
    while not path.exists() and not path.is_symlink() and path.parent != path:
        path = path.parent
    return path


def check_not_working_folder(out: Path, option: str = "--out") -> None:
    """Refuse an output that is the working folder or holds it: it cannot be replaced from inside."""
    here, target = Path.cwd().resolve(), out.resolve()
    if target == here or target in here.parents:
        where = "is" if target == here else "holds"
        raise ds.DatasetError(f"{option} {out} {where} the current folder: give a new folder, e.g. {option} "
                              "results/datasets/NAME")


def check_output(out: Path, force: bool) -> None:
    """Refuse an output that is a file, or a non-empty folder unless `force`; `force` replaces only a
    folder that is wholly a data set (see the module's notes), naming the first entry that is not."""
    check_not_working_folder(out)
    if out.is_symlink():
        raise ds.DatasetError(f"--out {out} is a symbolic link: give the folder itself")
    if out.exists() and not out.is_dir():
        raise ds.DatasetError(f"--out {out} is a file: choose a folder for --out")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise ds.DatasetError(f"--out {out} is not empty: choose another --out, or pass --force to replace the "
                                  "data set in it")
        stranger = foreign_entry(out)
        if stranger is not None:
            raise ds.DatasetError(f"--out {out} is not wholly a data set: it holds {ds.shown(stranger)}, which is not "
                                  "one of the set's files, and --force replaces only a data set; move that out, or "
                                  "choose another --out")
    check_writable(out)


def foreign_entry(folder: Path) -> str | None:
    """The name of an entry of `folder` that is not one of its data set's files (the folder itself when it
    is no readable data set), or None when the folder is wholly a data set."""
    present = sorted(folder.iterdir(), key=lambda p: (p.name in (ds.MANIFEST, ds.INFO), p.name))
    try:
        if not (folder / ds.INFO).is_file():
            raise ds.DatasetError(f"no {ds.INFO}")
        data = ds.read_dataset(folder)
    except ds.DatasetError:  # no data set at all: any entry is a stranger, named before a lone manifest.csv
        return _named(present[0]) if present else None
    ours = {ds.MANIFEST, ds.INFO} | {s.file for s in data.samples}
    answers = (data.info.get("human_answers") or {}).get("file")
    if isinstance(answers, str):
        ours.add(answers)
    for entry in present:
        if entry.name not in ours or entry.is_symlink() or not entry.is_file():
            return _named(entry)
    return None


def _named(entry: Path) -> str:
    return entry.name + ("/" if entry.is_dir() and not entry.is_symlink() else "")


def check_apart(src: Path, out: Path) -> None:
    """Refuse an output that is the source folder, lies inside it, or holds it."""
    a, b = src.resolve(), out.resolve()
    if a == b or a in b.parents or b in a.parents:
        where = "is" if a == b else "lies inside" if a in b.parents else "holds"
        raise ds.DatasetError(f"--out {out} {where} the source folder {src}: choose an --out outside the source")


def prepare_output(out: Path, force: bool) -> Path:
    """Check `out` can take a new data set and return a fresh staging folder beside it.

    Writing goes to the staging folder and `publish` moves it into place, so an interrupted run
    never leaves a half-written data set under `out`, and `--force` replaces the old one only
    once the new one is complete.
    """
    check_output(out, force)
    out = out.absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    return staging


def publish(staging: Path, out: Path) -> None:
    """Move a complete staging folder to `out`, replacing what `prepare_output` allowed (checked again
    here: a file added to the old set meanwhile stops the replacement, which leaves `out` as it was)."""
    out = out.absolute()
    if out.is_dir() and any(out.iterdir()):
        stranger = foreign_entry(out)
        if stranger is not None:
            raise ds.DatasetError(f"--out {out} gained {ds.shown(stranger)} while the new set was made, which is not "
                                  "one of the set's files: nothing was replaced; move it out and run again")
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
        staging.rename(out)
        shutil.rmtree(old)
    else:
        if out.is_dir():
            out.rmdir()
        staging.rename(out)
