"""Shared fixtures: a small, fast spec and an 8-image data set made from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from captchas import dataset as ds
from captchas.generate import make_dataset
from captchas.schemes import ImageScheme
from captchas.spec import Spec, build_spec

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture
def tiny_spec() -> Spec:
    """Medium knobs at a third of the pixels: renders in about a millisecond."""
    return build_spec("medium", {"width": 96, "height": 36, "font_sizes": (26, 30, 34), "length": 3})


@pytest.fixture
def tiny_dataset(tmp_path: Path, tiny_spec: Spec) -> ds.Dataset:
    return make_dataset(ImageScheme(tiny_spec), 8, 7, tmp_path / "tiny", preset="medium")
