"""The report: the verdict rule on constructed runs, both case rules, first answers, Holm, bad input,
and the page itself in a headless browser."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import cli
from bench.report.compare import first_answers
from bench.report import build_report, write_report
from bench.report.tables import verdict_text
from bench.runfolder.records import Attempt
from captchas.scoring import cer, is_correct
from bench.stats import holm
from tests.fakes import write_run

ARTIFACTS = Path(__file__).resolve().parents[1] / "results" / "test-artifacts"


def attempt(solver: str, item: int, expected: str, predicted: str, seconds: float, try_: int = 1,
            participant: str = "", error: str = "") -> Attempt:
    return Attempt("r", solver, f"{item:06d}", expected, predicted, not error and is_correct(expected, predicted),
                   cer(expected, predicted), seconds, error, participant, try_)


def machine_and_people(n: int, machine_right: float, people_right: float, machine_s: float, people_s: float,
                       seed: int = 0) -> list[Attempt]:
    """n items; each side right on about the given share (independently), at about the given times."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        answer = f"A{i:03d}"
        rows.append(attempt("cnn", i, answer, answer if rng.random() < machine_right else "WRONG",
                            machine_s * rng.uniform(0.8, 1.25)))
        rows.append(attempt("human", i, answer, answer if rng.random() < people_right else "WRONG",
                            people_s * rng.uniform(0.8, 1.25), participant=f"p{i % 7}"))
    return rows


@pytest.mark.parametrize("machine_right, people_right, machine_s, people_s, verdict", [
    (0.98, 0.55, 0.002, 6.0, "AI beats humans"),
    (0.10, 0.95, 20.0, 3.0, "humans beat AI"),
    (0.75, 0.75, 5.0, 5.0, "accuracy: no evidence either way; time: no evidence either way"),
])
def test_the_verdict_rule_on_constructed_runs(tmp_path: Path, machine_right: float, people_right: float,
                                              machine_s: float, people_s: float, verdict: str) -> None:
    rows = machine_and_people(120, machine_right, people_right, machine_s, people_s)
    if machine_right == people_right:  # a tie: both sides right on the same items, times balanced about 5 s
        rows = [attempt(a.solver, int(a.item_id), a.expected, "WRONG" if int(a.item_id) % 4 == 0 else a.expected,
                        5.0 + 0.1 * (int(a.item_id) % 10 - 4.5) * (1 if a.solver == "cnn" else -1))
                for a in rows]
    write_run(tmp_path / "run", "a" * 64, rows)
    report = build_report([tmp_path / "run"])
    (c,) = report.comparisons
    assert c.verdict == verdict
    assert c.accuracy.p_holm >= c.accuracy.p and c.time.p_holm >= c.time.p
    assert verdict in verdict_text(report)


def test_both_case_rules_are_compared_and_the_data_sets_rule_comes_first(tmp_path: Path) -> None:
    rows = []
    for i in range(80):
        answer = f"Ab{i:02d}"
        rows.append(attempt("cnn", i, answer, answer.lower(), 0.001))  # right only when case is folded
        rows.append(attempt("human", i, answer, answer if i % 5 else "x", 4.0))  # 80 % right either way
    write_run(tmp_path / "run", "b" * 64, rows, case_sensitive=False)
    (c,) = build_report([tmp_path / "run"]).comparisons
    assert not c.accuracy.case_sensitive and c.other.case_sensitive
    assert c.accuracy.machine_accuracy == 1.0 and c.other.machine_accuracy == 0.0
    assert c.accuracy.human_accuracy == c.other.human_accuracy == 0.8
    assert c.verdict == "AI beats humans" and c.verdict_other == "humans more accurate; AI faster"


