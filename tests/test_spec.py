"""Knobs, presets and their validation."""

from __future__ import annotations

import dataclasses

import pytest
from captcha.image import ImageCaptcha

from captchas.knobs import SpecError
from captchas.spec import DEFAULT_CHARSET, KNOBS, PRESETS, Spec, build_spec


def test_presets_are_the_four_named_levels() -> None:
    assert {"easy", "medium", "hard", "extreme"} <= set(PRESETS)


def test_medium_is_the_library_default() -> None:
    medium = PRESETS["medium"]
    lib = ImageCaptcha()
    assert (medium.width, medium.height, medium.length) == (160, 60, (4, 4))
    assert medium.font_sizes == (42, 50, 56)
    assert medium.rotate == lib.character_rotate
    assert medium.warp_dx == lib.character_warp_dx and medium.warp_dy == lib.character_warp_dy
    assert medium.offset_dx == lib.character_offset_dx and medium.offset_dy == lib.character_offset_dy
    assert medium.space_probability == lib.word_space_probability and medium.overlap == lib.word_offset_dx


def test_default_charset_leaves_out_confusable_glyphs() -> None:
    for glyph in "0O1Il":
        assert glyph not in DEFAULT_CHARSET


def test_presets_get_harder() -> None:
    order = [PRESETS[n] for n in ("easy", "medium", "hard", "extreme")]
    spans = [s.rotate[1] - s.rotate[0] for s in order]
    assert spans == sorted(spans) and len(set(spans)) == 4
    assert [s.length[1] for s in order] == sorted(s.length[1] for s in order)


def test_overrides_replace_only_named_knobs() -> None:
    spec = build_spec("hard", {"length": 7, "charset": "ABC"})
    assert spec.length == (7, 7) and spec.charset == "ABC"
    assert spec.rotate == PRESETS["hard"].rotate


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"fonts": "DejaVuSerif,DroidSansMono"}, ("DejaVuSerif", "DroidSansMono")),
        ({"charset": 2345}, "2345"),  # --set charset=2345 arrives as an int
        ({"rotate": [-5, 5]}, (-5.0, 5.0)),  # JSON lists become tuples
        ({"length": (3, 5)}, (3, 5)),
    ],
)
def test_values_from_the_cli_and_json_are_coerced(overrides: dict, expected: object) -> None:
    spec = build_spec("medium", overrides)
    assert getattr(spec, next(iter(overrides))) == expected


def test_to_dict_round_trips() -> None:
    for spec in PRESETS.values():
        assert Spec(**spec.to_dict()) == spec


def test_unknown_preset_lists_the_valid_ones() -> None:
    with pytest.raises(SpecError, match="unknown preset 'brutal': choose one of easy, medium, hard, extreme"):
        build_spec("brutal")


def test_unknown_knob_lists_the_valid_ones() -> None:
    with pytest.raises(SpecError, match="unknown knob 'blur': valid knobs are length, charset"):
        build_spec("medium", {"blur": 2})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"charset": ""}, "charset is empty"),
        ({"charset": "AB C"}, "white space"),
        ({"charset": "AAB"}, "repeats a character"),
        ({"length": 0}, "length .* is impossible"),
        ({"length": (5, 3)}, "length .* is impossible"),
        ({"length": 500}, "too long"),
        ({"width": 0}, "width=0 is out of range"),
        ({"fonts": "NoSuchFont"}, "font 'NoSuchFont' not found"),
        ({"font_sizes": ()}, "font_sizes"),
        ({"rotate": (30, -30)}, "rotate=.* is not a \\(low, high\\) range"),
        ({"bg": (200, 300)}, "colour values run from 0 to 255"),
        ({"offset_dx": (-3, 2)}, "negative"),
        ({"max_clip": 2.0}, "max_clip=2.0 is out of range"),
        ({"min_scale": 0}, "min_scale=0.0 is out of range"),
        ({"noise_dots": -1}, "noise_dots=-1 is out of range"),
        ({"width": "wide"}, "width='wide' has the wrong type"),
        ({"case_sensitive": "yes"}, "has the wrong type"),
        ({"length": 2.5}, "has the wrong type"),
    ],
)
def test_bad_knobs_are_refused_with_a_message(overrides: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        build_spec("medium", overrides)


def test_every_knob_is_documented() -> None:
    from pathlib import Path

    from captchas.lined import LinedSpec

    text = (Path(__file__).resolve().parents[1] / "docs" / "generator.md").read_text()
    knobs = list(KNOBS) + [f.name for f in dataclasses.fields(LinedSpec)]
    missing = [k for k in knobs if f"`{k}`" not in text]
    assert not missing, f"docs/generator.md lacks knobs {missing}"
