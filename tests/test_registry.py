"""Solver discovery: built-ins, module:attr, and a user's own package installed with pip."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from solvers import registry

BIN = Path(sys.executable).parent


def _declared(group: str) -> dict[str, str]:
    """The entry points setup.cfg declares in `group`: name -> module:attr."""
    import configparser

    config = configparser.ConfigParser()
    config.read(Path(__file__).resolve().parents[1] / "setup.cfg", encoding="utf-8")
    lines = config["options.entry_points"][group].strip().splitlines()
    return dict((part.strip() for part in line.split("=", 1)) for line in lines)  # type: ignore[misc]


def test_builtins_are_registered_through_entry_points() -> None:
    assert {"ocr", "ddddocr", "constant"} <= set(registry.available())


def test_every_shipped_solver_and_scheme_is_installed_and_resolves_to_what_setup_cfg_names() -> None:
    """The solvers and schemes the project ships, each by name, so that losing one (an entry point
    dropped, a class renamed or moved) fails here rather than in a user's run."""
    from captchas import schemes

    solvers, made = _declared("captcha_bench.solvers"), _declared("captcha_bench.schemes")
    assert set(solvers) == {"cnn", "ocr", "ddddocr", "constant", "human", "vlm", "2captcha", "anticaptcha"}
    assert set(made) == {"image", "lined", "mixed"}
    for name, target in solvers.items():
        assert registry.available()[name].value == target, name
        module, attr = target.split(":")
        assert registry.resolve(name) is getattr(__import__(module, fromlist=[attr]), attr), name
    for name, target in made.items():
        assert schemes.available()[name].value == target, name
        assert callable(schemes.available()[name].load()), name
        assert schemes.load(name).render("AB", random.Random(0)).size[0] > 0, name  # it builds and draws


def test_describe_names_origin_and_whether_it_can_run() -> None:
    infos = {i.name: i for i in registry.describe()}
    assert infos["constant"].origin.startswith("captcha-bench ") and infos["constant"].problem is None
    assert infos["ocr"].target == "solvers.ocr:OCRSolver"


def test_a_missing_engine_is_reported_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    from solvers import ocr

    monkeypatch.setattr(ocr, "_tessdata", lambda: None)
    assert registry.problem("ocr") == "tesseract's eng.traineddata not found: install tesseract-ocr-eng (or set TESSDATA_PREFIX)"
    with pytest.raises(registry.SolverError, match="cannot run here: tesseract's eng.traineddata not found"):
        registry.load("ocr")


def test_default_solvers_leave_out_baselines() -> None:
    names = registry.default_solvers()
    assert "constant" not in names
    assert all(registry.problem(n) is None for n in names)


def test_unknown_solver_lists_the_installed_ones() -> None:
    with pytest.raises(registry.SolverError, match="unknown solver 'cnn9': choose one of .*constant.*ddddocr.*ocr"):
        registry.load("cnn9")


def test_load_with_options_and_bad_options() -> None:
    assert registry.load("constant", answer="XY").solve([None, None]) == ["XY", "XY"]  # type: ignore[list-item]
    with pytest.raises(registry.SolverError, match="rejected its options"):
        registry.load("constant", colour="red")
    with pytest.raises(registry.SolverError, match="answer must be text"):
        registry.load("constant", answer=3)


def test_a_users_package_shows_up_after_pip_install(tmp_path: Path) -> None:
    package = tmp_path / "mysolver"
    (package / "mysolver").mkdir(parents=True)
    (package / "mysolver" / "__init__.py").write_text(textwrap.dedent("""\
        class Shouty:
            name = "shouty"
            def __init__(self, word="HELLO"):
                self.word = word
            def solve(self, batch):
                return [self.word for _ in batch]
        """))
    (package / "pyproject.toml").write_text(textwrap.dedent("""\
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "mysolver"
        version = "0.3"

        [project.entry-points."captcha_bench.solvers"]
        shouty = "mysolver:Shouty"
        """))
    site = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(site), str(package)],
        capture_output=True, text=True,
    )
    assert install.returncode == 0, install.stderr
    env = {**os.environ, "PYTHONPATH": str(site)}
    listed = subprocess.run([str(BIN / "captcha-bench"), "solvers"], capture_output=True, text=True, env=env)
    assert listed.returncode == 0
    line = next(line for line in listed.stdout.splitlines() if line.startswith("shouty"))
    assert "mysolver 0.3" in line and "mysolver:Shouty" in line and line.rstrip().endswith("yes")
