"""The study app: the flow, bad input, restarts, concurrency, no leaks, export, and a real browser."""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bench.cli import cli
from bench.study.app import MAX_ANSWER, RULES, create_app, serve
from bench.study.load import simulate
from bench.study.store import Store
from captchas import dataset as ds
from tests.fakes import edit_manifest


def join(client: Any) -> dict[str, Any]:
    response = client.post("/api/participants", json={"consent": True})
    assert response.status_code == 201, response.json
    return response.json  # type: ignore[no-any-return]


def answer(client: Any, view: dict[str, Any], text: str = "ABC", **extra: Any) -> Any:
    assert client.get(view["image"]).status_code == 200
    return client.post(f"/api/participants/{view['participant']}/answers",
                       json={"token": view["token"], "answer": text, **extra})


def png_chunks(data: bytes) -> list[bytes]:
    """The chunk types of a PNG file."""
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    chunks, k = [], 8
    while k < len(data):
        length = int.from_bytes(data[k : k + 4], "big")
        chunks.append(data[k + 4 : k + 8])
        k += 12 + length
    return chunks


def assert_no_answer(bodies: list[bytes], dataset: ds.Dataset) -> None:
    """No response holds an answer; images hold pixels only (no text or metadata chunk could carry one)."""
    for body in bodies:
        if body.startswith(b"\x89PNG"):
            assert set(png_chunks(body)) <= {b"IHDR", b"IDAT", b"IEND"}
            continue  # compressed pixels: any short byte string may turn up by chance
        for s in dataset.samples:
            assert s.answer.encode() not in body, f"answer of item {s.id} sent in {body[:80]!r}"
            assert f'"{s.id}"'.encode() not in body and f"/{s.id}".encode() not in body  # nor an item id


def rows(db: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as c:
        return c.execute("SELECT participant, item_id, answer, skipped, sent_at, received_at, client_seconds "
                         "FROM answers ORDER BY rowid").fetchall()


def test_a_participant_answers_every_item_once_in_their_own_order(tmp_path: Path, tiny_dataset: ds.Dataset) -> None:
    client = create_app(tiny_dataset, str(tmp_path / "s.db")).test_client()
    view = join(client)
    assert (view["position"], view["total"], view["done"]) == (0, 8, False)
    for k in range(8):
        response = answer(client, view, skipped=k == 3, client_seconds=1.5, shown_at=1.7e12, submitted_at=1.7e12 + 1500)
        assert response.status_code == 201, response.json
        view = response.json
        assert view["position"] == k + 1
    assert view["done"] and "token" not in view
    stored = rows(tmp_path / "s.db")
    assert sorted(r[1] for r in stored) == sorted(s.id for s in tiny_dataset.samples)  # every item once
    assert [r[3] for r in stored] == [0, 0, 0, 1, 0, 0, 0, 0] and stored[3][2] == ""  # the skip, stored empty
    assert all(r[5] >= r[4] > 0 and r[6] == 1.5 for r in stored)  # server clock ordered; browser clock beside it
    other = join(client)  # another person, another (random) order; same data set
    orders = {json.dumps(json.loads(r[0])) for r in sqlite3.connect(tmp_path / "s.db").execute("SELECT items FROM participants")}
    assert other["total"] == 8 and len(orders) in (1, 2)


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"answer": ""}, 400, "empty"),
        ({"answer": "   "}, 400, "empty"),
        ({"answer": "A" * (MAX_ANSWER + 1)}, 400, "longer than"),
        ({"answer": "AB\x07C"}, 400, "control"),
        ({"answer": "AB\u200bC"}, 400, "invisible"),
        ({"answer": 12}, 400, "text"),
        ({"skipped": "yes"}, 400, "true or false"),
        ({"client_seconds": -1}, 400, "client_seconds"),
        ({"client_seconds": "fast"}, 400, "client_seconds"),
        ({"token": "nope"}, 404, "unknown image token"),
        ({"token": None}, 400, "token is missing"),
    ],
)
def test_bad_answers_get_a_clear_4xx_and_store_nothing(tmp_path: Path, tiny_dataset: ds.Dataset, body: dict[str, Any],
                                                       status: int, words: str) -> None:
    client = create_app(tiny_dataset, str(tmp_path / "s.db")).test_client()
    view = join(client)
    assert client.get(view["image"]).status_code == 200
    sent = {"token": view["token"], "answer": "ABC", **body}
    response = client.post(f"/api/participants/{view['participant']}/answers", json=sent)
    assert response.status_code == status and words in response.json["error"]
    assert rows(tmp_path / "s.db") == []
    assert answer(client, view).status_code == 201  # the same image can still be answered properly


