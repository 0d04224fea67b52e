"""The tiny CNN training the CNN tests share: two steps on 64 `easy` items, on the CPU (a few seconds)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TINY = {"count": 64, "val_count": 16, "epochs": 1, "batch_size": 32, "eval_every": 1, "workers": 1, "device": "cpu"}
Tiny = tuple[Path, dict[str, Any]]  # the `tiny_checkpoint` fixture: the checkpoint's path and train's record


def train_tiny(out: Path, **overrides: object) -> dict[str, Any]:
    """train() with TINY's settings on `easy`, `overrides` on top."""
    from solvers.cnn.train import TrainConfig, train  # torch: only the CNN tests load it

    return train(TrainConfig(out=out, preset="easy", **{**TINY, **overrides}))  # type: ignore[arg-type]
