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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from captchas.scoring import is_correct  # the one scoring rule
from solvers.cnn import CNNError
from solvers.cnn.checkpoint import annotate, check_export, compact, general_start, initialise, load_checkpoint, save
from solvers.cnn import auto, schedule
from solvers.cnn.data import answer_lengths, augment, encode, fit_count, load_mix, load_training_data, unlabelled_for
from solvers.cnn import dddd
from solvers.cnn.config import CONFIDENT, PSEUDO_ROUNDS, TrainConfig  # noqa: F401 (re-exported: train.TrainConfig)
from solvers.cnn.model import CaptchaNet, decode

CHANNELS_LAST = torch.channels_last  # NHWC: convolutions and pooling run 1.1-1.3x faster per training step on CPU


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
        raise CNNError("--device cuda: no CUDA device here; use --device cpu or auto")
    if device not in ("cpu", "cuda"):
        raise CNNError(f"unknown device {device!r}: use cpu, cuda or auto")
    return torch.device(device)


def accuracy(model: nn.Module, x: torch.Tensor, answers: Sequence[str], device: torch.device,
             case_sensitive: bool, batch: int = 512, features: torch.Tensor | None = None) -> float:
    """Exact-match accuracy of greedy decoding (of the cached `features` of x, where given: dddd.py)."""
    model.eval()
    right = 0
    with torch.inference_mode():
        for k in range(0, len(answers), batch):
            logits = _logits(model, x[k : k + batch], None if features is None else features[k : k + batch], device)
            for got, want in zip(decode(logits.cpu(), model.config.charset), answers[k : k + batch]):  # type: ignore[union-attr, arg-type]
                right += is_correct(want, got, case_sensitive)
    model.train()
    return right / max(1, len(answers))


