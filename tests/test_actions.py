"""Issue 12: a history that stays right through splits and dividends (fetch/restate.py, dataset/actions.py).

The ten-session play (tests/actions_support.py): run-local once per session after its close, the fake Yahoo
answering as of that day, with a 2-for-1 split, a 1-for-10 consolidation and dividends between. `load` must
then equal what Yahoo reports as of the last day for every stored (symbol, date), locally and on S3.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

import actions_support as play
from actions_support import assert_restated, stored_actions
from stockstream_cli.fetch import batch
from stockstream_cli.quality.check import check
from stockstream_cli.dataset.aggregate import DataAggregator
from stockstream_cli.run import rerun
from stockstream_cli.settings import Settings
from stockstream_cli.sources import yahoo
from stockstream_cli.dataset.store import LocalStore, open_store
from yahoo_fake import SYDNEY
from stockstream_cli.run import symbols as symbols_step
from helpers import fetch_batch

LAST = play.SESSIONS[-1]
SUPPORT = Path(__file__).resolve().parent / "actions_support.py"


@pytest.fixture
def asx_list(tmp_path):
    return play.write_list(tmp_path / "asx.csv")


def test_ten_sessions_through_a_split_a_consolidation_and_dividends_load_as_yahoo_reports_the_last_day(
        tmp_path, fake_yahoo, asx_list):
    play.program(fake_yahoo)
    store = LocalStore(tmp_path / "data")
    runs = play.play_local(store, fake_yahoo, asx_list)
    assert [r["symbols_fetched"] for r in runs] == [len(play.CODES)] * len(play.SESSIONS)
    frame = assert_restated(store, fake_yahoo)
    # the split halved every earlier AAA price, the consolidation multiplied EEE's by ten: in the store too
    aaa = frame.filter(pl.col("symbol") == "AAA")
    before = aaa.filter(pl.col("date") < dt.date(2026, 11, 13))["close"].to_list()
    raw = [fake_yahoo.bar("AAA", d)["close"] for d in aaa.filter(pl.col("date") < dt.date(2026, 11, 13))["date"]]
    assert before == pytest.approx([c / 2 for c in raw], rel=1e-9)
    # one extra chart request per action: the refetch of the symbol's stored range, nothing else
    assert play.refetches(fake_yahoo) == play.ACTIONS
    assert fake_yahoo.chart_requests() == len(play.CODES) * len(play.SESSIONS) + play.ACTIONS
    # check: the restated rows apart from revisions, the actions of the range listed, nothing flagged
    document = check(store, play.SESSIONS[0], LAST)
    assert document["revisions_count"] == 0 and document["restated_count"] > 0
    assert document["complete"] is True, document["suspicious"]
    assert sorted((a["symbol"], a["date"], a["kind"]) for a in document["actions"]) == [
        (s, d.isoformat(), k) for s, d, k, _ in play.expected_actions(fake_yahoo, play.after_close(LAST))]


def test_the_same_play_on_s3(s3_bucket, fake_yahoo, asx_list):
    play.program(fake_yahoo)
    store = open_store(f"s3://{s3_bucket}/prefix")
    play.play_local(store, fake_yahoo, asx_list)
    assert_restated(store, fake_yahoo)
    assert "prefix/actions/AAA.parquet" in {o["Key"] for o in __import__("boto3").client(
        "s3", region_name="ap-southeast-2").list_objects_v2(Bucket=s3_bucket)["Contents"]}


def test_actions_command_lists_the_events_like_load(tmp_path, fake_yahoo, asx_list):
    from helpers import run_stockstream

    play.program(fake_yahoo)
    store = LocalStore(tmp_path / "data")
    play.play_local(store, fake_yahoo, asx_list)
    result = run_stockstream("actions", "--symbols", "AAA", "EEE", "--format", "json", "--store", str(tmp_path / "data"))
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(r["symbol"], r["date"], r["kind"], r["value"]) for r in rows] == [
        ("AAA", "2026-11-11", "dividend", pytest.approx(0.25)), ("AAA", "2026-11-13", "split", 2.0),
        ("AAA", "2026-11-18", "dividend", pytest.approx(0.40)), ("EEE", "2026-11-12", "dividend", pytest.approx(0.30)),
        ("EEE", "2026-11-17", "split", 0.1), ("EEE", "2026-11-19", "dividend", pytest.approx(0.25))]
    ranged = run_stockstream("actions", "--start", "2026-11-19", "--format", "csv", "--store", str(tmp_path / "data"))
    assert ranged.stdout.splitlines()[0] == "symbol,date,kind,value,fetch_timestamp"
    assert [line.split(",")[:3] for line in ranged.stdout.splitlines()[1:]] == [
        ["EEE", "2026-11-19", "dividend"], ["JJJ", "2026-11-20", "dividend"]]
    bad = run_stockstream("actions", "--format", "parquet", "--store", str(tmp_path / "data"))
    assert bad.returncode == 2 and "--output" in bad.stderr and "Traceback" not in bad.stderr


def test_a_failed_refetch_stores_nothing_of_the_symbol_and_rerun_failed_completes_it(tmp_path, fake_yahoo, asx_list):
    play.program(fake_yahoo)
    store = LocalStore(tmp_path / "data")
    split_day = dt.date(2026, 11, 13)
    play.play_local(store, fake_yahoo, asx_list, days=play.SESSIONS[:4])
    before = DataAggregator(store).load(["AAA"])
    fake_yahoo.set_as_of(play.after_close(split_day))

    def refetch_fails(code, start, end, timeout):
        if (end - start).days >= 5:  # longer than the lookback window: the refetch
            return yahoo.Failure("rate_limited", "HTTP 429 (injected)")
        return yahoo.fetch(code, start, end, timeout)

    refetch_fails.paced_per_request = True
    settings = Settings.resolve(delay=0, retry_wait=0, retries=1, batch_size=play.BATCH_SIZE)
    from stockstream_cli.sources import asx

    symbols_step.update_symbols(store, split_day, settings, from_file=str(asx_list), note=lambda message: None).to_document()
    document = fetch_batch(store, split_day, 0, settings, fetcher=refetch_fails)
    assert document["metadata"]["failure_reasons"] == {"AAA": "restate_failed"}
    assert "refetch" in document["metadata"]["failure_details"]["AAA"]
    assert DataAggregator(store).load(["AAA"]).equals(before)  # not the window's rows either: no mixed units
    assert [a[:3] for a in stored_actions(store) if a[0] == "AAA"] == [("AAA", dt.date(2026, 11, 11), "dividend")]

    healed = rerun.rerun_failed(store, split_day, settings)
    assert healed["symbols_failed"] == []
    assert ("AAA", split_day, "split", 2.0) in stored_actions(store)
    frame = DataAggregator(store).load(["AAA"])
    expected = play.reported(fake_yahoo, frame, play.after_close(split_day))
    assert play.mismatches(frame.select("symbol", "date", *play.VALUES), expected) == []


def test_a_refetch_killed_by_sigkill_then_rerun_failed_gives_the_clean_store(tmp_path, fake_yahoo, asx_list):
    settings = Settings.resolve(batch_size=play.BATCH_SIZE, delay=0, retry_wait=0, processes=1)
    play.program(fake_yahoo)
    clean, killed = LocalStore(tmp_path / "clean"), LocalStore(tmp_path / "killed")
    days, split_day = play.SESSIONS[:5], play.SESSIONS[4]
    play.play_local(clean, fake_yahoo, asx_list, days=days, settings=settings)
    play.play_local(killed, fake_yahoo, asx_list, days=days[:-1], settings=settings)

    env = dict(os.environ, STOCKSTREAM_FAKE_AS_OF=play.after_close(split_day).isoformat(),
               STOCKSTREAM_FAKE_KILL_AT_REFETCH="1", PYTHONUNBUFFERED="1")
    process = subprocess.run(
        [sys.executable, str(SUPPORT), "run-local", "--date", split_day.isoformat(), "--from-file", str(asx_list),
         "--store", str(tmp_path / "killed"), "--batch-size", str(play.BATCH_SIZE), "--concurrency", "1",
         "--delay", "0", "--retry-wait", "0"],
        env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert process.returncode == -signal.SIGKILL, process.stderr
    assert ("AAA", split_day, "split", 2.0) not in stored_actions(killed)  # killed mid-refetch: nothing of it

    fake_yahoo.set_as_of(play.after_close(split_day))
    healed = rerun.rerun_failed(killed, split_day, settings)
    assert healed["symbols_fetched"] == len(play.CODES) and healed["batches_failed"] == []
    ignore = ["fetch_timestamp"]
    assert DataAggregator(killed).load().drop(ignore).equals(DataAggregator(clean).load().drop(ignore))
    assert stored_actions(killed) == stored_actions(clean)


def test_a_run_during_the_session_stores_no_bar_for_that_day_the_run_after_the_close_does(tmp_path, fake_yahoo):
    day = dt.date(2026, 11, 24)  # a Tuesday session
    store = LocalStore(tmp_path / "data")
    settings = Settings.resolve(delay=0, retry_wait=0)
    at_two = dt.datetime.combine(day, dt.time(14, 0), tzinfo=SYDNEY)
    fake_yahoo.set_as_of(at_two)
    live = fetch_batch(store, day, 0, settings, symbols=["AAA", "BBB"], now=at_two)
    rows = DataAggregator(store).load()
    assert live["metadata"]["symbols_failed"] == [] and rows["date"].max() == day - dt.timedelta(days=1)
    assert live["metadata"]["rows_dropped"]["outside_window"] == 2  # the live bar of each symbol
    assert fake_yahoo.reported("AAA", day, day).height == 1  # Yahoo did serve it, moving

    settling = dt.datetime.combine(day, dt.time(16, 20), tzinfo=SYDNEY)  # closed, not yet final (16:30)
    fake_yahoo.set_as_of(settling)
    fetch_batch(store, day, 0, settings, symbols=["AAA", "BBB"], now=settling)
    assert DataAggregator(store).load_date(day).is_empty()

    after = dt.datetime.combine(day, dt.time(16, 35), tzinfo=SYDNEY)
    fake_yahoo.set_as_of(after)
    fetch_batch(store, day, 0, settings, symbols=["AAA", "BBB"], now=after)
    final = DataAggregator(store).load_date(day)
    assert final["symbol"].to_list() == ["AAA", "BBB"]
    assert final["close"].to_list() == [fake_yahoo.bar(code, day)["close"] for code in ("AAA", "BBB")]


def test_backfill_stores_the_actions_it_sees_and_its_history_loads_restated(tmp_path, fake_yahoo):
    from stockstream_cli.run.backfill import backfill

    play.program(fake_yahoo)
    fake_yahoo.set_as_of(play.after_close(LAST))
    store = LocalStore(tmp_path / "data")
    document = backfill(store, dt.date(2026, 11, 2), LAST, Settings.resolve(delay=0, retry_wait=0),
                        symbols=["AAA", "EEE"])
    assert document is not None
    assert [a[:3] for a in stored_actions(store)] == [a[:3] for a in play.expected_actions(fake_yahoo, None)
                                                      if a[0] in ("AAA", "EEE")]
    frame = DataAggregator(store).load()
    expected = play.reported(fake_yahoo, frame, play.after_close(LAST))
    assert play.mismatches(frame.select("symbol", "date", *play.VALUES), expected) == []


def test_chart_marks_the_split_and_the_ex_dividend_dates(tmp_path, fake_yahoo, asx_list):
    pytest.importorskip("matplotlib")
    from stockstream_cli.quality.chart import build_figure, chart_data

    play.program(fake_yahoo)
    store = LocalStore(tmp_path / "data")
    play.play_local(store, fake_yahoo, asx_list)
    data = chart_data(store, "AAA", play.SESSIONS[0], LAST)
    assert data.splits == [(dt.date(2026, 11, 13), 2.0)]
    assert [d for d, _ in data.dividends] == [dt.date(2026, 11, 11), dt.date(2026, 11, 18)]
    figure = build_figure(data)
    prices = figure.axes[0]
    gids = {line.get_gid() for line in prices.get_lines()}
    assert {"split-2026-11-13", "dividends"} <= gids
    assert "2-for-1" in {text.get_text() for text in prices.texts}
    dividends = next(line for line in prices.get_lines() if line.get_gid() == "dividends")
    assert len(dividends.get_xdata()) == 2


def test_a_change_an_action_does_not_explain_stays_a_revision():
    from stockstream_cli.quality.check import split_restatements
    from stockstream_cli.dataset.actions import action_schema

    actions = pl.DataFrame([("AAA", dt.date(2026, 11, 13), "split", 2.0, "t"), ("BBB", dt.date(2026, 11, 13), "dividend", 0.1, "t")],
                           schema=action_schema(), orient="row")
    halved = {"symbol": "AAA", "date": "2026-11-12", "fields": ["open", "high", "low", "close", "adjusted_close", "volume"],
              "oldest": {"open": 4.0, "high": 4.4, "low": 3.8, "close": 4.2, "adjusted_close": 4.1, "volume": 100},
              "newest": {"open": 2.0, "high": 2.2, "low": 1.9, "close": 2.1, "adjusted_close": 2.0, "volume": 200}}
    dividend = {"symbol": "BBB", "date": "2026-11-12", "fields": ["adjusted_close"],
                "oldest": {"adjusted_close": 5.0}, "newest": {"adjusted_close": 4.9}}
    volume_fix = {"symbol": "BBB", "date": "2026-11-12", "fields": ["volume"], "oldest": {"volume": 1}, "newest": {"volume": 2}}
    after_the_split = {**halved, "date": "2026-11-13"}  # the split goes ex that day: it does not restate it
    one_price = {**halved, "fields": ["close"], "oldest": {"close": 4.2}, "newest": {"close": 2.1}}
    revisions, restated = split_restatements([halved, dividend, volume_fix, after_the_split, one_price], actions)
    assert restated == [halved, dividend]
    assert revisions == [volume_fix, after_the_split, one_price]


def test_actions_that_cannot_be_written_fail_the_batch_and_its_retry_restates_again(tmp_path, fake_yahoo, asx_list):
    from pipeline_support import FailingPutStore
    from stockstream_cli.errors import BatchFailed
    from stockstream_cli.sources import asx

    play.program(fake_yahoo)
    store = LocalStore(tmp_path / "data")
    split_day = dt.date(2026, 11, 13)
    play.play_local(store, fake_yahoo, asx_list, days=play.SESSIONS[:4])
    fake_yahoo.set_as_of(play.after_close(split_day))
    settings = Settings.resolve(delay=0, retry_wait=0, batch_size=play.BATCH_SIZE)
    symbols_step.update_symbols(store, split_day, settings, from_file=str(asx_list), note=lambda message: None).to_document()
    failing = FailingPutStore(store, "actions/AAA.parquet")
    with pytest.raises(BatchFailed, match="actions could not be written"):
        fetch_batch(failing, split_day, 0, settings)
    assert not store.exists(f"runs/{split_day}/batch-0.json")  # not done: the Map (or rerun-failed) runs it again
    assert ("AAA", split_day, "split", 2.0) not in stored_actions(store)

    fake_yahoo.reset_counts()
    fetch_batch(store, split_day, 0, settings)
    assert play.refetches(fake_yahoo) == 1  # the action still looked new: fetched again, now recorded
    assert ("AAA", split_day, "split", 2.0) in stored_actions(store)
    frame = DataAggregator(store).load(["AAA"])
    expected = play.reported(fake_yahoo, frame, play.after_close(split_day))
    assert play.mismatches(frame.select("symbol", "date", *play.VALUES), expected) == []


def test_without_the_refetch_the_same_play_leaves_the_rows_older_than_the_window_wrong(tmp_path, fake_yahoo, asx_list,
                                                                                      monkeypatch):
    """The play's comparison can fail: with restatement off, exactly the rows older than the window differ."""
    from stockstream_cli.fetch import restate

    monkeypatch.setattr(restate, "restate", lambda results, *a, **k: restate.Restatement(results, [], [], 0))
    play.program(fake_yahoo)
    store = LocalStore(tmp_path / "data")
    play.play_local(store, fake_yahoo, asx_list)
    frame = DataAggregator(store).load()
    wrong = play.mismatches(frame.select("symbol", "date", *play.VALUES), play.reported(fake_yahoo, frame, play.after_close(LAST)))
    assert {symbol for symbol, *_ in wrong} == {"AAA", "CCC", "EEE", "FFF", "JJJ"}  # every symbol with an action
    assert all(day < LAST - dt.timedelta(days=4) for _, day, *_ in wrong)  # older than the last window
