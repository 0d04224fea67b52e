"""Data set commands: generate, verify, presets, import."""

from __future__ import annotations

import time
from pathlib import Path

import click

from bench.cli.common import default_workers, executor_from, executor_options, parse_options, progress_bar
from bench.cli.listing import presets_text
from captchas import dataset as ds
from captchas import images
from captchas import folder, schemes, turingpass
from captchas import generate as gen
from captchas.render import measure_legibility
from captchas.spec import PRESETS


@click.command()
@click.option("--preset", default=None, help="Difficulty preset (see `captcha-bench presets`); default medium.")
@click.option("--scheme", default=schemes.DEFAULT_SCHEME, show_default=True, help="Installed scheme name or module:attr.")
@click.option("--count", type=int, default=1000, show_default=True, help="Number of images.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed: the same seed gives the same bytes.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder to create (must be empty).")
@click.option("--set", "knobs", multiple=True, metavar="KNOB=VALUE", help="Override a knob; repeatable.")
@click.option("--workers", type=click.IntRange(1), default=default_workers,
              help="Worker processes [default: CPU count; with --executor dask, the LocalCluster's workers].")
@click.option("--force", is_flag=True, help="Replace a non-empty --out once the new set is complete.")
@click.option("--reuse", is_flag=True, help="Keep --out if it already holds exactly this data set.")
@executor_options
def generate(preset: str | None, scheme: str, count: int, seed: int, out: Path, knobs: tuple[str, ...],
             workers: int, force: bool, reuse: bool, executor_kind: str, scheduler: str | None,
             images_by: str | None) -> None:
    """Generate a seeded data set of CAPTCHA images.

    \b
    Example: captcha-bench generate --preset hard --count 1000 --seed 7 --out results/datasets/hard-7
    """
    made = schemes.load(scheme, preset, parse_options(knobs))
    reused = reuse and (out / ds.MANIFEST).is_file()
    start = time.perf_counter()
    with executor_from(executor_kind, workers, scheduler, images_by) as where, progress_bar("Generating") as progress:
        data = gen.make_dataset(made, count, seed, out, workers=workers, force=force, reuse=reuse,
                                scheme_name=scheme, preset=preset, progress=progress,
                                mapper=where.mapper())
    seconds = time.perf_counter() - start
    shown = preset or ("medium" if scheme == schemes.DEFAULT_SCHEME else None)  # image's default preset
    what = f"{len(data.samples)} images in {out} (scheme {scheme}{f', preset {shown}' if shown else ''}, seed {seed})"
    if reused:
        click.echo(f"Reused {what}: it already held this data set and its files match the manifest")
    else:
        click.echo(f"{what}; {len(data.samples) / seconds:,.0f} images/s with {workers} worker(s)")
    click.echo(f"data set sha256 {data.hash}")


@click.command()
@click.option("--measure", type=int, default=0, metavar="N", help="Also render N answers per preset and count clipped ones.")
def presets(measure: int) -> None:
    """List the difficulty presets and their knobs, and the installed schemes.

    \b
    Example: captcha-bench presets --measure 1000
    """
    if measure < 0:
        raise click.ClickException(f"--measure must be 0 or more, got {measure}")
    measured = []
    with progress_bar("Measuring") as progress:
        for k, name in enumerate(PRESETS if measure else ()):
            measured.append(measure_legibility(PRESETS[name], measure))
            progress(k + 1, len(PRESETS))
    click.echo(presets_text(measured, sorted(set(schemes.available()) | {schemes.DEFAULT_SCHEME})))


@click.command()
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--regenerate/--no-regenerate", default=True, show_default=True,
              help="For generated sets, render every item again from the seed and compare hashes.")
