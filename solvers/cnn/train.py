"""Train the CNN: from a preset (fresh seeded data made by worker processes) or a data set folder,
to a checkpoint that carries its config, charset, preset, data hash and versions.

A readable loop, not a framework: generate, then step, evaluate every so often, keep the best.
Deterministic on CPU given the seed (data, initial weights and batch order all derive from it).
"""

from __future__ import annotations

import hashlib
import math
import multiprocessing
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from captchas import dataset as ds
from captchas.generate import item_rng
from captchas.schemes import ImageScheme, image_scheme
from captchas.scoring import is_correct, normalise  # the one scoring rule
from solvers.cnn.model import CaptchaNet, CNNConfig, decode, input_bytes, stack

CHECKPOINT_FORMAT = 1
VAL_SEED_OFFSET = 1_000_003  # validation items come from seed + this: never the training stream
CHANNELS_LAST = torch.channels_last  # NHWC: convolutions and pooling run 1.1-1.3x faster per training step on CPU


@dataclass(frozen=True)
class TrainConfig:
    """One training run."""

    out: Path  # the best checkpoint goes here; `out` + ".last" holds the resumable state
    preset: str | None = "medium"  # train on fresh items of this preset, or
    dataset: Path | None = None  # on this data set folder (its first 10 % become validation)
    count: int = 60_000  # training items to generate (preset mode)
    val_count: int = 1_000  # validation items (preset mode)
    seed: int = 0
    epochs: float = 8.0  # passes over the training items
    minutes: float | None = None  # wall-clock cap; training stops there and keeps the best
    batch_size: int = 128
    lr: float = 3e-3  # peak of a one-cycle schedule
    eval_every: int = 250  # steps
    device: str = "cpu"  # cpu | cuda | auto
    workers: int = 2  # processes that render the training data
    model: dict[str, Any] = field(default_factory=dict)  # CNNConfig overrides (height, width, channels, hidden, colour, strided)
    augment: bool | None = None  # random affine, polarity and contrast per item; None: on for --dataset only
    init: Path | None = None  # start from this checkpoint's weights (fine-tuning); see _initialise for what may differ
    mix: Path | None = None  # with `dataset`: a second data set (generated, say) whose items are added to every batch
    mix_share: float = 0.25  # the share of each batch's items that come from `mix`; the real items per batch stay batch_size
    mix_count: int | None = None  # read only the first this many of `mix`'s items (all: None)


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


def render_items(scheme: ImageScheme, seed: int, indices: Sequence[int], config: CNNConfig, workers: int,
                 progress: Callback | None = None) -> tuple[torch.Tensor, list[str]]:
    """Render items straight to model input: (N, 1, H, W) uint8, and their answers."""
    chunks = [list(indices[k : k + 64]) for k in range(0, len(indices), 64)]
    context = multiprocessing.get_context("fork" if sys.platform != "win32" else "spawn")
    images: list[bytes] = []
    answers: list[str] = []
    with context.Pool(max(1, workers)) as pool:
        for data, texts in pool.imap(_render_chunk, [(scheme, seed, c, config) for c in chunks]):
            images += data
            answers += texts
            if progress:
                progress(TrainingProgress("data", len(answers), len(indices)))
    return stack(images, config), answers


def _render_chunk(job: tuple[ImageScheme, int, list[int], CNNConfig]) -> tuple[list[bytes], list[str]]:
    scheme, seed, indices, config = job  # no torch here: a forked child must not touch its thread pool
    data, texts = [], []
    for i in indices:
        rng = item_rng(seed, i)
        answer = scheme.sample_answer(rng)
        data.append(input_bytes(scheme.render(answer, rng), config))
        texts.append(answer)
    return data, texts


def load_folder(data: ds.Dataset, config: CNNConfig) -> tuple[torch.Tensor, list[str]]:
    """A data set as model input, checked against its manifest by the runner's loader."""
    items = ds.load_images(data)  # the checked image loader
    return stack([input_bytes(image, config) for _, image in items], config), [s.answer for s, _ in items]


