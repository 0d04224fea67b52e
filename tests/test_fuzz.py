"""Property-based tests (hypothesis): every reader of outside input gives a correct result or a
clear error of its own kind, never a traceback and never a half-written folder.

150 examples a test in the suite (about 10 s); `FUZZ_EXAMPLES=2000 pytest tests/test_fuzz.py` hunts
longer (about 2 minutes). They found two bugs: control characters in file names broke one-line
errors, and a carriage return in a CSV cell made a manifest the csv module could not read back."""

from __future__ import annotations

import io
import os
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Any

import click
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from bench.cli.common import parse_options
from captchas.scoring import cer, is_correct, normalise
from captchas import recorded
from captchas import dataset as ds
from captchas import images
from captchas.folder import import_folder
from captchas.schemes import SchemeError, load
from captchas.knobs import SpecError
from captchas.spec import KNOBS

FAST = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)


def _csv_like() -> st.SearchStrategy[str]:
    """Text that is sometimes a well-formed CSV with the right header, sometimes nearly, sometimes not."""
    cell = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
    row = st.lists(cell, min_size=0, max_size=6).map(lambda cells: ",".join(cells))
    header = st.sampled_from(["id,file,answer,sha256", "item_id,answer,skipped,attempt,server_seconds",
                              ",".join(recorded.COLUMNS), "\ufeffitem_id,answer", "file,answer", ""])
    return st.tuples(header, st.lists(row, max_size=5)).map(lambda hr: "\n".join([hr[0], *hr[1]]) + "\n") | text


@FAST
@given(manifest=_csv_like() | st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
       info=st.sampled_from(["", "{}", "[]", "{", '{"manifest_sha256": "00"}', "\x00"]))
def test_the_manifest_reader_reads_or_refuses(manifest: str, info: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / ds.MANIFEST).write_text(manifest, encoding="utf-8", errors="surrogatepass")
        if info:
            (folder / ds.INFO).write_text(info)
        try:
            data = ds.read_dataset(folder)
        except ds.DatasetError as e:
            assert "\n" not in str(e)
            return
        assert all(ds.plain_name(s.file) for s in data.samples) and len({s.id for s in data.samples}) == len(data.samples)
        images.check_files(data)  # lists problems; raises nothing


@FAST
@given(content=_csv_like())
def test_the_answers_reader_reads_or_refuses(content: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "answers.csv"
        path.write_text(content, encoding="utf-8", errors="surrogatepass")
        try:
            rows = recorded.read_csv(path)
        except ds.DatasetError as e:
            assert "\n" not in str(e)
            return
        for r in rows:
            assert r.item_id and r.attempt >= 1
            assert all(t is None or t >= 0 for t in (r.server_seconds, r.client_seconds))


@FAST
@given(pairs=st.lists(st.tuples(st.sampled_from(KNOBS + ("blur",)), text), max_size=3))
def test_set_parsing_builds_a_scheme_or_names_the_knob(pairs: list[tuple[str, str]]) -> None:
    try:
        knobs = parse_options(tuple(f"{k}={v}" for k, v in pairs))
        load("image", None, knobs)
    except (SpecError, SchemeError, click.ClickException) as e:
        message = str(e) if not isinstance(e, click.ClickException) else e.message
        assert "\n" not in message and (not pairs or any(k.rstrip("s") in message for k, _ in pairs) or "--set" in message), message


@settings(max_examples=300, deadline=None)
@given(a=text, b=text, case=st.booleans())
def test_scoring_is_consistent(a: str, b: str, case: bool) -> None:
    assert is_correct(a, a, case) and cer(a, a, case) == 0.0
    assert normalise(normalise(a, case), case) == normalise(a, case)
    assert is_correct(a, b, case) == is_correct(b, a, case)
    assert (cer(a, b, case) == 0.0) == (normalise(a, case) == normalise(b, case))
    assert 0.0 <= cer(a, b, case) <= max(len(normalise(b, case)), len(normalise(a, case)), 1)


def _png_declaring(width: int, height: int) -> bytes:
    """A PNG header that declares width x height, with one short IDAT: a bomb or a truncated file."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _image(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (24, 10), (90, 120, 200)).save(buffer, format=fmt)
    return buffer.getvalue()


files = st.one_of(
    st.binary(max_size=300),
    st.sampled_from(["PNG", "JPEG", "GIF", "BMP"]).map(_image),
    st.tuples(st.sampled_from(["PNG", "JPEG"]).map(_image), st.integers(0, 200)).map(lambda t: t[0][: t[1]]),
    st.tuples(st.integers(0, 70_000), st.integers(0, 70_000)).map(lambda wh: _png_declaring(*wh)),
)
names = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"),
                min_size=1, max_size=20).filter(lambda n: n not in (".", ".."))


@FAST
@given(folder=st.dictionaries(names, files, min_size=1, max_size=5))
def test_import_imports_or_refuses_and_leaves_no_half_written_folder(folder: dict[str, bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "src", Path(tmp) / "out"
        src.mkdir()
        for name, data in folder.items():
            try:
                (src / (name + ".png")).write_bytes(data)
            except OSError:
                pass  # a name this file system refuses (too long in bytes)
        try:
            result = import_folder(src, out)
        except ds.DatasetError as e:
            assert "\n" not in str(e) and not out.exists()
        else:
            assert images.check_files(result.dataset) == [] and len(result.dataset.samples) >= 1
        assert sorted(p.name for p in Path(tmp).iterdir()) in (["src"], ["out", "src"])  # no staging folder left


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
                           max_leaves=8)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from bench.study.app import create_app
    from captchas.generate import make_dataset
    from captchas.schemes import ImageScheme
    from captchas.spec import build_spec

    tmp = tmp_path_factory.mktemp("study")
    spec = build_spec("medium", {"width": 96, "height": 36, "font_sizes": (26, 30, 34), "length": 3})
    data = make_dataset(ImageScheme(spec), 4, 7, tmp / "set", preset="medium")
    return create_app(data, str(tmp / "s.db"), joins_per_hour=None).test_client()


@FAST
@given(body=json_values | st.dictionaries(st.sampled_from(["token", "answer", "skipped", "reason", "client_seconds",
                                                            "shown_at", "submitted_at", "consent"]), json_values),
       raw=st.none() | st.binary(max_size=64))
def test_the_study_endpoints_answer_4xx_never_5xx(study: Any, body: Any, raw: bytes | None) -> None:
    view = study.post("/api/participants", json={"consent": True}).json
    study.get(view["image"])
    pid = view["participant"]
    for path in ("/api/participants", f"/api/participants/{pid}/answers"):
        if isinstance(body, dict) and "token" in body and body["token"] == "":
            body["token"] = view["token"]
        response = study.post(path, data=raw, content_type="application/json") if raw is not None else \
            study.post(path, json=body)
        assert response.status_code < 500, (path, body, response.json)
        assert isinstance(response.json, dict)
