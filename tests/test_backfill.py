"""`backfill`: history for symbols that lack it, paced and retried, resumable without duplicates."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest

from storefactory import as_store, build_day
from helpers import runner
from stockstream_cli import DataAggregator, calendar
from stockstream_cli.dataset import layout
from stockstream_cli.run import backfill
from stockstream_cli.quality import check as quality
from stockstream_cli.dataset.symbols import Listing, to_csv
from stockstream_cli.cli import app
from stockstream_cli.errors import Interrupted
from stockstream_cli.settings import Settings
from stockstream_cli.dataset import manifest
from stockstream_cli.cli import exit_code_for

D = dt.date
START = D(2026, 10, 1)
LATEST = D(2026, 11, 25)


def settings(**overrides) -> Settings:
    return Settings.resolve(**overrides)


def write_list(store, day, entries):
    """entries: (symbol, listing_date) pairs, batch size 100."""
    listings = [Listing(s, f"{s} LTD", "Energy", listed, 1_000_000, 0) for s, listed in sorted(entries)]
    store.put(layout.symbols_key(day), to_csv(listings))


@pytest.fixture
def store(store):
    """Two daily runs; the second list added NEWCO (listed in 2004, so years of history) and IPO (listed that day)."""
    data = store
    build_day(data, D(2026, 11, 24), ["BHP", "CBA"], write_list=False)
    write_list(data, D(2026, 11, 24), [("BHP", D(2000, 1, 4)), ("CBA", D(2000, 1, 4))])
    build_day(data, LATEST, ["BHP", "CBA", "IPO", "NEWCO"], write_list=False)
    write_list(data, LATEST, [("BHP", D(2000, 1, 4)), ("CBA", D(2000, 1, 4)), ("IPO", LATEST), ("NEWCO", D(2004, 5, 3))])
    return data


def raw_rows(store, kind="backfill"):
    import polars as pl

    frames = [pl.read_parquet(io.BytesIO(store.get(k))) for k in store.list(layout.RAW_DATA_PREFIX) if f"-{kind}-" in k]
    return pl.concat(frames) if frames else None


def test_default_backfills_the_added_symbol_without_history_and_check_then_finds_it_complete(store, fake_yahoo):
    before = quality.check(store, START, LATEST, symbols=["NEWCO"])
    assert before["missing_counts"]["not_fetched"] > 0 and not before["complete"]

    document = backfill.backfill(store, START, None, settings()).to_document()
    assert document["symbols"] == ["NEWCO"]  # IPO was listed on the latest list's day: it has its history
    meta = document["metadata"]
    assert meta["end"] == LATEST.isoformat()  # the latest list's day
    assert meta["chosen_by"] == "added in symbols/2026-11-25-symbols.csv against symbols/2026-11-24-symbols.csv"
    assert meta["s3_keys"] == ["raw-data/2026-11-25-backfill-0.parquet"]
    assert fake_yahoo.per_ticker() == {"NEWCO.AX": 1}

    sessions = calendar.sessions(START, LATEST)
    rows = raw_rows(store)
    assert rows["symbol"].unique().to_list() == ["NEWCO"]
    assert rows["date"].to_list() == sessions  # no ASX holiday in Oct-Nov 2026: every weekday a session
    assert rows["batch_number"].unique().to_list() == [0]
    assert meta["rows_written"] == len(sessions)

    record = json.loads(store.get("runs/2026-11-25/backfill-0.json"))["metadata"]
    assert (record["start"], record["end"], record["symbols"], record["symbols_failed"]) == (
        "2026-10-01", "2026-11-25", ["NEWCO"], [])

    after = quality.check(store, START, LATEST, symbols=["NEWCO"])
    assert after["complete"] is True and after["present_rows"] == after["expected_rows"] == len(sessions)


def test_load_returns_backfilled_and_daily_rows_once_per_symbol_and_date(store, fake_yahoo):
    backfill.backfill(store, START, None, settings()).to_document()
    loaded = DataAggregator(store).load_symbols(["NEWCO"])
    assert loaded.height == loaded.select("symbol", "date").unique().height == len(calendar.sessions(START, LATEST))
    # The daily runs also hold NEWCO's last week; the backfill fetched later, so its values win.
    daily = raw_rows(store, "batch").filter(raw_rows(store, "batch")["symbol"] == "NEWCO")
    assert daily.height == 3  # 23 to 25 Nov, the latest run's window
    backfilled = raw_rows(store)
    overlap = loaded.join(daily.select("date"), on="date")
    expected = backfilled.join(daily.select("date"), on="date").sort("date")
    assert overlap["close"].to_list() == expected["close"].to_list()
    everyone = DataAggregator(store).load_date_range("2026-11-19", "2026-11-25")
    assert everyone.height == everyone.select("symbol", "date").unique().height


def test_resumes_after_an_interruption_without_duplicates(store, fake_yahoo):
    from stockstream_cli.sources import yahoo

    codes = ["AAA", "BBB", "CCC", "DDD", "EEE"]
    calls = []

    def interrupted_at_ccc(code, first, last, timeout):
        calls.append(code)
        if code == "CCC":
            raise KeyboardInterrupt
        return yahoo.fetch(code, first, last, timeout)

    yahoo.prepare(codes)
    with pytest.raises(Interrupted, match="2 of 5 symbols done and recorded"):
        backfill.backfill(store, START, None, settings(batch_size=2, concurrency=1), symbols=codes,
                          fetcher=interrupted_at_ccc).to_document()
    assert calls == ["AAA", "BBB", "CCC"]
    assert [k for k in store.list("raw-data/") if "backfill" in k] == ["raw-data/2026-11-25-backfill-0.parquet"]
    assert [k for k in store.list("runs/") if "backfill" in k] == ["runs/2026-11-25/backfill-0.json"]

    document = backfill.backfill(store, START, None, settings(batch_size=2), symbols=codes).to_document()
    assert document["metadata"]["skipped_done"] == ["AAA", "BBB"]
    assert document["symbols"] == ["CCC", "DDD", "EEE"]
    assert fake_yahoo.per_ticker() == {"AAA.AX": 1, "BBB.AX": 1, "CCC.AX": 1, "DDD.AX": 1, "EEE.AX": 1}
    assert document["metadata"]["s3_keys"] == ["raw-data/2026-11-25-backfill-1.parquet",
                                               "raw-data/2026-11-25-backfill-2.parquet"]

    rows = raw_rows(store)
    assert rows.height == rows.select("symbol", "date").unique().height == 5 * len(calendar.sessions(START, LATEST))

    again = backfill.backfill(store, START, None, settings(batch_size=2), symbols=codes).to_document()
    assert again["symbols"] == [] and again["metadata"]["skipped_done"] == codes
    assert fake_yahoo.chart_requests() == 5
    assert raw_rows(store).height == rows.height


def test_a_chunk_written_without_its_record_is_overwritten_not_duplicated(store, fake_yahoo):
    """Killed between the data file and its record: the rerun reuses the chunk's number."""
    real_put = store.put

    def dies_before_the_first_record(key, data):
        if layout.parse_backfill_manifest_key(key):
            raise KeyboardInterrupt
        real_put(key, data)

    store.put = dies_before_the_first_record
    with pytest.raises(Interrupted):
        backfill.backfill(store, START, None, settings(), symbols=["AAA", "BBB"]).to_document()
    store.put = real_put
    assert store.exists("raw-data/2026-11-25-backfill-0.parquet")
    assert not store.exists("runs/2026-11-25/backfill-0.json")

    document = backfill.backfill(store, START, None, settings(), symbols=["AAA", "BBB"]).to_document()
    assert document["metadata"]["s3_keys"] == ["raw-data/2026-11-25-backfill-0.parquet"]
    rows = raw_rows(store)
    assert rows.height == rows.select("symbol", "date").unique().height == 2 * len(calendar.sessions(START, LATEST))


