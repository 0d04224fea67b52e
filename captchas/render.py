"""Render one CAPTCHA from a Spec with the `captcha` library, seeded, and check it can be read.

The only module that touches the `captcha` library. captcha 0.7.1 draws every random number from
the `secrets` module, so a seed alone fixes nothing: `_seeded` swaps that module, inside
`captcha.image` only and only while one image is drawn, for an object backed by our seeded
`random.Random`. tests/test_render.py proves the swap catches every draw; an upgrade that adds
another source of randomness fails those tests. The swap is process-wide, so render from one
thread per process (make_dataset uses processes).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from dataclasses import dataclass

import captcha.image as _lib
from captcha.image import ImageCaptcha
from PIL import Image
from PIL.Image import ImagePointHandler
from PIL.ImageDraw import Draw
from PIL.ImageFilter import SMOOTH

from captchas.spec import Spec
from captchas.errors import UserError

MAX_TRIES = 100  # renders of one answer before the spec is declared unable to draw it legibly


class IllegibleError(UserError):
    """A spec that clips or squeezes an answer on every try."""


@dataclass(frozen=True)
class Render:
    """One render and the legibility figures of its worst glyph."""

    image: Image.Image
    clip: float  # largest fraction of one glyph's ink that fell outside the image (0-1)
    scale: float  # horizontal squeeze the library applied to fit the text (1.0 = none)


class _SeededSecrets:
    """The three `secrets` functions captcha.image calls, drawn from one random.Random."""

    def __init__(self, rng: random.Random) -> None:
        self.randbelow = rng.randrange  # randbelow(n): 0 <= x < n; both reject n <= 0
        self.randbits = rng.getrandbits
        self.choice = rng.choice


@contextlib.contextmanager
def _seeded(rng: random.Random) -> Iterator[None]:
    saved = _lib.secrets
    _lib.secrets = _SeededSecrets(rng)  # type: ignore[assignment]
    try:
        yield
    finally:
        _lib.secrets = saved


class _Lookup(ImagePointHandler):
    """The library's lookup_table, pre-rounded: Image.point would round all 256 entries per glyph."""

    def __init__(self, table: list[int]) -> None:
        self.table = [round(v) for v in table]

    def point(self, im: Image.Image) -> Image.Image:
        return im._new(im.im.point(self.table, None))  # what Image.point does after rounding


_LOOKUP = _Lookup(ImageCaptcha.lookup_table)


class _TracedCaptcha(ImageCaptcha):
    """ImageCaptcha whose glyph layout also reports clipping and squeeze.

    `create_captcha_image` is captcha 0.7.1's own (BSD licence), line for line, plus the
    bookkeeping; tests compare it pixel for pixel with the library's method.
    """

    def create_captcha_image_traced(
        self, chars: str, color: _lib.ColorTuple, background: _lib.ColorTuple
    ) -> tuple[Image.Image, float, float]:
        secrets = _lib.secrets
        image = Image.new("RGB", (self._width, self._height), background)
        draw = Draw(image)

        images: list[Image.Image] = []
        for c in chars:
            if secrets.randbits(32) / (2**32) > self.word_space_probability:
                images.append(self._draw_character(" ", draw, color))
            images.append(self._draw_character(c, draw, color))

        text_width = sum([im.size[0] for im in images])
        width = max(text_width, self._width)
        image = image.resize((width, self._height))

        average = int(text_width / len(chars))
        rand = int(self.word_offset_dx * average)
        offset = int(average * 0.1)

        clip = 0.0
        for im in images:
            w, h = im.size
            mask = im.convert("L").point(_LOOKUP)
            y = int((self._height - h) / 2)
            image.paste(im, (offset, y), mask)
            clip = max(clip, _clipped_ink(mask, offset, y, width, self._height))
            offset = offset + w + (-secrets.randbelow(rand + 1))

        if width > self._width:
            image = image.resize((self._width, self._height))
        return image, clip, self._width / width

    def create_captcha_image(self, chars: str, color: _lib.ColorTuple, background: _lib.ColorTuple) -> Image.Image:
        return self.create_captcha_image_traced(chars, color, background)[0]


def _clipped_ink(mask: Image.Image, x: int, y: int, width: int, height: int) -> float:
    """Fraction of a glyph mask's ink that lands outside a width x height canvas at (x, y)."""
    box = mask.getbbox()
    if box is None:  # a blank glyph
        return 0.0
    left, top, right, bottom = box
    if x + left >= 0 and y + top >= 0 and x + right <= width and y + bottom <= height:
        return 0.0  # the common case: no pixel counting needed
    total = _ink(mask)
    inside = mask.crop((max(0, -x), max(0, -y), min(mask.width, width - x), min(mask.height, height - y)))
    return 1.0 - _ink(inside) / total if total else 0.0