def folds(charset: str, case_sensitive: bool) -> bool:
    """Whether to train on case-folded answers: a case-insensitive set whose charset holds both
    cases of a letter, so that 'a' and 'A' become one class, as the scoring treats them."""
    return not case_sensitive and any(c != c.casefold() and c.casefold() in charset for c in charset)


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per-item random affine (scale, rotation, shear, shift), polarity flip and contrast, on a
    float batch (B, 1, H, W) in [0, 1]. For small real data sets: fresh preset data needs none."""
    import torch.nn.functional as F

    b = x.shape[0]

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(b, generator=generator) * (hi - lo) + lo

    angle, shear = uniform(-0.09, 0.09), uniform(-0.15, 0.15)  # radians; shear as a tangent
    scale = uniform(0.9, 1.1)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = torch.cos(angle) / scale
    theta[:, 0, 1] = (-torch.sin(angle) + shear) / scale
    theta[:, 1, 0] = torch.sin(angle) / scale
    theta[:, 1, 1] = torch.cos(angle) / scale
    theta[:, 0, 2] = uniform(-0.06, 0.06)
    theta[:, 1, 2] = uniform(-0.12, 0.12)
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    flip = (torch.rand(b, generator=generator) < 0.5).to(x.device).view(b, 1, 1, 1)
    x = torch.where(flip, 1.0 - x, x)
    contrast, shift = uniform(0.7, 1.3).to(x.device), uniform(-0.1, 0.1).to(x.device)
    return ((x - 0.5) * contrast.view(b, 1, 1, 1) + 0.5 + shift.view(b, 1, 1, 1)).clamp_(0.0, 1.0)


def encode(answers: Sequence[str], charset: str) -> tuple[torch.Tensor, torch.Tensor]:
    """CTC targets: concatenated class indices and the length of each answer."""
    index = {c: i + 1 for i, c in enumerate(charset)}
    missing = sorted({c for a in answers for c in a if c not in index})
    if missing:
        raise ValueError(f"answers use characters outside the charset: {''.join(missing)}")
    flat = torch.tensor([index[c] for a in answers for c in a], dtype=torch.long)
    return flat, torch.tensor([len(a) for a in answers], dtype=torch.long)


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
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    folding = False
    if cfg.dataset is not None:
        data = ds.read_dataset(cfg.dataset)
        info = data.info
        charset = "".join(sorted(set(info.get("charset") or "")))
        folding = folds(charset, data.case_sensitive)
        if folding:
            charset = "".join(sorted(set(charset.casefold())))
        model_cfg = CNNConfig(charset=charset, **cfg.model)
        x_all, y_all = load_folder(data, model_cfg)
        if folding:
            y_all = [a.casefold() for a in y_all]
        n_val = max(1, len(y_all) // 10)
        x_val, y_val, x, y = x_all[:n_val], y_all[:n_val], x_all[n_val:], y_all[n_val:]
        case_sensitive, preset, data_hash = data.case_sensitive, info.get("preset"), data.hash
    else:
        scheme = image_scheme(cfg.preset)
        model_cfg = CNNConfig(charset=scheme.spec.charset, **cfg.model)
        x, y = render_items(scheme, cfg.seed, range(cfg.count), model_cfg, cfg.workers, progress)
        x_val, y_val = render_items(scheme, cfg.seed + VAL_SEED_OFFSET, range(cfg.val_count), model_cfg, cfg.workers)
        case_sensitive, preset = scheme.spec.case_sensitive, cfg.preset
        data_hash = hashlib.sha256(repr((scheme.knobs(), cfg.seed, cfg.count)).encode()).hexdigest()
    if not y:
        raise ValueError("no training items: give a larger --count or data set")
    mixed = _load_mix(cfg, model_cfg, folding) if cfg.mix is not None else None
    written = answer_lengths(y + y_val)  # the answer lengths the solver will keep to

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    model = CaptchaNet(model_cfg).to(memory_format=CHANNELS_LAST).to(device)  # oneDNN's fast layout on CPU
    started_from = _initialise(model, model_cfg, cfg.init) if cfg.init is not None else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    total = max(1, math.ceil(cfg.epochs * len(y) / cfg.batch_size))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=total, pct_start=0.15)
    order = torch.Generator().manual_seed(cfg.seed)
    jitter = torch.Generator().manual_seed(cfg.seed + 1)
    mixing = torch.Generator().manual_seed(cfg.seed + 2)  # which `mix` items join each batch
    augmenting = cfg.dataset is not None if cfg.augment is None else cfg.augment
    ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    step, best, history = 0, -1.0, []
    permutation = torch.randperm(len(y), generator=order)
    last = Path(str(cfg.out) + ".last")
    if resume:
        if not last.is_file():
            raise ValueError(f"nothing to resume: {last} does not exist")
        state = torch.load(last, map_location=device, weights_only=True)
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
    targets, lengths = encode(y, model_cfg.charset)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)])
    per_epoch = max(1, len(y) // cfg.batch_size)
    model.train()
    meta: dict[str, Any] = {}
    while step < total:
        if step and step % per_epoch == 0:  # a new epoch, a new order
            permutation = torch.randperm(len(y), generator=order)
        k = (step % per_epoch) * cfg.batch_size
        batch = permutation[k : k + cfg.batch_size]
        pixels, target, target_lengths = x[batch], [targets[offsets[i] : offsets[i + 1]] for i in batch.tolist()], lengths[batch]
        if mixed is not None:
            pixels, target, target_lengths = mixed.join(pixels, target, target_lengths, mixing)
        inputs = pixels.to(device).float().div_(255.0).contiguous(memory_format=CHANNELS_LAST)  # (B, C, H, W)
        if augmenting:
            inputs = augment(inputs, jitter)
        logits = model(inputs)  # (B, T, classes)
        log_probs = logits.log_softmax(-1).transpose(0, 1)  # (T, B, classes), as CTCLoss wants
        loss = ctc(log_probs, torch.cat(target).to(device), torch.full((len(inputs),), log_probs.shape[0], dtype=torch.long),
                   target_lengths.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        schedule.step()
        step += 1
        out_of_time = cfg.minutes is not None and time.perf_counter() - start > cfg.minutes * 60
        if step % cfg.eval_every == 0 or step == total or out_of_time:
            acc = accuracy(model, x_val, y_val, device, case_sensitive)
            seconds = time.perf_counter() - start
            history.append({"step": step, "seconds": round(seconds, 1), "loss": round(loss.item(), 4), "val_accuracy": acc})
            if acc > best:
                best = acc
                meta = _save(cfg, model, model_cfg, preset, case_sensitive, folding, data_hash, len(y), len(y_val), history,
                             device, started_from, written, mixed.about if mixed is not None else None)
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                        "order": order.get_state(), "jitter": jitter.get_state(), "mixing": mixing.get_state(), "permutation": permutation, "step": step, "best": best, "history": history, "seconds": seconds}, last)
            if progress:
                progress(TrainingProgress("train", step, total, loss.item(), acc, seconds))
        if out_of_time:
            break
    return meta


@dataclass(frozen=True)
class _Mix:
    """A second data set's items, some of which join every batch of the first's."""

    x: torch.Tensor
    targets: list[torch.Tensor]
    per_batch: int
    about: dict[str, Any]  # for the checkpoint and its card: which data, how many items, what share

    def join(self, pixels: torch.Tensor, target: list[torch.Tensor], target_lengths: torch.Tensor,
             generator: torch.Generator) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """The batch with `per_batch` items of this set added, drawn at random (with replacement between batches)."""
        pick = torch.randint(len(self.targets), (self.per_batch,), generator=generator).tolist()
        added = [self.targets[i] for i in pick]
        return (torch.cat([pixels, self.x[pick]]), target + added,
                torch.cat([target_lengths, torch.tensor([len(t) for t in added], dtype=torch.long)]))


def _load_mix(cfg: TrainConfig, model_cfg: CNNConfig, folding: bool) -> _Mix:
    """Read `cfg.mix` for mixing into the batches of `cfg.dataset`: its answers must be ones the model can write."""
    assert cfg.mix is not None
    if cfg.dataset is None:
        raise ValueError("--mix adds a second data set's items to the batches of --dataset: give --dataset too")
    if not 0.0 < cfg.mix_share < 1.0:
        raise ValueError(f"--mix-share is the share of each batch taken from --mix, between 0 and 1 (exclusive), got {cfg.mix_share}")
    if cfg.mix_count is not None and cfg.mix_count < 1:
        raise ValueError(f"--mix-count must be at least 1, got {cfg.mix_count}")
    data = ds.read_dataset(cfg.mix)
    answers = [s.answer.casefold() if folding else s.answer for s in data.samples[: cfg.mix_count]]
    missing = sorted({c for a in answers for c in a if c not in model_cfg.charset})
    if missing:  # said before any image is read
        raise ValueError(f"--mix {cfg.mix}: its answers use {''.join(missing)!r}, which --dataset's charset lacks: "
                         "generate the mix set with that charset")
    x = stack([input_bytes(image, model_cfg) for _, image in ds.load_images(data, cfg.mix_count)], model_cfg)
    flat, sizes = encode(answers, model_cfg.charset)
    per_batch = max(1, round(cfg.batch_size * cfg.mix_share / (1.0 - cfg.mix_share)))
    about = {"dataset": str(cfg.mix), "sha256": data.hash, "items": len(answers), "share": cfg.mix_share,
             "per_batch": per_batch}
    return _Mix(x, list(flat.split(sizes.tolist())), per_batch, about)


def _initialise(model: CaptchaNet, model_cfg: CNNConfig, path: Path) -> dict[str, Any]:
    """Load a checkpoint's weights into `model`; return what the card says of it.

    The input size may differ (convolutions slide and the last pooling spans whatever height is left),
    and so may the first stage's kind (`strided`: its convolution has the same shape) and the GRU's
    size: then the GRU and the head start from random weights (a layer loads whole or not at all),
    named in the card as `fresh`."""
    from solvers.cnn.solver import load_checkpoint

    state = load_checkpoint(path)  # weights_only=True, with its refusals
    free = ("height", "width", "strided", "hidden")  # every other field changes what the convolutions read or write
    theirs = {k: v for k, v in CNNConfig.from_dict(state["config"]).to_dict().items() if k not in free}
    ours = {k: v for k, v in model_cfg.to_dict().items() if k not in free}
    if theirs != ours:
        raise ValueError(f"--init {path}: its model config {state['config']} differs from this run's "
                         f"{model_cfg.to_dict()} beyond input size, --strided and --hidden: give matching "
                         "--channels/--colour and data")
    own, given = model.state_dict(), state["state_dict"]
    misfits = {_layer(k) for k, v in own.items() if k not in given or given[k].shape != v.shape}
    fitting = {k: v for k, v in given.items() if k in own and _layer(k) not in misfits}  # whole layers, never half
    fresh = sorted(k for k in own if k not in fitting)
    model.load_state_dict(fitting, strict=False)
    best = max(state.get("history") or [{"val_accuracy": None}], key=lambda h: h["val_accuracy"] or 0)
    return {"path": str(path), "sha256": ds.sha256_bytes(path.read_bytes()), "data": state.get("data"),
            "train": state.get("train"), "val_accuracy": best["val_accuracy"],
            "input": [state["config"]["width"], state["config"]["height"]], "config": state["config"], "fresh": fresh}


def answer_lengths(answers: Sequence[str]) -> tuple[int, int]:
    """The shortest and longest answer, in characters as scoring counts them (`normalise`: no white space)."""
    sizes = [len(normalise(a, case_sensitive=True)) for a in answers]
    return min(sizes), max(sizes)


def record_lengths(checkpoint: Path, dataset: Path) -> tuple[int, int]:
    """Write into a checkpoint trained before `train` recorded answer lengths the lengths of the data set
    it was trained on; refused unless the data set's hash is the one the checkpoint names. The weights
    and everything else in it stay as they were."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    data = ds.read_dataset(dataset)
    trained_on = (state.get("data") or {}).get("sha256")
    if trained_on != data.hash:
        raise ValueError(f"{checkpoint} was trained on data {str(trained_on)[:12]}, not {dataset} ({data.hash[:12]})")
    lengths = answer_lengths([s.answer for s in data.samples])
    tmp = Path(str(checkpoint) + ".tmp")
    torch.save({**state, "lengths": list(lengths)}, tmp)
    tmp.replace(checkpoint)
    return lengths


