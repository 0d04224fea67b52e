"""The built-in solvers read real text: the engines are installed and wired up correctly."""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw, ImageFont

from captchas.dataset import Challenge
from captchas.knobs import FONTS
from solvers import registry
from solvers.constant import ConstantSolver


def _clean(text: str) -> Challenge:
    """Black text on white, no distortion: any OCR should read it."""
    image = Image.new("RGB", (200, 70), "white")
    font = ImageFont.truetype(str(FONTS["DejaVuSans-Bold"]), 40)
    ImageDraw.Draw(image).text((12, 10), text, font=font, fill="black")
    return Challenge("x", image)


def test_constant_answers_every_item_in_order() -> None:
    batch = [_clean("AB"), _clean("CD")]
    assert ConstantSolver("Q7").solve(batch) == ["Q7", "Q7"]


@pytest.mark.skipif(registry.problem("ocr") is not None, reason=f"ocr cannot run here: {registry.problem('ocr')}")
def test_ocr_reads_clean_text_within_its_whitelist() -> None:
    solver = registry.load("ocr", charset="ABCDEFGHJKLMNPQRSTUVWXYZ23456789")
    assert solver.solve([_clean("K7MP"), _clean("XY3A")]) == ["K7MP", "XY3A"]
    with pytest.raises(registry.SolverError, match="scale must be >= 1"):
        registry.load("ocr", scale=0)


@pytest.mark.skipif(registry.problem("ddddocr") is not None, reason=f"ddddocr cannot run here: {registry.problem('ddddocr')}")
def test_ddddocr_reads_clean_text_and_prints_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    solver = registry.load("ddddocr")
    answers = solver.solve([_clean("K7MP")])
    assert [a.upper() for a in answers] == ["K7MP"]
    assert capfd.readouterr().out == ""


@pytest.mark.skipif(registry.problem("ddddocr") is not None, reason=f"ddddocr cannot run here: {registry.problem('ddddocr')}")
def test_ddddocr_is_held_to_the_data_sets_characters() -> None:
    import contextlib
    import io

    import ddddocr

    batch = [_clean("K7MP"), _clean("XY3A"), _clean("w8Hd")]
    with contextlib.redirect_stdout(io.StringIO()):
        theirs = ddddocr.DdddOcr(show_ad=False)
    shipped = [theirs.classification(c.image) for c in batch]
    assert registry.load("ddddocr", charset="KMPXYA", hold="off").solve(batch) == shipped  # as it ships
    assert registry.load("ddddocr").solve(batch) == shipped  # no charset given: nothing to hold to
    assert any(set(a.upper()) - set("KMPXYA") for a in shipped)  # the digits the set has not
    held = registry.load("ddddocr", charset="KMPXYA", case_sensitive=False).solve(batch)
    assert all(set(a.upper()) <= set("KMPXYA") for a in held)
    assert held[1].upper() == "XYA"
    # hold=filter is ddddocr's own set_ranges: argmax over every class, then the set's characters kept
    theirs.set_ranges("KMPXYA")
    expected = [theirs.ocr_engine.predict(c.image, charset_range="KMPXYA") for c in batch]
    assert registry.load("ddddocr", charset="KMPXYA", case_sensitive=True, hold="filter").solve(batch) == expected
    assert registry.accepts("ddddocr", "charset") and registry.accepts("ddddocr", "case_sensitive")  # a run gives both
    with pytest.raises(registry.SolverError, match="hold is how ddddocr keeps to the data set's characters"):
        registry.load("ddddocr", charset="AB", hold="strict")
