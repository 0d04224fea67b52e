"""Train the CNN: from a preset (fresh seeded data made by worker processes) or a data set folder,
to a checkpoint that carries its config, charset, preset, data hash and versions.

A readable loop, not a framework: generate, then step, evaluate every so often, keep the best.
Deterministic on CPU given the seed (data, initial weights and batch order all derive from it).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from captchas import output
from captchas.scoring import is_correct  # the one scoring rule
from solvers.cnn.checkpoint import annotate, general_start, initialise, save
from solvers.cnn import auto
from solvers.cnn.data import answer_lengths, augment, encode, fit_count, load_mix, load_training_data
from solvers.cnn.model import FITS, CaptchaNet, decode

CHANNELS_LAST = torch.channels_last  # NHWC: convolutions and pooling run 1.1-1.3x faster per training step on CPU


@dataclass(frozen=True)
class TrainConfig:
    """One training run."""

    out: Path  # the best checkpoint goes here; `out` + ".last" holds the resumable state
    preset: str | None = "medium"  # train on fresh items of this preset (of the image scheme), or
    scheme: str | None = None  # of this scheme (`mixed`: the general reader's), or
    dataset: Path | None = None  # on this data set folder (its first 10 % become validation)
    count: int | None = None  # training items to generate (preset mode); None: 60,000, or what --minutes allows
    val_count: int = 1_000  # validation items (preset mode)
    seed: int = 0
    epochs: float | None = None  # passes over the training items; None: 8 for a preset, from the size of a data set
    minutes: float | None = None  # wall-clock cap; training stops there and keeps the best
    batch_size: int = 128
    lr: float = 3e-3  # peak of a one-cycle schedule
    eval_every: int | None = None  # steps between validation passes; None: every 250, or a tenth of a shorter run
    device: str = "cpu"  # cpu | cuda | auto
    workers: int = 2  # processes that render the training data
    model: dict[str, Any] = field(default_factory=dict)  # CNNConfig overrides (height, width, channels, hidden, colour,
    # strided, fit, crop); for a data set, what is left out is chosen from the data (auto.geometry)
    augment: bool | None = None  # random affine, polarity and contrast per item; None: on for --dataset only
    init: Path | None = None  # start from this checkpoint's weights (fine-tuning); see initialise for what may differ;
    # None with a data set: the shipped general reader where the model options allow (general_start)
    from_scratch: bool = False  # with a data set and no init: random weights, not the general reader
    mix: Path | None = None  # with `dataset`: a second data set (generated, say) whose items are added to every batch
    mix_share: float = 0.25  # the share of each batch's items that come from `mix`; the real items per batch stay batch_size
    mix_count: int | None = None  # read only the first this many of `mix`'s items (all: None)
    limit: int | None = None  # with `dataset`: train (and validate) on its first this many items only

    def __post_init__(self) -> None:
        """Options left out (None) take the model's defaults; channels may come as text, "24,48,64,96"."""
        model = {k: v for k, v in self.model.items() if v is not None}
        if isinstance(model.get("channels"), str):
            text = model["channels"]
            try:
                model["channels"] = tuple(int(c) for c in text.split(","))
            except ValueError:
                raise ValueError(f"--channels {text!r}: give three or more comma-separated counts, "
                                 "e.g. 24,48,64,96") from None
        object.__setattr__(self, "model", model)

    def check(self, resume: bool = False) -> None:
        """Raise ValueError, naming the option and the fix, for settings that cannot train."""
        from captchas.spec import PRESETS

        if self.dataset is None and self.scheme in (None, "image") and self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}: choose one of {', '.join(PRESETS)}")
        for option, value in (("--count", self.count), ("--val-count", self.val_count),
                              ("--batch-size", self.batch_size), ("--workers", self.workers)):
            if value is not None and value < 1:
                raise ValueError(f"{option} must be at least 1, got {value}")
        for option, number in (("--epochs", self.epochs), ("--lr", self.lr), ("--minutes", self.minutes)):
            if number is not None and not (math.isfinite(number) and number > 0):
                raise ValueError(f"{option} must be a finite number above 0, got {number}")
        m = self.model
        if not 16 <= m.get("height", 24) <= 256 or not 16 <= m.get("width", 72) <= 1024:
            raise ValueError("--height must be 16-256 and --width 16-1024 pixels")
        stages = m.get("channels", (16, 32, 48, 64))
        if len(stages) < 3 or not all(isinstance(c, int) and 1 <= c <= 1024 for c in stages):
            raise ValueError(f"--channels {','.join(map(str, stages))!r}: give three or more comma-separated counts, "
                             "e.g. 24,48,64,96")
        if not 1 <= m.get("hidden", 64) <= 2048:
            raise ValueError("--hidden must be 1-2048")
        if m.get("fit", "stretch") not in FITS:
            raise ValueError(f"--fit must be one of {', '.join(FITS)}, got {m['fit']!r}")
        if self.limit is not None and (self.dataset is None or self.limit < 10):
            raise ValueError(f"limit: train on the first N items of --dataset, N at least 10, got {self.limit}")
        if self.from_scratch and self.init is not None:
            raise ValueError("--from-scratch and --init contradict each other: give one")
        if self.out.exists() and not resume:
            raise ValueError(f"{self.out} exists: choose another --out, or pass --resume to continue its training")
        output.check_writable(self.out, file=True)


