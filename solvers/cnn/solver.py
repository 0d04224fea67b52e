"""The `cnn` solver: our trained model. Weights load with torch.load(weights_only=True).

Several checkpoints can read as one (`-o checkpoint=A,B`: an ensemble whose readings vote, or
whose probabilities are averaged with `-o merge=mean`). A cascade reads every item with the first
and gives the items it is least sure of to a second one (`-o fallback=PATH -o threshold=T`); a
preset whose weights folder holds `<preset>.cascade.json` reads as it says by default.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from captchas.dataset import Challenge
from solvers.cnn import CNNError
from solvers.cnn.checkpoint import exported, load_checkpoint, mismatch, network
from solvers.cnn.plan import ENGINES, WEIGHTS, is_ddddocr, plan
from solvers.cnn.views import view, vote

class CNNSolver:
    """Greedy CTC decoding of our CNN, batched on the chosen device; optionally a cascade of two."""

    name = "cnn"

    @staticmethod
    def check() -> str | None:
        try:
            import torch  # noqa: F401
        except ImportError:
            return "torch is not installed: pip install torch"
        if not any(WEIGHTS.glob("*.pt")):
            return "no shipped weights yet: train them with captcha-bench train (or give -o checkpoint=PATH)"
        return None

    @staticmethod
    def files(checkpoint: str = "", preset: str = "", fallback: str = "", threshold: float | None = None,
              views: int | None = None, merge: str | None = None, **_: Any) -> dict[str, Path]:
        """The weights these options load, hashed into a run's provenance (shipped ones too)."""
        try:
            chosen = plan(checkpoint, preset, fallback, threshold, views, merge)
        except ValueError:
            return {}  # the solver itself says what is wrong
        named = {"checkpoint": chosen.checkpoint, **{f"checkpoint{k}": p for k, p in enumerate(chosen.also, 2)},
                 "fallback": chosen.fallback, "cascade": chosen.cascade}
        if any(p is not None and is_ddddocr(p) for p in named.values()):  # the word: ddddocr's own file is what it reads
            from solvers.cnn.dddd import onnx_path

            named = {k: onnx_path() if p is not None and is_ddddocr(p) else p for k, p in named.items()}
        return {key: path for key, path in named.items() if path is not None}

    @staticmethod
    def resources(device: str = "cpu", **_: Any) -> dict[str, float]:
        """A CUDA device is a GPU resource on a Dask cluster; the CPU needs none."""
        return {"GPU": 1} if str(device).startswith("cuda") else {}

    @staticmethod
    def notes(about: dict[str, Any], checkpoint: str = "", preset: str = "", fallback: str = "",
              threshold: float | None = None, views: int | None = None, merge: str | None = None, **_: Any) -> list[str]:
        """Warnings for weights trained on another scheme or image size, or on these very items."""
        try:
            chosen = plan(checkpoint, preset, fallback, threshold, views, merge)
        except ValueError:
            return []  # the solver itself says what is wrong
        said: list[str] = []
        for path in (chosen.checkpoint, *chosen.also, chosen.fallback):
            try:  # ddddocr's recognizer (the word) is meant for any set, as ddddocr is
                said += mismatch(path.name, load_checkpoint(path), about) if path and not is_ddddocr(path) else []
            except ValueError:
                pass  # the solver itself says what is wrong
        return said

    def __init__(self, checkpoint: str = "", preset: str = "", charset: str = "", device: str = "cpu",
                 batch_size: int = 64, any_preset: bool = False, parallel: bool = True, fallback: str = "",
                 threshold: float | None = None, engine: str = "auto", fit_length: bool = True,
                 views: int | None = None, merge: str | None = None, case_sensitive: bool | None = None) -> None:
        import torch

        from solvers.cnn import runtime

        chosen = plan(checkpoint, preset, fallback, threshold, views, merge)
        if not checkpoint and not chosen.checkpoint.is_file() and not is_ddddocr(chosen.checkpoint):
            raise CNNError(f"no shipped weights for preset {preset!r}: train with "
                           f"captcha-bench train --preset {preset}, or give -o checkpoint=PATH" if preset else
                           f"no general reader shipped ({chosen.checkpoint.name}): train it as docs/cnn.md shows, "
                           "or give -o checkpoint=PATH")
        if batch_size < 1:
            raise CNNError(f"batch_size must be at least 1, got {batch_size}")
        if engine not in ENGINES:
            raise CNNError(f"engine {engine!r} is not one of {', '.join(ENGINES)}")
        if engine == "onnxruntime" and device != "cpu":
            raise CNNError(f"engine onnxruntime runs on the CPU here: use -o engine=torch for device {device}")
        if engine == "onnxruntime" and not runtime.available():
            raise CNNError("engine onnxruntime: onnx or onnxruntime is not installed (pip install onnx onnxruntime), "
                           "or use -o engine=torch")
        if device == "cuda" and not torch.cuda.is_available():
            raise CNNError("device cuda: no CUDA device here; use -o device=cpu")
        self.engine = engine if engine != "auto" else "onnxruntime" if device == "cpu" and runtime.available() else "torch"
        self.device = torch.device(device)
        def load(path: Path) -> _Net:
            return _Net.load(path, preset, charset, any_preset, self.device, self.engine, fit_length, case_sensitive)

        self.first = _Reader.of([load(path) for path in (chosen.checkpoint, *chosen.also)], chosen.views, chosen.merge)
        self.fallback = (_Reader.of([load(chosen.fallback)], chosen.views, chosen.merge)
                         if chosen.fallback is not None else None)
        self.threshold = chosen.threshold
        # 64 per forward pass: with PyTorch at 256 the first stage's activations (100 MB for hard's 160x40 input)
        # spill the caches, and on this project's 2-core machine throughput fell by about a third (README, "CNN");
        # ONNX Runtime read the hard cascade as fast in chunks of 16, 32, 64 or 128
        self.batch_size = batch_size
        # on CPU, chunks run side by side with one core each: small convolutions and the GRU's steps divide
        # poorly between cores, so whole chunks per core read more items per second. A batch of one is one
        # chunk, read in the calling thread with the threads the process has: one in a run (the `threads`
        # hook's default), which a busy machine cannot slow down by stalling a pool (docs/speed.md)
        self.cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        self.pool = (ThreadPoolExecutor(self.cores, initializer=torch.set_num_threads, initargs=(1,))
                     if parallel and self.cores > 1 and self.device.type == "cpu" else None)

    def solve(self, batch: Sequence[Challenge]) -> list[str]:
        images = [c.image for c in batch]
        answers, sure = self._read(self.first, images)
        if self.fallback is None:
            return answers
        unsure = [i for i, s in enumerate(sure) if s < self.threshold]
        if unsure:
            again, sure_again = self._read(self.fallback, [images[i] for i in unsure])
            for i, answer, s in zip(unsure, again, sure_again):
                if s >= sure[i]:  # the surer of the two readings
                    answers[i] = answer
        return answers

    def _read(self, reader: _Reader, images: list[Image.Image]) -> tuple[list[str], list[float]]:
        """Answers and confidences, in order; chunks split evenly between the cores when there are few."""
        size = self.batch_size
        if self.pool is not None:
            size = max(1, min(size, math.ceil(len(images) / self.cores)))
        chunks = [images[k : k + size] for k in range(0, len(images), size)]
        if self.pool is None or len(chunks) < 2:
            read = [reader.read(chunk) for chunk in chunks]
        else:
            read = list(self.pool.map(reader.read, chunks))
        return [a for answers, _ in read for a in answers], [s for _, sure in read for s in sure]


