"""The train command: the CNN."""

from __future__ import annotations

import functools
import sys
import time
from pathlib import Path
from typing import Any

import click

from bench.cli.common import FINITE, Bars, bars, counts as parse_counts, default_workers


@click.command()
@click.option("--preset", default="medium", show_default=True, help="Train on fresh items of this preset...")
@click.option("--scheme", default=None, help="...or of this scheme (`mixed`: the general CNN's broad mix)...")
@click.option("--dataset", type=click.Path(path_type=Path), default=None, help="...or on this data set folder.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Checkpoint to write (the best so far).")
@click.option("--count", type=int, default=None,
              help="Training items to generate [default: 60,000, or with --minutes what renders in a third of them].")
@click.option("--val-count", type=int, default=1_000, show_default=True, help="Validation items (another seed).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--epochs", type=FINITE, default=None,
              help="Passes over the training items [default: 8 with --preset; with --dataset, from its size "
                   "(about 200,000 items seen), or as many as --minutes allows].")
@click.option("--minutes", type=FINITE, default=None,
              help="A budget of wall time, loading included: the learning rate follows the share of it spent, and "
                   "the run ends within it, quiet machine or busy.")
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--lr", type=FINITE, default=3e-3, show_default=True, help="Peak learning rate (one-cycle).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--workers", type=click.IntRange(1), default=default_workers, help="Processes rendering data [default: CPU count].")
@click.option("--height", type=int, default=None, help="Model input rows [default: 24].")
@click.option("--width", type=int, default=None, help="Model input columns [default: 72]; the model reads width/4 steps.")
@click.option("--channels", default=None, help="Conv stages' channels, e.g. 24,48,64,96 [default: 16,32,48,64].")
@click.option("--hidden", type=int, default=None, help="GRU units per direction [default: 64].")
@click.option("--colour", is_flag=True, default=None, help="Read RGB instead of grey (3 input channels).")
@click.option("--strided", is_flag=True, default=None,
              help="First stage: a stride-2 convolution instead of convolution + pooling (a quarter of its work).")
@click.option("--fit", type=click.Choice(["stretch", "pad"]), default=None,
              help="Image to input: stretch to --width x --height, or keep the aspect and pad "
                   "[default: pad with --dataset unless --height or --width is given, else stretch].")
@click.option("--crop/--no-crop", default=None,
              help="Crop each image to its ink's bounding box first [default: as --fit's default].")
@click.option("--augment/--no-augment", default=None,
              help="Random affine, polarity and contrast per item [default: on with --dataset, off with --preset].")
@click.option("--init", type=click.Path(path_type=Path), default=None,
              help="Start from this checkpoint's weights (fine-tune; same --channels, --colour, --fit and --crop; input "
                   "size, charset, --strided and --hidden may differ), or from ddddocr's published model: the word "
                   "ddddocr (with --dataset) [default with --dataset: the shipped general CNN, where the model "
                   "options allow].")
@click.option("--unlabelled", type=click.Path(path_type=Path), default=None,
              help="With --dataset: a folder of the scheme's images without answers, learnt from by confident "
                   "pseudo-labels in rounds (refused if it shares an image with the validation items).")
@click.option("--freeze", type=FINITE, default=0.5, show_default=True,
              help="With --init ddddocr: the share of the run that trains its LSTM and head on convolutional "
                   "features computed once per image, before every layer trains.")
@click.option("--from-scratch", is_flag=True, help="With --dataset: start from random weights, not the general CNN.")
@click.option("--mix", type=click.Path(path_type=Path), default=None,
              help="With --dataset: a second data set (generated images, say) whose items are added to every batch.")
@click.option("--mix-share", type=FINITE, default=0.25, show_default=True,
              help="The share of each batch's items drawn from --mix (the --dataset items per batch stay --batch-size).")
