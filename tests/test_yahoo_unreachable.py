"""Yahoo that cannot be reached at all (no network: DNS failing, connections refused, TLS or a proxy failing)
stops a run within seconds, in one line, with nothing fetched stored; a blip between answers is retried as
any error. The network fails at the HTTP transport (tests/yahoo_fake.py `unreachable`): curl_cffi's
`Session._request_once` raises what libcurl's failure raises, so yfinance's cookie and crumb logic runs."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time

import pytest
from typer.testing import CliRunner

from aws_fake import load_handler
from asx_fake import asx_codes, write_markit_csv
from stockstream_cli.cli import app
from stockstream_cli.errors import YahooUnreachable
from helpers import fetch_batch
from stockstream_cli.settings import Settings
from stockstream_cli.sources import http, yahoo
from stockstream_cli.dataset.store import LocalStore
from yahoo_fake import FakeYahoo
from clock import Clock

DAY = "2026-08-21"
FULL_LIST = 1838
runner = CliRunner()


@pytest.fixture
def yfinance_log_unhandled(monkeypatch):
    """yfinance's logger as in a new process: no handler of its own, so logging's last resort would print."""
    monkeypatch.setattr(logging.getLogger("yfinance"), "handlers", [])


@pytest.mark.parametrize("how, cause", [
    ("refused", "Failed to connect to query2.finance.yahoo.com port 443 after 2 ms: Could not connect to server"),
    ("dns", "Could not resolve host: query2.finance.yahoo.com (Domain name not found)"),
])
def test_offline_run_local_over_the_full_list_stops_in_seconds_in_one_line(tmp_path, fake_yahoo,
                                                                          yfinance_log_unhandled, how, cause):
    fake_yahoo.unreachable(how)
    listing = write_markit_csv(tmp_path / "asx.csv", asx_codes(FULL_LIST))
    data = tmp_path / "data"
    started = time.monotonic()
    result = runner.invoke(app, ["run-local", "--date", DAY, "--from-file", str(listing), "--store", str(data)])
    took = time.monotonic() - started

    assert result.exit_code == 1, result.output
    assert result.stderr.strip().splitlines() == [
        f"stockstream: error: Yahoo Finance cannot be reached: {cause}; check the network"]
    assert took < 30
    # one try of one symbol per batch in flight (a cookie, a crumb and a chart request each), not 1,838 x 4
    assert fake_yahoo.count(kind=None) <= 10 * 3 and fake_yahoo.chart_requests() <= 10
    run = json.loads((data / "runs" / DAY / "run.json").read_text())
    assert run["error"] == f"Yahoo Finance cannot be reached: {cause}; check the network"
    assert (run["total_symbols"], run["symbols_fetched"], run["batches_succeeded"]) == (FULL_LIST, 0, 0)
    assert sorted(p.name for p in (data / "runs" / DAY).iterdir()) == ["run.json"]  # no batch recorded
    assert not (data / "raw-data").exists() and not (data / "actions").exists()
    assert (data / "symbols" / f"{DAY}-symbols.csv").is_file()  # the list step ran; its record stays


@pytest.mark.parametrize("how", ["tls", "proxy"])
def test_a_tls_or_proxy_failure_is_unreachable_too(tmp_path, fake_yahoo, how):
    fake_yahoo.unreachable(how)
    with pytest.raises(YahooUnreachable, match="^Yahoo Finance cannot be reached: .+; check the network$"):
        fetch_batch(LocalStore(str(tmp_path)), dt.date(2026, 8, 21), 0, Settings.resolve(), symbols=["BHP", "CBA"])
    assert fake_yahoo.chart_requests() == 1
    assert not (tmp_path / "raw-data").exists()


def test_a_slow_yahoo_keeps_its_retries(tmp_path, fake_yahoo):
    fake_yahoo.fault("BHP", "timeout")
    document = fetch_batch(LocalStore(str(tmp_path)), dt.date(2026, 8, 21), 0, Settings.resolve(retries=2),
                           symbols=["BHP", "CBA"])
    assert document["metadata"]["failure_reasons"] == {"BHP": "timeout"}
    assert fake_yahoo.chart_requests("BHP") == 3  # every retry, as before


def test_a_blip_between_answers_is_retried_and_a_minute_without_one_stops(tmp_path):
    """Yahoo answered a moment ago: a failed connection is an error, retried; once a minute has passed
    without any answer, the next one means Yahoo cannot be reached."""
    clock = Clock()
    with FakeYahoo(clock=clock).installed() as fake:
        session = http.session()
        session.clock = clock
        went_away = []

        def on_symbol(code, reason):
            if code == "AAA":
                fake.unreachable("refused")
                went_away.append(clock.now)
            clock.now += 30.0

        with pytest.raises(YahooUnreachable):
            fetch_batch(LocalStore(str(tmp_path)), dt.date(2026, 8, 21), 0, Settings.resolve(retries=1),
                        symbols=["AAA", "BBB", "CCC", "DDD", "EEE"], on_symbol=on_symbol)
        charts = fake.per_ticker()
    assert went_away == [0.0]
    # AAA answered at 0 s; BBB (30 s later) and CCC (60 s) failed to connect and were retried; DDD (90 s) stopped it
    assert charts == {"AAA.AX": 1, "BBB.AX": 2, "CCC.AX": 2, "DDD.AX": 1}
    # what was fetched before is kept, the rest recorded for the batch's next attempt (and rerun-failed)
    stored = json.loads((tmp_path / "runs" / "2026-08-21" / "batch-0.json").read_text())["metadata"]
    assert stored["symbols_fetched"] == 1 and stored["failure_reasons"] == {
        "BBB": "error", "CCC": "error", "DDD": "interrupted", "EEE": "interrupted"}
    assert stored["failure_details"]["EEE"].startswith("not fetched: Yahoo Finance cannot be reached: Failed to connect")
    assert (tmp_path / "raw-data" / "2026-08-21-batch-0.parquet").is_file()


def test_yfinances_log_lines_about_it_stay_off_the_terminal(tmp_path, fake_yahoo, yfinance_log_unhandled, capsys):
    fake_yahoo.unreachable("dns")
    with pytest.raises(YahooUnreachable):
        fetch_batch(LocalStore(str(tmp_path)), dt.date(2026, 8, 21), 0, Settings.resolve(), symbols=["BHP"])
    assert capsys.readouterr().err == ""
    assert any(isinstance(h, logging.NullHandler) for h in logging.getLogger("yfinance").handlers)


def test_a_deployed_batch_raises_it_for_the_maps_retry_and_writes_nothing(monkeypatch, tmp_path, fake_yahoo, capsys):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "stock-data-fetcher")
    monkeypatch.setenv("STOCKSTREAM_STORE", str(tmp_path / "store"))
    fake_yahoo.unreachable("dns")
    with pytest.raises(YahooUnreachable, match="cannot be reached: Could not resolve host"):
        load_handler("stock_data_fetcher.handler")({"symbols": ["AAA", "BBB"], "batchNumber": 0, "date": DAY}, None)
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert [m["BatchesFailed"] for m in metrics] == [1]
    assert not (tmp_path / "store" / "raw-data").exists() and not (tmp_path / "store" / "runs").exists()


@pytest.mark.parametrize("how", ["dns", "refused", "tls", "proxy"])
def test_the_connection_failures_of_both_backends_are_told_apart_from_timeouts(how):
    from curl_cffi.requests.exceptions import ConnectionError as CurlConnectionError, Timeout
    from yahoo_fake import curl_unreachable_error, requests_unreachable_error

    url = "https://query2.finance.yahoo.com/v8/finance/chart/BHP.AX"
    assert http.connection_failure(curl_unreachable_error(how, url))
    assert http.connection_failure(requests_unreachable_error(how, url))
    assert http.connection_failure(Timeout("Failed to perform, curl: (28) Operation timed out", 28)) is None
    dropped = CurlConnectionError("Failed to perform, curl: (56) Recv failure: Connection reset by peer", 56)
    assert http.connection_failure(dropped) is None  # a server was reached
    failure = yahoo.classify_exception(curl_unreachable_error(how, url), reached=True)
    assert (failure.reason, failure.unreachable) == ("error", False)  # Yahoo answered lately: a blip
    assert yahoo.classify_exception(curl_unreachable_error(how, url), reached=False).unreachable
