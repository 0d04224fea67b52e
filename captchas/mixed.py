"""The `mixed` scheme: a broad mix of text CAPTCHAs, for pre-training a general reader.

Each item takes one of `styles` looks, drawn once from `style_seed`: half are the built-in `image`
scheme (the captcha library's warped glyphs) and half the `lined` scheme (flat glyphs over wavy
lines, light or dark), each with its own knobs drawn from wide ranges: image size and aspect, fonts
and font sizes, rotation, warp, overlap, dots, curves, colours. Then the item itself may be resized
(size and aspect), set as a band in a larger cluttered frame, covered with translucent discs,
blurred, or passed through JPEG. Every random choice comes from the item's `random.Random`, so a
seed gives the same pixels. Digits and both cases; scored case-sensitively, as it is drawn.
"""

from __future__ import annotations

import functools
import io
import random
import string
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw, ImageFilter

from captchas import render as _render
from captchas.knobs import FONTS, Knobs, KnobScheme, SpecError, build_presetless, check_charset, check_fonts, check_range
from captchas.lined import LinedScheme, LinedSpec
from captchas.spec import Spec

ALL_CHARACTERS = string.digits + string.ascii_uppercase + string.ascii_lowercase


@dataclass(frozen=True)
class MixedSpec(Knobs):
    """Every knob of the `mixed` scheme; `--set knob=value` replaces one."""

    length: tuple[int, int] = (3, 7)  # characters, inclusive range
    charset: str = ALL_CHARACTERS
    case_sensitive: bool = True  # drawn in both cases; a case-insensitive target set folds at reading time
    fonts: tuple[str, ...] = tuple(FONTS)  # each look picks one to three of these
    styles: int = 64  # looks, half of each scheme, drawn once from style_seed
    style_seed: int = 0
    resize: tuple[float, float] = (0.6, 1.5)  # each item's scale after drawing (its aspect moves by up to 20 % too)
    banded: float = 0.15  # chance the CAPTCHA sits as a band across a larger, cluttered frame
    discs: float = 0.15  # chance of translucent coloured discs over the text
    blur: float = 0.15  # chance of a Gaussian blur (radius 0.3-1.2 pixels)
    jpeg: float = 0.2  # chance of JPEG at quality 30-90

    def check(self) -> None:
        check_range(self, "length", "resize")
        if not 1 <= self.length[0] <= self.length[1] <= 12:
            raise SpecError(f"length {self.length} is impossible: use 1 <= min <= max <= 12, e.g. length=(3,7)")
        check_charset(self.charset)
        check_fonts(self.fonts, self.font_paths(), self.charset)
        if not 2 <= self.styles <= 4096:
            raise SpecError(f"styles={self.styles} is out of range: use 2 to 4096 looks")
        if not 0.2 <= self.resize[0] <= self.resize[1] <= 4.0:
            raise SpecError(f"resize={self.resize} is out of range: use scales from 0.2 to 4")
        for name in ("banded", "discs", "blur", "jpeg"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise SpecError(f"{name}={getattr(self, name)} is out of range: use a probability from 0 to 1")


@dataclass(frozen=True)
class MixedScheme(KnobScheme):
    spec: MixedSpec
    name: str = "mixed"

    def render(self, answer: str, rng: random.Random) -> Image.Image:
        s = self.spec
        looks = _looks(s)
        look = looks[rng.randrange(len(looks))]
        if isinstance(look, Spec):
            try:
                image = _render.render(answer, look, rng, _generator(look))[0]
            except _render.IllegibleError:  # too long for this look's width: a lined look draws it instead
                image = LinedScheme(_fallback(s)).render(answer, rng)
        else:
            image = LinedScheme(look).render(answer, rng)
        image = image.convert("RGB")
        scale, stretch = rng.uniform(*s.resize), rng.uniform(0.8, 1.2)
        size = (max(8, round(image.width * scale * stretch)), max(8, round(image.height * scale / stretch)))
        image = image.resize(size, Image.Resampling.BILINEAR)
        if rng.random() < s.discs:
            image = _discs(image, rng, rng.randint(3, 25))
        if rng.random() < s.banded:
            image = _band(image, rng)
        if rng.random() < s.blur:
            image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
        if rng.random() < s.jpeg:
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=rng.randint(30, 90))
            image = Image.open(buffer).convert("RGB")
        return image


@functools.lru_cache(maxsize=4)
def _looks(s: MixedSpec) -> tuple[Spec | LinedSpec, ...]:
    """The scheme's looks, drawn once per process from style_seed: image and lined alternately."""
    rng = random.Random(s.style_seed)
    return tuple(_image_look(s, rng) if k % 2 == 0 else _lined_look(s, rng) for k in range(s.styles))