def test_first_answers_are_each_items_first_try_and_all_answers_come_second(tmp_path: Path) -> None:
    rows = [attempt("cnn", i, "AB", "AB", 0.01) for i in range(3)]
    rows += [
        attempt("human", 0, "AB", "XX", 5.0, 1, "p1"),  # item 0: first try wrong...
        attempt("human", 0, "AB", "AB", 9.0, 2, "p1"),  # ...its retry right
        attempt("human", 0, "AB", "AB", 4.0, 1, "p2"),  # a second person's first try: not the first recorded
        attempt("human", 1, "AB", "AB", 7.0, 2, "p3"),  # item 1: a retry only, so no first answer
        attempt("human", 2, "AB", "", 3.0, 1, "p4", error="skipped"),  # item 2: a skip, wrong
    ]
    firsts = first_answers([a for a in rows if a.solver == "human"])
    assert sorted(firsts) == ["000000", "000002"] and firsts["000000"].predicted == "XX"
    write_run(tmp_path / "run", "c" * 64, rows)
    (c,) = build_report([tmp_path / "run"]).comparisons
    assert (c.accuracy.items, c.accuracy.human_right, c.accuracy.machine_right) == (2, 0, 2)
    assert (c.accuracy.answers, c.accuracy.answer_items, c.accuracy.human_right_all) == (5, 3, 3)
    assert c.time.items == 1  # the skip has no solve time
    assert c.time.answers == 4 and c.time.human_median_all == pytest.approx(6.0)  # 5, 9, 4, 7


def test_holm_runs_over_every_test_of_the_report(tmp_path: Path) -> None:
    rows = machine_and_people(60, 0.9, 0.7, 0.01, 5.0, seed=1)
    rows += [attempt("ocr", int(a.item_id), a.expected, a.expected if int(a.item_id) % 3 else "?", 0.02)
             for a in rows if a.solver == "cnn"]
    write_run(tmp_path / "run", "d" * 64, rows)
    report = build_report([tmp_path / "run"])
    raw = [p for c in report.comparisons for p in (c.accuracy.p, c.other.p, c.time.p)]
    adjusted = [p for c in report.comparisons for p in (c.accuracy.p_holm, c.other.p_holm, c.time.p_holm)]
    assert len(raw) == 6 and adjusted == pytest.approx(holm(raw))


def test_a_report_writes_html_markdown_and_figures(tmp_path: Path) -> None:
    write_run(tmp_path / "run", "e" * 64, machine_and_people(50, 0.9, 0.7, 0.01, 5.0))
    written = write_report(build_report([tmp_path / "run"]), tmp_path / "run")
    names = {p.name for p in written}
    assert {"report.html", "report.md", "accuracy-time.png", "times.png", "accuracy.png", "glyphs-1.png"} <= names
    page = (tmp_path / "run" / "report.html").read_text()
    assert page.index("Verdict") < page.index("Figures") < page.index("Provenance")
    assert "Searles et al., USENIX Security 2023" in page and "other items, other people" in page
    assert "http://" not in page and "https://" not in page and "<script" not in page  # self-contained
    assert page.count("data:image/png;base64,") == len([n for n in names if n.endswith(".png")])
    assert "](figures/accuracy-time.png)" in (tmp_path / "run" / "report.md").read_text()


def test_a_run_without_people_says_so_at_the_top(tmp_path: Path) -> None:
    write_run(tmp_path / "run", "f" * 64, [attempt("cnn", i, "AB", "AB", 0.01) for i in range(20)], people=())
    report = build_report([tmp_path / "run"])
    assert not report.comparisons and not report.has_people
    write_report(report, tmp_path / "run")
    page = (tmp_path / "run" / "report.html").read_text()
    assert page.index("No human answers in these runs") < page.index("Verdict")
    assert "Bursztein et al., IEEE S&amp;P 2010" in page


def report_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["report", *args], catch_exceptions=False)
    return result.exit_code, result.output


def assert_refused(tmp_path: Path, message: str, *args: str) -> None:
    before = sorted(p for p in tmp_path.rglob("*"))
    code, output = report_cli(*args)
    assert code == 1 and "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and message in errors[0], output
    assert sorted(p for p in tmp_path.rglob("*")) == before  # nothing written