def _ink(mask: Image.Image) -> int:
    return sum(value * count for value, count in enumerate(mask.histogram()))


def make_captcha(spec: Spec) -> _TracedCaptcha:
    """One library object per data set: it caches the loaded fonts."""
    generator = _TracedCaptcha(
        width=spec.width, height=spec.height, fonts=[str(p) for p in spec.font_paths()], font_sizes=tuple(spec.font_sizes)
    )
    configure(generator, spec)
    return generator


def configure(generator: ImageCaptcha, spec: Spec) -> None:
    """Map the Spec's knobs onto the library's class attributes (set per instance)."""
    generator.character_rotate = spec.rotate  # type: ignore[assignment]
    generator.character_warp_dx = spec.warp_dx
    generator.character_warp_dy = spec.warp_dy
    generator.character_offset_dx = spec.offset_dx
    generator.character_offset_dy = spec.offset_dy
    generator.word_space_probability = spec.space_probability
    generator.word_offset_dx = spec.overlap


def render_attempt(
    text: str, spec: Spec, rng: random.Random, generator: _TracedCaptcha | None = None, full: bool = True
) -> Render:
    """Draw `text` once, as ImageCaptcha.generate_image does, with every random number from `rng`.

    With full=False an illegible layout returns before noise and smoothing (a cheaper rejection).
    """
    generator = generator or make_captcha(spec)
    with _seeded(rng):
        # Same order of draws as ImageCaptcha.generate_image: background, opacity, colour.
        background = _lib.random_color(*spec.bg)
        alpha = _lib.secrets.randbelow(spec.fg_alpha[1] - spec.fg_alpha[0] + 1) + spec.fg_alpha[0]
        color = _lib.random_color(*spec.fg, alpha)
        image, clip, scale = generator.create_captcha_image_traced(text, color, background)
        if not _legible(clip, scale, spec) and not full:
            return Render(image=image, clip=clip, scale=scale)  # rejected: skip the noise
        if spec.noise_dots:
            generator.create_noise_dots(image, color, width=spec.noise_dot_width, number=spec.noise_dots)
        for _ in range(spec.noise_curves):
            generator.create_noise_curve(image, color)
        image = image.filter(SMOOTH)
    return Render(image=image, clip=clip, scale=scale)


def is_legible(attempt: Render, spec: Spec) -> bool:
    """The legibility rule: no glyph clipped beyond max_clip, no squeeze below min_scale."""
    return _legible(attempt.clip, attempt.scale, spec)


def _legible(clip: float, scale: float, spec: Spec) -> bool:
    return clip <= spec.max_clip and scale >= spec.min_scale


def render(text: str, spec: Spec, rng: random.Random, generator: _TracedCaptcha | None = None) -> tuple[Image.Image, int]:
    """A legible image of `text` and the number of tries it took; raises IllegibleError."""
    generator = generator or make_captcha(spec)
    for tries in range(1, MAX_TRIES + 1):
        attempt = render_attempt(text, spec, rng, generator, full=False)
        if is_legible(attempt, spec):
            return attempt.image, tries
    raise IllegibleError(
        f"{text!r} came out clipped or squeezed in all {MAX_TRIES} tries: "
        "make width/height larger or font_sizes/length smaller"
    )


@dataclass(frozen=True)
class Legibility:
    """How often single renders of a spec break the legibility rule (measured, not assumed)."""

    renders: int
    cut: int  # some glyph lost any ink beyond the image edge
    clipped: int  # a glyph lost more than max_clip of its ink beyond the image edge
    squeezed: int  # the text was squeezed below min_scale
    rejected: int  # either; these get redrawn by `render`

    @property
    def rejected_rate(self) -> float:
        return self.rejected / self.renders


def measure_legibility(spec: Spec, renders: int, seed: int = 0) -> Legibility:
    """Render `renders` random answers once each and count the ones the rule rejects."""
    generator = make_captcha(spec)
    rng = random.Random(f"legibility:{seed}")
    cut = clipped = squeezed = rejected = 0
    for _ in range(renders):
        text = "".join(rng.choice(spec.charset) for _ in range(rng.randint(*spec.length)))
        attempt = render_attempt(text, spec, rng, generator, full=False)
        cut += attempt.clip > 0
        clipped += attempt.clip > spec.max_clip
        squeezed += attempt.scale < spec.min_scale
        rejected += not is_legible(attempt, spec)
    return Legibility(renders=renders, cut=cut, clipped=clipped, squeezed=squeezed, rejected=rejected)


def library_captcha(spec: Spec) -> ImageCaptcha:
    """The unmodified library class with the spec's knobs: the baseline of the speed benchmark."""
    generator = ImageCaptcha(
        width=spec.width, height=spec.height, fonts=[str(p) for p in spec.font_paths()], font_sizes=tuple(spec.font_sizes)
    )
    configure(generator, spec)
    return generator
