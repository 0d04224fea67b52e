"""Import the public TuringPass data set (github.com/amri-tah/TuringPass, MIT) as two data sets: the
images people answered, with their recorded answers, and the rest. Its `humans` split ships inside
the package (data/turingpass/) as the embedded human baseline.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from captchas import dataset as ds
from captchas import output
from captchas import recorded
from captchas.folder import Skipped, import_folder

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
    src, out = Path(src), Path(out)
    images, table = src / TURINGPASS_IMAGES, src / TURINGPASS_ANSWERS
    if not images.is_dir() or not table.is_file():
        raise ds.DatasetError(f"{src} is not a TuringPass folder: expected {TURINGPASS_IMAGES}/ and {TURINGPASS_ANSWERS}")
    for split in ("humans", "train"):
        output.check_apart(src, out / split)
        output.check_output(out / split, force)
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
