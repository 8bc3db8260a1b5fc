"""fetch_batch: pacing, retries, cleaning, the stored file and manifest, merging, whole-batch failure."""

from __future__ import annotations

import datetime as dt
import io
import json

import polars as pl
import pytest

from stockstream_cli.sources import asx
from stockstream_cli.dataset import layout
from stockstream_cli import schema
from stockstream_cli.errors import BatchFailed, CorruptFileError, InputError, StoreError
from stockstream_cli.fetch.batch import lookback_window
from helpers import fetch_batch
from clock import Clock, ThreadClocks
from stockstream_cli.fetch.pacing import FixedDelayPacer, backoff_wait
from stockstream_cli.sources.http import RequestCounts
from stockstream_cli.settings import Settings
from stockstream_cli.dataset.store import LocalStore
from yahoo_fake import generated_bar
from stockstream_cli.dataset import symbols as stored_symbols

DAY = dt.date(2025, 4, 8)  # a Tuesday; the default 5-day window is Fri 4 .. Tue 8 April (3 weekdays)
WINDOW_DAYS = [dt.date(2025, 4, 4), dt.date(2025, 4, 7), dt.date(2025, 4, 8)]
CONTRACT_METADATA = {"batch_number", "symbols_processed", "symbols_fetched", "symbols_failed", "failure_reasons",
                     "execution_time", "s3_key"}


@pytest.fixture
def settings():
    return Settings.resolve()  # conftest: delay 0, retry wait 0, a fresh cache folder


def write_symbols(store, day, codes, batch_size=100):
    companies = [asx.Company(symbol=code, company_name=f"{code} Ltd") for code in codes]
    store.put(layout.symbols_key(day), stored_symbols.to_csv(stored_symbols.assign_batches(companies, batch_size)))


def stored_rows(store, day=DAY, batch=0) -> pl.DataFrame:
    return pl.read_parquet(io.BytesIO(store.get(layout.batch_data_key(day, batch))))


def stored_manifest(store, day=DAY, batch=0) -> dict:
    return json.loads(store.get(layout.batch_manifest_key(day, batch)))


def expected_rows(code: str, days=WINDOW_DAYS) -> list[dict]:
    return [{"symbol": code, "date": day, **{k: v for k, v in generated_bar(f"{code}.AX", day).items()}} for day in days]


def test_a_batch_from_the_symbols_list_is_stored_exactly_with_one_chart_request_per_symbol(fake_yahoo, store, settings):
    write_symbols(store, DAY, ["BHP", "CBA", "NAB", "WBC"], batch_size=3)
    document = fetch_batch(store, DAY, 0, settings)

    rows = stored_rows(store)
    assert rows.schema == schema.polars_schema()
    assert rows.columns == list(schema.COLUMNS)
    values = rows.select("symbol", "date", "open", "high", "low", "close", "volume").to_dicts()
    assert values == expected_rows("BHP") + expected_rows("CBA") + expected_rows("NAB")
    assert rows.get_column("adjusted_close").to_list() == rows.get_column("close").to_list()
    assert set(rows.get_column("batch_number").to_list()) == {0}
    stamps = rows.get_column("fetch_timestamp").to_list()
    assert all(len(s) == 24 and s.endswith("Z") and s[10] == "T" for s in stamps)

    assert fake_yahoo.per_ticker("chart") == {"BHP.AX": 1, "CBA.AX": 1, "NAB.AX": 1}
    assert fake_yahoo.tz_probes() == 0
    assert document == stored_manifest(store)
    assert document["statusCode"] == 200
    meta = document["metadata"]
    assert CONTRACT_METADATA <= set(meta)
    assert {k: meta[k] for k in CONTRACT_METADATA - {"execution_time"}} == {
        "batch_number": 0, "symbols_processed": 3, "symbols_fetched": 3, "symbols_failed": [],
        "failure_reasons": {}, "s3_key": "raw-data/2025-04-08-batch-0.parquet",
    }
    assert isinstance(meta["execution_time"], float)
    assert meta["rows"] == 9 and meta["window"] == {"start": "2025-04-04", "end": "2025-04-08"}
    assert meta["rows_dropped"] == {"all_null": 0, "invalid": 0, "duplicate": 0, "outside_window": 0}


