"""The train command: the CNN."""

from __future__ import annotations

import functools
import sys
import time
from pathlib import Path
from typing import Any

import click

from bench.cli.common import FINITE, Bars, bars, counts as parse_counts, default_workers, split_pair
from bench.summary import format_table


MODEL = {"height": int, "width": int, "channels": str, "hidden": int, "colour": bool, "strided": bool, "fit": str,
         "crop": bool}  # train --model KEY=VALUE: the network's settings (solvers/cnn/model.py, CNNConfig)
MOVED = {"--height": "height=N", "--width": "width=N", "--channels": "channels=A,B,C", "--hidden": "hidden=N",
         "--colour": "colour=true", "--strided": "strided=true", "--fit": "fit=pad", "--crop": "crop=true",
         "--no-crop": "crop=false"}  # the flags --model replaced on 2026-12-06 (older model cards name them)
TRUE, FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


class _Train(click.Command):
    """`train`, saying where a model flag went when an older command line (a model card's) names one."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        for arg in args:
            flag = arg.split("=", 1)[0]
            if flag in MOVED:
                raise click.UsageError(f"{flag} is now a model setting: give --model {MOVED[flag]}", ctx)
        return super().parse_args(ctx, args)


def model_options(pairs: tuple[str, ...]) -> dict[str, object]:
    """--model KEY=VALUE pairs as TrainConfig's `model`: each key one of MODEL's, its value of that kind
    (channels stays text: TrainConfig reads it and names what is wrong); a one-line usage error otherwise."""
    model: dict[str, object] = {}
    for pair in pairs:
        key, text = split_pair(pair, "--model")
        kind, text = MODEL.get(key), text.strip()
        if kind is None:
            raise click.BadParameter(f"{key!r} is not a model setting: give one of {', '.join(MODEL)}",
                                     param_hint="'--model'")
        if kind is bool:
            if text.lower() not in TRUE + FALSE:
                raise click.BadParameter(f"{key}={text!r}: give true or false", param_hint="'--model'")
            model[key] = text.lower() in TRUE
        elif kind is int:
            if not text.isdigit():
                raise click.BadParameter(f"{key}={text!r}: give a whole number", param_hint="'--model'")
            model[key] = int(text)
        else:
            model[key] = text
    return model


@click.command(cls=_Train)
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
@click.option("--model", "model_pairs", multiple=True, metavar="KEY=VALUE",
              help="A model setting; repeatable: height (rows, default 24), width (columns, default 72; the model reads "
                   "width/4 steps), channels (conv stages, e.g. 24,48,64,96; default 16,32,48,64), hidden (GRU units "
                   "per direction, default 64), colour (read RGB, not grey), strided (a stride-2 first convolution "
                   "instead of convolution and pooling: a quarter of its work), fit (stretch or pad: the image to the "
                   "input; default pad with --dataset unless height or width is given, else stretch), crop (to the "
                   "ink's bounding box first; default as fit's).")
@click.option("--augment/--no-augment", default=None,
              help="Random affine, polarity and contrast per item [default: on with --dataset, off with --preset].")
@click.option("--init", type=click.Path(path_type=Path), default=None,
              help="Start from this checkpoint's weights (fine-tune; the same model channels, colour, fit and crop; "
                   "input size, charset, strided and hidden may differ), or from ddddocr's published model: the word "
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
def train(preset: str, scheme: str | None, dataset: Path | None, out: Path, count: int | None, val_count: int,
          seed: int, epochs: float | None, minutes: float | None, batch_size: int, lr: float, device: str, workers: int,
          model_pairs: tuple[str, ...], augment: bool | None, init: Path | None, unlabelled: Path | None,
          freeze: float, from_scratch: bool, mix: Path | None, mix_share: float, mix_count: int | None,
          resume: bool) -> None:
    """Train the CNN solver and save the best checkpoint (config, charset, data hash inside).

    \b
    Example: captcha-bench train --preset medium --out results/models/medium.pt --minutes 20
    """
    from solvers.cnn.card import write_card  # torch: only `train` loads it
    from solvers.cnn.train import TrainConfig, train as run_training  # torch, likewise

    model = model_options(model_pairs)
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
    from bench.attack import CSV, FIGURE, cheapest, run_attack, table  # loaded by the command, not by --help

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
