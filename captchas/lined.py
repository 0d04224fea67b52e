"""The `lined` scheme: flat-coloured text on a flat background, light or dark, crossed by wavy lines.

A second look beside the built-in `image` scheme (the captcha library's warped glyphs on dotted
near-white): the style of many real-world CAPTCHAs, TuringPass's among them (150x40, five glyphs of
mixed typefaces, sometimes outlined, over light or dark backgrounds, with jagged lines through them).
It is a plugin like any other (entry point `lined` in the group `captcha_bench.schemes`), drawn with
Pillow alone; every random choice comes from the item's `random.Random`, so a seed gives the same
pixels.
"""

from __future__ import annotations

import functools
import io
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from captchas.knobs import FONTS, Knobs, KnobScheme, SpecError, build_presetless, check_charset, check_fonts, check_range, check_size

TURINGPASS_CHARSET = "123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnpqrstuvwxyz"  # 60 symbols, no 0 or o
Colour = tuple[int, int, int]


@dataclass(frozen=True)
class LinedSpec(Knobs):
    """Every knob of the `lined` scheme; `--set knob=value` replaces one."""

    length: tuple[int, int] = (5, 5)  # characters, inclusive range; an int means a fixed length
    charset: str = TURINGPASS_CHARSET
    case_sensitive: bool = False  # how answers are scored (TuringPass's app ignored case)
    width: int = 150  # pixels
    height: int = 40  # pixels
    fonts: tuple[str, ...] = tuple(FONTS)  # shipped font names or .ttf paths; each glyph picks one
    font_size: tuple[int, int] = (22, 32)  # pixels, inclusive range, per glyph
    rotate: tuple[float, float] = (-15.0, 15.0)  # degrees, per glyph
    spacing: tuple[int, int] = (-4, 2)  # pixels between neighbouring glyphs; negative ones touch
    rise: int = 4  # pixels a glyph may sit above or below the line
    dark: float = 0.5  # chance of a dark background with light text (else dark text on light)
    outline: float = 0.2  # chance that the glyphs are outlined, in near-white or near-black
    lines: tuple[int, int] = (2, 6)  # wavy lines drawn across the text, inclusive range
    line_width: tuple[int, int] = (1, 3)  # pixels
    jag: float = 1.0  # pixels of random up-down jitter along each line
    overflow: float = 0.0  # chance the text keeps its size and runs off the left or right edge, cut there
    jpeg: int = 0  # JPEG quality each image passes through (TuringPass's files: 90); 0 keeps it lossless

    def check(self) -> None:
        _check(self)


def _check(s: LinedSpec) -> None:
    """One-line errors that name the knob and the fix."""
    check_range(s, "length", "font_size", "rotate", "spacing", "lines", "line_width")
    if not 1 <= s.length[0] <= s.length[1] <= 32:
        raise SpecError(f"length {s.length} is impossible: use 1 <= min <= max <= 32, e.g. length=5")
    check_charset(s.charset)
    check_size(s)
    check_fonts(s.fonts, s.font_paths(), s.charset)
    if not 4 <= s.font_size[0] <= s.font_size[1] <= 1024:
        raise SpecError(f"font_size={s.font_size} is out of range: use sizes from 4 to 1024 pixels")
    for name, least, smallest in (("rise", s.rise, 0), ("lines", s.lines[0], 0), ("line_width", s.line_width[0], 1),
                                  ("jag", s.jag, 0)):
        if least < smallest:
            raise SpecError(f"{name}={getattr(s, name)} is too small: use {smallest} or more")
    if not 0 <= s.jpeg <= 100:
        raise SpecError(f"jpeg={s.jpeg} is out of range: use a JPEG quality from 1 to 100, or 0 for none")
    for name in ("dark", "outline", "overflow"):
        if not 0.0 <= getattr(s, name) <= 1.0:
            raise SpecError(f"{name}={getattr(s, name)} is out of range: use a probability from 0 to 1")


@functools.lru_cache(maxsize=256)
def _font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size)  # once per process, font and size