def test_failures_are_recorded_and_only_the_retryable_ones_are_fetched_again(store, fake_yahoo):
    fake_yahoo.fault("GONE", "not_found")
    fake_yahoo.fault("BUSY", "rate_limited", times=4)  # 1 try + 3 retries, all refused
    report = backfill.backfill(store, START, None, settings(), symbols=["BUSY", "GONE", "OKAY"])
    document = report.to_document()
    assert document["metadata"]["failure_reasons"] == {"BUSY": "rate_limited", "GONE": "not_found"}
    assert document["metadata"]["symbols_fetched"] == 1
    assert exit_code_for(report.outcome) == 3
    # at the transport each refused or not-found attempt is the request and yfinance's resend of it
    assert fake_yahoo.chart_requests("BUSY") == 8 and fake_yahoo.chart_requests("GONE") == 2

    again = backfill.backfill(store, START, None, settings(), symbols=["BUSY", "GONE", "OKAY"])
    rerun = again.to_document()
    assert rerun["symbols"] == ["BUSY"]  # GONE failed for good, OKAY is done
    assert rerun["metadata"]["symbols_failed"] == [] and exit_code_for(again.outcome) == 0
    assert quality.check(store, START, LATEST, symbols=["BUSY", "OKAY"])["missing_counts"]["fetch_failed"] == 0


