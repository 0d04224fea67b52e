"""Test doubles loaded by "module:attr" strings or through a fake installed entry point."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw


@dataclass(frozen=True)
class FakeScheme:
    """A third-party generator: digits drawn as plain text on grey, any colour knob."""

    length: int = 3
    shade: int = 200
    name: str = "fake"
    case_sensitive: bool = False

    def sample_answer(self, rng: random.Random) -> str:
        return "".join(rng.choice("0123456789") for _ in range(self.length))

    def render(self, answer: str, rng: random.Random) -> Image.Image:
        image = Image.new("L", (20 + 10 * len(answer), 24), self.shade)
        ImageDraw.Draw(image).text((rng.randint(0, 8), rng.randint(0, 8)), answer, fill=0)
        return image

    def knobs(self) -> dict[str, Any]:
        return {"length": self.length, "shade": self.shade}

    def versions(self) -> dict[str, str]:
        return {"fake": "1.0"}


def make_fake_scheme(preset: str | None = None, **knobs: Any) -> FakeScheme:
    if preset not in (None, "plain"):
        raise ValueError(f"unknown preset {preset!r}: the fake scheme has only 'plain'")
    unknown = set(knobs) - {"length", "shade"}
    if unknown:
        raise ValueError(f"unknown knob {sorted(unknown)[0]!r}: valid knobs are length, shade")
    return FakeScheme(**knobs)


class NotAScheme:
    """Lacks every method of the Scheme protocol."""

    def __init__(self, preset: str | None = None, **knobs: Any) -> None:
        pass
