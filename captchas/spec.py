"""Difficulty knobs of the built-in image scheme: the Spec record, the named presets, the fonts.

A Spec is data: every knob has a default, a unit and a check. `build_spec` turns a preset name
plus overrides (from the CLI or a dataset.json) into a validated Spec.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import captcha

# Digits and upper case without the glyphs people confuse: 0/O, 1/I (l is lower case, absent).
DEFAULT_CHARSET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
# Lower-case letters whose shape differs from their capital (no c/k/o/p/s/u/v/w/x/z, no l).
DISTINCT_LOWER = "abdefghijmnqrt"

FONT_DIR = Path(__file__).resolve().parent / "fonts"
FONTS: dict[str, Path] = {
    "DroidSansMono": Path(captcha.__file__).resolve().parent / "data" / "DroidSansMono.ttf",
    "DejaVuSans-Bold": FONT_DIR / "DejaVuSans-Bold.ttf",
    "DejaVuSerif": FONT_DIR / "DejaVuSerif.ttf",
    "DejaVuSerifCondensed-Bold": FONT_DIR / "DejaVuSerifCondensed-Bold.ttf",
    "DejaVuSerif-Italic": FONT_DIR / "DejaVuSerif-Italic.ttf",
    "DejaVuSansMono-Bold": FONT_DIR / "DejaVuSansMono-Bold.ttf",
}


class SpecError(ValueError):
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


@dataclass(frozen=True)
class Spec(Knobs):
    """Every knob of the built-in scheme. Defaults are the captcha library's own (the medium preset)."""

    length: tuple[int, int] = (4, 4)  # characters, inclusive range; an int means a fixed length
    charset: str = DEFAULT_CHARSET  # characters answers are drawn from, uniformly and independently
    case_sensitive: bool = False  # whether scoring compares case
    width: int = 160  # pixels
    height: int = 60  # pixels
    fonts: tuple[str, ...] = ("DroidSansMono",)  # shipped font names (see FONTS) or .ttf paths
    font_sizes: tuple[int, ...] = (42, 50, 56)  # pixels; each glyph picks font and size at random
    rotate: tuple[float, float] = (-30.0, 30.0)  # degrees, per glyph
    warp_dx: tuple[float, float] = (0.1, 0.3)  # library's character_warp_dx (fraction of glyph width)
    warp_dy: tuple[float, float] = (0.2, 0.3)  # library's character_warp_dy (fraction of glyph height)
    offset_dx: tuple[int, int] = (0, 4)  # pixels of padding left of a glyph
    offset_dy: tuple[int, int] = (0, 6)  # pixels of padding above a glyph
    space_probability: float = 0.5  # chance that a glyph is NOT preceded by a blank (library's word_space_probability)
    overlap: float = 0.25  # neighbours overlap by up to this fraction of the mean glyph width (word_offset_dx)
    noise_dots: int = 30  # count
    noise_dot_width: int = 3  # pixels
    noise_curves: int = 1  # count of arcs
    fg: tuple[int, int] = (10, 200)  # text colour, range of each RGB channel
    fg_alpha: tuple[int, int] = (220, 255)  # text opacity range
    bg: tuple[int, int] = (238, 255)  # background colour, range of each RGB channel
    max_clip: float = 0.02  # legibility: most of one glyph's ink that may fall outside the image (0-1)
    min_scale: float = 0.6  # legibility: text wider than the image is squeezed, at most down to this scale

    def check(self) -> None:
        _check(self)


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