def test_dividend_null_bar_and_invalid_bar_are_stored_cleaned_and_counted(fake_yahoo, store, settings):
    fake_yahoo.dividend("BHP", "2025-04-07", 0.8).null_bar("CBA", "2025-04-07")
    fake_yahoo.set_bar("NAB", "2025-04-04", open=10.0, high=11.0, low=10.5, close=10.8, volume=100)  # low > open
    document = fetch_batch(store, DAY, 0, settings, symbols=["BHP", "CBA", "NAB"])
    rows = stored_rows(store)

    bhp = rows.filter(pl.col("symbol") == "BHP")
    friday_close = generated_bar("BHP.AX", dt.date(2025, 4, 4))["close"]
    assert bhp.get_column("close").to_list() == [generated_bar("BHP.AX", d)["close"] for d in WINDOW_DAYS]
    assert bhp.get_column("adjusted_close").to_list() == pytest.approx(  # the fake sends adjclose unrounded
        [friday_close * (1 - 0.8 / friday_close), *bhp.get_column("close").to_list()[1:]], rel=1e-12)
    assert bhp.get_column("adjusted_close")[0] != bhp.get_column("close")[0]
    assert rows.filter(pl.col("symbol") == "CBA").get_column("date").to_list() == [WINDOW_DAYS[0], WINDOW_DAYS[2]]
    assert rows.filter(pl.col("symbol") == "NAB").get_column("date").to_list() == WINDOW_DAYS[1:]

    meta = document["metadata"]
    assert meta["symbols_failed"] == [] and meta["rows"] == 7
    assert meta["rows_dropped"] == {"all_null": 1, "invalid": 1, "duplicate": 0, "outside_window": 0}
    assert meta["rows_dropped_by_symbol"] == {"CBA": {"all_null": 1}, "NAB": {"invalid": 1}}


def test_a_symbol_whose_bars_all_break_the_rules_is_invalid_data_and_all_null_is_no_data(fake_yahoo, store, settings):
    for day in WINDOW_DAYS:
        fake_yahoo.set_bar("BAD", day, volume=-5)
        fake_yahoo.null_bar("QUI", day)
    document = fetch_batch(store, DAY, 0, settings, symbols=["BAD", "BHP", "QUI"])
    assert document["metadata"]["failure_reasons"] == {"BAD": "invalid_data", "QUI": "no_data"}
    assert document["metadata"]["symbols_fetched"] == 1
    assert set(stored_rows(store).get_column("symbol")) == {"BHP"}


@pytest.mark.parametrize(
    ("fault", "times", "reason", "attempts", "chart"),
    [  # chart: requests at the transport; a status >= 400 is resent once by yfinance (other cookie strategy)
        ("not_found", None, "not_found", 1, 2),  # final: no retry (404, then yfinance's resend: 404)
        ("empty", None, "no_data", 1, 1),
        ("malformed", None, "error", 4, 4),  # retries + 1; a 200 is never resent
        ("timeout", None, "timeout", 4, 4),  # a timeout is raised, not resent (yfinance's retries are off)
        ("rate_limited", None, "rate_limited", 4, 8),
        ("rate_limited", 2, None, 3, 5),  # refused on two fetches (2 requests each), then fetched
        ("timeout", 1, None, 2, 2),
    ],
)
def test_failures_are_classified_and_retried_only_when_retryable(fake_yahoo, store, settings, fault, times, reason,
                                                                 attempts, chart):
    fake_yahoo.fault("XYZ", fault, times=times)
    seen = []
    document = fetch_batch(store, DAY, 0, settings, symbols=["XYZ", "BHP"], on_symbol=lambda s, r: seen.append((s, r)))
    assert seen == [("BHP", None), ("XYZ", reason)]
    assert fake_yahoo.chart_requests("XYZ") == chart
    assert fake_yahoo.tz_probes() == 0
    meta = document["metadata"]
    assert meta["failure_reasons"] == ({"XYZ": reason} if reason else {})
    assert meta["symbols_failed"] == (["XYZ"] if reason else [])
    assert meta["symbols_fetched"] == (1 if reason else 2)
    assert meta["requests"] == attempts + 1  # the manifest counts fetch attempts (yfinance calls)
    symbols = set(stored_rows(store).get_column("symbol"))
    assert symbols == ({"BHP"} if reason else {"BHP", "XYZ"})