def test_malformed_requests_double_submits_and_foreign_tokens(tmp_path: Path, tiny_dataset: ds.Dataset) -> None:
    client = create_app(tiny_dataset, str(tmp_path / "s.db")).test_client()
    assert client.post("/api/participants", json={}).status_code == 400  # no consent
    alice, bob = join(client), join(client)
    url = f"/api/participants/{alice['participant']}/answers"
    not_utf8 = client.post(url, data=b'{"answer": "\xff\xfe"}', content_type="application/json")
    assert not_utf8.status_code == 400 and "UTF-8" in not_utf8.json["error"]
    assert client.post(url, data=b"{not json", content_type="application/json").status_code == 400
    assert client.post(url, data=b"[1, 2]", content_type="application/json").status_code == 400
    huge = client.post(url, data=b"x" * 10_000, content_type="application/json")
    assert huge.status_code == 413 and "larger than" in huge.json["error"]
    # answering before the image was ever sent: no time to measure from
    early = client.post(url, json={"token": alice["token"], "answer": "ABC"})
    assert early.status_code == 409 and "never sent" in early.json["error"]
    # another participant's token, for the image and for the answer
    assert client.get(f"/api/participants/{alice['participant']}/images/{bob['token']}").status_code == 403
    assert client.post(url, json={"token": bob["token"], "answer": "ABC"}).status_code == 403
    assert client.get("/api/participants/nobody/next").status_code == 404
    assert client.get(f"/api/participants/{alice['participant']}/images/nothing").status_code == 404
    # double submit: the first answer stands, the second stores nothing
    first = answer(client, alice, "ABC")
    second = client.post(url, json={"token": alice["token"], "answer": "XYZ"})
    assert first.status_code == 201 and second.status_code == 409
    assert client.get(alice["image"]).status_code == 410  # an answered image is not served again
    assert [r[2] for r in rows(tmp_path / "s.db")] == ["ABC"]


def test_a_restarted_server_loses_nothing_and_the_participant_continues(tmp_path: Path, tiny_dataset: ds.Dataset) -> None:
    db = tmp_path / "s.db"
    client = create_app(tiny_dataset, str(db)).test_client()
    view = join(client)
    for _ in range(3):
        view = answer(client, view).json
    assert client.get(view["image"]).status_code == 200  # image 4 sent, then the server dies
    restarted = create_app(tiny_dataset, str(db)).test_client()
    again = restarted.get(f"/api/participants/{view['participant']}/next").json
    assert again["position"] == 3 and again["token"] == view["token"]  # the same image, same sent time
    response = restarted.post(f"/api/participants/{view['participant']}/answers", json={"token": view["token"], "answer": "Q"})
    assert response.status_code == 201 and response.json["position"] == 4
    assert len(rows(db)) == 4 and len({r[1] for r in rows(db)}) == 4


def test_a_database_of_another_data_set_is_refused(tmp_path: Path, tiny_dataset: ds.Dataset) -> None:
    create_app(tiny_dataset, str(tmp_path / "s.db"))
    other = tmp_path / "other"
    shutil.copytree(tiny_dataset.path, other)
    edit_manifest(other, tiny_dataset.samples[0].answer, "ZZZ", 1)
    result = CliRunner().invoke(cli, ["record", "--dataset", str(other), "--db", str(tmp_path / "s.db"), "--port", "0"])
    assert result.exit_code == 1 and "another data set" in result.output and "Traceback" not in result.output


def test_nothing_sent_to_a_participant_holds_an_answer(tmp_path: Path, tiny_dataset: ds.Dataset) -> None:
    client = create_app(tiny_dataset, str(tmp_path / "s.db")).test_client()
    bodies = [client.get("/").data, client.get("/study.js").data]
    view = join(client)
    while not view["done"]:
        image = client.get(view["image"])
        bodies += [json.dumps(view).encode(), image.data, view["image"].encode()]
        view = client.post(f"/api/participants/{view['participant']}/answers",
                           json={"token": view["token"], "answer": "ABC"}).json
    bodies.append(json.dumps(view).encode())
    assert_no_answer(bodies, tiny_dataset)


