"""The scheme registry: the built-in scheme, module:attr strings, and installed plugins."""

from __future__ import annotations

import random
import textwrap
from pathlib import Path

import pytest

from captchas import dataset as ds
from captchas import schemes
from captchas.generate import make_dataset, regenerate


def _install_fake_plugin(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What `pip install` of a package with a captcha_bench.schemes entry point leaves on sys.path."""
    (root / "fakeplugin.py").write_text("from tests.fakes import make_fake_scheme as factory\n")
    info = root / "fakeplugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""\
        [captcha_bench.schemes]
        fakedigits = fakeplugin:factory
        """))
    monkeypatch.syspath_prepend(str(root))


def test_builtin_scheme_is_registered_by_the_install() -> None:
    assert "image" in schemes.available()


def test_load_builtin_with_preset_and_knobs() -> None:
    scheme = schemes.load("image", "hard", {"length": 5})
    assert isinstance(scheme, schemes.ImageScheme)
    assert scheme.spec.length == (5, 5) and scheme.spec.width == 200
    assert isinstance(scheme, schemes.Scheme)
    answer = scheme.sample_answer(random.Random(0))
    assert len(answer) == 5 and set(answer) <= set(scheme.spec.charset)


def test_module_attr_string_loads_a_factory(tmp_path: Path) -> None:
    scheme = schemes.load("tests.fakes:make_fake_scheme", "plain", {"length": 4})
    data = make_dataset(scheme, 5, 3, tmp_path / "fake", scheme_name="tests.fakes:make_fake_scheme")
    assert all(len(s.answer) == 4 and s.answer.isdigit() for s in data.samples)
    assert data.info["knobs"] == {"length": 4, "shade": 200} and data.info["versions"]["fake"] == "1.0"
    assert regenerate(data).problems == []


def test_an_installed_plugin_is_discovered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _install_fake_plugin(tmp_path, monkeypatch)
    assert "fakedigits" in schemes.available()
    scheme = schemes.load("fakedigits", None, {"shade": 90})
    data = make_dataset(scheme, 4, 1, tmp_path / "set", scheme_name="fakedigits")
    assert data.info["scheme"] == "fakedigits"
    assert regenerate(data).problems == []  # regeneration finds the plugin by its entry-point name


@pytest.mark.parametrize(
    ("name", "preset", "knobs", "message"),
    [
        ("nosuch", None, {}, "unknown scheme 'nosuch': choose one of .*image"),
        ("nomodule.anywhere:f", None, {}, "cannot load scheme 'nomodule.anywhere:f'"),
        ("tests.fakes:absent", None, {}, "cannot load scheme 'tests.fakes:absent'"),
        ("tests.fakes:make_fake_scheme", "hard", {}, "unknown preset 'hard': the fake scheme has only 'plain'"),
        ("tests.fakes:make_fake_scheme", None, {"blur": 1}, "unknown knob 'blur'"),
        ("tests.fakes:NotAScheme", None, {}, "lacks sample_answer, render, knobs, versions"),
        ("tests.fakes:FakeScheme", None, {"bogus": 1}, "rejected its options"),
        ("image", "nightmare", {}, "unknown preset 'nightmare'"),
    ],
)
def test_bad_schemes_get_clear_errors(name: str, preset: str | None, knobs: dict, message: str) -> None:
    with pytest.raises(schemes.SchemeError, match=message):
        schemes.load(name, preset, knobs)


def test_an_unreadable_plugin_set_reports_itself(tmp_path: Path) -> None:
    folder = tmp_path / "set"
    folder.mkdir()
    (folder / "manifest.csv").write_text("id,file,answer,sha256\n000000,000000.png,12,ab\n")
    (folder / "dataset.json").write_text('{"kind": "generated", "scheme": "gone", "seed": 1, "knobs": {}}')
    with pytest.raises(schemes.SchemeError, match="unknown scheme 'gone'"):
        regenerate(ds.read_dataset(folder))
