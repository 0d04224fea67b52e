"""Difficulty knobs of the built-in image scheme: the Spec record, the named presets, the fonts.

A Spec is data: every knob has a default, a unit and a check. `build_spec` turns a preset name
plus overrides (from the CLI or a dataset.json) into a validated Spec.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import captcha

from captchas.knobs import FONTS, Knobs, SpecError, check_charset, check_fonts, check_range, check_size

# Digits and upper case without the glyphs people confuse: 0/O, 1/I (l is lower case, absent).
DEFAULT_CHARSET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
# Lower-case letters whose shape differs from their capital (no c/k/o/p/s/u/v/w/x/z, no l).
DISTINCT_LOWER = "abdefghijmnqrt"

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


def _check(s: Spec) -> None:
    """Reject knob values that cannot give a legible CAPTCHA."""
    lo, hi = s.length
    if not 1 <= lo <= hi:
        raise SpecError(f"length {s.length} is impossible: use 1 <= min <= max, e.g. length=4 or length=(4,6)")
    if hi > 64:
        raise SpecError(f"length {s.length} is too long: at most 64 characters")
    check_charset(s.charset)
    check_size(s)
    check_fonts(s.fonts, s.font_paths(), s.charset)
    if not s.font_sizes or any(not 4 <= size <= 1024 for size in s.font_sizes):
        raise SpecError(f"font_sizes {s.font_sizes} is invalid: give one or more sizes from 4 to 1024 pixels")
    check_range(s, "rotate", "warp_dx", "warp_dy", "offset_dx", "offset_dy", "fg", "fg_alpha", "bg")
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
