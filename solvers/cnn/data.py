"""The CNN's data: a data set folder (read through the checked loader; auto.geometry looks at its
images first) or fresh seeded items of a scheme (rendered by worker processes), as model input; a
second data set mixed into every batch, the augmentation, the targets.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from captchas import dataset as ds
from captchas.images import ImageError, NotRegularFile, checked_bytes, decode_image, load_images, regular_bytes
from captchas.generate import item_rng
from captchas import schemes
from captchas.scoring import normalise
from captchas.schemes import Scheme
from solvers.cnn import CNNError, auto
from solvers.cnn.model import CNNConfig, input_bytes, stack

if TYPE_CHECKING:
    from solvers.cnn.config import TrainConfig

VAL_SEED_OFFSET = 1_000_003  # validation items come from seed + this: never the training stream
PROBE_SEED_OFFSET = 2_000_003  # items rendered only to time rendering, from seed + this
COUNT = 60_000  # training items rendered for a preset or scheme when --count is not given (and --minutes allows)
RENDER_SHARE = 1 / 3  # of --minutes that rendering may take when the count is fitted to them
RENDER_MOST = 0.75  # of --minutes that rendering a --count given may take, leaving a quarter at least to train
FEWEST = 1_000  # training items below which a fitted count is refused rather than trained on


@dataclass(frozen=True)
class Loaded:
    """A run's training and validation items as model input, and what the checkpoint says of them."""

    x: torch.Tensor
    y: list[str]
    x_val: torch.Tensor
    y_val: list[str]
    config: CNNConfig
    case_sensitive: bool
    folding: bool  # answers case-folded (folds)
    preset: str | None
    data_hash: str
    described: dict[str, Any]  # kind, scheme, image shape and what was chosen from the data