def _layer(key: str) -> str:
    """The layer a state_dict key belongs to: `rnn.weight_hh_l0` -> `rnn`, `features.0.weight` -> `features.0`."""
    return key.rsplit(".", 1)[0]


def _save(cfg: TrainConfig, model: CaptchaNet, model_cfg: CNNConfig, preset: str | None, case_sensitive: bool,
          folded: bool, data_hash: str, n_train: int, n_val: int, history: list[dict[str, Any]], device: torch.device,
          started_from: dict[str, Any] | None = None, lengths: tuple[int, int] | None = None,
          mixed: dict[str, Any] | None = None) -> dict[str, Any]:
    import PIL

    meta = {
        "format": CHECKPOINT_FORMAT,
        "config": model_cfg.to_dict(),
        "charset": model_cfg.charset,
        "preset": preset,
        "case_sensitive": case_sensitive,
        "folded": folded,  # trained on case-folded answers: writes one case, for case-insensitive scoring
        "lengths": list(lengths) if lengths else None,  # shortest and longest answer trained on: the solver writes these
        "data": {"sha256": data_hash, "dataset": str(cfg.dataset) if cfg.dataset else None, "seed": cfg.seed,
                 "train_items": n_train, "val_items": n_val},
        "train": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        "history": history,
        "init": started_from,  # the checkpoint this run started from, if any
        "mix": mixed,  # the second data set mixed into every batch, if any
        "versions": {"torch": str(torch.__version__), "pillow": PIL.__version__, "python": platform.python_version()},
        "hardware": f"{device.type}: {torch.cuda.get_device_name() if device.type == 'cuda' else platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
    }
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    tmp = Path(str(cfg.out) + ".tmp")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    torch.save({**meta, "state_dict": state}, tmp)
    tmp.replace(cfg.out)
    return meta


