"""`stockstream fetch-batch` on the command line: options, output, exit codes, nothing written on bad input."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from helpers import run_stockstream, runner
from stockstream_cli.sources import asx
from stockstream_cli.dataset import layout
from stockstream_cli.cli import app
from stockstream_cli.dataset.store import LocalStore
from stockstream_cli.dataset import symbols as stored_symbols

DAY = "2025-04-08"


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "data"
    store = LocalStore(folder)
    companies = [asx.Company(symbol=code, company_name=f"{code} Ltd") for code in ("BHP", "CBA", "NAB")]
    store.put(layout.symbols_key(dt.date(2025, 4, 8)), stored_symbols.to_csv(stored_symbols.assign_batches(companies, 2)))
    return store


def invoke(*args: str):
    return runner.invoke(app, ["fetch-batch", *args])


def files(store) -> list[str]:
    return store.list()


def test_json_output_is_the_manifest_and_exit_0_when_every_symbol_was_fetched(fake_yahoo, data):
    result = invoke("--date", DAY, "--batch-number", "0", "--store", data.uri, "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document == json.loads(data.get("runs/2025-04-08/batch-0.json"))
    assert document["metadata"]["symbols_processed"] == 2  # batch 0 of size 2: BHP, CBA
    assert fake_yahoo.per_ticker() == {"BHP.AX": 1, "CBA.AX": 1}


def test_exit_3_and_a_human_summary_when_some_symbols_failed(fake_yahoo, data):
    fake_yahoo.fault("CBA", "not_found").null_bar("BHP", "2025-04-07")
    result = invoke("--date", DAY, "--batch-number", "0", "--store", data.uri)
    assert result.exit_code == 3, result.output
    assert "batch 0 of 2025-04-08: 1 of 2 symbols fetched, 1 failed" in result.stdout
    assert "2 rows for 2025-04-04..2025-04-08" in result.stdout
    assert "rows dropped: 1 all-null" in result.stdout
    assert "failed, not_found: CBA" in result.stdout


def test_exit_1_when_the_whole_batch_failed_and_nothing_is_written(fake_yahoo, data):
    fake_yahoo.fault("BHP", "rate_limited").fault("CBA", "rate_limited")
    result = invoke("--date", DAY, "--batch-number", "0", "--store", data.uri, "--retries", "1")
    assert result.exit_code == 1
    assert "no symbol has data and every failure is retryable (2 rate_limited)" in result.stderr
    assert fake_yahoo.chart_requests() == 8  # 2 symbols x 2 attempts x (request + yfinance's resend)
    assert files(data) == ["symbols/2025-04-08-symbols.csv"]


UNLISTED_DAY = "2025-04-09"


def test_symbols_in_every_spelling_are_fetched_and_merged(fake_yahoo, data):
    # a day without a list: --symbols go to the batch named (with a list they must be members: test_everyday_use)
    assert invoke("--date", UNLISTED_DAY, "--batch-number", "1", "--store", data.uri, "--symbols", "NAB", "WBC").exit_code == 0
    assert invoke("--date", UNLISTED_DAY, "--batch-number", "1", "--store", data.uri, "--symbols", "ANZ,NAB").exit_code == 0
    result = invoke("--date", UNLISTED_DAY, "--batch-number", "1", "--store", data.uri, "--symbols", "MQG", "--symbols", "NAB", "--json")
    meta = json.loads(result.stdout)["metadata"]
    assert meta["symbols"] == ["ANZ", "MQG", "NAB", "WBC"] and meta["symbols_processed"] == 4
    assert meta["rows"] == 12


def test_lookback_days_sets_the_window(fake_yahoo, data):
    result = invoke("--date", DAY, "--batch-number", "1", "--store", data.uri, "--lookback-days", "1", "--json")
    meta = json.loads(result.stdout)["metadata"]
    assert meta["window"] == {"start": DAY, "end": DAY} and meta["rows"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch-number", "5"], "batch 5 is out of range: valid batch numbers are 0 to 1"),
        (["--batch-number", "-1"], "--batch-number must be 0 or more"),
        (["--batch-number", "0", "--date", "2025-04-09"], "no ASX list for 2025-04-09"),
        (["--batch-number", "0", "--symbols", "BHP.AX"], "without the .AX suffix"),
        (["--batch-number", "0", "--date", "2025-02-30"], "is not a real date"),
        (["--batch-number", "0", "--retries", "-1"], "--retries must be at least 0"),
        (["--batch-number", "0", "--lookback-days", "0"], "--lookback-days must be at least 1"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_changes_nothing(fake_yahoo, data, args, message):
    if "--date" not in args:
        args = ["--date", DAY, *args]
    result = invoke(*args, "--store", data.uri)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""
    assert fake_yahoo.count(kind=None) == 0
    assert files(data) == ["symbols/2025-04-08-symbols.csv"]


def test_a_real_process_refuses_bad_symbols_with_exit_2_and_no_traceback(tmp_path):
    result = run_stockstream("fetch-batch", "--date", DAY, "--batch-number", "0", "--symbols", "BH$",
                             "--store", str(tmp_path / "data"))
    assert result.returncode == 2
    assert result.stderr.startswith("stockstream: error: invalid symbol 'BH$'")
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not (tmp_path / "data").exists()


def test_help_names_every_option():
    result = runner.invoke(app, ["fetch-batch", "--help"])
    for option in ("--date", "--batch-number", "--symbols", "--delay", "--retries", "--retry-wait", "--lookback-days",
                   "--store", "--profile", "--region", "--json"):
        assert option in result.output


def test_yfinance_on_plain_requests_is_refused_with_exit_2_unless_allowed(fake_yahoo, data, monkeypatch):
    from yfinance import _http

    monkeypatch.setattr(_http, "HAS_CURL_CFFI", False)
    refused = invoke("--date", DAY, "--batch-number", "0", "--store", data.uri)
    assert refused.exit_code == 2
    assert "not using curl_cffi" in refused.stderr and "--allow-plain-requests" in refused.stderr
    assert fake_yahoo.count(kind=None) == 0 and files(data) == ["symbols/2025-04-08-symbols.csv"]
    allowed = invoke("--date", DAY, "--batch-number", "0", "--store", data.uri, "--allow-plain-requests")
    assert allowed.exit_code == 0, allowed.output
    monkeypatch.setenv("STOCKSTREAM_ALLOW_PLAIN_REQUESTS", "yes")
    assert invoke("--date", DAY, "--batch-number", "1", "--store", data.uri).exit_code == 0
    monkeypatch.setenv("STOCKSTREAM_ALLOW_PLAIN_REQUESTS", "perhaps")
    bad = invoke("--date", DAY, "--batch-number", "1", "--store", data.uri)
    assert bad.exit_code == 2 and "STOCKSTREAM_ALLOW_PLAIN_REQUESTS must be true or false" in bad.stderr