def _check(s: Spec) -> None:
    """Reject knob values that cannot give a legible CAPTCHA."""
    lo, hi = s.length
    if not 1 <= lo <= hi:
        raise SpecError(f"length {s.length} is impossible: use 1 <= min <= max, e.g. length=4 or length=(4,6)")
    if hi > 64:
        raise SpecError(f"length {s.length} is too long: at most 64 characters")
    if not s.charset:
        raise SpecError("charset is empty: give at least one character, e.g. charset=ABC23")
    if any(c.isspace() or not c.isprintable() for c in s.charset):
        raise SpecError(f"charset {s.charset!r} holds white space or control characters: remove them")
    if len(set(s.charset)) != len(s.charset):
        raise SpecError(f"charset {s.charset!r} repeats a character: list each character once")
    for name in ("width", "height"):
        if not 16 <= getattr(s, name) <= 4096:
            raise SpecError(f"{name}={getattr(s, name)} is out of range: use 16 to 4096 pixels")
    if not s.fonts:
        raise SpecError(f"fonts is empty: name at least one of {', '.join(FONTS)} or a .ttf path")
    check_fonts(s.fonts, s.font_paths(), s.charset)
    if not s.font_sizes or any(not 4 <= size <= 1024 for size in s.font_sizes):
        raise SpecError(f"font_sizes {s.font_sizes} is invalid: give one or more sizes from 4 to 1024 pixels")
    for name in ("rotate", "warp_dx", "warp_dy", "offset_dx", "offset_dy", "fg", "fg_alpha", "bg"):
        pair = getattr(s, name)
        if len(pair) != 2 or pair[0] > pair[1]:
            raise SpecError(f"{name}={pair} is not a (low, high) range: give two numbers, low first")
    for name in ("offset_dx", "offset_dy"):
        if getattr(s, name)[0] < 0:
            raise SpecError(f"{name}={getattr(s, name)} is negative: offsets are padding, 0 or more pixels")
    for name in ("fg", "fg_alpha", "bg"):
        if not 0 <= getattr(s, name)[0] <= getattr(s, name)[1] <= 255:
            raise SpecError(f"{name}={getattr(s, name)} is out of range: colour values run from 0 to 255")
    for name in ("space_probability", "overlap", "max_clip"):
        if not 0.0 <= getattr(s, name) <= 1.0:
            raise SpecError(f"{name}={getattr(s, name)} is out of range: use a fraction from 0 to 1")
    if not 0.0 < s.min_scale <= 1.0:
        raise SpecError(f"min_scale={s.min_scale} is out of range: use a fraction above 0, at most 1")
    for name in ("noise_dots", "noise_curves"):
        if not 0 <= getattr(s, name) <= 100_000:
            raise SpecError(f"{name}={getattr(s, name)} is out of range: use a count from 0 to 100000")
    if not 1 <= s.noise_dot_width <= 64:
        raise SpecError(f"noise_dot_width={s.noise_dot_width} is out of range: use 1 to 64 pixels")


def check_fonts(names: Sequence[str], paths: Sequence[Path], charset: str) -> None:
    """Every font exists, is a font file, and draws every character of the charset (else glyphs come out as boxes)."""
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


def font_versions() -> dict[str, str]:
    """Where the shipped fonts come from, for provenance."""
    return {"DroidSansMono": f"captcha {captcha.__version__}", "DejaVu": "2.37 (see captchas/fonts/LICENSE-DejaVu.txt)"}


KNOBS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Spec))

PRESETS: dict[str, Spec] = {
    "easy": Spec(
        font_sizes=(42,), rotate=(-10, 10), warp_dx=(0.05, 0.1), warp_dy=(0.05, 0.1),
        offset_dx=(0, 2), offset_dy=(0, 2), overlap=0.1, noise_dots=10, noise_dot_width=2,
        noise_curves=0, fg=(10, 120), fg_alpha=(240, 255),
    ),
    "medium": Spec(),  # the captcha library's defaults: 160x60, 4 characters
    "hard": Spec(
        length=(5, 6), charset=DEFAULT_CHARSET + DISTINCT_LOWER, width=200, height=70,
        fonts=("DroidSansMono", "DejaVuSans-Bold", "DejaVuSerif"), font_sizes=(44, 50, 56),
        rotate=(-35, 35), warp_dx=(0.1, 0.35), warp_dy=(0.2, 0.35), overlap=0.3,
        noise_dots=60, noise_curves=2, fg_alpha=(200, 255), bg=(220, 255),
    ),
    "extreme": Spec(
        length=(6, 8), charset="2345679ABDEFGHJLMNQRTYabdefghijmnqrty", case_sensitive=True,
        width=240, height=80, fonts=("DroidSansMono", "DejaVuSans-Bold", "DejaVuSerif"),
        font_sizes=(50, 58, 64), rotate=(-45, 45), warp_dx=(0.2, 0.45), warp_dy=(0.25, 0.45),
        offset_dx=(0, 6), offset_dy=(0, 8), space_probability=0.7, overlap=0.45,
        noise_dots=150, noise_curves=5, fg=(60, 200), fg_alpha=(160, 255), bg=(150, 255),
    ),
}


def build_spec(preset: str = "medium", overrides: dict[str, Any] | None = None) -> Spec:
    """The preset's Spec with some knobs replaced; unknown presets or knobs raise SpecError."""
    if preset not in PRESETS:
        raise SpecError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(KNOBS))
    if unknown:
        raise SpecError(f"unknown knob {unknown[0]!r}: valid knobs are {', '.join(KNOBS)}")
    return dataclasses.replace(PRESETS[preset], **overrides)


__all__ = ["Spec", "PRESETS", "KNOBS", "SpecError", "build_spec", "DEFAULT_CHARSET", "FONTS"]
