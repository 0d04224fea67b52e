"""Shared fixtures: a small, fast spec, an 8-image data set made from it, and one tiny trained CNN."""

from __future__ import annotations

from pathlib import Path

import pytest

from captchas import dataset as ds
from captchas.generate import make_dataset
from captchas.schemes import ImageScheme
from captchas.spec import Spec, build_spec
from tests.tiny import Tiny, train_tiny

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture
def tiny_spec() -> Spec:
    """Medium knobs at a third of the pixels: renders in about a millisecond."""
    return build_spec("medium", {"width": 96, "height": 36, "font_sizes": (26, 30, 34), "length": 3})


@pytest.fixture
def tiny_dataset(tmp_path: Path, tiny_spec: Spec) -> ds.Dataset:
    return make_dataset(ImageScheme(tiny_spec), 8, 7, tmp_path / "tiny", preset="medium")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Tiny:
    """One tiny training (tests/tiny.py), made once for every test that only reads it: its checkpoint and
    train's record. A test that changes a checkpoint trains its own."""
    pytest.importorskip("torch", reason="torch is not installed")
    out = tmp_path_factory.mktemp("tiny-cnn") / "m.pt"
    return out, train_tiny(out)
