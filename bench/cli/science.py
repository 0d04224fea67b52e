"""The instrument's science commands: compare (two runs, machine by machine), verify-run (a run folder
against its attestation), leaderboard (the table as data), items (where people and machines differ, item
by item) and plan (how many paired items a gap needs)."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import click

from bench.cli.common import FINITE
from bench.summary import format_table
from captchas import dataset as ds


def _pairs(texts: tuple[str, ...]) -> list[tuple[str, str]]:
    found = []
    for text in texts:
        first, sep, second = text.partition(":")
        if not sep or not first.strip() or not second.strip():
            raise click.ClickException(f"--pair expects A_SOLVER:B_SOLVER (a solver of RUN_A, one of RUN_B), got {text!r}")
        found.append((first.strip(), second.strip()))
    return found


@click.command()
@click.argument("run_a", type=click.Path(path_type=Path))
@click.argument("run_b", type=click.Path(path_type=Path))
@click.option("--pair", "pairs", multiple=True, metavar="A_SOLVER:B_SOLVER",
              help="Compare this solver of RUN_A with this one of RUN_B; repeatable [default: every machine both ran].")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder for compare.csv, compare.json and compare.md [default: RUN_B].")
@click.option("--fail-on-regression", "regression", type=FINITE, default=None, metavar="POINTS",
              help="Exit 1 when a solver of RUN_B is less accurate than RUN_A's by more than POINTS under the "
                   "report's rule (Holm-adjusted McNemar p < 0.05 and the whole 95 % interval below -POINTS).")
def compare(run_a: Path, run_b: Path, pairs: tuple[str, ...], out: Path | None, regression: float | None) -> None:
    """Two runs on the same data set, machine by machine, paired per item: is B better or worse than A?

    Exact McNemar and Newcombe's interval for accuracy, Wilcoxon signed-rank for time, Holm's
    correction over every test; the table here, and compare.csv, compare.json and compare.md.

    \b
    Example: captcha-bench compare results/runs/hard-7 results/runs/hard-7-baselines --pair cnn:ddddocr
    """
    from bench.report.between import HEADER, compare_runs, records, rows  # loaded by the command, not by --help
    from bench.report.write import write_owned  # loaded by the command, not by --help

    if regression is not None and regression < 0:
        raise click.ClickException(f"--fail-on-regression is accuracy points, 0 or more, got {regression:g}")
    between = compare_runs(run_a, run_b, _pairs(pairs))
    table = format_table(HEADER, rows(between))
    found = records(between)
    rule = "case-sensitive" if between.case_sensitive else "case-insensitive"
    title = (f"{run_b} (B) against {run_a} (A), data set {between.first.dataset_sha256[:12]}, scored {rule}; "
             "differences are B - A")
    markdown = "\n".join([f"# {title}", "", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER),
                          *("| " + " | ".join(row) + " |" for row in rows(between)), ""])
    folder = out or run_b
    write_owned(folder, {"compare.csv": _csv(list(found[0]), found).encode("utf-8"),
                         "compare.json": (json.dumps({"title": title, "pairs": found}, indent=2) + "\n").encode(),
                         "compare.md": markdown.encode()}, ".compare-files.json")
    click.echo(title + "\n" + table)
    click.echo(f"\ncompare.csv, compare.json, compare.md: {folder}")
    if regression is not None:
        worse = [x for x in between.pairings if x.regressed(regression)]
        if worse:
            named = ", ".join(f"{x.second} ({100 * x.result.difference:+.1f} points against {x.first})" for x in worse)
            click.echo(f"regression: {named}: B is worse than A by more than {regression:g} points under the rule",
                       err=True)
            raise SystemExit(1)
        click.echo(f"no regression of more than {regression:g} points under the rule")


def _csv(columns: list[str], rows: list[dict[str, Any]]) -> str:
    """Rows as CSV text, the project's way (captchas.dataset.CsvWriter): no value is an empty cell."""
    buffer = io.StringIO()
    writer = ds.CsvWriter(buffer)
    writer.writerow(columns)
    for row in rows:
        writer.writerow("" if row[k] is None else f"{row[k]:.6g}" if isinstance(row[k], float) else row[k]
                        for k in columns)
    return buffer.getvalue()


@click.command("verify-run")
@click.argument("run", type=click.Path(path_type=Path))
def verify_run(run: Path) -> None:
    """Check a run folder against its attestation.json: refused, naming the file, where any differs.

    The run's own files must all match; the data set's manifest and the weights and answers files
    the solvers loaded are checked where they are found.

    \b
    Example: captcha-bench verify-run results/runs/hard-7
    """
    from bench.runfolder.attest import ATTESTATION, verify  # loaded by the command, not by --help

    for line in verify(run):
        click.echo(line)
    digest = json.loads((run / ATTESTATION).read_text(encoding="utf-8"))["results_sha256"]
    click.echo(f"{run}: every file of the run matches its attestation (results_sha256 {digest})")


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="board.csv or board.json.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap intervals.")
def leaderboard(runs: tuple[Path, ...], out: Path, seed: int) -> None:
    """The leaderboard as data: one row per solver per data set, with accuracy and interval, median time,
    cost where known, and the verdict against people where the data set has them.

    \b
    Example: captcha-bench leaderboard results/runs/hard-7 --out results/board.csv
    """
    from bench.report import build_report  # loaded by the command, not by --help
    from bench.report.board import COLUMNS, leaderboard as board  # loaded by the command, not by --help
    from bench.report.write import write_owned  # loaded by the command, not by --help

    if out.suffix not in (".csv", ".json"):
        raise click.ClickException(f"--out {out}: name a .csv or a .json file")
    rows = board(build_report(list(runs), allow_mixed=True, seed=seed))
    if out.suffix == ".json":
        data = json.dumps({"columns": COLUMNS, "rows": rows}, indent=2) + "\n"
    else:
        data = _csv(COLUMNS, rows)
    write_owned(out.parent, {out.name: data.encode("utf-8")}, ".leaderboard-files.json")
    click.echo(format_table(["data set", "solver", "accuracy", "median", "versus people"],
                            [[r["data_set"], r["solver"], f"{100 * r['accuracy']:.1f} %" if r["accuracy"] is not None else "-",
                              f"{r['median_seconds']:.4g} s" if r["median_seconds"] is not None else "-", r["versus_people"]]
                             for r in rows]))
    click.echo(f"\n{len(rows)} rows: {out}")