def test_twenty_participants_at_once_store_every_answer_once(tmp_path: Path, tiny_dataset: ds.Dataset) -> None:
    db = tmp_path / "s.db"
    server = serve(create_app(tiny_dataset, str(db)), "127.0.0.1", 0, background=True)
    try:
        result = simulate(server.url, db, participants=20, double_submit=True)
    finally:
        server.close()
    assert result.errors == ()
    assert result.answers_sent == result.stored == result.distinct == 20 * 8  # each person, each item, once
    assert result.double_submits == 20 * 8  # every second submit refused (409)
    assert {r[2] for r in rows(db)} == {f"P{k}" for k in range(20)}


def test_study_speed_reports_the_load_figures(tmp_path: Path, tiny_dataset: ds.Dataset) -> None:
    result = CliRunner().invoke(cli, ["speed", "study", "--dataset", str(tiny_dataset.path), "--participants", "3",
                                      "--items", "4"])
    assert result.exit_code == 0, result.output
    assert "3 participants" in result.output and "12 answers stored once each" in result.output


def test_export_writes_the_answers_csv_and_never_overwrites(tmp_path: Path, tiny_dataset: ds.Dataset) -> None:
    db = tmp_path / "s.db"
    client = create_app(tiny_dataset, str(db)).test_client()
    view = join(client)
    view = answer(client, view, "ab c", client_seconds=2.0, shown_at=1.7e12, submitted_at=1.7e12 + 2000).json
    answer(client, view, skipped=True)
    out = tmp_path / "answers.csv"
    result = CliRunner().invoke(cli, ["humans", "export", "--db", str(db), "--out", str(out)])
    assert result.exit_code == 0, result.output
    exported = list(csv.DictReader(out.read_text().splitlines()))
    assert [r["answer"] for r in exported] == ["ab c", ""] and [r["skipped"] for r in exported] == ["0", "1"]
    assert exported[0]["client_seconds"] == "2.000" and exported[0]["client_shown_at"].startswith("2023-11-14T22:13:20")
    assert float(exported[0]["server_seconds"]) >= 0 and exported[0]["sent_at"] <= exported[0]["received_at"]
    assert {r["participant"] for r in exported} == {view["participant"]}
    assert {r["dataset_sha256"] for r in exported} == {tiny_dataset.hash}
    again = CliRunner().invoke(cli, ["humans", "export", "--db", str(db), "--out", str(out)])
    assert again.exit_code == 1 and "exists" in again.output
    missing = CliRunner().invoke(cli, ["humans", "export", "--db", str(tmp_path / "none.db"), "--out", str(tmp_path / "x.csv")])
    assert missing.exit_code == 1 and "does not exist" in missing.output
    (tmp_path / "junk.db").write_text("not a database")
    junk = CliRunner().invoke(cli, ["humans", "export", "--db", str(tmp_path / "junk.db"), "--out", str(tmp_path / "y.csv")])
    assert junk.exit_code == 1 and "not a captcha-bench study database" in junk.output and "Traceback" not in junk.output


def test_record_refuses_a_file_that_is_not_a_study_database(tmp_path: Path, tiny_dataset: ds.Dataset) -> None:
    (tmp_path / "notes.db").write_text("my notes, not a database")
    result = CliRunner().invoke(cli, ["record", "--dataset", str(tiny_dataset.path), "--db", str(tmp_path / "notes.db"),
                                      "--port", "0"])
    assert result.exit_code == 1 and "is not a study database" in result.output and "Traceback" not in result.output
    assert (tmp_path / "notes.db").read_text() == "my notes, not a database"  # left as it was


def test_record_refuses_a_busy_port_in_one_line(tmp_path: Path, tiny_dataset: ds.Dataset) -> None:
    server = serve(create_app(tiny_dataset, str(tmp_path / "a.db")), "127.0.0.1", 0, background=True)
    try:
        port = str(server.server.server_port)
        result = CliRunner().invoke(cli, ["record", "--dataset", str(tiny_dataset.path), "--db", str(tmp_path / "b.db"),
                                          "--port", port])
    finally:
        server.close()
    assert result.exit_code == 1 and "choose another --port" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "b.db").exists()  # it listens before it makes the database


