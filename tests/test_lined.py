"""The `lined` scheme: seeded, legible, sized as asked, regenerable, and strict about its knobs."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageStat

from captchas import schemes
from captchas.generate import make_dataset, regenerate
from captchas.lined import TURINGPASS_CHARSET, LinedScheme


def test_lined_is_an_installed_scheme_with_turingpass_like_defaults() -> None:
    assert "lined" in schemes.available()
    scheme = schemes.load("lined")
    assert isinstance(scheme, LinedScheme) and isinstance(scheme, schemes.Scheme)
    answer = scheme.sample_answer(random.Random(0))
    assert len(answer) == 5 and set(answer) <= set(TURINGPASS_CHARSET) and not scheme.case_sensitive
    assert scheme.render(answer, random.Random(0)).size == (150, 40)


def test_the_same_seed_draws_the_same_pixels_and_another_seed_others() -> None:
    scheme = schemes.load("lined")
    a, b = scheme.render("1AbcD", random.Random(5)), scheme.render("1AbcD", random.Random(5))
    c = scheme.render("1AbcD", random.Random(6))
    assert a.tobytes() == b.tobytes() and a.tobytes() != c.tobytes()


def ink_box(image: Image.Image, background_at: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """Bounding box of whatever differs from the background colour found at `background_at`."""
    return ImageChops.difference(image, Image.new("RGB", image.size, image.getpixel(background_at))).getbbox()


def test_the_text_is_drawn_whole_inside_the_image() -> None:
    """With no lines, the ink (what differs from the background) stays off the border columns: no glyph is cut."""
    scheme = schemes.load("lined", None, {"lines": (0, 0), "length": 8, "font_size": (30, 40)})
    for i in range(20):
        image = scheme.render(scheme.sample_answer(random.Random(i)), random.Random(i))
        ink = ink_box(image, (0, 0))
        assert ink is not None and ink[0] >= 1 and ink[2] <= image.width - 1
        assert ink[2] - ink[0] > image.width // 2  # eight glyphs shrunk to fit, not to nothing


def test_overflow_keeps_large_text_whole_size_and_cuts_it_at_an_edge() -> None:
    """Without overflow twelve large glyphs shrink to fit; with it they keep their height, run off the
    image and so touch a border column."""
    knobs = {"lines": (0, 0), "length": 12, "font_size": (36, 40)}
    fitted, cut = schemes.load("lined", None, knobs), schemes.load("lined", None, {**knobs, "overflow": 1.0})
    for i in range(10):
        answer = fitted.sample_answer(random.Random(i))
        a, b = fitted.render(answer, random.Random(i)), cut.render(answer, random.Random(i))
        ink_a, ink_b = ink_box(a, (a.width // 2, 0)), ink_box(b, (b.width // 2, 0))
        assert ink_a is not None and ink_b is not None
        assert ink_a[0] >= 1 and ink_a[2] <= a.width - 1
        assert ink_b[0] == 0 or ink_b[2] == b.width
        assert ink_b[3] - ink_b[1] > ink_a[3] - ink_a[1]  # taller: not shrunk to the width


def test_jpeg_leaves_its_artefacts_and_no_other_change() -> None:
    plain, lossy = schemes.load("lined"), schemes.load("lined", None, {"jpeg": 90})
    a, b = plain.render("1AbcD", random.Random(3)), lossy.render("1AbcD", random.Random(3))
    assert b.mode == "RGB" and b.size == a.size and a.tobytes() != b.tobytes()
    assert ImageStat.Stat(ImageChops.difference(a, b).convert("L")).mean[0] < 8  # the same picture, slightly blurred


def test_a_lined_data_set_regenerates_to_the_same_bytes(tmp_path: Path) -> None:
    scheme = schemes.load("lined", None, {"length": (4, 6)})
    data = make_dataset(scheme, 6, 3, tmp_path / "lined", scheme_name="lined")
    assert data.info["scheme"] == "lined" and data.info["knobs"]["length"] == [4, 6]
    assert any(k.startswith("font ") for k in data.info["versions"])
    assert regenerate(data).problems == []


@pytest.mark.parametrize(
    ("preset", "knobs", "message"),
    [
        ("hard", {}, "scheme lined has no preset 'hard'"),
        (None, {"noise_dots": 3}, "unknown knob 'noise_dots': valid knobs of lined are length"),
        (None, {"length": 0}, r"length \(0, 0\) is impossible"),
        (None, {"font_size": (30, 20)}, "font_size=.* is not a .low, high. range"),
        (None, {"dark": 1.5}, "dark=1.5 is out of range"),
        (None, {"fonts": "Nope"}, "font 'Nope' not found"),
        (None, {"charset": "AAB"}, "charset 'AAB' repeats a character"),
        (None, {"lines": "many"}, "knob lines='many' has the wrong type"),
        (None, {"line_width": (0, 2)}, r"line_width=\(0, 2\) is too small: use 1 or more"),
        (None, {"rise": -1}, "rise=-1 is too small: use 0 or more"),
        (None, {"overflow": 2}, "overflow=2.0 is out of range: use a probability"),
        (None, {"jpeg": 101}, "jpeg=101 is out of range: use a JPEG quality from 1 to 100, or 0 for none"),
    ],
)
def test_bad_knobs_get_one_line_errors(preset: str | None, knobs: dict, message: str) -> None:
    with pytest.raises(schemes.SchemeError, match=message):
        schemes.load("lined", preset, knobs)