@click.command()
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--who", type=click.Choice(["people-only", "machine-only", "nobody"]), required=True,
              help="people-only: people read it, the machine did not; machine-only: the reverse; nobody: every "
                   "machine and every person missed it (a label to check).")
@click.option("--machine", default=None, help="The machine of people-only and machine-only [default: every machine].")
def items(run: Path, who: str, machine: str | None) -> None:
    """List, as CSV, the items where people and machines differ, or that nobody read.

    \b
    Example: captcha-bench items results/runs/tp-100 --who people-only
    """
    from bench.report import build_report  # loaded by the command, not by --help
    from bench.report.items import COLUMNS, csv_text, items_of, listed  # loaded by the command

    report = build_report([run], allow_mixed=True)
    audits = [(g, a) for g, a in zip(report.groups, report.audits) if a is not None]  # built with the report
    if not audits:
        raise click.ClickException(f"{run} has no people beside its machines: items compares them item by item; "
                                   "run the recorded people too (--solver human)")
    machines = sorted({m for g, _ in audits for m in g.machines})
    if machine is not None and machine not in machines:
        raise click.ClickException(f"--machine {machine!r} is not a machine of {run} (it has {', '.join(machines)})")
    click.echo(",".join(COLUMNS))
    for group, a in audits:
        if machine is None or machine in group.machines:
            found = items_of(group)
            files = {i: sample.file for i, sample in found[1].items()} if found else {}
            click.echo(csv_text(group.label, listed(a, who, machine), files), nl=False)


@click.command()
@click.option("--gap", type=FINITE, required=True, metavar="POINTS", help="The accuracy difference to resolve, in points.")
@click.option("--discordance", type=FINITE, default=None, metavar="P",
              help="The share of items on which the two sides disagree, 0-1 (TuringPass's cnn and people: 0.23).")
@click.option("--from", "source", type=click.Path(path_type=Path), default=None,
              help="Take the discordance (and, for a study, the answers per participant) from a run's comparisons.")
@click.option("--power", type=FINITE, default=0.8, show_default=True, help="The chance of finding the gap.")
def plan(gap: float, discordance: float | None, source: Path | None, power: float) -> None:
    """How many paired items (and, for a study, participants) a comparison needs to resolve a gap.

    Connor's formula (Biometrics 1987) for the two-sided McNemar test at 0.05.

    \b
    Example: captcha-bench plan --gap 3 --discordance 0.23
    """
    from bench import paired  # loaded by the command, not by --help

    if (discordance is None) == (source is None):
        raise click.ClickException("give one of --discordance P (a share of items) or --from RUN (a run with people)")
    if not 0 < power < 1:
        raise click.ClickException(f"--power is a probability between 0 and 1, got {power:g}")
    if discordance is not None:
        click.echo(_plan_line(gap, discordance, power))
        return
    from bench.report import build_report  # loaded by the command, not by --help

    assert source is not None
    report = build_report([source], allow_mixed=True)
    if not report.comparisons:
        raise click.ClickException(f"{source} compares no machine with people: give --discordance P instead")
    for c in report.comparisons:
        a = c.accuracy
        share = (a.machine_only + a.human_only) / a.items if a.items else 0.0
        line = f"{c.machine} on {c.group}: " + _plan_line(gap, share, power)
        if a.units == "participants" and a.clusters:
            per = a.items / a.clusters
            needed = paired.items_needed(gap / 100, share, power) * a.design_effect
            line += (f"; as a study, at its {per:.1f} first answers per participant and design effect "
                     f"{a.design_effect:.2f}: {math.ceil(needed / per):,} participants")
        click.echo(line)


def _plan_line(gap: float, discordance: float, power: float) -> str:
    from bench import paired  # loaded by the command, not by --help

    if not 0 < discordance <= 1:
        raise click.ClickException(f"--discordance is a share of items above 0 and at most 1, got {discordance:g}")
    if not 0 < (gap / 100) ** 2 < discordance:
        raise click.ClickException(f"--gap {gap:g}: a gap cannot reach {100 * math.sqrt(discordance):.1f} points where "
                                   f"{100 * discordance:.1f} % of the items are discordant; give a gap above 0 and below it")
    n = paired.items_needed(gap / 100, discordance, power)
    return (f"a gap of {gap:g} points at {100 * power:g} % power, with {100 * discordance:.1f} % of items discordant, needs "
            f"{math.ceil(n):,} paired items (Connor 1987; two-sided McNemar at 0.05)")
