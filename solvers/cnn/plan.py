"""Which weights the `cnn` solver reads: one checkpoint, an ensemble, or a cascade with a fallback,
chosen by options or by the shipped `<preset>.cascade.json`. Pure: names files, loads nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from solvers.cnn import CNNError
from solvers.cnn.views import VIEWS

WEIGHTS = Path(__file__).resolve().parent / "weights"  # shipped: <preset>.pt with a model card <preset>.md
ENGINES = ("auto", "torch", "onnxruntime")  # auto: ONNX Runtime on the CPU where it is installed, else PyTorch
MERGES = ("vote", "mean")  # how an image's readings become one answer: their answers vote, or their probabilities average


GENERAL = "general"  # the general reader: what reads a set that names no preset (general.cascade.json says which weights)
DDDDOCR = "ddddocr"  # as a checkpoint: ddddocr's float recognizer, untrained, held to the set's characters and read as
# ddddocr reads (dddd.reader); a file so named is given by its absolute path


def shipped(preset: str) -> Path:
    return WEIGHTS / f"{preset}.pt"


def shipped_cascade(preset: str) -> Path:
    """How the preset reads by default, where it says: {"checkpoint": a file name or a list of them (an
    ensemble), optionally "fallback" (a file name) with "threshold", "views" (test-time views per
    image) and "merge" (vote|mean)}, file names relative to the weights folder."""
    return WEIGHTS / f"{preset}.cascade.json"


@dataclass(frozen=True)
class Plan:
    """Which weights a set of options loads: one checkpoint or an ensemble, optionally with a fallback."""

    checkpoint: Path
    fallback: Path | None = None
    threshold: float = 0.0  # answers less sure than this go to the fallback
    cascade: Path | None = None  # the shipped cascade file these came from
    views: int = 1  # test-time views each model reads of an image (views.VIEWS)
    also: tuple[Path, ...] = ()  # further checkpoints read with the first (an ensemble)
    merge: str = "vote"  # how the readings of an image's views (and checkpoints) become one answer (MERGES)


def plan(checkpoint: str = "", preset: str = "", fallback: str = "", threshold: float | None = None,
         views: int | None = None, merge: str | None = None) -> Plan:
    """Resolve the options to weights; ValueError, with the fix, for combinations that make no sense.
    `checkpoint` may name several files, comma-separated: an ensemble."""
    if threshold is not None and not (_number(threshold) and 0.0 <= threshold <= 1.0):
        raise CNNError(f"threshold is a confidence between 0 and 1, got {threshold!r}")
    if views is not None and not _views_ok(views):
        raise CNNError(f"views is how many test-time views to read, 1 to {len(VIEWS)}, got {views!r}")
    if merge is not None and merge not in MERGES:
        raise CNNError(f"merge is how an image's readings become one answer, one of {', '.join(MERGES)}; got {merge!r}")
    preset = preset or ("" if checkpoint else GENERAL)
    if not checkpoint and not fallback and preset and shipped_cascade(preset).is_file():
        named = _read_cascade(shipped_cascade(preset))
        files = [named["checkpoint"]] if isinstance(named["checkpoint"], str) else named["checkpoint"]
        if threshold is not None and "fallback" not in named:
            raise CNNError(f"preset {preset!r} reads without a fallback: drop threshold, or give -o fallback=PATH")
        return Plan(_weights(files[0]), _weights(named["fallback"]) if "fallback" in named else None,
                    named.get("threshold", 0.0) if threshold is None else float(threshold), shipped_cascade(preset),
                    named.get("views", 1) if views is None else views, tuple(_weights(f) for f in files[1:]),
                    named.get("merge", "vote") if merge is None else merge)
    files = [f.strip() for f in checkpoint.split(",")] if checkpoint else [str(shipped(preset))]
    if not all(files):
        raise CNNError(f"checkpoint {checkpoint!r} names an empty file: give PATH or PATH,PATH (an ensemble)")
    first, also = Path(files[0]), tuple(Path(f) for f in files[1:])
    if not fallback:
        if threshold is not None:
            raise CNNError("a threshold says when to ask a fallback: give -o fallback=PATH too, or drop threshold")
        return Plan(first, views=views or 1, also=also, merge=merge or "vote")
    if threshold is None:
        raise CNNError("a fallback needs -o threshold=T (0-1): answers less sure than T are read again")
    return Plan(first, Path(fallback), float(threshold), views=views or 1, also=also, merge=merge or "vote")


def _weights(name: str) -> Path:
    """A shipped cascade's file name as a path in the weights folder; the word `ddddocr` as itself."""
    return Path(DDDDOCR) if name == DDDDOCR else WEIGHTS / name


def is_ddddocr(path: Path) -> bool:
    """Whether a plan's checkpoint is the word `ddddocr` rather than a file."""
    return str(path) == DDDDOCR


def _read_cascade(path: Path) -> dict[str, Any]:
    try:
        named = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CNNError(f"cascade file {path} is not readable JSON ({e}): restore it from git") from None
    first = named.get("checkpoint") if isinstance(named, dict) else None
    files_ok = isinstance(first, str) or (isinstance(first, list) and bool(first) and all(isinstance(f, str) for f in first))
    fallback_ok = isinstance(named, dict) and (
        ("fallback" not in named and "threshold" not in named)
        or (isinstance(named.get("fallback"), str) and _number(named.get("threshold")) and 0.0 <= named["threshold"] <= 1.0))
    if not (files_ok and fallback_ok and _views_ok(named.get("views", 1)) and named.get("merge", "vote") in MERGES):
        raise CNNError(f"cascade file {path} needs a \"checkpoint\" file name (or a list of them), optionally a "
                       f"\"fallback\" file name with a \"threshold\" between 0 and 1, 1-{len(VIEWS)} \"views\" and a "
                       f"\"merge\" ({' or '.join(MERGES)}): restore it from git")
    return named


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _views_ok(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= len(VIEWS)