@dataclass(frozen=True)
class _Net:
    """One checkpoint, ready to read: its config and the inference copy of its model."""

    config: Any  # CNNConfig
    model: Any  # CaptchaNet as for_inference made it, or its ONNX Runtime session: preprocess() output in, logits out
    device: Any  # torch.device
    lengths: tuple[int, int] | None  # the answer lengths it was trained on, which it writes; None: any
    barred: tuple[int, ...] = ()  # classes the data set's charset lacks: never written
    merged: tuple[tuple[int, int], ...] = ()  # (kept, merged) classes: one letter's two cases, for case-insensitive sets

    @classmethod
    def load(cls, path: Path, preset: str, charset: str, any_preset: bool, device: Any, engine: str,
             fit_length: bool = True, case_sensitive: bool | None = None) -> _Net:
        from solvers.cnn import runtime
        from solvers.cnn.model import CNNConfig, for_inference

        if is_ddddocr(path):
            return cls._ddddocr(charset, device, engine, case_sensitive)
        state = load_checkpoint(path)
        if preset and state.get("preset") and state["preset"] != preset and not any_preset:
            raise CNNError(f"checkpoint {path.name} was trained on preset {state['preset']!r}, the data set is "
                           f"{preset!r}: use matching weights, or -o any_preset=True to test it across presets")
        fold = bool(state.get("folded")) or case_sensitive is False  # either way, scored with case folded
        writes = {c.casefold() if fold else c for c in state["charset"]}
        unknown = sorted({c.casefold() if fold else c for c in charset} - writes)
        if unknown and not any_preset:
            raise CNNError(f"checkpoint {path.name} cannot write {''.join(unknown)!r}, which this data set uses "
                           "(a different charset): use matching weights, or -o any_preset=True")
        config = CNNConfig.from_dict(state["config"])
        if engine == "onnxruntime":
            exported(state, path.name)
        fast = for_inference(network(state, path.name))  # BatchNorm folded, NHWC: about 2.5x faster on CPU
        return cls(config, runtime.Session(fast) if engine == "onnxruntime" else fast.to(device), device,
                   _trained_lengths(state) if fit_length else None, barred(state["charset"], charset, fold),
                   case_pairs(state["charset"], charset) if case_sensitive is False else ())

    @classmethod
    def _ddddocr(cls, charset: str, device: Any, engine: str, case_sensitive: bool | None) -> _Net:
        """ddddocr's float recognizer, untrained: its head cut to the set's characters (either case where
        the set is case-insensitive, the two then merged as for any checkpoint), each image read at its
        own width as ddddocr reads it (dddd.reader)."""
        from solvers.cnn import dddd, runtime
        from solvers.cnn.model import NATIVE, CNNConfig, for_inference

        net, writes = dddd.reader(charset, case_sensitive is not False)
        config = CNNConfig(charset=writes, height=dddd.HEIGHT, width=dddd.HEIGHT, arch="ddddocr", fit=NATIVE)
        net.config = config
        fast = for_inference(net)
        return cls(config, runtime.Session(fast) if engine == "onnxruntime" else fast.to(device), device, None, (),
                   case_pairs(writes, charset) if case_sensitive is False else ())

    @property
    def input(self) -> tuple[Any, ...]:
        """What `preprocess` makes of an image for this model: checkpoints alike here share one input."""
        return self.config.colour, self.config.width, self.config.height, self.config.fit, self.config.crop

    def logits(self, images: list[Image.Image], inputs: dict[tuple[Any, ...], Any] | None = None) -> Any:
        """(B, T, classes) for the images, on the CPU. `inputs` keeps each preprocessed batch for the
        next checkpoint of the same input, so an ensemble converts and resizes each image once."""
        import torch

        from solvers.cnn.model import NATIVE, preprocess

        inputs = {} if inputs is None else inputs
        if self.input not in inputs and self.config.fit != NATIVE:
            inputs[self.input] = preprocess(images, self.config)
        with torch.inference_mode():
            if self.config.fit == NATIVE:  # each image at its own width, as ddddocr reads
                from solvers.cnn.dddd import read_native

                logits = read_native(self.model, images, self.device)
            else:
                logits = self.model(inputs[self.input].to(self.device)).cpu()
            if self.merged:  # P(A) + P(a) in A's column: the case is not scored, so neither splits a letter's vote
                keep, drop = [k for k, _ in self.merged], [d for _, d in self.merged]
                logits[..., keep] = torch.logaddexp(logits[..., keep], logits[..., drop])
                logits[..., drop] = -torch.inf
            if self.barred:
                logits[..., list(self.barred)] = -torch.inf
            return logits