def train(cfg: TrainConfig, resume: bool = False, progress: Callback | None = None,
          clock: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    """Train and write the best checkpoint to cfg.out; return its metadata. `clock` times the
    --minutes budget (a test gives a fake one)."""
    cfg.check(resume)
    start = clock()
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    last = Path(str(cfg.out) + ".last")
    state = torch.load(last, map_location=device, weights_only=True) if resume and last.is_file() else None
    if resume and state is None:
        raise CNNError(f"nothing to resume: {last} does not exist")
    cfg = dataclasses.replace(cfg, count=fit_count(cfg, state.get("count") if state is not None else None))
    loaded = load_training_data(cfg, progress and (lambda done, total: progress(TrainingProgress("data", done, total))))
    x, y, x_val, y_val = loaded.x, loaded.y, loaded.x_val, loaded.y_val
    model_cfg, case_sensitive, folding = loaded.config, loaded.case_sensitive, loaded.folding
    if not y:
        raise CNNError(f"--dataset {cfg.dataset} has {len(y_val)} item(s) to read, all of which validate (its first "
                       "tenth, at least one): give a data set of 2 items or more" if cfg.dataset is not None else
                       "no training items: give a larger --count")
    mixed = load_mix(cfg, model_cfg, folding) if cfg.mix is not None else None
    unlabelled = unlabelled_for(cfg, model_cfg)  # refused before training where it shares an image with held-out items
    written = answer_lengths(y + y_val)  # the answer lengths the solver will keep to

    cores = max(1, os.cpu_count() or 1)
    torch.set_num_threads(cores)
    base: dict[str, torch.Tensor] | None = None  # ddddocr's weights as shipped: a checkpoint stores what differs
    model: nn.Module
    started_from: dict[str, Any] | None
    if model_cfg.arch == "ddddocr":
        model, started_from = dddd.start(model_cfg, folding)
        base = dddd.trunk_weights(model)
        model = model.to(memory_format=CHANNELS_LAST).to(device)
    else:
        model = CaptchaNet(model_cfg).to(memory_format=CHANNELS_LAST).to(device)  # oneDNN's fast layout on CPU
        init = cfg.init if cfg.init is not None or cfg.dataset is None or cfg.from_scratch else general_start(model_cfg)
        started_from = initialise(model, model_cfg, init, folding) if init is not None else None
    if base is not None:  # ddddocr's trained trunk moves at a small share of the rate its new head learns at
        trunk = list(model.convs.parameters())  # type: ignore[union-attr]
        rest = [p for p in model.parameters() if all(p is not q for q in trunk)]
        groups: list[dict[str, Any]] = [{"params": trunk, "scale": dddd.TRUNK_LR}, {"params": rest, "scale": 1.0}]
    else:
        groups = [{"params": list(model.parameters()), "scale": 1.0}]
    optimizer = torch.optim.AdamW([{**g, "lr": cfg.lr * g["scale"]} for g in groups], lr=cfg.lr, weight_decay=1e-4)
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
    budget = None
    if cfg.minutes is not None:  # a budget to spend: the learning rate follows the clock (schedule.py)
        budget = schedule.Budget(cfg.minutes * 60.0, start, most if cfg.epochs is not None or cfg.dataset is None else None,
                                 clock)
        total = most if budget.steps else 0  # 0: as many steps as the minutes hold
        plan: Any = None
    else:
        total = state["total"] if state is not None and "total" in state else most
        plan = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[cfg.lr * g["scale"] for g in groups],
                                                   total_steps=total, pct_start=0.15)
    every = cfg.eval_every or (auto.eval_every(total) if budget is None else None)
    order = torch.Generator().manual_seed(cfg.seed)
    jitter = torch.Generator().manual_seed(cfg.seed + 1)
    mixing = torch.Generator().manual_seed(cfg.seed + 2)  # which `mix` items join each batch
    step, best, history = 0, -1.0, []
    permutation = torch.randperm(len(y), generator=order)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if plan is not None:
            plan.load_state_dict(state["schedule"])
        order.set_state(state["order"])
        if "jitter" in state:
            jitter.set_state(state["jitter"])
        if "mixing" in state:
            mixing.set_state(state["mixing"])
        step, best, history = state["step"], state["best"], state["history"]
        permutation = state["permutation"]
        start -= state["seconds"]
        if budget is not None:
            budget.deadline -= state["seconds"]
            budget.resume(state.get("trained", 0.0))
    x_labelled, y_labelled = x, y
    rounds = [r for r in PSEUDO_ROUNDS if unlabelled is not None]
    if unlabelled is not None:
        loaded.described["unlabelled"] = {"folder": str(cfg.unlabelled), "images": len(unlabelled), "rounds": []}
    if state is not None and state.get("pseudo"):  # the pseudo-labelled items of the round before the interruption
        kept, said = state["pseudo"]
        x, y = torch.cat([x_labelled, unlabelled[kept]]), y_labelled + said  # type: ignore[index]
        targets, lengths = encode(y, model_cfg.charset)
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)])
    if state is not None and unlabelled is not None:
        rounds = [r for r in rounds if r > state.get("fraction", 0.0)]
        loaded.described["unlabelled"]["rounds"] = state.get("rounds", [])
    pseudo: tuple[list[int], list[str]] | None = state.get("pseudo") if state is not None else None
    per_epoch = max(1, len(y) // cfg.batch_size)
    model.train()
    meta: dict[str, Any] = {}
    loss: torch.Tensor | None = None

    def validate() -> None:
        """A validation pass: the curve, the best checkpoint, the resumable state, the progress line."""
        nonlocal best, meta
        began = clock()
        acc = accuracy(model, x_val, y_val, device, case_sensitive, features=cache.get("val"))
        seconds = clock() - start
        history.append({"step": step, "seconds": round(seconds, 1), "loss": round(loss.item(), 4) if loss is not None
                        else None, "val_accuracy": acc, **({"threads": threads.current} if threads is not None else {}),
                        **({"frozen": True} if cache else {})})
        if acc > best:
            best = acc
            meta = save(cfg, model, model_cfg, loaded.preset, case_sensitive, folding, loaded.data_hash, len(y), len(y_val),
                        history, device, started_from, written, mixed.about if mixed is not None else None, loaded.described,
                        dddd.changed(model, base) if base is not None else None)
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "schedule": plan.state_dict() if plan is not None else None, "order": order.get_state(),
                    "jitter": jitter.get_state(), "mixing": mixing.get_state(), "permutation": permutation, "step": step,
                    "best": best, "history": history, "seconds": seconds, "total": total, "count": cfg.count,
                    "trained": budget.trained() if budget is not None else None, "pseudo": pseudo,
                    "fraction": done(),
                    "rounds": loaded.described.get("unlabelled", {}).get("rounds", [])}, last)
        if budget is not None:
            budget.measured(clock() - began)
        if progress:
            shown_total = total or (max(step, round(step / fraction)) if budget is not None and fraction > 0 else step)
            progress(TrainingProgress("train", step, shown_total, loss.item() if loss is not None else None, acc, seconds))

    threads = schedule.Threads(cores, torch.set_num_threads) if budget is not None and device.type == "cpu" else None
    if threads is not None:  # a budget is spent best with the threads that are quickest under the load there is
        threads.check()
    cache: dict[str, torch.Tensor] = {}  # the trunk's features of every item, while it is frozen (dddd.py)

    def done() -> float:
        """The share of the run done: of the budget, or of the steps."""
        return fraction if budget is not None else step / max(1, total)

    def frozen() -> bool:
        """Whether this step trains ddddocr's LSTM and head only; the trunk is (un)frozen to match."""
        now = base is not None and done() < cfg.freeze
        if now and not cache:
            for p in model.convs.parameters():  # type: ignore[union-attr]
                p.requires_grad_(False)
            cache["x"], cache["val"] = (_features(model, v, device) for v in (x, x_val))
            if unlabelled is not None:
                cache["unlabelled"] = _features(model, unlabelled, device)
        elif not now and cache:
            for p in model.convs.parameters():  # type: ignore[union-attr]
                p.requires_grad_(True)
            cache.clear()
        return now

    fraction = budget.fraction(step) if budget is not None else 0.0
    if budget is not None and not history:
        validate()  # where the run starts from, and what a validation pass costs: kept back for the last one
    marked = math.floor(fraction * schedule.CURVE)
    took = 0.0  # seconds the last step took: the next one is expected to take as long
    while (step < total) if budget is None else fraction < 1.0:
        if step and step % per_epoch == 0:  # a new epoch, a new order
            permutation = torch.randperm(len(y), generator=order)
        if budget is not None:
            lr, beta = schedule.one_cycle(budget.fraction(step + 1, took), cfg.lr)  # where this step will end
            for group in optimizer.param_groups:
                group["lr"], group["betas"] = lr * group.get("scale", 1.0), (beta, group["betas"][1])
        k = (step % per_epoch) * cfg.batch_size
        if threads is not None:
            threads.before()
        began = clock()
        chosen = permutation[k : k + cfg.batch_size]
        if frozen():
            features = cache["x"][chosen].to(device).float()
            target = torch.cat([targets[offsets[i] : offsets[i + 1]] for i in chosen.tolist()]).to(device)
            loss = _step(model, optimizer, ctc, features, target, lengths[chosen].to(device), model.read)  # type: ignore[arg-type]
        else:
            loss = _step(model, optimizer, ctc, *batch(chosen, jitter, mixing))
        took = clock() - began
        if threads is not None:
            threads.after(took)
        if plan is not None:
            plan.step()
        step += 1
        if budget is not None:
            fraction = budget.fraction(step)
            due = math.floor(fraction * schedule.CURVE) > marked or fraction >= 1.0 or bool(every and step % every == 0)
            marked = math.floor(fraction * schedule.CURVE)
        else:
            due = step % every == 0 or step == total  # type: ignore[operator]
        if due:
            validate()
            if threads is not None:
                threads.check()
        if rounds and done() >= rounds[0] and unlabelled is not None:  # a round of pseudo-labels (PSEUDO_ROUNDS)
            while rounds and done() >= rounds[0]:
                rounds.pop(0)
            answers, sure = _read(model, unlabelled, device, written, cache.get("unlabelled"))
            kept = [i for i, (a, c) in enumerate(zip(answers, sure)) if c >= CONFIDENT and a]
            pseudo = (kept, [answers[i] for i in kept])
            x, y = torch.cat([x_labelled, unlabelled[kept]]), y_labelled + pseudo[1]
            targets, lengths = encode(y, model_cfg.charset)
            offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)])
            per_epoch = max(1, len(y) // cfg.batch_size)
            permutation = torch.randperm(len(y), generator=order)
            if cache:  # the trunk is frozen: the new items' features join the cached ones
                cache["x"] = torch.cat([cache["x"][: len(y_labelled)], cache["unlabelled"][kept]])
            loaded.described["unlabelled"]["rounds"].append({"step": step, "kept": len(kept)})
            model.train()
    if budget is not None and history[-1]["step"] != step:
        validate()
    if not meta and cfg.out.is_file():  # resumed, with no better model since: the one written before
        meta = {k: v for k, v in load_checkpoint(cfg.out).items() if k != "state_dict"}
    if meta:
        meta["history"] = history  # the whole curve, past the best step too
    if meta and unlabelled is not None:  # every round, those after the best checkpoint too
        meta["data"] = {**meta["data"], "unlabelled": loaded.described["unlabelled"]}
        annotate(cfg.out, data=meta["data"])
    if meta:  # a file too heavy to ship is halved where that reads the same; then its ONNX graph must read as it does
        meta["compact"] = compact(cfg.out, x_val)  # (the solver refuses one that does not)
        meta["export"] = check_export(cfg.out, x_val)
        if meta["export"].get("differ"):
            raise CNNError(f"{cfg.out}: its ONNX graph read {meta['export']['differ']} of {meta['export']['items']} "
                           "validation items otherwise than the trained model: the solver refuses it with engine "
                           "onnxruntime; read it with -o engine=torch, and report it")
    said = auto.warnings(history, started=started_from is not None, generated=cfg.dataset is None)
    if said and meta:  # the checkpoint says so too, with the whole curve
        annotate(cfg.out, warnings=said, history=history)
    return {**meta, "warnings": said} if meta else meta


def _logits(model: nn.Module, x: torch.Tensor, features: torch.Tensor | None, device: torch.device) -> torch.Tensor:
    """The model's logits for items `x` (uint8 pixels), or for their cached trunk `features` where given."""
    if features is not None:
        return model.read(features.to(device).float())  # type: ignore[operator, no-any-return]
    return model(x.to(device).float().div_(255.0).contiguous(memory_format=CHANNELS_LAST))  # type: ignore[no-any-return]


def _read(model: nn.Module, x: torch.Tensor, device: torch.device, lengths: tuple[int, int],
          features: torch.Tensor | None = None, batch: int = 256) -> tuple[list[str], list[float]]:
    """The model's answers to the items `x` (uint8 pixels, or their cached trunk `features`), of the answer
    lengths trained on, and how sure it is of each (read_out)."""
    from solvers.cnn.model import read_out

    model.eval()
    answers: list[str] = []
    sure: list[float] = []
    with torch.inference_mode():
        for k in range(0, len(x), batch):
            logits = _logits(model, x[k : k + batch], None if features is None else features[k : k + batch], device)
            a, c = read_out(logits.cpu(), model.config.charset, lengths)  # type: ignore[union-attr, arg-type]
            answers += a
            sure += c
    return answers, sure


def _features(model: nn.Module, x: torch.Tensor, device: torch.device, batch: int = 64) -> torch.Tensor:
    """ddddocr's trunk's features of the items `x` (uint8 pixels), in float16 to halve their memory."""
    out = []
    with torch.inference_mode():
        for k in range(0, len(x), batch):
            pixels = x[k : k + batch].to(device).float().div_(255.0).contiguous(memory_format=CHANNELS_LAST)
            out.append(model.trunk(pixels).half().cpu())  # type: ignore[operator]
    return torch.cat(out) if out else torch.zeros(0)


def _step(model: nn.Module, optimizer: torch.optim.Optimizer, ctc: nn.CTCLoss, inputs: torch.Tensor,
          target: torch.Tensor, target_lengths: torch.Tensor, forward: Callable[..., torch.Tensor] | None = None
          ) -> torch.Tensor:
    """One optimisation step on a batch (through `forward`, where given: model's features to logits); the loss."""
    logits = (forward or model)(inputs)  # (B, T, classes)
    log_probs = logits.log_softmax(-1).transpose(0, 1)  # (T, B, classes), as CTCLoss wants
    loss = ctc(log_probs, target, torch.full((len(inputs),), log_probs.shape[0], dtype=torch.long), target_lengths)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    optimizer.step()
    return loss