@click.option("--mix-count", type=int, default=None, help="Read only the first N items of --mix [default: all].")
@click.option("--resume", is_flag=True, help="Continue from OUT.last after an interruption.")
def train(preset: str, scheme: str | None, dataset: Path | None, out: Path, count: int | None, val_count: int, seed: int, epochs: float | None,
          minutes: float | None, batch_size: int, lr: float, device: str, workers: int, height: int | None,
          width: int | None, channels: str | None, hidden: int | None, colour: bool | None, strided: bool | None,
          fit: str | None, crop: bool | None, augment: bool | None, init: Path | None, unlabelled: Path | None,
          freeze: float, from_scratch: bool,
          mix: Path | None, mix_share: float, mix_count: int | None, resume: bool) -> None:
    """Train the CNN solver and save the best checkpoint (config, charset, data hash inside).

    \b
    Example: captcha-bench train --preset medium --out results/models/medium.pt --minutes 20
    """
    from solvers.cnn.card import write_card
    from solvers.cnn.train import TrainConfig, train as run_training

    model = dict(height=height, width=width, channels=channels, hidden=hidden, colour=colour, strided=strided, fit=fit,
                 crop=crop)
    config = TrainConfig(out=out, preset=None if dataset else preset, scheme=scheme, dataset=dataset, count=count,
                         val_count=val_count, seed=seed, epochs=epochs, minutes=minutes, batch_size=batch_size,
                         lr=lr, device=device, workers=workers, model=model, augment=augment, init=init,
                         from_scratch=from_scratch, mix=mix, mix_share=mix_share, mix_count=mix_count, freeze=freeze,
                         unlabelled=unlabelled)
    with bars() as shown:
        meta = run_training(config, resume=resume, progress=functools.partial(_report, shown))
    click.echo(write_card(out, meta, "captcha-bench " + " ".join(sys.argv[1:])))
    for line in meta.get("warnings") or ():
        click.secho(f"warning: {line}", err=True, fg="yellow")


def _report(shown: Bars, p: Any) -> None:
    """Training's progress: a bar while data renders, then a line per validation pass."""
    if p.phase == "data":
        return shown("Rendering data", p.done, p.total)
    shown.close()
    loss = "-" if p.loss is None else f"{p.loss:.3f}"  # None: the check before the first step
    click.echo(f"step {p.done}/{p.total}  loss {loss}  validation exact {p.val_accuracy:.1%}  {p.seconds:.0f} s", err=True)


@click.command()
@click.option("--dataset", type=click.Path(path_type=Path), required=True, help="Labelled images to train on.")
@click.option("--test", type=click.Path(path_type=Path), required=True,
              help="Other labelled images to test on (answers the training never saw).")
@click.option("--labels", default="250,1000,4000", show_default=True, metavar="N,N,...",
              help="Train on the first N images of --dataset, for each N.")
@click.option("--minutes", type=FINITE, default=None, help="Wall time for each training run, spent as train spends it.")
@click.option("--epochs", type=FINITE, default=None, help="Passes over each subset [default: as train chooses].")
@click.option("--init", default="general", show_default=True, metavar="START,...",
              help="Where each run starts, one curve each: scratch (random weights), general (the shipped general "
                   "CNN, where train starts), ddddocr (its published model), or a checkpoint's path; comma-separated.")
@click.option("--from-scratch", is_flag=True, help="The same as --init scratch.")
@click.option("--unlabelled", type=click.Path(path_type=Path), default=None,
              help="A folder of the scheme's images without answers (none of --test's): each start is measured "
                   "without and with them, a second curve.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder for the models, test runs, attack.csv and attack.png [default: results/attack-<time>]; "
                   "the same --out and settings continue an interrupted attack.")
def attack(dataset: Path, test: Path, labels: str, minutes: float | None, epochs: float | None, init: str,
           from_scratch: bool, unlabelled: Path | None, seed: int, out: Path | None) -> None:
    """The attack-cost curve: how many labelled images, and CPU minutes, does the CNN need to read a scheme?

    \b
    Example: captcha-bench attack --dataset results/datasets/turingpass/train --test captchas/data/turingpass/humans --labels 250,1000 --minutes 3
    """
    from bench.attack import CSV, FIGURE, cheapest, run_attack, table
    from bench.summary import format_table

    counts = parse_counts(labels, "--labels", "250,1000,4000")
    if from_scratch and init not in ("general", "scratch"):
        raise click.ClickException(f"--from-scratch and --init {init} contradict each other: give --init scratch,...")
    starts = ["scratch"] if from_scratch else [s.strip() for s in init.split(",")]
    out = out or Path("results") / f"attack-{time.strftime('%Y%m%d-%H%M%S')}"
    with bars() as shown:
        result = run_attack(dataset, test, out, counts, minutes, starts, seed, epochs, shown, unlabelled)
    click.echo(format_table(["start", "labels", "test accuracy [95% CI]", "CPU min", "wall min", "validation"],
                            table(result)))
    said = cheapest(result)
    if said:
        click.echo(f"\n{said}")
    click.echo(f"\n{out / CSV}, {out / FIGURE}")
