"""A report's files: report.html (figures embedded), report.md and figures/*.png, each replacing only what an
earlier report wrote there (recorded with its sha256 in .report-files.json)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from bench.report.build import collector_paused
from bench.report.model import FIGURES, HTML, MARKDOWN, Report
from bench.report.items import items_of, thumbnail
from bench.report.pages import html, item_images, markdown
from bench.runfolder.files import COLLECTION, RUN, RunError
from captchas.dataset import Dataset, Sample, sha256_bytes
from captchas.output import check_writable, write_atomic

def write_report(report: Report, out: Path) -> list[Path]:
    """Write report.html, report.md and figures/*.png into `out`, each replacing what an earlier report
    wrote there; nothing else is overwritten or removed (see `check_report_out`).

    The files written, with their sha256, are recorded in `out`/.report-files.json: the next report
    replaces a file only when it is one of those and unchanged since, and removes only its own figures
    that it no longer draws, so a user's own figures or an edited page stay, or stop the report by name."""
    from bench.report import figures  # matplotlib: only a command that writes a report loads it

    check_report_out(out)
    with collector_paused():
        drawn = figures.draw(report)
    sets: dict[int, tuple[Dataset, dict[str, Sample]] | None] = {}  # per group, its data set where it still is
    thumbs = {}
    for name, (k, item) in item_images(report).items():
        if k not in sets:
            sets[k] = items_of(report.groups[k - 1])
        found = sets[k]
        if found and item in found[1] and (png := thumbnail(found[0], found[1][item])):
            thumbs[name] = png
    mine = _written_before(out)
    for name in [*drawn, *thumbs]:  # before anything is written: a figure of the user's own in the way stops the report
        _check_replaceable(out, f"{FIGURES}/{name}.png", mine)
    (out / FIGURES).mkdir(parents=True, exist_ok=True)
    record: dict[str, str] = {}
    written = []
    for name, png in [*drawn.items(), *thumbs.items()]:
        written.append(_replace(out, f"{FIGURES}/{name}.png", png, record))
    for stale, digest in mine.items():  # this report's figures replace the last one's, and only those
        path = out / stale
        if stale.startswith(f"{FIGURES}/") and stale not in record and _unchanged(path, digest):
            path.unlink()
    embedded = {name: "data:image/png;base64," + base64.b64encode(png).decode("ascii") for name, png in drawn.items()}
    linked = {name: f"{FIGURES}/{name}.png" for name in drawn}
    items = ({name: "data:image/png;base64," + base64.b64encode(png).decode("ascii") for name, png in thumbs.items()},
             {name: f"{FIGURES}/{name}.png" for name in thumbs})
    for name, text in ((HTML, html(report, embedded, items[0])), (MARKDOWN, markdown(report, linked, items[1]))):
        written.append(_replace(out, name, text.encode("utf-8"), record))
    write_atomic(out / RECORD, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return written


RECORD = ".report-files.json"  # in a report's folder: what the last report wrote there (path -> sha256)


def check_report_out(out: Path) -> None:
    """Refuse, before any work, a report folder that cannot take a report without overwriting or
    removing what the report did not write: a file, a folder holding other things (unless it is a
    run or collection folder), a report.html or report.md that no report wrote (or that was edited
    since), a figures/ that is not a folder, or a folder that cannot be written."""
    if out.is_symlink() or out.exists() and not out.is_dir():
        raise RunError(f"--out {out} is {'a symbolic link' if out.is_symlink() else 'a file'}: give a folder for the "
                       "report")
    ours = {HTML, MARKDOWN, FIGURES, RECORD}  # an earlier report there is replaced; anything else stays untouched
    if (out.is_dir() and not ((out / RUN).is_file() or (out / COLLECTION).is_file())
            and any(p.name not in ours for p in out.iterdir())):
        raise RunError(f"--out {out} holds other files: give a run folder, or an empty or new folder")
    mine = _written_before(out)
    for name in (HTML, MARKDOWN):
        _check_replaceable(out, name, mine)
    folder = out / FIGURES
    if folder.is_symlink() or folder.exists() and not folder.is_dir():
        raise RunError(f"--out {out}: {folder} is {'a symbolic link' if folder.is_symlink() else 'a file'}, where a "
                       "report writes its figures folder: move it, or give another --out")
    check_writable(out)


def write_owned(out: Path, files: dict[str, bytes], record_name: str) -> list[Path]:
    """Write `files` (name -> bytes) into `out`, each replacing only a file that an earlier call with the same
    `record_name` wrote there and nobody changed since; RunError, before anything is written, otherwise."""
    if out.is_symlink() or out.exists() and not out.is_dir():
        raise RunError(f"--out {out} is {'a symbolic link' if out.is_symlink() else 'a file'}: give a folder")
    mine = _written_before(out, record_name)
    for name in files:
        _check_replaceable(out, name, mine)
    check_writable(out)
    out.mkdir(parents=True, exist_ok=True)
    record = {k: v for k, v in mine.items() if k not in files}
    written = [_replace(out, name, data, record) for name, data in files.items()]
    write_atomic(out / record_name, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return written


def _written_before(out: Path, record_name: str = RECORD) -> dict[str, str]:
    """What the last report recorded writing in `out`: path inside it -> sha256 (empty: none, or unreadable)."""
    try:
        record = json.loads((out / record_name).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return {str(k): str(v) for k, v in record.items()} if isinstance(record, dict) else {}


def _check_replaceable(out: Path, name: str, mine: dict[str, str]) -> None:
    path = out / name
    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink() or not path.is_file() or not _unchanged(path, mine.get(name)):
        raise RunError(f"--out {out} holds {name}, which captcha-bench did not write there (or which was edited since): "
                       "move it, or give another --out")


def _unchanged(path: Path, digest: str | None) -> bool:
    try:
        return digest is not None and path.is_file() and not path.is_symlink() and sha256_bytes(path.read_bytes()) == digest
    except OSError:
        return False


def _replace(out: Path, name: str, data: bytes, record: dict[str, str]) -> Path:
    """Write `data` to out/name through a temporary file beside it, and note its sha256 in `record`."""
    path = out / name
    write_atomic(path, data)
    record[name] = sha256_bytes(data)
    return path