def test_retries_setting_bounds_the_attempts(fake_yahoo, store):
    fake_yahoo.fault("XYZ", "rate_limited")
    fetch_batch(store, DAY, 0, Settings.resolve(retries=0), symbols=["XYZ", "BHP"])
    assert fake_yahoo.chart_requests("XYZ") == 2  # one attempt: the request and yfinance's resend


def test_backoff_doubles_with_jitter_through_the_injected_sleep(fake_yahoo, store):
    fake_yahoo.fault("XYZ", "timeout")
    slept = []
    fetch_batch(store, DAY, 0, Settings.resolve(retry_wait=2.0, retries=3), symbols=["XYZ", "BHP"],
                sleep=slept.append, rng=lambda: 0.5)
    assert slept == [1.5, 3.0, 6.0]  # base 2, 4, 8 s; waits drawn in [base/2, base]
    assert backoff_wait(2.0, 1, rng=lambda: 0.0) == 1.0 and backoff_wait(2.0, 1, rng=lambda: 1.0) == 2.0
    assert backoff_wait(0, 5) == 0.0


def test_no_wait_at_all_when_delay_and_retry_wait_are_zero(fake_yahoo, store, settings):
    fake_yahoo.fault("XYZ", "rate_limited")
    slept = []
    fetch_batch(store, DAY, 0, settings, symbols=["XYZ", "BHP", "CBA"], sleep=slept.append)
    assert slept == []


def test_the_fixed_delay_separates_the_requests_of_a_worker(fake_yahoo, store):
    clock = Clock()
    pacer = FixedDelayPacer(2.0, sleep=clock.sleep, clock=clock)
    fetch_batch(store, DAY, 0, Settings.resolve(delay=2.0), symbols=["BHP", "CBA", "NAB"], pacer=pacer)
    # none before the first request; then one delay before each HTTP request: BHP's crumb and chart (its
    # cookie went first), CBA's chart, NAB's chart
    assert clock.slept == [2.0] * 4


class CountingPacer:
    def __init__(self):
        self.calls = []

    def wait(self):
        self.calls.append("wait")

    def on_success(self):
        self.calls.append("success")

    def on_rate_limited(self, retry_after=None):
        self.calls.append("429" if retry_after is None else f"429 retry after {retry_after:g}")


def test_the_pacer_hears_of_every_request_and_every_429(fake_yahoo, store, settings):
    fake_yahoo.fault("XYZ", "rate_limited", times=1)
    pacer = CountingPacer()
    fetch_batch(store, DAY, 0, settings, symbols=["BHP", "XYZ"], pacer=pacer)
    ok, refused = ["wait", "success"], ["wait", "429"]
    assert pacer.calls == [*ok, *ok, *ok,  # BHP: cookie, crumb, chart
                           *refused, *ok, *refused,  # XYZ: chart 429, a new crumb (other strategy), resend 429
                           *ok]  # XYZ's retry
    assert fake_yahoo.by_kind() == {"cookie": 1, "crumb": 2, "chart": 4}


def test_a_retry_after_from_yahoo_reaches_the_pacer(fake_yahoo, store, settings):
    pacer = CountingPacer()
    fake_yahoo.storm(3600, retry_after=30)
    counts = RequestCounts()
    with pytest.raises(BatchFailed):  # the one symbol refused: nothing to write
        fetch_batch(store, DAY, 0, Settings.resolve(retries=0, retry_wait=0), symbols=["XYZ"], pacer=pacer,
                    requests=counts)
    assert set(pacer.calls) == {"wait", "429 retry after 30"}  # every answer of the storm, cookie included
    assert counts.rate_limited == counts.total == fake_yahoo.refused()


def test_a_cold_cache_batch_of_100_symbols_costs_100_chart_requests(fake_yahoo, store, settings):
    codes = [f"A{i:02d}" for i in range(100)]
    write_symbols(store, DAY, codes)
    document = fetch_batch(store, DAY, 0, settings)
    assert document["metadata"]["symbols_fetched"] == 100
    counted = RequestCounts()
    document = fetch_batch(store, DAY, 0, settings, requests=counted)  # again: the process's cookie and crumb hold
    assert fake_yahoo.by_kind() == {"cookie": 1, "crumb": 1, "chart": 200}  # at the transport, both batches
    assert counted.snapshot() == {"cookie": 0, "crumb": 0, "consent": 0, "chart": 100, "other": 0}
    assert fake_yahoo.tz_probes() == 0
    assert stored_rows(store).height == 300


