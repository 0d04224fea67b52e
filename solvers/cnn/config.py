"""What one training run is asked to do (TrainConfig), and its checks: every option is refused, with
the fix, before anything is read or written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from captchas import output
from solvers.cnn import CNNError
from solvers.cnn.dddd import HEIGHT
from solvers.cnn.model import ARCHES, FITS
from solvers.cnn.plan import DDDDOCR

PSEUDO_ROUNDS = (0.4, 0.7)  # with --unlabelled: at these shares of the run, the model labels the unlabelled images ...
CONFIDENT = 0.9  # ... and those whose weakest character it is this sure of join the training items, until the next round
# DDDDOCR: --init's word for ddddocr's published recognizer (dddd.py), as -o checkpoint's (plan.py)


@dataclass(frozen=True)
class TrainConfig:
    """One training run."""

    out: Path  # the best checkpoint goes here; `out` + ".last" holds the resumable state
    preset: str | None = "medium"  # train on fresh items of this preset (of the image scheme), or
    scheme: str | None = None  # of this scheme (`mixed`: the general CNN's), or
    dataset: Path | None = None  # on this data set folder (its first 10 % become validation)
    count: int | None = None  # training items to generate (preset mode); None: 60,000, or what --minutes allows
    val_count: int = 1_000  # validation items (preset mode)
    seed: int = 0
    epochs: float | None = None  # passes over the training items; None: 8 for a preset, from the size of a data set
    minutes: float | None = None  # a wall-clock budget, loading included: the learning rate follows its share spent
    # (schedule.py), and the run ends within it, keeping the best
    batch_size: int = 128
    lr: float = 3e-3  # peak of a one-cycle schedule
    eval_every: int | None = None  # steps between validation passes; None: every 250, or a tenth of a shorter run
    device: str = "cpu"  # cpu | cuda | auto
    workers: int = 2  # processes that render the training data
    model: dict[str, Any] = field(default_factory=dict)  # CNNConfig overrides (height, width, channels, hidden, colour,
    # strided, fit, crop); for a data set, what is left out is chosen from the data (auto.geometry)
    augment: bool | None = None  # random affine, polarity and contrast per item; None: on for --dataset only
    init: Path | None = None  # start from this checkpoint's weights (fine-tuning; "ddddocr": ddddocr's model, model arch
    # "ddddocr"); see initialise for what may differ;
    # None with a data set: the shipped general CNN (general.pt) where the model options allow (general_start)
    from_scratch: bool = False  # with a data set and no init: random weights, not the general CNN
    mix: Path | None = None  # with `dataset`: a second data set (generated, say) whose items are added to every batch
    mix_share: float = 0.25  # the share of each batch's items that come from `mix`; the real items per batch stay batch_size
    mix_count: int | None = None  # read only the first this many of `mix`'s items (all: None)
    limit: int | None = None  # with `dataset`: train (and validate) on its first this many items only
    unlabelled: Path | None = None  # with `dataset`: a folder of images of the scheme without answers, learnt from by
    # confident pseudo-labels in rounds (PSEUDO_ROUNDS)
    held_out: Path | None = None  # a test set: --unlabelled is refused if it shares an image with it (or with validation)
    freeze: float = 0.5  # with model arch "ddddocr" (--init ddddocr): the share of the run that trains the LSTM and head
    # on the convolutional features, computed once per image; the rest trains every layer on augmented images

    def __post_init__(self) -> None:
        """Options left out (None) take the model's defaults; channels may come as text, "24,48,64,96" (--model channels=)."""
        model = {k: v for k, v in self.model.items() if v is not None}
        if isinstance(model.get("channels"), str):
            text = model["channels"]
            try:
                model["channels"] = tuple(int(c) for c in text.split(","))
            except ValueError:
                raise CNNError(f"--model channels={text!r}: give three or more comma-separated counts, "
                               "e.g. 24,48,64,96") from None
        if self.init is not None and str(self.init) == DDDDOCR:  # the word, not a file: ddddocr's published model
            model.setdefault("arch", "ddddocr")
            object.__setattr__(self, "init", None)
        object.__setattr__(self, "model", model)

    def check(self, resume: bool = False) -> None:
        """Raise ValueError, naming the option and the fix, for settings that cannot train."""
        from captchas.spec import PRESETS

        if self.dataset is None and self.scheme in (None, "image") and self.preset not in PRESETS:
            raise CNNError(f"unknown preset {self.preset!r}: choose one of {', '.join(PRESETS)}")
        for option, value in (("--count", self.count), ("--val-count", self.val_count),
                              ("--batch-size", self.batch_size), ("--workers", self.workers)):
            if value is not None and value < 1:
                raise CNNError(f"{option} must be at least 1, got {value}")
        for option, number in (("--epochs", self.epochs), ("--lr", self.lr), ("--minutes", self.minutes)):
            if number is not None and not (math.isfinite(number) and number > 0):
                raise CNNError(f"{option} must be a finite number above 0, got {number}")
        m = self.model
        if not 16 <= m.get("height", 24) <= 256 or not 16 <= m.get("width", 72) <= 1024:
            raise CNNError("--model height must be 16-256 and width 16-1024 pixels")
        stages = m.get("channels", (16, 32, 48, 64))
        if len(stages) < 3 or not all(isinstance(c, int) and 1 <= c <= 1024 for c in stages):
            raise CNNError(f"--model channels={','.join(map(str, stages))!r}: give three or more comma-separated counts, "
                           "e.g. 24,48,64,96")
        if not 1 <= m.get("hidden", 64) <= 2048:
            raise CNNError("--model hidden must be 1-2048")
        if m.get("fit", "stretch") not in FITS:
            raise CNNError(f"--model fit must be one of {', '.join(FITS)}, got {m['fit']!r}")
        if self.limit is not None and (self.dataset is None or self.limit < 10):
            raise CNNError(f"limit: train on the first N items of --dataset, N at least 10, got {self.limit}")
        if self.from_scratch and self.init is not None:
            raise CNNError("--from-scratch and --init contradict each other: give one")
        if m.get("arch", "crnn") not in ARCHES:
            raise CNNError(f"arch must be one of {', '.join(ARCHES)}, got {m['arch']!r}")
        if m.get("arch") == "ddddocr":
            if self.dataset is None or self.init is not None or self.from_scratch or self.mix is not None:
                raise CNNError("--init ddddocr fine-tunes ddddocr's model on a --dataset: give --dataset, and no other "
                               "--init, --from-scratch or --mix")
            if m.get("height", HEIGHT) != HEIGHT or any(k in m for k in ("channels", "hidden", "colour", "strided", "crop")):
                raise CNNError(f"--init ddddocr reads grey images of {HEIGHT} rows with ddddocr's own layers: drop "
                               "--model height, channels, hidden, colour, strided and crop")
        if self.unlabelled is not None and self.dataset is None:
            raise CNNError("--unlabelled learns from a scheme's images beside its labelled --dataset: give --dataset")
        if not (math.isfinite(self.freeze) and 0.0 <= self.freeze <= 1.0):
            raise CNNError(f"--freeze is a share of the run, 0 to 1, got {self.freeze}")
        if self.out.exists() and not resume:
            raise CNNError(f"{self.out} exists: choose another --out, or pass --resume to continue its training")
        output.check_writable(self.out, file=True)
