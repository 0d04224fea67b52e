"""Speed of the generator beside the raw `captcha` library on the same texts, in one run.

This machine's speed drifts by a quarter within seconds, so contenders run in short rounds, in
alternating order, and each ratio is the median of the ratios within rounds.
"""

from __future__ import annotations

import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from captchas import dataset as ds
from captchas.knobs import SpecError
from captchas.generate import Job, encode_png, item_rng, make_dataset, make_items
from captchas.render import library_captcha
from captchas.schemes import ImageScheme
from captchas.spec import PRESETS, build_spec


@dataclass(frozen=True)
class GenerationSpeed:
    """Images per second, wall clock, over all rounds; ratios are medians of per-round ratios."""

    preset: str
    count: int  # images per contender per round
    rounds: int
    workers: int
    library: float  # ImageCaptcha.generate_image on the same texts, in memory, one process
    library_files: float  # ImageCaptcha.write to PNG files, the library's own way to a file
    file_writes: float  # creating `count` files of those PNG bytes, nothing else: this disk's share
    ours_memory: float  # answer draw, render with the legibility rule, PNG encoding, sha256; no files
    ours: float  # make_dataset(workers=1): the above plus the files and the manifest
    ours_parallel: float  # make_dataset(workers=workers), pool start-up included
    ratio_memory: float  # ours_memory / library: the generator's own cost, per core
    ratio: float  # ours / library, end to end; the per-core target is at least 0.9
    speedup: float  # ours_parallel / ours


def measure_generation(
    scratch: Path,
    preset: str = "medium",
    count: int = 300,
    rounds: int = 6,
    workers: int = 2,
    seed: int = 0,
    progress: ds.Progress | None = None,
) -> GenerationSpeed:
    """Time the library and our generator on the same `count` texts; files go under `scratch`."""
    if count < 1 or rounds < 1 or workers < 1:
        raise SpecError("count, rounds and workers must each be at least 1")
    if preset not in PRESETS:
        raise SpecError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
    scheme = ImageScheme(build_spec(preset))
    texts = [scheme.sample_answer(item_rng(seed, i)) for i in range(count)]
    baseline = library_captcha(scheme.spec)
    baseline.generate_image(texts[0])  # load the fonts before the clock starts, for both sides
    pngs = [encode_png(scheme.render(text, item_rng(seed, i))) for i, text in enumerate(texts)]

    def library(run: Path) -> None:
        for text in texts:
            baseline.generate_image(text)

    def library_files(run: Path) -> None:
        run.mkdir()
        for i, text in enumerate(texts):
            baseline.write(text, str(run / f"{i}.png"))

    def ours_memory(run: Path) -> None:
        job = Job(scheme, seed, count, None)
        for _ in make_items(job, range(count)):
            pass

    def file_writes(run: Path) -> None:
        run.mkdir()
        for i, png in enumerate(pngs):
            (run / f"{i:06d}.png").write_bytes(png)

    def ours(run: Path) -> None:
        make_dataset(scheme, count, seed, run, workers=1, preset=preset)

    def ours_parallel(run: Path) -> None:
        make_dataset(scheme, count, seed, run, workers=workers, preset=preset)

    contenders: list[Callable[[Path], None]] = [library, library_files, file_writes, ours_memory, ours, ours_parallel]
    seconds: dict[str, list[float]] = {c.__name__: [] for c in contenders}
    scratch.mkdir(parents=True, exist_ok=True)
    for r in range(rounds):
        for k, contender in enumerate(contenders if r % 2 == 0 else contenders[::-1]):
            run = scratch / f"round-{r}-{contender.__name__}"
            start = time.perf_counter()
            contender(run)
            seconds[contender.__name__].append(time.perf_counter() - start)
            shutil.rmtree(run, ignore_errors=True)
            if progress:
                progress(r * len(contenders) + k + 1, rounds * len(contenders))
    rate = {name: count * rounds / sum(times) for name, times in seconds.items()}

    def median_ratio(fast: str, slow: str) -> float:
        return statistics.median(f / s for f, s in zip(seconds[fast], seconds[slow]))

    return GenerationSpeed(
        preset, count, rounds, workers, rate["library"], rate["library_files"], rate["file_writes"], rate["ours_memory"], rate["ours"],
        rate["ours_parallel"], ratio_memory=median_ratio("library", "ours_memory"),
        ratio=median_ratio("library", "ours"), speedup=median_ratio("ours", "ours_parallel"),
    )