def test_lookback_window_is_calendar_days_ending_at_the_day():
    assert lookback_window(DAY, 5) == (dt.date(2025, 4, 4), DAY)
    assert lookback_window(DAY, 1) == (DAY, DAY)


# ---------------------------------------------------------------------------------------------- merging (rerun)


def test_rerun_of_the_failed_symbols_merges_into_the_batch(fake_yahoo, store, settings):
    write_symbols(store, DAY, ["AAA", "BHP", "CBA", "XYZ"])
    fake_yahoo.fault("XYZ", "rate_limited", times=4).fault("AAA", "timeout", times=8)
    first = fetch_batch(store, DAY, 0, settings)
    assert first["metadata"]["failure_reasons"] == {"AAA": "timeout", "XYZ": "rate_limited"}
    before = stored_rows(store)

    fake_yahoo.reset_counts()
    second = fetch_batch(store, DAY, 0, settings, symbols=["AAA", "XYZ"])
    assert fake_yahoo.per_ticker() == {"AAA.AX": 4, "XYZ.AX": 1}  # AAA still times out; XYZ is back
    meta = second["metadata"]
    assert (meta["symbols_processed"], meta["symbols_fetched"]) == (4, 3)
    assert meta["symbols_failed"] == ["AAA"] and meta["failure_reasons"] == {"AAA": "timeout"}
    after = stored_rows(store)
    assert after.filter(pl.col("symbol") != "XYZ").equals(before)  # untouched, same fetch_timestamp
    assert after.filter(pl.col("symbol") == "XYZ").height == 3
    assert after.select("symbol", "date").is_duplicated().sum() == 0
    assert stored_manifest(store) == second


def test_a_refetch_replaces_same_dates_keeps_older_dates_and_failed_symbols_keep_their_rows(fake_yahoo, store, settings):
    fetch_batch(store, DAY - dt.timedelta(days=1), 0, settings, symbols=["BHP"])  # another day's file: untouched
    fetch_batch(store, DAY, 0, Settings.resolve(lookback_days=7), symbols=["BHP", "CBA"])  # Wed 2 .. Tue 8 April
    old = stored_rows(store)
    fake_yahoo.set_bar("BHP", "2025-04-08", open=50.0, high=52.0, low=49.0, close=51.0, volume=7)
    fake_yahoo.fault("CBA", "not_found")
    document = fetch_batch(store, DAY, 0, settings, symbols=["BHP", "CBA"])  # 5-day window: Fri 4 .. Tue 8

    rows = stored_rows(store)
    assert rows.height == old.height == 10
    assert rows.filter(pl.col("symbol") == "CBA").equals(old.filter(pl.col("symbol") == "CBA"))
    bhp = rows.filter(pl.col("symbol") == "BHP")
    assert bhp.get_column("date").to_list() == [dt.date(2025, 4, d) for d in (2, 3, 4, 7, 8)]
    assert bhp.row(4, named=True)["close"] == 51.0 and bhp.row(4, named=True)["volume"] == 7
    old_bhp = old.filter(pl.col("symbol") == "BHP")
    assert bhp.head(2).equals(old_bhp.head(2))  # outside the new window: kept as they were
    assert bhp.get_column("fetch_timestamp")[4] >= old_bhp.get_column("fetch_timestamp")[4]
    assert document["metadata"]["failure_reasons"] == {"CBA": "not_found"}


def test_fetching_the_same_data_again_keeps_one_row_per_symbol_and_date(fake_yahoo, store, settings):
    first = fetch_batch(store, DAY, 0, settings, symbols=["BHP", "CBA"])
    fetch_batch(store, DAY, 0, settings, symbols=["BHP", "CBA"])
    second = fetch_batch(store, DAY, 0, settings, symbols=["BHP"])
    rows = stored_rows(store)
    assert rows.height == 6
    assert rows.select("symbol", "date").is_duplicated().sum() == 0
    assert second["metadata"]["symbols_processed"] == first["metadata"]["symbols_processed"] == 2


# ---------------------------------------------------------------------------------------------- whole-batch failure, bad input


def test_every_symbol_failing_with_a_retryable_reason_fails_the_batch_and_writes_nothing(fake_yahoo, store, settings):
    fake_yahoo.fault("BHP", "rate_limited").fault("CBA", "timeout")
    with pytest.raises(BatchFailed, match="no symbol has data"):
        fetch_batch(store, DAY, 0, settings, symbols=["BHP", "CBA"])
    assert store.list() == []