def test_bad_input_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    rows = machine_and_people(10, 0.9, 0.7, 0.01, 5.0)
    one = write_run(tmp_path / "one", "1" * 64, rows)
    two = write_run(tmp_path / "two", "2" * 64, rows)
    assert_refused(tmp_path, "different data sets", str(one), str(two))
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("mine")
    assert_refused(tmp_path, "is not a run", str(tmp_path / "plain"))
    assert_refused(tmp_path, "holds other files", str(one), "--out", str(tmp_path / "plain"))
    empty = write_run(tmp_path / "empty", "3" * 64, rows)
    (empty / "attempts.csv").write_text("")
    assert_refused(tmp_path, "missing or empty", str(empty))
    (empty / "attempts.csv").write_text((one / "attempts.csv").read_text().splitlines()[0] + "\n")
    assert_refused(tmp_path, "holds no attempts", str(empty))
    cut = write_run(tmp_path / "cut", "4" * 64, rows)
    (cut / "attempts.csv").write_bytes((cut / "attempts.csv").read_bytes()[:-7])
    assert_refused(tmp_path, "cut short", str(cut))
    code, output = report_cli(str(one), str(two), "--allow-mixed", "--out", str(tmp_path / "both"))
    assert code == 0 and (tmp_path / "both" / "report.html").is_file(), output
    code, output = report_cli(str(one), str(two), "--allow-mixed", "--out", str(tmp_path / "both"))
    assert code == 0, output  # a folder holding only an earlier report takes the new one


def test_runs_on_the_same_data_set_are_compared_together(tmp_path: Path) -> None:
    rows = machine_and_people(40, 0.95, 0.6, 0.01, 5.0)
    machines = write_run(tmp_path / "m", "5" * 64, [a for a in rows if a.solver == "cnn"], people=())
    people = write_run(tmp_path / "p", "5" * 64, [a for a in rows if a.solver == "human"])
    report = build_report([machines, people])
    assert [(c.machine, c.human, c.accuracy.items) for c in report.comparisons] == [("cnn", "human", 40)]


def test_an_unfinished_run_is_reported_with_a_warning(tmp_path: Path) -> None:
    write_run(tmp_path / "run", "6" * 64, machine_and_people(30, 0.9, 0.7, 0.01, 5.0), finished=False)
    report = build_report([tmp_path / "run"])
    assert report.unfinished == [str(tmp_path / "run")]
    write_report(report, tmp_path / "run")
    assert "did not finish" in (tmp_path / "run" / "report.html").read_text()


CHROMIUM = Path("/usr/bin/chromium")