def barred(writes: str, charset: str, folded: bool) -> tuple[int, ...]:
    """The classes (1 + index in `writes`) of characters that the data set's `charset` lacks, compared
    folded where the model writes folded answers: a model that writes more than the set uses then
    decodes with the set's characters only. None barred when the set declares no charset."""
    allowed = set(charset.casefold() if folded else charset)
    return tuple(k + 1 for k, c in enumerate(writes) if (c.casefold() if folded else c) not in allowed) if charset else ()


def case_pairs(writes: str, charset: str) -> tuple[tuple[int, int], ...]:
    """For a case-insensitive set read by a model that writes both cases of a letter: (kept, merged)
    class pairs, the kept one being the case the set's charset declares (upper where it declares both
    or none). Reading then adds the merged class's probability to the kept one's."""
    index = {c: k + 1 for k, c in enumerate(writes)}
    pairs = []
    for upper in writes:
        lower = upper.lower()
        if upper != lower and upper.isupper() and lower in index:
            lower_only = lower in charset and upper not in charset
            pairs.append((index[lower], index[upper]) if lower_only else (index[upper], index[lower]))
    return tuple(pairs)


@dataclass(frozen=True)
class _Reader:
    """One or more checkpoints reading as one. Each reads every view of an image; then `merge`:
    "vote", every reading (checkpoint x view) decoded on its own and all of them voting (views.vote),
    or "mean", their probabilities averaged per column and decoded once."""

    nets: tuple[_Net, ...]
    views: int = 1
    merge: str = "vote"

    @classmethod
    def of(cls, nets: list[_Net], views: int, merge: str) -> _Reader:
        first = nets[0]
        for net in nets[1:]:
            if merge == "mean" and (net.config.charset != first.config.charset or net.config.width != first.config.width):
                raise CNNError("checkpoints whose probabilities are averaged (merge=mean) must write the same charset "
                               f"from inputs of the same width, so that their columns line up: {first.config.charset!r} "
                               f"at {first.config.width} against {net.config.charset!r} at {net.config.width}; "
                               "use merge=vote")
        return cls(tuple(nets), views, merge)

    @property
    def config(self) -> Any:
        return self.nets[0].config

    @property
    def lengths(self) -> tuple[int, int] | None:
        return self.nets[0].lengths

    def read(self, images: list[Image.Image]) -> tuple[list[str], list[float]]:
        """Answers and confidences, one each per image."""
        from solvers.cnn.model import read_out

        seen = [view(image, k) for image in images for k in range(self.views)]  # an image's views side by side
        if len(self.nets) == 1 and self.views == 1:
            return read_out(self.nets[0].logits(seen), self.config.charset, self.lengths)
        inputs: dict[tuple[Any, ...], Any] = {}
        if self.merge == "mean":
            probabilities = sum(net.logits(seen, inputs).float().softmax(-1) for net in self.nets) / len(self.nets)
            mean = probabilities.view(len(images), self.views, *probabilities.shape[1:]).mean(1)
            return read_out(mean.clamp_min(1e-30).log(), self.config.charset, self.lengths)
        readings = [read_out(net.logits(seen, inputs), net.config.charset, net.lengths) for net in self.nets]
        voted = [vote([a for answers, _ in readings for a in answers[i : i + self.views]],
                      [c for _, sure in readings for c in sure[i : i + self.views]])
                 for i in range(0, len(seen), self.views)]
        return [a for a, _ in voted], [c for _, c in voted]


def _trained_lengths(state: dict[str, Any]) -> tuple[int, int] | None:
    """The answer lengths a checkpoint was trained on: recorded by `train` since 2026-11-29; for older
    weights trained on a preset, that preset's; otherwise unknown."""
    from captchas.spec import PRESETS

    if state.get("lengths"):
        shortest, longest = state["lengths"]
        return int(shortest), int(longest)
    if (state.get("data") or {}).get("dataset") is None and state.get("preset") in PRESETS:
        shortest, longest = PRESETS[state["preset"]].length
        return shortest, longest
    return None
