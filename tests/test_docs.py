"""The documents stay honest: they point at files that exist, and never outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_document_points_outside_the_repository(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert "../shared" not in text and "](../" not in text


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_and_image_exists(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#:]+)\)", text):  # relative links and images, not URLs
        assert (path.parent / target).exists(), f"{path.name} links {target}, which does not exist"


def test_the_readme_layout_names_modules_that_exist() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    layout = text.split("## Layout", 1)[1].split("##", 1)[0]
    for package in ("captchas", "solvers", "bench"):
        block = re.search(rf"^{package}/(.*?)(?=^\S)", layout, re.S | re.M)
        assert block, package
        for module in re.findall(r"\b(\w+\.py)\b", block.group(1)):
            found = list((ROOT / package).rglob(module))
            assert found, f"the README's layout names {package}/…/{module}, which does not exist"
    for step in re.findall(r"`((?:captchas|bench)/\w+\.py)`", text):
        assert (ROOT / step).is_file(), step