@click.option("--workers", type=click.IntRange(1), default=default_workers, help="Worker processes [default: CPU count].")
def verify(dataset: Path, regenerate: bool, workers: int) -> None:
    """Check every file of a data set as a run reads it (a regular file, its sha256, a full decode), and
    regenerate it from its seed.

    \b
    Example: captcha-bench verify results/datasets/hard-7
    """
    data = ds.read_dataset(dataset)
    with progress_bar("Checking files") as progress:
        problems = images.check_files(data, progress)
    regenerated = regenerate and data.info.get("kind") == "generated"
    reencoded = 0
    if regenerated:
        with progress_bar("Regenerating") as progress:
            again = gen.regenerate(data, workers=workers, progress=progress)
        problems += again.problems
        reencoded = again.reencoded
    for line in problems[:20]:
        click.echo(line)
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s) in {dataset}" + (" (first 20 shown)" if len(problems) > 20 else ""))
    how = "files match the manifest"
    if regenerated:
        how += "; regenerated from the seed: " + (
            f"identical pixels ({reencoded} files deflated differently by this zlib-ng build)" if reencoded else "identical")
    click.echo(f"OK: {len(data.samples)} items, {how}; data set sha256 {data.hash}")


@click.group("import")
def import_() -> None:
    """Import labelled images from elsewhere as a data set.

    \b
    Example: captcha-bench import folder captchas/data/turingpass/humans --labels captchas/data/turingpass/humans/manifest.csv --out results/datasets/mine
    """


@import_.command("folder")
@click.argument("src", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder to create (must be empty).")
@click.option("--labels", type=click.Path(path_type=Path), default=None, help="CSV with columns file,answer.")
@click.option("--pattern", default=None, help="Regular expression on the file stem; its first group is the answer.")
@click.option("--case-sensitive/--case-insensitive", default=False, show_default=True, help="How answers are scored.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the shuffle that assigns opaque ids.")
@click.option("--force", is_flag=True, help="Replace a non-empty --out once the new set is complete.")
def import_folder(src: Path, out: Path, labels: Path | None, pattern: str | None, case_sensitive: bool,
                  seed: int, force: bool) -> None:
    """Import a folder of images labelled by file name (or a CSV), renamed to opaque ids.

    \b
    Example: captcha-bench import folder captchas/data/turingpass/humans --labels captchas/data/turingpass/humans/manifest.csv --out results/datasets/mine
    """
    with progress_bar("Importing") as progress:
        result = folder.import_folder(src, out, labels=labels, pattern=pattern, case_sensitive=case_sensitive,
                                       seed=seed, force=force, progress=progress)
    for s in result.skipped[:20]:
        click.echo(f"skipped {ds.shown(s.file)}: {s.reason}")
    more = " (first 20 listed)" if len(result.skipped) > 20 else ""
    click.echo(f"{len(result.dataset.samples)} images imported to {out}, {len(result.skipped)} skipped{more}; "
               f"data set sha256 {result.dataset.hash}")


@import_.command("turingpass")
@click.argument("src", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Folder for the two data sets OUT/humans and OUT/train (each must be empty).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the shuffle that assigns opaque ids.")
@click.option("--force", is_flag=True, help="Replace non-empty splits once the new ones are complete.")
def import_turingpass(src: Path, out: Path, seed: int, force: bool) -> None:
    """Import the public TuringPass set: the images people answered (with their answers) and the rest.

    \b
    The source is a clone of https://github.com/amri-tah/TuringPass (MIT); its `humans` split already
    ships inside captcha-bench, so this is needed only for the `train` split.

    \b
    Example: captcha-bench import turingpass TuringPass --out results/datasets/turingpass
    """
    with progress_bar("Importing") as progress:
        result = turingpass.import_turingpass(src, out, seed=seed, force=force, progress=progress)
    for s in result.skipped[:20]:
        click.echo(f"skipped {ds.shown(s.file)}: {s.reason}")
    more = " (first 20 listed)" if len(result.skipped) > 20 else ""
    click.echo(f"humans: {len(result.humans.samples)} images with {result.answers} recorded answers in {out / 'humans'} "
               f"(sha256 {result.humans.hash[:12]})\ntrain: {len(result.train.samples)} images in {out / 'train'} "
               f"(sha256 {result.train.hash[:12]}); {len(result.skipped)} skipped{more}; both scored case-insensitive")
