"""The knob machinery every scheme shares: a frozen dataclass of typed knobs (values from the CLI
or JSON brought to each field's type), the shipped fonts, and the checks two schemes both need.

A scheme's knobs are data: `class MySpec(Knobs)` with a default, a unit and a comment per field;
its `check()` raises SpecError naming the knob and the fix.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import random
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import captcha
import PIL
from PIL import features

from captchas.errors import UserError

FONT_DIR = Path(__file__).resolve().parent / "fonts"
FONTS: dict[str, Path] = {
    "DroidSansMono": Path(captcha.__file__).resolve().parent / "data" / "DroidSansMono.ttf",
    "DejaVuSans-Bold": FONT_DIR / "DejaVuSans-Bold.ttf",
    "DejaVuSerif": FONT_DIR / "DejaVuSerif.ttf",
    "DejaVuSerifCondensed-Bold": FONT_DIR / "DejaVuSerifCondensed-Bold.ttf",
    "DejaVuSerif-Italic": FONT_DIR / "DejaVuSerif-Italic.ttf",
    "DejaVuSansMono-Bold": FONT_DIR / "DejaVuSansMono-Bold.ttf",
}


class SpecError(UserError):
    """A knob value that cannot make a legible CAPTCHA; the message names the knob and the fix."""


class Knobs:
    """What a scheme's frozen dataclass of knobs shares: values from the CLI or JSON brought to each
    field's type, a check, JSON out, and fonts by name or path. Subclasses define `fonts` and `check`."""

    fonts: tuple[str, ...]

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]  # subclasses are dataclasses
            object.__setattr__(self, f.name, _coerce(f.name, getattr(self, f.name), f.default))
        self.check()

    def check(self) -> None:
        """Raise SpecError (or ValueError) naming the knob and the fix."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready knobs; `type(self)(**self.to_dict())` rebuilds the same record."""
        knobs = dataclasses.asdict(self)  # type: ignore[call-overload]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in knobs.items()}

    def font_paths(self) -> list[Path]:
        """Resolve font names to files."""
        return [FONTS[name] if name in FONTS else Path(name) for name in self.fonts]

    def font_hashes(self) -> dict[str, str]:
        """sha256 of each font file, recorded in dataset.json because glyph shapes depend on it."""
        return {name: _sha256_file(path) for name, path in zip(self.fonts, self.font_paths())}


SEQUENCES = ("fonts", "font_sizes")  # tuple knobs of any length; every other tuple knob is a (low, high) range


def _coerce(name: str, value: Any, default: Any) -> Any:
    """Bring a value from the CLI or JSON (int for a range, list for a tuple) to the field's type."""
    try:
        if isinstance(default, tuple) and name == "length" and isinstance(value, int):
            return (value, value)
        if isinstance(default, tuple) and name == "fonts" and isinstance(value, str):
            return tuple(v.strip() for v in value.split(","))  # --set fonts=A,B
        if isinstance(default, tuple):
            if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                raise TypeError
            items = tuple(value)
            if len(default) == 2 and name not in SEQUENCES and len(items) != 2:
                raise SpecError(f"knob {name}={value!r} needs two values, (low, high): e.g. {name}={default!r}")
            kind = type(default[0])
            if kind is float:
                return tuple(float(v) for v in items)
            if kind is int:
                if any(isinstance(v, float) and not v.is_integer() for v in items):
                    raise TypeError
                return tuple(int(v) for v in items)
            return tuple(str(v) for v in items)
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise TypeError
            return value
        if isinstance(default, float):
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        if isinstance(default, int):
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise TypeError
            return int(value)
        if isinstance(default, str) and isinstance(value, int) and not isinstance(value, bool):
            return str(value)  # --set charset=2345 arrives as a number
        if isinstance(default, str) and not isinstance(value, str):
            raise TypeError
        return value
    except SpecError:
        raise
    except (TypeError, ValueError):
        raise SpecError(
            f"knob {name}={value!r} has the wrong type: expected something like {default!r}"
        ) from None


def check_charset(charset: str) -> None:
    """At least one printable character, none twice, no white space."""
    if not charset:
        raise SpecError("charset is empty: give at least one character, e.g. charset=ABC23")
    if any(c.isspace() or not c.isprintable() for c in charset):
        raise SpecError(f"charset {charset!r} holds white space or control characters: remove them")
    if len(set(charset)) != len(charset):
        raise SpecError(f"charset {charset!r} repeats a character: list each character once")


