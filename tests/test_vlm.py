"""The `vlm` solver against an OpenAI-compatible stub on loopback: the request, the parsing, concurrency,
retries, a hanging and an absent server, and the key kept out of the run's files. No network."""

from __future__ import annotations

import json
import random
import socket
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.benchmark import run_benchmark, with_dataset_options
from bench.cli import cli
from bench.run import RunConfig, SolverSpec
from bench.runfolder.files import DETAILS, read_attempts, read_details
from captchas import dataset as ds
from captchas.dataset import Challenge
from captchas.images import load_image
from solvers.vlm import VLMSolver, parse, png_data_url, retry_after
from tests.openai_stub import Stub, image_of, serving


@pytest.mark.parametrize(("reply", "charset", "case_sensitive", "answer"), [
    ("AB3D", "ABD3", True, "AB3D"),
    ("`AB3D`", "ABD3", True, "AB3D"),
    ('The characters in the image are "AB3D".', "ABD3", True, "AB3D"),
    ("Answer: AB3D.", "ABD3", True, "AB3D"),
    ("The text reads AB3D", "ABD3", True, "AB3D"),
    ("```\nab3d\n```", "ABD3", False, "ab3d"),  # scored without case: either case of the set's letters
    ("ab3d", "ABD3", True, "3"),  # scored with case: lower-case letters are not the set's
    ("A B 3 D", "ABD3", True, "D"),  # a spaced reply is prose: its last word
    ("Sorry, no text.", "ABD3", False, ""),
    ("I cannot read this image.", "ABD3", False, "a"),  # prose keeps what its last word has of the set
    ("", "ABD3", True, ""),
    ("x7-Q!", "", True, "x7Q"),  # no charset: letters and digits
])
def test_a_reply_is_parsed_down_to_the_answer(reply: str, charset: str, case_sensitive: bool, answer: str) -> None:
    assert parse(reply, charset, case_sensitive) == answer


def test_retry_after_takes_seconds_or_a_date() -> None:
    assert retry_after({"retry-after": "2"}) == 2.0
    assert retry_after({}) is None
    later = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= (retry_after({"retry-after": later}) or 0) <= 31


def _images(n: int) -> list[Challenge]:
    from PIL import Image

    return [Challenge(str(k), Image.new("L", (40, 20), color=k * 9)) for k in range(n)]


def test_a_request_carries_the_prompt_and_the_image_and_nothing_else_of_the_item(tiny_dataset: ds.Dataset,
                                                                              tmp_path: Path) -> None:
    with serving() as stub:
        config = with_dataset_options(RunConfig((SolverSpec("vlm", {"base_url": stub.url, "model": "stub-vl"}),),
                                                throughput_items=0), tiny_dataset)
        run_benchmark(tiny_dataset, config, tmp_path / "run")
    assert len(stub.requests) == len(tiny_dataset.samples) + 1  # a warm-up first, as for every solver
    images = {png_data_url(load_image(tiny_dataset, s)) for s in tiny_dataset.samples}
    for request in stub.requests:
        body = request["body"]
        assert body["model"] == "stub-vl" and body["temperature"] == 0 and body["max_tokens"] == 16
        text, image = body["messages"][0]["content"]
        assert image["image_url"]["url"] in images  # a PNG data URL of one of the set's images
        said = json.dumps({**body, "messages": [text]})  # everything but the image's bytes
        assert tiny_dataset.info["charset"] in text["text"] and "(3 of them)" in text["text"]  # the set's characters
        # and answer length, as the prompt may name them...
        for s in tiny_dataset.samples:  # ...never an answer or a file name
            assert s.answer not in said.replace(tiny_dataset.info["charset"], "") and s.file not in said
    attempts = read_attempts(tmp_path / "run" / "attempts.csv")
    assert {a.predicted for a in attempts} == {"".join(c for c in "ABCD" if c in tiny_dataset.info["charset"])}


def test_answers_come_back_in_order_whatever_order_the_requests_finish_in() -> None:
    batch = _images(24)
    rng = random.Random(0)
    stub = Stub(reply=lambda body: "X" + str(image_of(body).getpixel((0, 0))),  # the image's own grey level
                delay=lambda body: rng.random() * 0.2)
    with serving(stub):
        solver = VLMSolver(base_url=stub.url, model="stub-vl", concurrency=8)
        answers = solver.solve(batch)
    assert answers == [f"X{k * 9}" for k in range(24)]
    assert solver.usage == {"requests": 24, "tokens_in": 24 * 100, "tokens_out": sum(len(a) for a in answers)}


