"""The human study: record, humans export."""

from __future__ import annotations

from pathlib import Path

import click

from bench.cli.common import progress_bar
from bench.study.store import JOINS_PER_HOUR, Store, StudyError
from captchas import dataset as ds
from captchas.output import replacing
from captchas.recorded import write_csv


@click.command()
@click.option("--dataset", type=click.Path(path_type=Path), required=True, help="Data set whose images people answer.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (loopback; give 0.0.0.0 to let other machines in).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port (0: any free one).")
@click.option("--db", type=click.Path(path_type=Path), default=None,
              help="SQLite file of the study [default: results/studies/<data set sha256 prefix>.sqlite].")
@click.option("--title", default="Read the characters", show_default=True, help="Heading of the participants' page.")
@click.option("--completion-code", default="", help="Shown to each participant on the done page (e.g. for a "
                                                    "crowdsourcing platform).")
@click.option("--joins-per-hour", type=click.IntRange(1), default=JOINS_PER_HOUR, show_default=True,
              help="New participants one client address may start per hour (raise it for a lab behind one address).")
def record(dataset: Path, host: str, port: int, db: Path | None, title: str, completion_code: str,
           joins_per_hour: int) -> None:
    """Serve the human study: people answer the data set's images in their browsers.

    Each answer is committed to the SQLite database the moment it arrives; stop with Ctrl-C and
    start again with the same --db to continue. Every image is checked before the server starts.

    \b
    Example: captcha-bench record --dataset captchas/data/turingpass/humans --port 8000
    """
    from bench.study.server import open_study  # flask: only `record` serves the app

    data = ds.read_dataset(dataset)
    try:
        with progress_bar("Checking images") as progress:
            study = open_study(data, host, port, db, title, completion_code, joins_per_hour, progress)
    except StudyError as e:
        raise click.ClickException(str(e)) from None
    people, answers = study.counts()
    click.echo(f"study of {len(data.samples)} images ({data.path}), database {study.db} "
               f"({people} participants, {answers} answers so far)\nopen {study.url}/  (Ctrl-C stops)")
    if study.public_url:
        click.echo(f"warning: listening on {host}, not loopback: anyone who can reach this machine can take part; "
                   f"participants open {study.public_url}/", err=True)
    study.serve_forever()
    people, answers = study.counts()
    click.echo(f"stopped: {people} participants, {answers} answers in {study.db}")


@click.group()
def humans() -> None:
    """Recorded human answers: export them from a study database.

    \b
    Example: captcha-bench humans export --db results/studies/051e9b2ff964.sqlite --out answers.csv
    """


@humans.command("export")
@click.option("--db", type=click.Path(path_type=Path), required=True, help="Study database (from captcha-bench record).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="CSV file to write (must not exist).")
@click.option("--force", is_flag=True, help="Overwrite --out.")
@click.option("--excel-safe", is_flag=True, help="Put ' before answers a spreadsheet would run as formulas "
                                                 "(= + - @); the file is then no longer exact.")
def humans_export(db: Path, out: Path, force: bool, excel_safe: bool) -> None:
    """Write every recorded answer as CSV: participant, item, answer, server and browser times, attempt, skip.

    Answers are written exactly as typed, as results need them; open the file in a spreadsheet
    only with --excel-safe, or import it as text.

    \b
    Example: captcha-bench humans export --db results/studies/051e9b2ff964.sqlite --out answers.csv
    """
    if not db.is_file():
        raise click.ClickException(f"--db {db} does not exist: give the database that captcha-bench record wrote")
    if out.is_dir():
        raise click.ClickException(f"--out {out} is a folder: give a file name, e.g. {out / 'answers.csv'}")
    if out.exists() and not force:
        raise click.ClickException(f"{out} exists: choose another --out, or pass --force to overwrite it")
    rows = Store.open_existing(db).export()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with replacing(out) as tmp:
            write_csv(tmp, rows, excel_safe=excel_safe)
    except OSError as e:
        raise click.ClickException(f"cannot write {out} ({e.strerror or e}): choose another --out") from None
    click.echo(f"{len(rows)} answers by {len({r.participant for r in rows})} participants written to {out}"
               + (" (formula-like answers prefixed with ')" if excel_safe else ""))