def test_paced_and_retried_like_any_fetch(store, fake_yahoo):
    waits = []
    fake_yahoo.fault("BBB", "server_error", times=1)
    backfill.backfill(store, START, None, settings(delay=2.0, retry_wait=1.0, concurrency=1), symbols=["AAA", "BBB", "CCC"],
                      sleep=waits.append).to_document()
    pacing = [w for w in waits if w > 1.5]
    backoff = [w for w in waits if w <= 1.0]
    # at least --delay between any two HTTP requests: after AAA's cookie, its crumb and chart; BBB's chart,
    # yfinance's new crumb and resend (both 500), BBB's retry; CCC's chart
    assert len(pacing) == 7
    assert len(backoff) == 1 and 0.5 <= backoff[0] <= 1.0  # the first retry waits retry_wait/2..retry_wait
    assert fake_yahoo.chart_requests("BBB") == 3
    assert fake_yahoo.by_kind() == {"cookie": 1, "crumb": 2, "chart": 5}


def test_concurrency_fetches_that_many_symbols_at_once_and_stores_what_one_at_a_time_stores(store, tmp_path,
                                                                                             fake_yahoo):
    import threading

    from stockstream_cli.sources import yahoo

    codes = ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF"]
    together = threading.Barrier(3, timeout=30)  # passes only when 3 fetches are under way at once
    in_flight, peak, lock = [0], [0], threading.Lock()

    def three_at_once(code, first, last, timeout):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        together.wait()
        try:
            return yahoo.fetch(code, first, last, timeout)
        finally:
            with lock:
                in_flight[0] -= 1

    yahoo.prepare(codes)
    seen = []
    observer = backfill.Observer()
    observer.symbol_done = lambda symbol, reason: seen.append((symbol, reason))
    document = backfill.backfill(store, START, None, settings(concurrency=3), symbols=codes, fetcher=three_at_once,
                                 observer=observer).to_document()
    assert peak[0] == 3 and sorted(seen) == [(code, None) for code in codes]
    assert document["metadata"]["symbols_fetched"] == 6 and fake_yahoo.chart_requests() == 6

    one_at_a_time = as_store(tmp_path / "sequential")
    build_day(one_at_a_time, LATEST, ["BHP"])
    backfill.backfill(one_at_a_time, START, None, settings(concurrency=1), symbols=codes).to_document()
    columns = ["symbol", "date", "open", "high", "low", "close", "volume", "adjusted_close"]
    assert raw_rows(store).select(columns).sort("symbol", "date").equals(
        raw_rows(one_at_a_time).select(columns).sort("symbol", "date"))


