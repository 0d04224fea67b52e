"""The `captcha-bench` command: a thin click skin over the library. The commands live beside this module,
one per concept (data, runs, train, speed, study), with what they print (listing) and the options and
progress bars they share (common); this module is the group and its error handling."""

from __future__ import annotations

from typing import Any

import click

from bench.cli import data, runs, science, speed, study, train
from bench.cli.common import parse_options
from captchas.errors import UserError


class _Group(click.Group):
    """Turns the library's refusals (captchas.errors.UserError, the one family) into one-line messages with
    exit code 1; any other exception is a bug, and keeps its traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UserError as e:
            raise click.ClickException(str(e)) from None


@click.group(cls=_Group)
@click.version_option(package_name="captcha-bench")
def cli() -> None:
    """captcha-bench: do machines beat humans at image CAPTCHAs? Measure it on the same items.

    Exit status: 0 done; 1 refused or failed (the one-line error says why and what to do); 2 the
    command line itself is wrong (click's usage errors: an unknown option, a missing or mistyped value).

    \b
    Examples:
      captcha-bench run                      # the default benchmark: machines against recorded people
      captcha-bench generate --preset hard --count 1000 --seed 7 --out results/datasets/hard-7
      captcha-bench run --dataset results/datasets/hard-7 --solver cnn --out results/runs/hard-7
    """


for command in (data.generate, runs.run, runs.report, runs.sweep, train.train, train.attack, speed.speed, runs.solvers_,
                data.presets, data.verify, data.import_, study.record, study.humans, science.compare, science.verify_run,
                science.leaderboard, science.items, science.plan):
    cli.add_command(command)

__all__ = ["cli", "parse_options"]
