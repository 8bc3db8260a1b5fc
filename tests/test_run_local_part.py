"""Issue 24 item 6: run-local uses the day's stored list (offline too), and runs a part of the day
(--symbols / --batches), recorded in run.json so that rerun-failed and check know what was asked."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from helpers import runner
from asx_fake import asx_codes, write_markit_csv
from pipeline_support import store_files
from stockstream_cli.cli import app

DAY = dt.date(2026, 8, 21)  # a Friday
CODES = asx_codes(40)
LIST_KEY = f"symbols/{DAY.isoformat()}-symbols.csv"


@pytest.fixture
def listed(tmp_path):
    """A store holding only the day's list (4 batches of 10), as `stockstream symbols` writes it."""
    data = tmp_path / "data"
    list_path = write_markit_csv(tmp_path / "asx.csv", CODES)
    result = runner.invoke(app, ["symbols", "--date", DAY.isoformat(), "--from-file", str(list_path),
                                 "--store", str(data), "--batch-size", "10"])
    assert result.exit_code == 0, result.output
    return data


def run_local(data, *args):
    return runner.invoke(app, ["run-local", "--date", DAY.isoformat(), "--store", str(data), *args])


def run_json(data) -> dict:
    return json.loads((data / "runs" / DAY.isoformat() / "run.json").read_text())


def test_offline_run_local_uses_the_stored_list_and_says_so(listed, fake_yahoo):
    """No network (conftest refuses every connection but loopback): the ASX list is not downloaded."""
    before = (listed / LIST_KEY).read_bytes()
    result = run_local(listed, "--json")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [f"stockstream: using the stored ASX list {LIST_KEY} (40 symbols, "
                                          "4 batches); --refresh-list downloads it again"]
    assert json.loads(result.stdout)["symbols_fetched"] == 40
    assert (listed / LIST_KEY).read_bytes() == before
    assert "part" not in run_json(listed)


def test_refresh_list_downloads_it_again(listed, fake_yahoo):
    """--refresh-list goes to the source: offline, that is the symbols step failing (exit 1), nothing fetched."""
    result = run_local(listed, "--refresh-list", "--retry-wait", "0")
    assert result.exit_code == 1, result.output
    assert "the ASX source" in result.stderr and "stored ASX list" not in result.stderr
    assert fake_yahoo.chart_requests() == 0


def test_symbols_runs_only_those_and_records_the_part(listed, fake_yahoo):
    asked = [CODES[3], CODES[25]]  # batches 0 and 2
    result = run_local(listed, "--symbols", asked[1].lower(), asked[0], "--json")
    assert result.exit_code == 0, result.output
    assert fake_yahoo.per_ticker() == {f"{code}.AX": 1 for code in asked}
    summary = json.loads(result.stdout)
    assert (summary["total_symbols"], summary["num_batches"], summary["symbols_fetched"]) == (2, 2, 2)
    run = run_json(listed)
    assert run["part"] == {"symbols": asked}
    status = runner.invoke(app, ["status", "--date", DAY.isoformat(), "--store", str(listed), "--json"])
    assert json.loads(status.stdout)["run"]["part"] == {"symbols": asked}
    shown = " ".join(runner.invoke(app, ["status", "--date", DAY.isoformat(), "--store", str(listed)]).stdout.split())
    assert f"a part of the day only: --symbols {asked[0]} {asked[1]}" in shown
    assert "the last run fetched part of the day; `stockstream run-local --date 2026-08-21" in shown


def test_batches_runs_only_those_and_records_the_part(listed, fake_yahoo):
    result = run_local(listed, "--batches", "3", "1", "--json")
    assert result.exit_code == 0, result.output
    assert sorted(fake_yahoo.per_ticker()) == sorted(f"{c}.AX" for c in CODES[10:20] + CODES[30:40])
    summary = json.loads(result.stdout)
    assert (summary["total_symbols"], summary["num_batches"], summary["batches_succeeded"]) == (20, 2, 2)
    assert run_json(listed)["part"] == {"batches": [1, 3]}
    assert sorted(p.name for p in (listed / "runs" / DAY.isoformat()).glob("batch-*.json")) == \
        ["batch-1.json", "batch-3.json"]