@dataclass(frozen=True)
class TrainingProgress:
    """What the loop reports to its callback."""

    phase: str  # "data" or "train"
    done: int
    total: int
    loss: float | None = None
    val_accuracy: float | None = None
    seconds: float = 0.0


Callback = Callable[[TrainingProgress], None]


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device here; use --device cpu or auto")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {device!r}: use cpu, cuda or auto")
    return torch.device(device)


def accuracy(model: CaptchaNet, x: torch.Tensor, answers: Sequence[str], device: torch.device,
             case_sensitive: bool, batch: int = 512) -> float:
    """Exact-match accuracy of greedy decoding."""
    model.eval()
    right = 0
    with torch.inference_mode():
        for k in range(0, len(answers), batch):
            logits = model(x[k : k + batch].to(device).float().div_(255.0).contiguous(memory_format=CHANNELS_LAST))
            for got, want in zip(decode(logits.cpu(), model.config.charset), answers[k : k + batch]):
                right += is_correct(want, got, case_sensitive)
    model.train()
    return right / max(1, len(answers))


def train(cfg: TrainConfig, resume: bool = False, progress: Callback | None = None) -> dict[str, Any]:
    """Train and write the best checkpoint to cfg.out; return its metadata."""
    cfg.check(resume)
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    last = Path(str(cfg.out) + ".last")
    state = torch.load(last, map_location=device, weights_only=True) if resume and last.is_file() else None
    if resume and state is None:
        raise ValueError(f"nothing to resume: {last} does not exist")
    cfg = dataclasses.replace(cfg, count=fit_count(cfg, state.get("count") if state is not None else None))
    loaded = load_training_data(cfg, progress and (lambda done, total: progress(TrainingProgress("data", done, total))))
    x, y, x_val, y_val = loaded.x, loaded.y, loaded.x_val, loaded.y_val
    model_cfg, case_sensitive, folding = loaded.config, loaded.case_sensitive, loaded.folding
    if not y:
        raise ValueError(f"--dataset {cfg.dataset} has {len(y_val)} item(s) to read, all of which validate (its first "
                         "tenth, at least one): give a data set of 2 items or more" if cfg.dataset is not None else
                         "no training items: give a larger --count")
    mixed = load_mix(cfg, model_cfg, folding) if cfg.mix is not None else None
    written = answer_lengths(y + y_val)  # the answer lengths the solver will keep to

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    model = CaptchaNet(model_cfg).to(memory_format=CHANNELS_LAST).to(device)  # oneDNN's fast layout on CPU
    init = cfg.init if cfg.init is not None or cfg.dataset is None or cfg.from_scratch else general_start(model_cfg)
    started_from = initialise(model, model_cfg, init, folding) if init is not None else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    augmenting = cfg.dataset is not None if cfg.augment is None else cfg.augment
    ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    targets, lengths = encode(y, model_cfg.charset)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)])

    def batch(chosen: torch.Tensor, jitter: torch.Generator, mixing: torch.Generator
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The model input, the concatenated targets and their lengths for these training items."""
        pixels, target, target_lengths = x[chosen], [targets[offsets[i] : offsets[i + 1]] for i in chosen.tolist()], lengths[chosen]
        if mixed is not None:
            pixels, target, target_lengths = mixed.join(pixels, target, target_lengths, mixing)
        inputs = pixels.to(device).float().div_(255.0).contiguous(memory_format=CHANNELS_LAST)  # (B, C, H, W)
        return (augment(inputs, jitter) if augmenting else inputs), torch.cat(target).to(device), target_lengths.to(device)

    epochs = cfg.epochs if cfg.epochs is not None else 8.0 if cfg.dataset is None else auto.epochs_for(len(y))
    most = max(1, math.ceil(epochs * len(y) / cfg.batch_size))
    if state is not None and "total" in state:
        total = state["total"]  # the run's own length, however long its steps take now
    elif cfg.minutes is not None:  # the schedule fits the minutes given, rather than being cut off by them
        step_seconds, eval_seconds = _probe(model, batch, ctc, x_val, y_val, device, case_sensitive, len(y), cfg)
        total = auto.steps_in(cfg.minutes, time.perf_counter() - start, step_seconds, eval_seconds,
                              most if cfg.epochs is not None or cfg.dataset is None else None)
    else:
        total = most
    every = cfg.eval_every or auto.eval_every(total)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=total, pct_start=0.15)
    order = torch.Generator().manual_seed(cfg.seed)
    jitter = torch.Generator().manual_seed(cfg.seed + 1)
    mixing = torch.Generator().manual_seed(cfg.seed + 2)  # which `mix` items join each batch
    step, best, history = 0, -1.0, []
    permutation = torch.randperm(len(y), generator=order)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        order.set_state(state["order"])
        if "jitter" in state:
            jitter.set_state(state["jitter"])
        if "mixing" in state:
            mixing.set_state(state["mixing"])
        step, best, history = state["step"], state["best"], state["history"]
        permutation = state["permutation"]
        start -= state["seconds"]
    per_epoch = max(1, len(y) // cfg.batch_size)
    model.train()
    meta: dict[str, Any] = {}
    while step < total:
        if step and step % per_epoch == 0:  # a new epoch, a new order
            permutation = torch.randperm(len(y), generator=order)
        k = (step % per_epoch) * cfg.batch_size
        loss = _step(model, optimizer, ctc, *batch(permutation[k : k + cfg.batch_size], jitter, mixing))
        schedule.step()
        step += 1
        out_of_time = cfg.minutes is not None and time.perf_counter() - start > cfg.minutes * 60
        if step % every == 0 or step == total or out_of_time:
            acc = accuracy(model, x_val, y_val, device, case_sensitive)
            seconds = time.perf_counter() - start
            history.append({"step": step, "seconds": round(seconds, 1), "loss": round(loss.item(), 4), "val_accuracy": acc})
            if acc > best:
                best = acc
                meta = save(cfg, model, model_cfg, loaded.preset, case_sensitive, folding, loaded.data_hash, len(y), len(y_val),
                            history, device, started_from, written, mixed.about if mixed is not None else None, loaded.described)
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                        "order": order.get_state(), "jitter": jitter.get_state(), "mixing": mixing.get_state(), "permutation": permutation, "step": step, "best": best, "history": history, "seconds": seconds,
                        "total": total, "count": cfg.count}, last)
            if progress:
                progress(TrainingProgress("train", step, total, loss.item(), acc, seconds))
        if out_of_time:
            break
    said = auto.warnings(history, total, cut_short=step < total, started=started_from is not None,
                         generated=cfg.dataset is None)
    if said and meta:  # the checkpoint says so too, with the whole curve
        annotate(cfg.out, warnings=said, history=history)
    return {**meta, "warnings": said} if meta else meta


def _step(model: CaptchaNet, optimizer: torch.optim.Optimizer, ctc: nn.CTCLoss, inputs: torch.Tensor,
          target: torch.Tensor, target_lengths: torch.Tensor) -> torch.Tensor:
    """One optimisation step on a batch; the loss."""
    logits = model(inputs)  # (B, T, classes)
    log_probs = logits.log_softmax(-1).transpose(0, 1)  # (T, B, classes), as CTCLoss wants
    loss = ctc(log_probs, target, torch.full((len(inputs),), log_probs.shape[0], dtype=torch.long), target_lengths)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    optimizer.step()
    return loss


def _probe(model: CaptchaNet, batch: Callable[..., tuple[torch.Tensor, ...]], ctc: nn.CTCLoss, x_val: torch.Tensor,
           y_val: Sequence[str], device: torch.device, case_sensitive: bool, items: int, cfg: TrainConfig
           ) -> tuple[float, float]:
    """Seconds per training step and per validation pass, timed on a copy of the model (two steps of
    warm-up, then six), so that the run itself, and its random streams, are untouched."""
    import copy

    trial = copy.deepcopy(model)
    optimizer = torch.optim.AdamW(trial.parameters(), lr=cfg.lr / 25)
    streams = [torch.Generator().manual_seed(cfg.seed + 3) for _ in range(2)]
    chosen = torch.arange(min(items, cfg.batch_size))
    for k in range(8):
        if k == 2:
            begin = time.perf_counter()
        _step(trial, optimizer, ctc, *batch(chosen, *streams))
    step_seconds = (time.perf_counter() - begin) / 6
    begin = time.perf_counter()
    accuracy(trial, x_val, y_val, device, case_sensitive)
    return step_seconds, time.perf_counter() - begin
