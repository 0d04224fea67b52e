"""The layers depend one way: captchas (data and rules) <- solvers <- bench (runner, report, CLI).

Read from the source, every import, at any depth (a function-level import counts too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported(package: str) -> dict[str, set[str]]:
    """module path -> the top-level packages it imports."""
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize(("package", "forbidden"), [("captchas", {"solvers", "bench"}), ("solvers", {"bench"})])
def test_lower_layers_never_import_higher_ones(package: str, forbidden: set[str]) -> None:
    offenders = {module: sorted(names & forbidden) for module, names in imported(package).items() if names & forbidden}
    assert offenders == {}