CHROMIUM = Path("/usr/bin/chromium")


def test_a_participant_in_a_real_browser(tmp_path: Path, tiny_dataset: ds.Dataset) -> None:
    """Debian's Chromium, headless, at a phone's width (390 px): consent, 5 items: answers, the server
    down while one is submitted, a Skip, two images that fail to load; the done page; the stored rows.
    Then the page's layout at a desktop width."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (make test installs it)")
    if not CHROMIUM.is_file():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium (make test installs it with apt-get)")
    five = ds.Dataset(tiny_dataset.path, tiny_dataset.info, tiny_dataset.samples[:5], tiny_dataset.hash)
    db = tmp_path / "s.db"

    def start(port: int = 0) -> Any:
        return serve(create_app(five, str(db), completion_code="XYZ-123"), "127.0.0.1", port, background=True)

    server = start()
    port = server.server.server_port
    received: list[bytes] = []
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 390, "height": 844})
            def keep(response: Any) -> None:
                try:
                    received.extend([response.body(), response.url.encode()])
                except sync_api.Error:
                    pass  # a response without a body (the page moved on, the server went away)

            page.on("response", keep)
            page.goto(server.url + "/")
            assert page.is_disabled("#start")
            assert "Case does not matter" in page.inner_text("#consent")
            page.check("#agree")
            page.click("#start")
            assert_layout(page, 390)
            for k in range(5):
                sync_api.expect(page.locator("#progress")).to_have_text(f"Image {k + 1} of 5", timeout=15_000)  # a retry: 5 s
                if k >= 3:
                    sync_api.expect(page.locator("#message")).to_contain_text("did not load. Press Skip", timeout=10_000)
                    page.click("#skip")
                    continue
                sync_api.expect(page.locator("#answer")).to_be_focused()  # the page focuses it once the image loaded
                page.wait_for_timeout(150)  # a person takes a moment
                if k == 2:
                    for sample in five.samples:  # the images not yet shown change on disk: the server cannot show them
                        (five.path / sample.file).write_bytes(b"changed")
                    page.click("#skip")
                    continue
                page.fill("#answer", f"ab{k}")
                if k == 1:
                    server.close()  # the server goes down just as the participant submits
                    page.press("#answer", "Enter")
                    sync_api.expect(page.locator("#message")).to_contain_text("Cannot reach the study server")
                    assert page.input_value("#answer") == "ab1"  # nothing typed is lost
                    server = start(port)  # back: the page sends the answer again by itself
                    continue
                page.press("#answer", "Enter")
            sync_api.expect(page.locator("#done")).to_be_visible()
            sync_api.expect(page.locator("#summary")).to_contain_text("You answered 2 of 5 images and skipped 3")
            sync_api.expect(page.locator("#code-text")).to_have_text("XYZ-123")
            page.reload()  # a returning participant who is done stays done
            sync_api.expect(page.locator("#done")).to_be_visible()
            desktop = browser.new_page(viewport={"width": 1280, "height": 800})
            desktop.goto(server.url + "/")
            desktop.check("#agree")
            desktop.click("#start")
            sync_api.expect(desktop.locator("#progress")).to_have_text("Image 1 of 5")
            assert_layout(desktop, 1280)
            page.screenshot(path=str(ARTIFACTS / "study-done-390px.png"))
            browser.close()
    finally:
        server.close()
    stored = rows(db)[:5]
    assert [r[2] for r in stored] == ["ab0", "ab1", "", "", ""] and [r[3] for r in stored] == [0, 0, 1, 1, 1]
    assert sorted(r[1] for r in stored) == sorted(s.id for s in five.samples)
    for _, _, _, _, sent, got, client in stored:
        assert 0 <= got - sent < 30  # server clock: image sent to answer received, the pause included
    assert all(client is not None and 0.1 <= client < 30 for *_, client in stored[:3])  # the browser's own clock
    assert len({r[0] for r in stored}) == 1
    assert_no_answer(received, tiny_dataset)
    exported = [r for r in Store(db).export() if r.participant == stored[0][0]]
    assert [r.skipped for r in exported] == [False, False, True, True, True]
    assert [r.skip_reason for r in exported] == ["", "", "", "the image did not load", "the image did not load"]


ARTIFACTS = Path(__file__).resolve().parents[1] / "results" / "test-artifacts"


def assert_layout(page: Any, width: int) -> None:
    """The trial page: an instruction line with the case rule, Skip well apart from the text box and
    Submit (not where a thumb lands after typing), nothing wider than the screen."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    instruction = page.inner_text("#instruction")
    assert "Type the characters" in instruction and "Case does not matter" in instruction
    from playwright.sync_api import expect
    for selector in ("#answer", "#submit", "#skip"):  # the trial shows after the first item's request returns
        expect(page.locator(selector)).to_be_visible(timeout=15_000)
    box, submit, skip = (page.locator(s).bounding_box() for s in ("#answer", "#submit", "#skip"))
    assert skip["y"] >= max(box["y"] + box["height"], submit["y"] + submit["height"]) + 24, (width, box, submit, skip)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.screenshot(path=str(ARTIFACTS / f"study-trial-{width}px.png"))