def check_size(knobs: Any) -> None:
    """width and height from 16 to 4096 pixels."""
    for name in ("width", "height"):
        if not 16 <= getattr(knobs, name) <= 4096:
            raise SpecError(f"{name}={getattr(knobs, name)} is out of range: use 16 to 4096 pixels")


def check_range(knobs: Any, *names: str) -> None:
    """Each named knob is a (low, high) pair, low first."""
    for name in names:
        pair = getattr(knobs, name)
        if len(pair) != 2 or pair[0] > pair[1]:
            raise SpecError(f"{name}={pair} is not a (low, high) range: give two numbers, low first")


def check_fonts(names: Sequence[str], paths: Sequence[Path], charset: str) -> None:
    """At least one font; each exists, is a font file, and draws every character of the charset (else
    glyphs come out as boxes)."""
    if not names:
        raise SpecError(f"fonts is empty: name at least one of {', '.join(FONTS)} or a .ttf path")
    for name, path in zip(names, paths):
        if not path.is_file():
            raise SpecError(f"font {name!r} not found: use one of {', '.join(FONTS)} or an existing .ttf path")
        missing = [c for c in charset if ord(c) not in _characters(path)]
        if missing:
            shown = "".join(missing[:20]) + ("..." if len(missing) > 20 else "")
            raise SpecError(f"font {name!r} has no glyph for {len(missing)} character(s) of the charset ({shown}): "
                            "choose characters it draws, or a font that has them")


@functools.lru_cache(maxsize=64)
def _characters(path: Path) -> frozenset[int]:
    """The code points a font file maps to glyphs (its cmap); SpecError if it is not a font."""
    from fontTools.ttLib import TTFont, TTLibError

    try:
        with TTFont(io.BytesIO(path.read_bytes()), lazy=True) as font:  # bytes: no file left open on a failure
            cmap = font.getBestCmap() or {}
    except (TTLibError, OSError, ValueError, KeyError, AssertionError, struct.error) as e:
        raise SpecError(f"font {str(path)!r} is not a TrueType/OpenType font file ({type(e).__name__}): "
                        f"use one of {', '.join(FONTS)} or a .ttf path") from None
    if not cmap:
        raise SpecError(f"font {str(path)!r} maps no characters: use one of {', '.join(FONTS)} or another .ttf")
    return frozenset(cmap)


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class KnobScheme:
    """What the shipped schemes share, given a frozen `spec` of Knobs with `length`, `charset` and
    `case_sensitive`: the case rule, answers of uniform length and characters, JSON knobs, and the
    versions of what shapes the pixels (`libraries` beyond Pillow, FreeType and the fonts)."""

    spec: Any

    @property
    def case_sensitive(self) -> bool:
        return bool(self.spec.case_sensitive)

    def sample_answer(self, rng: random.Random) -> str:
        length = rng.randint(*self.spec.length)
        return "".join(rng.choice(self.spec.charset) for _ in range(length))

    def knobs(self) -> dict[str, Any]:
        return dict(self.spec.to_dict())

    def libraries(self) -> dict[str, str]:
        return {"captcha": captcha.__version__}

    def versions(self) -> dict[str, str]:
        return {
            **self.libraries(),
            "pillow": PIL.__version__,
            "freetype": features.version_module("freetype2") or "absent",
            **{f"font {name}": sha for name, sha in self.spec.font_hashes().items()},
        }


def build_presetless(name: str, spec_type: type, preset: str | None, knobs: dict[str, Any]) -> Any:
    """The knobs record of a scheme without presets: `preset` must be absent; unknown knobs are named."""
    if preset not in (None, "default"):
        raise SpecError(f"scheme {name} has no preset {preset!r}: leave --preset out and change knobs with --set")
    fields = [f.name for f in dataclasses.fields(spec_type)]
    unknown = sorted(set(knobs) - set(fields))
    if unknown:
        raise SpecError(f"unknown knob {unknown[0]!r}: valid knobs of {name} are {', '.join(fields)}")
    return spec_type(**knobs)