def _image_look(s: MixedSpec, rng: random.Random) -> Spec:
    height = rng.randint(40, 90)
    size = height * rng.uniform(0.6, 0.95)
    fg_low, bg_low = rng.randint(0, 110), rng.randint(160, 245)
    return Spec(
        length=s.length, charset=s.charset, case_sensitive=s.case_sensitive, height=height,
        width=round(height * rng.uniform(2.6, 4.6)), fonts=tuple(rng.sample(s.fonts, rng.randint(1, min(3, len(s.fonts))))),
        font_sizes=tuple(sorted({max(8, round(size * f)) for f in (0.85, 1.0, 1.12)[: rng.randint(1, 3)]})),
        rotate=(-(r := rng.uniform(0, 40)), r), warp_dx=(0.0, rng.uniform(0.05, 0.4)), warp_dy=(0.0, rng.uniform(0.05, 0.4)),
        offset_dx=(0, rng.randint(0, 6)), offset_dy=(0, rng.randint(0, 8)), space_probability=rng.uniform(0.3, 0.9),
        overlap=rng.uniform(0.0, 0.4), noise_dots=rng.choice([0, 10, 30, 60, 100]), noise_dot_width=rng.randint(1, 4),
        noise_curves=rng.randint(0, 4), fg=(fg_low, max(fg_low, min(bg_low - 60, fg_low + rng.randint(20, 110)))),
        fg_alpha=(rng.randint(170, 240), 255), bg=(bg_low, 255), max_clip=0.1, min_scale=0.3,
    )


def _lined_look(s: MixedSpec, rng: random.Random) -> LinedSpec:
    height = rng.randint(30, 80)
    return LinedSpec(
        length=s.length, charset=s.charset, case_sensitive=s.case_sensitive, height=height,
        width=round(height * rng.uniform(2.6, 5.0)), fonts=tuple(rng.sample(s.fonts, rng.randint(1, min(3, len(s.fonts))))),
        font_size=(round(height * rng.uniform(0.45, 0.6)), round(height * rng.uniform(0.65, 0.85))),
        rotate=(-(r := rng.uniform(0, 30)), r), spacing=(rng.randint(-5, 0), rng.randint(0, 6)), rise=rng.randint(0, 6),
        dark=rng.uniform(0.0, 1.0), outline=rng.uniform(0.0, 0.5), lines=(rng.randint(0, 3), rng.randint(3, 7)),
        line_width=(1, rng.randint(1, 4)), jag=rng.uniform(0.0, 2.0),
    )


def _fallback(s: MixedSpec) -> LinedSpec:
    return LinedSpec(length=s.length, charset=s.charset, case_sensitive=s.case_sensitive, fonts=s.fonts,
                     width=60 * s.length[1], height=60, font_size=(30, 44))


@functools.lru_cache(maxsize=4096)
def _generator(spec: Spec) -> _render._TracedCaptcha:
    return _render.make_captcha(spec)  # once per process and look: the fonts stay loaded


def _colour(rng: random.Random) -> tuple[int, int, int]:
    return (rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255))


def _discs(image: Image.Image, rng: random.Random, count: int) -> Image.Image:
    """Translucent discs of random colours and sizes over the image."""
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for _ in range(count):
        r = rng.uniform(0.05, 0.3) * image.height
        x, y = rng.uniform(0, image.width), rng.uniform(0, image.height)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=_colour(rng) + (rng.randint(40, 140),))
    return Image.alpha_composite(image.convert("RGBA"), layer).convert("RGB")


def _band(image: Image.Image, rng: random.Random) -> Image.Image:
    """The image as a band across a larger frame of another colour, with solid discs and lines around it."""
    width, height = round(image.width * rng.uniform(1.0, 1.6)), round(image.height * rng.uniform(2.0, 4.5))
    frame = Image.new("RGB", (width, height), _colour(rng))
    draw = ImageDraw.Draw(frame)
    for _ in range(rng.randint(0, 30)):
        r = rng.uniform(0.02, 0.12) * height
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=_colour(rng))
    for _ in range(rng.randint(0, 6)):
        draw.line([(rng.uniform(0, width), rng.uniform(0, height)) for _ in range(2)], fill=_colour(rng),
                  width=rng.randint(1, 4))
    frame.paste(image, (rng.randint(0, width - image.width), rng.randint(0, height - image.height)))
    return frame


def mixed_scheme(preset: str | None = None, **knobs: Any) -> MixedScheme:
    """Factory (entry point `mixed`): no presets; knobs replace the defaults."""
    return MixedScheme(build_presetless("mixed", MixedSpec, preset, knobs))