def test_every_symbol_failing_for_a_final_reason_is_a_result(fake_yahoo, store, settings):
    fake_yahoo.fault("BHP", "not_found").fault("CBA", "rate_limited")
    document = fetch_batch(store, DAY, 0, settings, symbols=["BHP", "CBA"])
    assert document["metadata"]["symbols_fetched"] == 0
    assert stored_rows(store).height == 0 and stored_rows(store).schema == schema.polars_schema()


def test_a_rerun_that_fails_again_does_not_fail_a_batch_that_has_data(fake_yahoo, store, settings):
    fake_yahoo.fault("XYZ", "rate_limited")
    fetch_batch(store, DAY, 0, settings, symbols=["BHP", "XYZ"])
    document = fetch_batch(store, DAY, 0, settings, symbols=["XYZ"])
    assert document["metadata"]["symbols_fetched"] == 1
    assert document["metadata"]["failure_reasons"] == {"XYZ": "rate_limited"}


class BrokenStore(LocalStore):
    def put(self, key, data):
        raise StoreError(f"cannot write {key}: disk full")


def test_a_batch_that_cannot_be_written_fails(fake_yahoo, tmp_path, settings):
    with pytest.raises(BatchFailed, match="could not be written: cannot write raw-data"):
        fetch_batch(BrokenStore(tmp_path), DAY, 0, settings, symbols=["BHP"])


def test_bad_input_is_refused_before_any_request_or_write(fake_yahoo, store, settings):
    with pytest.raises(InputError, match="no ASX list for 2025-04-08"):
        fetch_batch(store, DAY, 0, settings)
    write_symbols(store, DAY, ["BHP", "CBA"], batch_size=1)
    with pytest.raises(InputError, match="batch 2 is out of range: valid batch numbers are 0 to 1"):
        fetch_batch(store, DAY, 2, settings)
    with pytest.raises(InputError, match="must be 0 or more"):
        fetch_batch(store, DAY, -1, settings)
    with pytest.raises(InputError, match="invalid symbol 'BHP.AX'"):
        fetch_batch(store, DAY, 0, settings, symbols=["BHP.AX"])
    assert fake_yahoo.count(kind=None) == 0
    assert store.list() == [layout.symbols_key(DAY)]


def test_a_corrupt_stored_batch_file_is_named(fake_yahoo, store, settings):
    store.put(layout.batch_data_key(DAY, 0), b"not parquet")
    with pytest.raises(CorruptFileError, match="raw-data/2025-04-08-batch-0.parquet"):
        fetch_batch(store, DAY, 0, settings, symbols=["BHP"])


def test_workers_fetch_one_batch_on_threads_with_a_delay_each_and_the_same_result(fake_yahoo, store, settings):
    import threading

    codes = [f"W{i:02d}" for i in range(12)]
    write_symbols(store, DAY, codes)
    alone = fetch_batch(store, DAY, 0, settings)
    fake_yahoo.reset_counts()
    clocks = ThreadClocks()  # each worker thread's own simulated clock: its delays are its own
    seen = []
    counted = RequestCounts()
    pacer = FixedDelayPacer(2.0, sleep=clocks.sleep, clock=clocks)
    threaded = fetch_batch(store, DAY, 0, Settings.resolve(delay=2.0, workers=3), pacer=pacer,
                           on_symbol=lambda s, r: seen.append((s, threading.current_thread().name)),
                           requests=counted)
    strip = lambda d: {k: v for k, v in d["metadata"].items() if k not in ("execution_time", "fetched_at")}  # noqa: E731
    assert strip(threaded) == strip(alone)  # the same rows and manifest, in the batch's order
    assert sorted(code for code, _ in seen) == codes
    workers = {name for _, name in seen}
    assert 1 < len(workers) <= 3 and workers <= {"fetch-batch-0_0", "fetch-batch-0_1", "fetch-batch-0_2"}
    # one chart request a symbol; each worker waits its own 2 s before each of its requests but its first
    for name in workers:
        assert clocks.slept.get(name, []) == [2.0] * (sum(1 for _, n in seen if n == name) - 1)
    assert counted.snapshot()["chart"] == fake_yahoo.chart_requests() == 12
