"""CAPTCHA schemes: the built-in image scheme and the plugin registry for other generators.

A scheme draws answers and renders them, deterministically given a random.Random. Schemes are
found through the entry-point group `captcha_bench.schemes` (the built-in `image` too) or a
"module:attr" string. The entry point names a factory `factory(preset=None, **knobs) -> Scheme`.
"""

from __future__ import annotations

import functools
import importlib.metadata
import random
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from PIL import Image

from captchas import plugins
from captchas import render as _render
from captchas.knobs import KnobScheme
from captchas.spec import PRESETS, Spec, build_spec
from captchas.errors import UserError

GROUP = "captcha_bench.schemes"
DEFAULT_SCHEME = "image"


class SchemeError(UserError):
    """An unknown or broken scheme; the message lists the available ones."""


@runtime_checkable
class Scheme(Protocol):
    """What a generator plugin provides. Heavy setup belongs in the factory, never at import."""

    @property
    def name(self) -> str: ...

    @property
    def case_sensitive(self) -> bool:
        """How answers are scored."""
        ...

    def sample_answer(self, rng: random.Random) -> str: ...

    def render(self, answer: str, rng: random.Random) -> Image.Image:
        """A legible image of `answer`; every random choice comes from `rng`."""
        ...

    def knobs(self) -> dict[str, Any]:
        """JSON-ready settings such that factory(**knobs) rebuilds this scheme exactly."""
        ...

    def versions(self) -> dict[str, str]:
        """Versions of whatever shapes the pixels (libraries, fonts), for dataset.json."""
        ...


@dataclass(frozen=True)
class ImageScheme(KnobScheme):
    """The built-in scheme: the `captcha` library's ImageCaptcha, driven by a Spec."""

    spec: Spec
    name: str = "image"

    def render(self, answer: str, rng: random.Random) -> Image.Image:
        return _render.render(answer, self.spec, rng, _generator(self.spec))[0]


@functools.lru_cache(maxsize=8)
def _generator(spec: Spec) -> _render._TracedCaptcha:
    return _render.make_captcha(spec)  # once per process and spec: the fonts stay loaded


def image_scheme(preset: str | None = None, **knobs: Any) -> ImageScheme:
    """Factory of the built-in scheme: a preset (default medium) with some knobs replaced."""
    return ImageScheme(build_spec(preset or "medium", knobs))


image_scheme.presets = PRESETS  # type: ignore[attr-defined]


def available() -> dict[str, importlib.metadata.EntryPoint]:
    """Installed schemes by name; imports nothing."""
    return plugins.installed(GROUP)


def load(name: str = DEFAULT_SCHEME, preset: str | None = None, knobs: dict[str, Any] | None = None) -> Scheme:
    """Build a scheme from an entry-point name or a "module:attr" factory."""
    factory = _factory(name)
    try:
        scheme = factory(preset, **(knobs or {}))
    except ValueError as e:  # SpecError and plugin validation errors carry their own message
        raise SchemeError(str(e)) from None
    except TypeError as e:
        raise SchemeError(f"scheme {name!r} rejected its options ({e}): check --preset and --set") from None
    missing = [m for m in ("sample_answer", "render", "knobs", "versions") if not callable(getattr(scheme, m, None))]
    if missing:
        raise SchemeError(f"scheme {name!r} lacks {', '.join(missing)}: see the Scheme protocol in captchas/schemes.py")
    return scheme


def _factory(name: str) -> Any:
    if name == DEFAULT_SCHEME:
        return image_scheme  # the built-in works without the entry points an install writes
    return plugins.find(GROUP, name, "scheme", SchemeError, also=[DEFAULT_SCHEME])