def test_the_page_states_the_sets_case_rule_and_escapes_the_title(tmp_path: Path, tiny_dataset: ds.Dataset) -> None:
    sensitive = ds.Dataset(tiny_dataset.path, {**tiny_dataset.info, "case_sensitive": True}, tiny_dataset.samples,
                           tiny_dataset.hash)
    page = create_app(sensitive, str(tmp_path / "a.db"), title="<script>alert(1)</script>").test_client().get("/").text
    assert page.count(RULES[True]) == 2 and RULES[False] not in page  # on consent and on every trial
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    plain = create_app(tiny_dataset, str(tmp_path / "b.db")).test_client().get("/").text
    assert plain.count(RULES[False]) == 2 and "unless you are told so" not in plain


def test_deep_or_large_bodies_are_refused_with_a_4xx(tmp_path: Path, tiny_dataset: ds.Dataset) -> None:
    client = create_app(tiny_dataset, str(tmp_path / "s.db")).test_client()
    deep = client.post("/api/participants", data="[" * 3000, content_type="application/json")
    assert deep.status_code == 400 and "nested too deeply" in deep.json["error"]
    big = client.post("/api/participants", data=b'{"consent": true, "x": "' + b"a" * 5000 + b'"}',
                      content_type="application/json")
    assert big.status_code == 413
    view = join(client)
    client.get(view["image"])
    reason = client.post(f"/api/participants/{view['participant']}/answers",
                         json={"token": view["token"], "skipped": True, "reason": "x" * 500})
    assert reason.status_code == 400 and "reason must be plain text" in reason.json["error"]


def _chunked_post(port: int, body: bytes) -> tuple[bytes, float]:
    """POST `body` in 1,000-byte chunks over a raw socket; the server's reply and how long it took to come."""
    import socket
    import time

    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST /api/participants HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        start = time.perf_counter()
        try:
            for k in range(0, len(body), 1000):
                s.sendall(b"%x\r\n" % len(body[k : k + 1000]) + body[k : k + 1000] + b"\r\n")
            s.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server stopped reading a body over its limit: its answer is already on the way
        reply = b""
        while b"\r\n\r\n" not in reply:
            more = s.recv(4096)
            if not more:
                break
            reply += more
        return reply, time.perf_counter() - start


@pytest.mark.parametrize("size", [5_000, 2_000_000])
def test_a_chunked_body_over_the_limit_gets_413_at_once(tmp_path: Path, tiny_dataset: ds.Dataset, size: int) -> None:
    server = serve(create_app(tiny_dataset, str(tmp_path / "s.db")), "127.0.0.1", 0, background=True)
    try:
        reply, seconds = _chunked_post(server.server.server_port, b'{"consent": true, "x": "' + b"a" * size + b'"}')
        assert reply.startswith(b"HTTP/1.1 413"), reply[:100]
        assert seconds < 5  # neither cut at 4 KB and parsed, nor held until the client gives up
        small, _ = _chunked_post(server.server.server_port, b'{"consent": true}')
        assert small.startswith(b"HTTP/1.1 201") or small.startswith(b"HTTP/1.1 200"), small[:100]
    finally:
        server.close()