def test_the_report_renders_in_a_headless_browser(tmp_path: Path) -> None:
    """Debian's Chromium opens the page: every figure loads, nothing is logged as an error; the
    screenshot is kept in results/test-artifacts/ (ignored by git) for a person to look at."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (make test installs it)")
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium (make test installs it with apt-get)")
    write_run(tmp_path / "run", "7" * 64, machine_and_people(80, 0.9, 0.7, 0.01, 5.0))
    write_report(build_report([tmp_path / "run"]), tmp_path / "run")
    problems: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("request", lambda r: problems.append(f"request {r.url}") if not r.url.startswith(("file:", "data:")) else None)
            page.goto((tmp_path / "run" / "report.html").as_uri())
            images = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.alt])")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "report-chromium.png"), full_page=True)
            headings = page.evaluate("Array.from(document.querySelectorAll('h2')).map(h => h.textContent)")
        finally:
            browser.close()
    assert len(images) >= 4 and all(done and width > 0 and alt for done, width, alt in images), images
    assert problems == []
    assert headings[0] == "Verdict" and headings[1] == "Figures" and "Provenance" in headings
    assert (ARTIFACTS / "report-chromium.png").stat().st_size > 10_000


def test_a_machine_and_people_with_no_item_in_common_compare_nothing(tmp_path: Path) -> None:
    rows = [attempt("cnn", i, "AB", "AB", 0.01) for i in range(5)]
    rows += [attempt("human", i, "AB", "AB", 4.0) for i in range(5, 9)]
    write_run(tmp_path / "run", "8" * 64, rows)
    (c,) = build_report([tmp_path / "run"]).comparisons
    assert (c.accuracy.items, c.time.items) == (0, 0) and math.isnan(c.accuracy.p)
    assert c.verdict == "accuracy: no evidence either way; time: no evidence either way"


def test_versus_pairs_two_machines_on_the_items_both_attempted() -> None:
    from bench.report.compare import versus
    from bench.stats import mcnemar_exact

    # first: right on items 0-9; second: right on 0-4 and 10-11; item 11 only the second attempted
    first = [attempt("a", i, "ab", "ab" if i < 10 else "zz", 0.01) for i in range(11)]
    second = [attempt("b", i, "ab", "AB" if i < 5 or i == 10 else "zz", 0.05) for i in range(12)]
    v = versus(first, second, case_sensitive=False)
    assert (v.items, v.first_right, v.second_right, v.first_only, v.second_only) == (11, 10, 6, 5, 1)
    assert v.difference == pytest.approx(4 / 11) and v.low < v.difference < v.high
    assert v.p == pytest.approx(mcnemar_exact(5, 1))
    assert (v.first_median, v.second_median) == (pytest.approx(0.01), pytest.approx(0.05))
    strict = versus(first, second, case_sensitive=True)  # "AB" is wrong when case counts
    assert (strict.second_right, strict.first_only) == (0, 10)
    with pytest.raises(ValueError, match="one attempt per item"):
        versus(first + first[:1], second, case_sensitive=False)


def _tree(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() and not p.is_symlink() else None)
            for p in sorted(root.rglob("*"))}


def test_a_report_keeps_what_it_did_not_write(tmp_path: Path) -> None:
    write_run(tmp_path / "run", "1" * 64, machine_and_people(30, 0.9, 0.7, 0.01, 5.0))
    out = tmp_path / "d"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "my-plot.png").write_bytes(b"mine")
    (out / "figures" / "notes").mkdir()
    code, output = report_cli(str(tmp_path / "run"), "--out", str(out))
    assert code == 0, output
    assert (out / "figures" / "my-plot.png").read_bytes() == b"mine" and (out / "figures" / "notes").is_dir()
    drawn = {p.name for p in (out / "figures").iterdir()} - {"my-plot.png", "notes"}
    assert "accuracy.png" in drawn
    code, output = report_cli(str(tmp_path / "run"), "--out", str(out))  # its own report it replaces
    assert code == 0, output
    assert (out / "figures" / "my-plot.png").read_bytes() == b"mine"
    (out / "figures" / "accuracy.png").write_bytes(b"edited by hand")
    before = _tree(out)
    code, output = report_cli(str(tmp_path / "run"), "--out", str(out))
    assert code == 1 and "holds figures/accuracy.png, which captcha-bench did not write there (or which was edited " \
                         "since)" in output
    assert _tree(out) == before


def test_a_report_does_not_replace_a_users_own_page(tmp_path: Path) -> None:
    write_run(tmp_path / "run", "2" * 64, machine_and_people(30, 0.9, 0.7, 0.01, 5.0))
    out = tmp_path / "d"
    out.mkdir()
    (out / "report.html").write_text("<p>my own page</p>")
    code, output = report_cli(str(tmp_path / "run"), "--out", str(out))
    assert code == 1 and "holds report.html, which captcha-bench did not write there" in output
    assert _tree(out) == {"report.html": b"<p>my own page</p>"}


@pytest.mark.parametrize("link", ["figures", "report.html"])
def test_a_report_refuses_a_symlink_where_it_writes(tmp_path: Path, link: str) -> None:
    write_run(tmp_path / "run", "3" * 64, machine_and_people(30, 0.9, 0.7, 0.01, 5.0))
    out, elsewhere = tmp_path / "o", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / link).symlink_to(elsewhere if link == "figures" else elsewhere / "page.html")
    code, output = report_cli(str(tmp_path / "run"), "--out", str(out))
    assert code == 1 and "Traceback" not in output and link in output, output
    assert sorted(p.name for p in out.iterdir()) == [link] and list(elsewhere.iterdir()) == []
