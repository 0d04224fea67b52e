"""The layers depend one way: captchas (data and rules) <- solvers <- bench (runner, report, CLI), the
rooms inside bench/ too, with no import circle and no module over 400 lines (docs/architecture.md).

Read from the source, every import, at any depth (a function-level import counts too)."""

from __future__ import annotations

import ast
import functools
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


LARGEST = 400  # lines: a module longer than this holds more than one idea
PACKAGES = ("captchas", "solvers", "bench")


@functools.cache
def modules() -> dict[str, Path]:
    """Every module of the project, by dotted name (a package by its __init__)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


@functools.cache
def edges() -> dict[str, set[str]]:
    """module -> the project's modules it names in an import (`from P import m` names P.m where m is a module),
    at any depth. Importing P.m also runs P's __init__; that is not counted as an edge."""
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        found = set()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name in known}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level and node.module in known:
                subs = {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in known}
                found |= subs or {node.module}
                if len(subs) < len(node.names):
                    found.add(node.module)
        graph[name] = found - {name}
    return graph


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the modules along it, or None."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_circle_at_any_depth() -> None:
    assert cycle(edges()) is None


def test_no_module_is_over_the_limit() -> None:
    long = {name: n for name, path in modules().items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > LARGEST}
    assert long == {}


RUNNERS = {"bench.benchmark", "bench.suite", "bench.sweep", "bench.attack", "bench.measure", "bench.executors",
           "bench.host"}


def _reaches(module: str, names: set[str]) -> set[str]:
    """What `module` imports, directly, of `names` or of the packages among them."""
    return {n for n in edges()[module] if n in names or any(n.startswith(p + ".") for p in names)}


@pytest.mark.parametrize(("room", "forbidden"), [
    ("bench.runfolder", {"bench.report", "bench.cli", *RUNNERS}),  # the run folder's owner is below whoever writes it
    ("bench.report", {"bench.cli", *RUNNERS}),  # a report reads run folders; it never runs anything
    ("bench.stats", {"bench.report", "bench.cli", "bench.runfolder", *RUNNERS}),  # the floor under runs and reports
    ("bench.summary", {"bench.report", "bench.cli", *RUNNERS}),
    ("bench.provenance", {"bench.report", "bench.cli", *RUNNERS}),
    ("bench.study", {"bench.report", "bench.cli", *RUNNERS}),
])
def test_the_rooms_of_bench_depend_one_way(room: str, forbidden: set[str]) -> None:
    inside = [m for m in modules() if m == room or m.startswith(room + ".")]
    offenders = {m: sorted(_reaches(m, forbidden)) for m in inside if _reaches(m, forbidden)}
    assert offenders == {}


def test_only_the_command_line_imports_the_command_line() -> None:
    outside = [m for m in modules() if not (m == "bench.cli" or m.startswith("bench.cli."))]
    offenders = {m: sorted(_reaches(m, {"bench.cli"})) for m in outside if _reaches(m, {"bench.cli"})}
    assert offenders == {}


@pytest.mark.parametrize("package", ["captchas", "bench"])
def test_every_function_level_import_of_our_own_says_why(package: str) -> None:
    """An import inside a function hides the graph; it is allowed where it keeps something heavy (torch,
    matplotlib, the study's web server, a command's runner) off a light path (--help), and says so."""
    silent = []
    for name, path in modules().items():
        if not name.startswith(package):
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        functions = [n for n in ast.walk(ast.parse("\n".join(lines))) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        for node in (inner for f in functions for inner in ast.walk(f)):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                if module and module.split(".")[0] in PACKAGES and "#" not in lines[(node.end_lineno or node.lineno) - 1]:
                    silent.append(f"{name}:{node.lineno}")
    assert sorted(set(silent)) == []