@dataclass(frozen=True)
class LinedScheme(KnobScheme):
    spec: LinedSpec
    name: str = "lined"

    def libraries(self) -> dict[str, str]:
        return {}  # Pillow alone

    def render(self, answer: str, rng: random.Random) -> Image.Image:
        s = self.spec
        dark = rng.random() < s.dark
        bg = _colour(rng, 0, 60) if dark else _colour(rng, 190, 255)
        ink = _colour(rng, 130, 255) if dark else _colour(rng, 0, 110)  # every channel apart: legible in grey too
        halo = (rng.randint(200, 255),) * 3 if rng.random() < 0.5 else (rng.randint(0, 40),) * 3
        outlined = rng.random() < s.outline
        cut = bool(s.overflow) and rng.random() < s.overflow  # no draw at 0: older seeds keep their pixels
        text = self._text(answer, ink, halo if outlined else None, cut, rng)
        image = Image.new("RGB", (s.width, s.height), bg)
        top = (s.height - text.height) // 2
        y = top + rng.randint(-min(2, top), min(2, top)) if top > 0 else 0
        if text.width < s.width - 2:  # always, unless cut: _text shrank it to width - 4 or less
            x = rng.randint(1, max(1, s.width - text.width - 1))
        else:  # too wide on purpose: cut at the left, the right or both
            x = rng.randint(min(0, s.width - text.width), 0)
        n = rng.randint(*s.lines)
        under = rng.randint(0, n // 2)  # a few lines pass under the text, the rest over it
        draw = ImageDraw.Draw(image)
        for _ in range(under):
            self._line(draw, ink, rng)
        image.paste(text, (x, y), text)
        for _ in range(n - under):
            self._line(draw, ink, rng)
        if s.jpeg:
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=s.jpeg)
            image = Image.open(buffer).convert("RGB")  # decoded: the artefacts stay, the format goes
        return image

    def _text(self, answer: str, ink: Colour, halo: Colour | None, cut: bool, rng: random.Random) -> Image.Image:
        """The answer's glyphs side by side on a transparent layer, shrunk to fit the image if needed
        (to fit its height only when `cut`: then the caller lets it run off the sides)."""
        s = self.spec
        paths = s.font_paths()
        stroke = 1 if halo else 0
        glyphs = []
        for ch in answer:
            font = _font(paths[rng.randrange(len(paths))], rng.randint(*s.font_size))
            left, top, right, bottom = (int(v) for v in font.getbbox(ch, stroke_width=stroke))  # whole pixels for truetype
            glyph = Image.new("RGBA", (right - left + 2, bottom - top + 2), (0, 0, 0, 0))
            ImageDraw.Draw(glyph).text((1 - left, 1 - top), ch, font=font, fill=ink + (255,), stroke_width=stroke,
                                       stroke_fill=(halo or ink) + (255,))
            glyphs.append(glyph.rotate(rng.uniform(*s.rotate), resample=Image.Resampling.BICUBIC, expand=True))
        rises = [rng.randint(-s.rise, s.rise) for _ in glyphs]
        gaps = [rng.randint(*s.spacing) for _ in glyphs[1:]] + [0]
        tall = max(g.height for g in glyphs) + 2 * s.rise
        layer = Image.new("RGBA", (sum(g.width for g in glyphs) + sum(max(0, d) for d in gaps) + 2, tall), (0, 0, 0, 0))
        x = 0
        for glyph, rise, gap in zip(glyphs, rises, gaps):
            layer.alpha_composite(glyph, (x, (tall - glyph.height) // 2 + rise))  # in place, over earlier glyphs
            x += max(1, glyph.width + gap)
        layer = layer.crop(layer.getbbox() or (0, 0, 1, 1))
        scale = min(1.0, (s.height - 2) / layer.height, math.inf if cut else (s.width - 4) / layer.width)
        if scale < 1.0:
            layer = layer.resize((max(1, int(layer.width * scale)), max(1, int(layer.height * scale))),
                                 Image.Resampling.LANCZOS)
        return layer

    def _line(self, draw: ImageDraw.ImageDraw, ink: Colour, rng: random.Random) -> None:
        """A wavy, jagged line across the middle band, in the text's colour or another."""
        s = self.spec
        colour = ink if rng.random() < 0.4 else _colour(rng, 0, 255)
        x0 = rng.uniform(-0.1, 0.4) * s.width
        x1 = rng.uniform(0.6, 1.1) * s.width
        base = s.height * rng.uniform(0.25, 0.75)
        slope = rng.uniform(-0.15, 0.15) * s.height / s.width
        amplitude, period, phase = rng.uniform(0.5, 3.0), rng.uniform(15, 60), rng.uniform(0, 2 * math.pi)
        steps = max(2, int((x1 - x0) / 3))
        points = []
        for k in range(steps + 1):
            px = x0 + (x1 - x0) * k / steps
            py = base + slope * (px - x0) + amplitude * math.sin(2 * math.pi * px / period + phase)
            points.append((px, py + rng.uniform(-s.jag, s.jag)))
        draw.line(points, fill=colour, width=rng.randint(*s.line_width), joint="curve")


def _colour(rng: random.Random, lo: int, hi: int) -> Colour:
    return (rng.randint(lo, hi), rng.randint(lo, hi), rng.randint(lo, hi))


def lined_scheme(preset: str | None = None, **knobs: Any) -> LinedScheme:
    """Factory (entry point `lined`): one look, so no presets beyond its defaults; knobs replace them."""
    return LinedScheme(build_presetless("lined", LinedSpec, preset, knobs))