def load_training_data(cfg: TrainConfig, progress: Callable[[int, int], None] | None = None) -> Loaded:
    """`cfg.dataset` (its first tenth validates), else fresh items of `cfg.scheme` (or preset)."""
    if cfg.dataset is None:
        name, scheme, model_cfg = _generated(cfg)
        knobs = scheme.knobs()
        assert cfg.count is not None, "fit_count gives a generated run its count first"
        x, y = render_items(scheme, cfg.seed, range(cfg.count), model_cfg, cfg.workers, progress)
        x_val, y_val = render_items(scheme, cfg.seed + VAL_SEED_OFFSET, range(cfg.val_count), model_cfg, cfg.workers)
        described: dict[str, Any] = {"kind": "generated", "scheme": scheme.name,
                     "image": [knobs["width"], knobs["height"]] if "width" in knobs else None}
        data_hash = hashlib.sha256(repr((knobs, cfg.seed, cfg.count)).encode()).hexdigest()
        preset = cfg.preset if name == schemes.DEFAULT_SCHEME else None
        return Loaded(x, y, x_val, y_val, model_cfg, scheme.case_sensitive, False, preset, data_hash, described)
    data = ds.read_dataset(cfg.dataset)
    info = data.info
    charset = "".join(sorted(set(info.get("charset") or "")))
    folding = folds(charset, data.case_sensitive)
    if folding:
        charset = "".join(sorted(set(charset.casefold())))
    items = load_images(data, cfg.limit)  # the checked image loader
    images, y_all = [image for _, image in items], [s.answer.casefold() if folding else s.answer for s, _ in items]
    chosen = auto.geometry(images, answer_lengths(y_all)[1] if y_all else 1, cfg.model)
    model_cfg = CNNConfig(charset=charset, **{**chosen, **cfg.model})
    x_all = stack([input_bytes(image, model_cfg) for image in images], model_cfg)
    described = {"kind": info.get("kind"), "scheme": info.get("scheme") or info.get("source_name"),
                 "image": auto.image_shape(images), "chosen": sorted(chosen), "limit": cfg.limit}
    n_val = max(1, len(y_all) // 10)
    return Loaded(x_all[n_val:], y_all[n_val:], x_all[:n_val], y_all[:n_val], model_cfg, data.case_sensitive, folding,
                  info.get("preset"), data.hash, described)


def _generated(cfg: TrainConfig) -> tuple[str, Scheme, CNNConfig]:
    """The scheme a generated run renders (its name, the scheme) and the model config it renders for."""
    name = cfg.scheme or schemes.DEFAULT_SCHEME
    scheme = schemes.load(name, cfg.preset if name == schemes.DEFAULT_SCHEME else None)
    return name, scheme, CNNConfig(charset=scheme.knobs()["charset"], **cfg.model)


def fit_count(cfg: TrainConfig, resumed: int | None = None) -> int | None:
    """How many items a generated run renders: the count a resumed run had (`resumed`), the --count given,
    or COUNT; with --minutes, what fits a third of them (COUNT at most) where no --count was given, and a
    one-line refusal where the --count given would take more than three quarters of them to render
    (the shipped cards' commands took up to 43 %). The rate is timed on a few hundred items first. A
    run on a data set renders nothing (None)."""
    if cfg.dataset is not None:
        return cfg.count
    if resumed is not None:
        return resumed
    if cfg.minutes is None:
        return cfg.count or COUNT
    _, scheme, model_cfg = _generated(cfg)
    probe = 64 * max(1, cfg.workers) * 2
    start = time.perf_counter()
    render_items(scheme, cfg.seed + PROBE_SEED_OFFSET, range(probe), model_cfg, cfg.workers)
    rate = probe / max(time.perf_counter() - start, 1e-6)  # items/s with the workers, their start-up included
    budget = cfg.minutes * 60.0
    if cfg.count is None:
        fitted = min(COUNT, int(rate * budget * RENDER_SHARE) - cfg.val_count)
        if fitted < FEWEST:
            raise CNNError(f"--minutes {cfg.minutes:g} leaves time to render about {max(0, fitted):,} training items "
                           f"here ({rate:,.0f} items/s with {cfg.workers} worker(s)), fewer than {FEWEST:,}: give "
                           "more --minutes")
        return fitted
    needed = (cfg.count + cfg.val_count) / rate
    if needed > budget * RENDER_MOST:
        raise CNNError(f"--count {cfg.count:,} takes about {needed:,.0f} s to render here ({rate:,.0f} items/s with "
                       f"{cfg.workers} worker(s)), more than three quarters of --minutes {cfg.minutes:g} "
                       f"({budget:,.0f} s), leaving too little to train: leave --count out to fit it to the minutes, "
                       "give a smaller one, or more --minutes")
    return cfg.count


def render_items(scheme: Scheme, seed: int, indices: Sequence[int], config: CNNConfig, workers: int,
                 progress: Callable[[int, int], None] | None = None) -> tuple[torch.Tensor, list[str]]:
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
                progress(len(answers), len(indices))
    return stack(images, config), answers


def _render_chunk(job: tuple[Scheme, int, list[int], CNNConfig]) -> tuple[list[bytes], list[str]]:
    scheme, seed, indices, config = job  # no torch here: a forked child must not touch its thread pool
    data, texts = [], []
    for i in indices:
        rng = item_rng(seed, i)
        answer = scheme.sample_answer(rng)
        data.append(input_bytes(scheme.render(answer, rng), config))
        texts.append(answer)
    return data, texts


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
        raise CNNError(f"answers use characters outside the charset: {''.join(missing)}")
    flat = torch.tensor([index[c] for a in answers for c in a], dtype=torch.long)
    return flat, torch.tensor([len(a) for a in answers], dtype=torch.long)


def answer_lengths(answers: Sequence[str]) -> tuple[int, int]:
    """The shortest and longest answer, in characters as scoring counts them (`normalise`: no white space)."""
    sizes = [len(normalise(a, case_sensitive=True)) for a in answers]
    return min(sizes), max(sizes)


@dataclass(frozen=True)
class Mix:
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


def load_mix(cfg: TrainConfig, model_cfg: CNNConfig, folding: bool) -> Mix:
    """Read `cfg.mix` for mixing into the batches of `cfg.dataset`: its answers must be ones the model can write."""
    assert cfg.mix is not None
    if cfg.dataset is None:
        raise CNNError("--mix adds a second data set's items to the batches of --dataset: give --dataset too")
    if not 0.0 < cfg.mix_share < 1.0:
        raise CNNError(f"--mix-share is the share of each batch taken from --mix, between 0 and 1 (exclusive), got {cfg.mix_share}")
    if cfg.mix_count is not None and cfg.mix_count < 1:
        raise CNNError(f"--mix-count must be at least 1, got {cfg.mix_count}")
    data = ds.read_dataset(cfg.mix)
    answers = [s.answer.casefold() if folding else s.answer for s in data.samples[: cfg.mix_count]]
    missing = sorted({c for a in answers for c in a if c not in model_cfg.charset})
    if missing:  # said before any image is read
        raise CNNError(f"--mix {cfg.mix}: its answers use {''.join(missing)!r}, which --dataset's charset lacks: "
                       "generate the mix set with that charset")
    x = stack([input_bytes(image, model_cfg) for _, image in load_images(data, cfg.mix_count)], model_cfg)
    flat, sizes = encode(answers, model_cfg.charset)
    per_batch = max(1, round(cfg.batch_size * cfg.mix_share / (1.0 - cfg.mix_share)))
    about = {"dataset": str(cfg.mix), "sha256": data.hash, "items": len(answers), "share": cfg.mix_share,
             "per_batch": per_batch}
    return Mix(x, list(flat.split(sizes.tolist())), per_batch, about)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp")


def unlabelled_files(folder: Path, barred: dict[str, str]) -> list[tuple[str, bytes]]:
    """The image files of `folder` (a plain folder of images, or a data set, whose answers are ignored), name
    and bytes, each read as a data set's file is (a regular file). `barred` maps image sha256s that must not
    be among them (the test set's, the validation items') to what they are: any shared image is refused,
    named, since an unlabelled copy of a test item would leak it into training."""
    if not folder.is_dir():
        raise CNNError(f"--unlabelled {folder} is not a folder: give a folder of images (or a data set)")
    if (folder / ds.MANIFEST).is_file():
        scraped = ds.read_dataset(folder)
        blobs = [(s.file, checked_bytes(scraped.path, s.id, s.file, s.sha256)) for s in scraped.samples]
    else:
        blobs = []
        for p in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            try:
                blobs.append((p.name, regular_bytes(p)))
            except NotRegularFile as e:
                raise CNNError(f"--unlabelled: {p.name} is {e.what}: give regular image files") from None
    if not blobs:
        raise CNNError(f"--unlabelled {folder} holds no images ({', '.join(IMAGE_SUFFIXES)}): give a folder of "
                       "images of the same scheme")
    shared = [(name, barred[h]) for name, blob in blobs if (h := ds.sha256_bytes(blob)) in barred]
    if shared:
        name, what = shared[0]
        raise CNNError(f"--unlabelled {folder} shares {len(shared)} image(s) with the items training must not see "
                       f"({name} is {what}): remove them; unlabelled images must never include test items")
    return blobs


def unlabelled_for(cfg: TrainConfig, config: CNNConfig | None) -> torch.Tensor | None:
    """cfg.unlabelled's images: what an attacker scrapes for free, as model input for `config` (fully decoded,
    within the pixel limit). Refused where any is a validation item of cfg.dataset or an item of
    cfg.held_out (the test set an attack measures on). None without --unlabelled; with `config` None, the
    files are checked and nothing is decoded."""
    if cfg.unlabelled is None:
        return None
    barred: dict[str, str] = {}
    if cfg.dataset is not None:
        data = ds.read_dataset(cfg.dataset)
        items = data.samples[: cfg.limit] if cfg.limit else data.samples
        barred.update({s.sha256: f"validation item {s.id} of {data.path}" for s in items[: max(1, len(items) // 10)]})
    if cfg.held_out is not None:
        test = ds.read_dataset(cfg.held_out)
        barred.update({s.sha256: f"test item {s.id} of {test.path}" for s in test.samples})
    blobs = unlabelled_files(cfg.unlabelled, barred)
    if config is None:
        return None
    images = []
    for name, blob in blobs:
        try:
            image = decode_image(blob)
        except ImageError as e:
            raise CNNError(f"--unlabelled: {name} is {e}") from None
        images.append(input_bytes(image if image.mode in ("RGB", "L") else image.convert("RGB"), config))
    return stack(images, config)