def test_a_429_is_retried_after_the_wait_it_names_and_a_500_after_a_backoff() -> None:
    stub = Stub(failures=[(429, {"Retry-After": "1"}), (500, {})])
    with serving(stub):
        solver = VLMSolver(base_url=stub.url, model="stub-vl", retries=2)
        start = time.perf_counter()
        assert solver.solve(_images(1)) == ["ABCD"]
        waited = time.perf_counter() - start
    assert len(stub.requests) == 3 and waited >= 1.0 + 0.5  # Retry-After's second, then the first backoff
    with serving(Stub(failures=[(503, {"Retry-After": "0"})] * 3)) as failing:
        with pytest.raises(Exception, match="503"):
            VLMSolver(base_url=failing.url, model="stub-vl", retries=2).solve(_images(1))
        assert len(failing.requests) == 3  # the first try and two retries, then the item's error


def test_a_hanging_server_costs_one_item_a_timeout_and_the_run_goes_on(tiny_dataset: ds.Dataset,
                                                                      tmp_path: Path) -> None:
    slow = png_data_url(load_image(tiny_dataset, tiny_dataset.samples[3]))
    stub = Stub(delay=lambda body: 3.0 if body["messages"][0]["content"][1]["image_url"]["url"] == slow else 0.0)
    with serving(stub):
        options = {"base_url": stub.url, "model": "stub-vl", "timeout": 0.5, "retries": 0}
        run_benchmark(tiny_dataset, RunConfig((SolverSpec("vlm", options),), throughput_items=0), tmp_path / "run")
    attempts = {a.item_id: a for a in read_attempts(tmp_path / "run" / "attempts.csv")}
    assert len(attempts) == len(tiny_dataset.samples)
    assert "APITimeoutError" in attempts[tiny_dataset.samples[3].id].error
    assert all(not a.error for k, a in attempts.items() if k != tiny_dataset.samples[3].id)