def test_new_participants_are_rate_limited_per_client(tmp_path: Path, tiny_dataset: ds.Dataset) -> None:
    client = create_app(tiny_dataset, str(tmp_path / "s.db"), joins_per_hour=2).test_client()
    join(client)
    join(client)
    third = client.post("/api/participants", json={"consent": True})
    assert third.status_code == 429 and "too many new participants" in third.json["error"]
    assert Store(tmp_path / "s.db").counts() == (2, 0)


def test_the_server_names_no_software_version(tmp_path: Path, tiny_dataset: ds.Dataset) -> None:
    import urllib.request

    server = serve(create_app(tiny_dataset, str(tmp_path / "s.db")), "127.0.0.1", 0, background=True)
    try:
        with urllib.request.urlopen(server.url + "/") as response:
            headers = dict(response.headers)
    finally:
        server.close()
    assert "Server" not in headers and "Date" in headers and "Werkzeug" not in str(headers)


def test_record_warns_off_loopback_and_leaves_no_database_when_it_cannot_listen(
        tmp_path: Path, tiny_dataset: ds.Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    from werkzeug.serving import BaseWSGIServer

    def stop(self: Any, *args: Any) -> None:
        raise KeyboardInterrupt  # as Ctrl-C would, at once

    monkeypatch.setattr(BaseWSGIServer, "serve_forever", stop)
    result = CliRunner().invoke(cli, ["record", "--dataset", str(tiny_dataset.path), "--db", str(tmp_path / "a.db"),
                                      "--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code == 0, result.output
    assert "warning: listening on 0.0.0.0, not loopback" in result.output and "participants open http://" in result.output
    quiet = CliRunner().invoke(cli, ["record", "--dataset", str(tiny_dataset.path), "--db", str(tmp_path / "b.db"),
                                     "--port", "0"])
    assert quiet.exit_code == 0 and "warning" not in quiet.output
    bad = CliRunner().invoke(cli, ["record", "--dataset", str(tiny_dataset.path), "--db", str(tmp_path / "c.db"),
                                   "--host", "203.0.113.7", "--port", "8123"])
    assert bad.exit_code == 1 and "is not an address of this machine; give --host" in bad.output
    assert "--port" not in bad.output.splitlines()[-1].split("give --host")[0]
    assert not (tmp_path / "c.db").exists()


def test_exports_keep_answers_exact_unless_excel_safe(tmp_path: Path, tiny_dataset: ds.Dataset) -> None:
    db = tmp_path / "s.db"
    client = create_app(tiny_dataset, str(db)).test_client()
    view = join(client)
    for text in ("=1+1", "+A", "-B", "@C", "ABC"):
        view = answer(client, view, text).json
    raw, safe = tmp_path / "raw.csv", tmp_path / "sub" / "safe.csv"  # a folder that does not exist yet is made
    assert CliRunner().invoke(cli, ["humans", "export", "--db", str(db), "--out", str(raw)]).exit_code == 0
    assert CliRunner().invoke(cli, ["humans", "export", "--db", str(db), "--out", str(safe), "--excel-safe"]).exit_code == 0
    assert [r["answer"] for r in csv.DictReader(raw.read_text().splitlines())] == ["=1+1", "+A", "-B", "@C", "ABC"]
    assert [r["answer"] for r in csv.DictReader(safe.read_text().splitlines())] == ["'=1+1", "'+A", "'-B", "'@C", "ABC"]
    assert b"\r\n" not in raw.read_bytes()
    folder = CliRunner().invoke(cli, ["humans", "export", "--db", str(db), "--out", str(tmp_path)])
    assert folder.exit_code == 1 and "is a folder: give a file name" in folder.output


def test_every_csv_ends_its_lines_the_same_way(tmp_path: Path, tiny_dataset: ds.Dataset) -> None:
    from bench import benchmark
    from bench.run import RunConfig, SolverSpec

    out = tmp_path / "run"
    benchmark.run_benchmark(tiny_dataset, RunConfig((SolverSpec("constant"),), throughput_items=0), out)
    for path in (out / "attempts.csv", out / "summary.csv", tiny_dataset.path / "manifest.csv"):
        data = path.read_bytes()
        assert b"\r\n" not in data and data.endswith(b"\n"), path
