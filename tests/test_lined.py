"""The `lined` scheme: seeded, legible, sized as asked, regenerable, and strict about its knobs."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from PIL import Image, ImageChops

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


def test_the_text_is_drawn_whole_inside_the_image() -> None:
    """With no lines, the ink (what differs from the background) stays off the border columns: no glyph is cut."""
    scheme = schemes.load("lined", None, {"lines": (0, 0), "length": 8, "font_size": (30, 40)})
    for i in range(20):
        image = scheme.render(scheme.sample_answer(random.Random(i)), random.Random(i))
        ink = ImageChops.difference(image, Image.new("RGB", image.size, image.getpixel((0, 0)))).getbbox()
        assert ink is not None and ink[0] >= 1 and ink[2] <= image.width - 1
        assert ink[2] - ink[0] > image.width // 2  # eight glyphs shrunk to fit, not to nothing


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
        (None, {"charset": "AAB"}, "charset 'AAB' is unusable"),
        (None, {"lines": "many"}, "knob lines='many' has the wrong type"),
        (None, {"line_width": (0, 2)}, r"line_width=\(0, 2\) is too small: use 1 or more"),
        (None, {"rise": -1}, "rise=-1 is too small: use 0 or more"),
    ],
)
def test_bad_knobs_get_one_line_errors(preset: str | None, knobs: dict, message: str) -> None:
    with pytest.raises(schemes.SchemeError, match=message):
        schemes.load("lined", preset, knobs)