def test_a_wider_range_than_recorded_is_fetched_again(store, fake_yahoo):
    backfill.backfill(store, D(2026, 11, 2), None, settings(), symbols=["AAA"]).to_document()
    wider = backfill.backfill(store, START, None, settings(), symbols=["AAA"]).to_document()
    assert wider["symbols"] == ["AAA"] and fake_yahoo.chart_requests("AAA") == 2


def test_nothing_to_do_without_an_earlier_list(tmp_path, fake_yahoo):
    data = as_store(tmp_path / "data")
    build_day(data, LATEST, ["BHP"])
    document = backfill.backfill(data, START, None, settings()).to_document()
    assert document["symbols"] == [] and "no earlier list" in document["metadata"]["chosen_by"]
    assert fake_yahoo.chart_requests() == 0


def test_cli_json_and_exit_codes(store, fake_yahoo):
    result = runner.invoke(app, ["backfill", "--start", "2026-10-01", "--store", store.uri, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["symbols"] == ["NEWCO"]
    fake_yahoo.fault("GONE", "not_found")
    failed = runner.invoke(app, ["backfill", "--start", "2026-10-01", "--symbols", "GONE", "--store", store.uri])
    assert failed.exit_code == 3 and "GONE" in failed.stdout and "not_found" in failed.stdout
    human = runner.invoke(app, ["backfill", "--start", "2026-10-01", "--store", store.uri])
    assert human.exit_code == 0 and "nothing to backfill" in human.stdout


@pytest.mark.parametrize(
    "args",
    [
        [],  # --start is required
        ["--start", "2026-13-01"],
        ["--start", "2026-11-02", "--end", "2026-11-01"],
        ["--start", "2026-11-02", "--symbols", "BHP.AX"],
        ["--start", "2026-11-02", "--delay", "-1"],
        ["--start", "2026-11-02", "--concurrency", "0"],
    ],
)
def test_bad_input_exits_2_and_writes_nothing(store, fake_yahoo, args):
    keys = store.list()
    result = runner.invoke(app, ["backfill", "--store", store.uri, *args])
    assert result.exit_code == 2, result.output
    assert store.list() == keys and fake_yahoo.chart_requests() == 0


def test_a_folded_chunk_still_counts_as_done_and_a_lost_one_is_fetched_again(store, fake_yahoo):
    from stockstream_cli.dataset import compact

    backfill.backfill(store, START, None, settings())
    before = DataAggregator(store).load()
    chunk = layout.backfill_data_key(LATEST, 0)
    result = compact.compact_earlier_days(store, LATEST + dt.timedelta(days=1), command="run-local")
    assert result["months"] == ["2026-11"] and chunk not in store.list(layout.RAW_DATA_PREFIX)
    month = layout.compacted_data_key("2026-11")
    assert compact.folded_backfill(store, month) == {LATEST.isoformat(): [0]}
    assert DataAggregator(store).load().equals(before)
    assert store.exists(layout.backfill_manifest_key(LATEST, 0))  # its record stays, and still resolves:
    assert backfill.plan(store, START, LATEST).todo == [] and backfill.done_symbols(store, START, LATEST) == {"NEWCO"}
    assert quality.check(store, START, LATEST, symbols=["NEWCO"])["complete"] is True

    from storefactory import parquet_bytes

    store.put(month, parquet_bytes([]))  # a month file that lost the chunk's rows (and has no record)
    assert backfill.done_symbols(store, START, LATEST) == {"NEWCO"}  # no record: assumed stored, as rerun-failed
    store.delete(month)
    assert backfill.done_symbols(store, START, LATEST) == set()  # neither listed nor folded: fetched again