@pytest.mark.parametrize("args, message", [
    (["--symbols", "BHP", "ZZZZ"], "not in the ASX list of 2026-08-21: BHP ZZZZ"),
    (["--batches", "2,7"], "no batch 7 on 2026-08-21: valid batch numbers are 0 to 3"),
    (["--batches", "x"], "--batches takes batch numbers (0, 1, ...), got 'x'"),
    (["--symbols", CODES[0], "--batches", "0"], "--symbols and --batches cannot be combined"),
])
def test_a_part_the_day_does_not_have_is_exit_2_before_any_request(listed, fake_yahoo, args, message):
    before = store_files(listed)
    result = run_local(listed, *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert fake_yahoo.chart_requests() == 0
    assert store_files(listed) == before


def test_rerun_failed_of_a_part_fetches_again_only_what_failed_among_what_was_asked(listed, fake_yahoo):
    asked = [CODES[3], CODES[4], CODES[25]]
    fake_yahoo.fault(CODES[4], "timeout")  # every time
    first = run_local(listed, "--symbols", *asked)
    assert first.exit_code == 3, first.output
    assert run_json(listed)["symbols_failed"] == [CODES[4]]

    fake_yahoo.clear_faults()
    fake_yahoo.reset_counts()
    rerun = runner.invoke(app, ["rerun-failed", "--date", DAY.isoformat(), "--store", str(listed), "--json"])
    assert rerun.exit_code == 0, rerun.output
    assert fake_yahoo.per_ticker() == {f"{CODES[4]}.AX": 1}  # not the 37 symbols never asked for
    summary = json.loads(rerun.stdout)
    assert (summary["total_symbols"], summary["symbols_fetched"], summary["symbols_failed"]) == (3, 3, [])
    assert run_json(listed)["part"] == {"symbols": asked}


def test_rerun_failed_of_batches_part_fetches_a_missing_asked_batch_only(listed, fake_yahoo):
    first = run_local(listed, "--batches", "1")
    assert first.exit_code == 0, first.output
    (listed / "runs" / DAY.isoformat() / "batch-1.json").unlink()  # as if that batch had failed
    fake_yahoo.reset_counts()
    rerun = runner.invoke(app, ["rerun-failed", "--date", DAY.isoformat(), "--store", str(listed)])
    assert rerun.exit_code == 0, rerun.output
    assert sorted(fake_yahoo.per_ticker()) == sorted(f"{c}.AX" for c in CODES[10:20])


def test_check_says_the_day_was_partial_and_what_was_not_asked_was_never_fetched(listed, fake_yahoo):
    assert run_local(listed, "--batches", "0").exit_code == 0
    result = runner.invoke(app, ["check", "--date", DAY.isoformat(), "--store", str(listed), "--json"])
    document = json.loads(result.stdout)
    assert document["partial_runs"] == {DAY.isoformat(): {"batches": [0]}}
    assert document["missing_counts"]["fetch_failed"] == 0
    never = document["missing"]["not_fetched"]
    suspended = [item["symbol"] for item in document["missing"]["suspended"]]  # no market cap in the list
    assert sorted(item["symbol"] for item in never) == sorted(set(CODES[10:]) - set(suspended))
    assert {item["detail"] for item in never} == {"the run of 2026-08-21 was asked for part of that day only"}
    shown = " ".join(runner.invoke(app, ["check", "--date", DAY.isoformat(), "--store", str(listed)]).stdout.split())
    assert "the run of 2026-08-21 was asked for part of the day only (--batches 0)" in shown
    run = run_json(listed)
    assert run["quality"]["complete"] is True  # the run's own check judged what it was asked for
