"""Human solving services as solvers: 2Captcha through its official client, against a stub of its API on
loopback (HTTPS with a test certificate). No network, no money: no figure is claimed for the real service."""

from __future__ import annotations

import base64
import io
import json
import shutil
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from bench.benchmark import run_benchmark, with_dataset_options
from bench.cli import cli
from bench.run import RunConfig, SolverSpec
from bench.runfolder.files import DETAILS, read_attempts, read_details
from captchas import dataset as ds
from captchas.images import load_image
from solvers.twocaptcha import numeric_rule
from tests.services_stub import PRICE, Service, serving, serving_anticaptcha

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl makes the stub's certificate")
KEY = "2c-test-key-0123456789abcdef"


@pytest.fixture
def trusted(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("TWOCAPTCHA_API_KEY", KEY)
    return monkeypatch


def test_each_item_is_sent_once_as_a_png_with_the_sets_rules_and_its_price_is_kept(
        tiny_dataset: ds.Dataset, tmp_path: Path, trusted: pytest.MonkeyPatch) -> None:
    with serving(tmp_path) as (service, cert):
        trusted.setenv("REQUESTS_CA_BUNDLE", str(cert))
        config = with_dataset_options(RunConfig((SolverSpec("2captcha", {"server": service.server, "polling": 1}),),
                                                throughput_items=8), tiny_dataset)
        result = run_benchmark(tiny_dataset, config, tmp_path / "run")
    assert len(service.submitted) == len(tiny_dataset.samples)  # paid: no warm-up, no throughput pass, no repeat
    images = {load_image(tiny_dataset, s).tobytes() for s in tiny_dataset.samples}
    for form in service.submitted:
        assert form["method"] == "base64" and form["key"] == KEY and form["regsense"] == "0"  # the set folds case
        assert Image.open(io.BytesIO(base64.b64decode(form["body"]))).tobytes() in images
        rest = json.dumps({k: v for k, v in form.items() if k != "body"})
        assert not any(s.answer in rest or s.file in rest for s in tiny_dataset.samples)
    attempts = read_attempts(tmp_path / "run" / "attempts.csv")
    assert len(attempts) == len(tiny_dataset.samples) and {a.predicted for a in attempts} == {"ABCD"}
    details = read_details(tmp_path / "run" / DETAILS)["2captcha"]
    assert {d["usd"] for d in details.values()} == {float(PRICE)} and all(d["service_seconds"] > 0 for d in details.values())
    summary = result.summaries[0]
    assert summary.usd_per_1000 == pytest.approx(1000 * float(PRICE)) and summary.cost_basis == "the solver's prices"
    assert summary.throughput is None  # a paid solver has no throughput pass


def test_the_key_is_used_and_written_nowhere(tiny_dataset: ds.Dataset, tmp_path: Path,
                                             trusted: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    with serving(tmp_path) as (service, cert):
        trusted.setenv("REQUESTS_CA_BUNDLE", str(cert))
        result = CliRunner().invoke(cli, ["run", "--dataset", str(tiny_dataset.path), "--solver", "2captcha",
                                          "-o", f"2captcha.server={service.server}", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert all(p["key"] == KEY for p in service.polled) and KEY not in result.output
    assert not [p.name for p in out.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]


def test_a_missing_key_or_an_absent_service_stops_the_run_in_one_line(tiny_dataset: ds.Dataset, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TWOCAPTCHA_API_KEY", raising=False)
    run = ["run", "--dataset", str(tiny_dataset.path), "--solver", "2captcha", "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(cli, run)
    assert result.exit_code == 1 and "set TWOCAPTCHA_API_KEY to your 2Captcha key" in result.output
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("TWOCAPTCHA_API_KEY", KEY)
    result = CliRunner().invoke(cli, [*run, "-o", f"2captcha.server=127.0.0.1:{port}"])
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert result.exit_code == 1 and len(errors) == 1 and f"2Captcha at 127.0.0.1:{port} refused or could not be " \
        "reached" in errors[0] and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_the_numeric_rule_follows_the_sets_characters() -> None:
    assert (numeric_rule("0123456789"), numeric_rule("ABCxyz"), numeric_rule("AB12"), numeric_rule("")) == (1, 2, 0, 0)


def test_anticaptcha_sends_each_item_once_and_keeps_the_price_and_the_services_time(
        tiny_dataset: ds.Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTICAPTCHA_API_KEY", KEY)
    with serving_anticaptcha(tmp_path, Service(key=KEY)) as (service, cert):
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
        options = {"api_url": f"https://{service.server}/"}
        config = with_dataset_options(RunConfig((SolverSpec("anticaptcha", options),), limit=3), tiny_dataset)
        result = run_benchmark(tiny_dataset, config, tmp_path / "run")
    assert len(service.submitted) == 3 and {a.predicted for a in read_attempts(tmp_path / "run" / "attempts.csv")} == {"ABCD"}
    images = {load_image(tiny_dataset, s).tobytes() for s in tiny_dataset.samples}
    for task in service.submitted:
        assert task["type"] == "ImageToTextTask" and task["case"] is False and task["numeric"] == 0
        assert Image.open(io.BytesIO(base64.b64decode(task["body"]))).tobytes() in images
    details = read_details(tmp_path / "run" / DETAILS)["anticaptcha"]
    assert {(d["usd"], d["service_solve_seconds"]) for d in details.values()} == {(float(PRICE), 7)}
    assert result.summaries[0].usd_per_1000 == pytest.approx(1000 * float(PRICE))


def test_anticaptcha_refuses_a_key_the_service_does_not_know_in_one_line(tiny_dataset: ds.Dataset, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTICAPTCHA_API_KEY", "not-the-key")
    with serving_anticaptcha(tmp_path, Service(key=KEY)) as (service, cert):
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
        result = CliRunner().invoke(cli, ["run", "--dataset", str(tiny_dataset.path), "--solver", "anticaptcha", "-o",
                                          f"anticaptcha.api_url=https://{service.server}/", "--out", str(tmp_path / "run")])
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert result.exit_code == 1 and len(errors) == 1 and "refused or could not be reached" in errors[0]
    assert "ERROR_KEY_DOES_NOT_EXIST" in errors[0] and "not-the-key" not in result.output
    assert not (tmp_path / "run").exists() and not service.submitted