def model_card(meta: dict[str, Any], command: str) -> str:
    """The training half of a model card (markdown); evaluation figures are added by whoever measures them."""
    best = max(meta["history"], key=lambda h: h["val_accuracy"])
    rows = "\n".join(f"| {h['step']} | {h['seconds']:.0f} | {h['loss']:.3f} | {h['val_accuracy']:.1%} |" for h in meta["history"])
    data = meta["data"]
    source = f"data set `{data['dataset']}`" if data["dataset"] else f"preset `{meta['preset']}`, fresh items"
    held_out = "the data set's first 10 %" if data["dataset"] else f"validation drawn from seed + {VAL_SEED_OFFSET:,}"
    augmented = meta["train"].get("augment")
    folded = ("\n- Answers case-folded for training (the set is scored case-insensitive): the model writes "
              f"`{meta['charset']}`" if meta.get("folded") else "")
    folded += "\n- Augmentation: random affine, polarity and contrast per item" if augmented or (
        augmented is None and data["dataset"]) else ""
    if meta.get("lengths"):
        shortest, longest = meta["lengths"]
        span = f"{shortest}" if shortest == longest else f"{shortest}-{longest}"
        folded += (f"\n- Answers trained on: {span} characters; the solver keeps its answers to these lengths "
                   "(`-o fit_length=False` does not)")
    mix = meta.get("mix")
    if mix:
        folded += (f"\n- Every batch also held {mix['per_batch']} items drawn from `{mix['dataset']}` (its first "
                   f"{mix['items']:,} items, data sha256 `{mix['sha256'][:16]}...`; {mix['share']:.0%} of each batch)")
    init = meta.get("init")
    if init:
        data0 = init["data"] or {}
        folded += (f"\n- Started from `{init['path']}` (sha256 `{init['sha256'][:16]}...`: {data0.get('train_items') or 0:,} "
                   f"items of seed {data0.get('seed', '?')}, best validation {init['val_accuracy']:.1%}; its own model card "
                   "tells how it was trained), not from random weights")
        w0, h0 = init.get("input") or [meta["config"]["width"], meta["config"]["height"]]
        if [w0, h0] != [meta["config"]["width"], meta["config"]["height"]]:
            folded += f"; those weights read {w0}x{h0} input, this model {meta['config']['width']}x{meta['config']['height']}"
        if init.get("fresh"):
            folded += (f"; its model was {init['config']}, so these started from random weights: "
                       f"{', '.join(f'`{k}`' for k in init['fresh'])}")
        folded += "\n"
    return f"""# CNN weights: {meta['preset'] or data['dataset']}

- Command: `{command}`
- Data: {source}, seed {data['seed']}: {data['train_items']:,} training items, {data['val_items']:,} validation items
  ({held_out}, never trained on); data sha256 `{data['sha256'][:16]}...`{folded}
- Model: {meta['config']}
- Hardware: {meta['hardware']}; versions: {meta['versions']}
- Best validation exact match: **{best['val_accuracy']:.1%}** at step {best['step']}, {best['seconds']:.0f} s of wall time
  (data rendering included)

## Time to accuracy

| step | wall s | loss | validation exact |
|---|---|---|---|
{rows}
"""