def test_an_endpoint_that_is_not_there_stops_the_run_in_one_line_before_it_writes(tiny_dataset: ds.Dataset,
                                                                                   tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free now, and nothing listens there
    url = f"http://127.0.0.1:{port}/v1"
    result = CliRunner().invoke(cli, ["run", "--dataset", str(tiny_dataset.path), "--solver", "vlm", "-o",
                                      f"vlm.base_url={url}", "-o", "vlm.model=stub-vl", "--out", str(tmp_path / "run")])
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert result.exit_code == 1 and len(errors) == 1 and f"cannot reach {url}" in errors[0], result.output
    assert "Traceback" not in result.output and not (tmp_path / "run").exists()


def test_the_key_is_sent_to_the_endpoint_and_written_nowhere(tiny_dataset: ds.Dataset, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-test-" + "".join(random.Random(1).choices("abcdef0123456789", k=32))
    monkeypatch.setenv("CB_VLM_KEY", secret)
    out = tmp_path / "run"
    with serving() as stub:
        result = CliRunner().invoke(cli, ["run", "--dataset", str(tiny_dataset.path), "--solver", "vlm",
                                          "-o", f"vlm.base_url={stub.url}", "-o", "vlm.model=stub-vl",
                                          "-o", "vlm.api_key_env=CB_VLM_KEY", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert stub.requests and all(r["headers"].get("authorization") == f"Bearer {secret}" for r in stub.requests)
    written = [p for p in out.rglob("*") if p.is_file()]
    assert written and not [p.name for p in written if secret.encode() in p.read_bytes()]
    assert secret not in result.output


def test_each_attempt_keeps_its_reply_tokens_and_price_and_a_local_server_gets_a_throughput_pass(
        tiny_dataset: ds.Dataset, tmp_path: Path) -> None:
    stub = Stub(reply=lambda body: 'It says "ABCD".')
    with serving(stub):
        options = {"base_url": stub.url, "model": "stub-vl", "price_in": 2.0, "price_out": 8.0}
        run_benchmark(tiny_dataset, RunConfig((SolverSpec("vlm", options),), throughput_items=4, batch_size=2),
                      tmp_path / "run")
    details = read_details(tmp_path / "run" / DETAILS)["vlm"]
    assert set(details) == {s.id for s in tiny_dataset.samples}
    for row in details.values():
        assert row["reply"] == 'It says "ABCD".' and row["tokens_in"] == 100 and row["tokens_out"] == 15
        assert row["requests"] == 1 and row["usd"] == pytest.approx((100 * 2.0 + 15 * 8.0) / 1e6)
        assert row["cpu_seconds"] >= 0
    assert not VLMSolver.paid(base_url=stub.url)  # loopback: only time, so the throughput pass runs
    assert len(stub.requests) == 1 + len(tiny_dataset.samples) + 4  # a warm-up, each item, the throughput pass


def test_a_paid_run_killed_and_resumed_asks_each_item_once(tiny_dataset: ds.Dataset, tmp_path: Path) -> None:
    out = tmp_path / "run"

    def interrupt(label: str, done: int, total: int) -> None:
        if label == "vlm" and done == 3:
            raise KeyboardInterrupt

    with serving() as stub:
        config = RunConfig((SolverSpec("vlm", {"base_url": stub.url, "model": "stub-vl", "paid": True}),))
        with pytest.raises(KeyboardInterrupt):
            run_benchmark(tiny_dataset, config, out, progress=interrupt)
        assert len(read_attempts(out / "attempts.csv")) == 3
        run_benchmark(tiny_dataset, config, out, resume=True)
    asked = [image_of(r["body"]).tobytes() for r in stub.requests]
    assert len(asked) == len(tiny_dataset.samples) == len(set(asked))  # no warm-up, no throughput pass, no repeat
    assert len(read_attempts(out / "attempts.csv")) == len(tiny_dataset.samples)
    assert VLMSolver.paid(base_url="https://api.openai.com/v1") and not VLMSolver.paid(base_url="http://localhost:8000/v1")


def test_the_summary_prices_1000_solves_by_the_solvers_prices_or_by_cpu_time(tiny_dataset: ds.Dataset,
                                                                              tmp_path: Path) -> None:
    with serving() as stub:
        priced = SolverSpec("vlm", {"base_url": stub.url, "model": "stub-vl", "price_in": 2.0, "price_out": 8.0})
        result = run_benchmark(tiny_dataset, RunConfig((priced, SolverSpec("constant")), throughput_items=0,
                                                       price_core_hour=3600.0), tmp_path / "run")
    vlm, constant = result.summaries
    assert vlm.usd_per_1000 == pytest.approx(1000 * (100 * 2.0 + 4 * 8.0) / 1e6) and vlm.cost_basis == "the solver's prices"
    cpu = read_details(tmp_path / "run" / DETAILS)["constant"]
    mean_cpu = sum(r["cpu_seconds"] for r in cpu.values()) / len(cpu)
    assert constant.usd_per_1000 == pytest.approx(1000 * mean_cpu * 3600.0 / 3600)  # a dollar a CPU-second
    assert constant.cost_basis == "CPU time at $3600 per vCPU-hour"
    written = json.loads((tmp_path / "run" / "summary.json").read_text())["solvers_summary"]
    assert [s["usd_per_1000"] for s in written] == [vlm.usd_per_1000, constant.usd_per_1000]
    with pytest.raises(ValueError, match="--price-core-hour is US dollars per vCPU-hour, 0 or more, got -1"):
        RunConfig((priced,), price_core_hour=-1)


def test_the_report_shows_each_machines_cost_and_draws_accuracy_against_it(tiny_dataset: ds.Dataset,
                                                                           tmp_path: Path) -> None:
    from bench.report import build_report, write_report

    with serving() as stub:
        priced = SolverSpec("vlm", {"base_url": stub.url, "model": "stub-vl", "price_in": 2.0, "price_out": 8.0})
        run_benchmark(tiny_dataset, RunConfig((priced, SolverSpec("constant")), throughput_items=0), tmp_path / "run")
    report = build_report([tmp_path / "run"])
    costs = {row.name: row.summary for row in report.groups[0].rows(report.groups[0].case_sensitive)}
    assert costs["vlm"].usd_per_1000 == pytest.approx(1000 * (100 * 2.0 + 4 * 8.0) / 1e6)
    assert costs["constant"].cost_basis.startswith("CPU time at $0.0408 per vCPU-hour")
    write_report(report, tmp_path / "run")
    page = (tmp_path / "run" / "report.md").read_text()
    assert "$ / 1,000 solves" in page and "0.232 (the solver's prices)" in page
    assert (tmp_path / "run" / "figures" / "accuracy-cost.png").is_file() and "2captcha.com/order-captchas" in page
