"""yahoo.fetch through yfinance's real parsing, on chart JSON in the real v8 shape served by FakeYahoo."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import polars as pl
import pytest

from stockstream_cli import schema
from stockstream_cli.sources import yahoo
from yahoo_fake import FakeYahoo, bar_timestamp, generated_bar
from clock import Clock

FIXTURES = Path(__file__).parent / "fixtures" / "yahoo"
APRIL_2 = dt.date(2025, 4, 2)
APRIL_8 = dt.date(2025, 4, 8)


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def prepared(fake_yahoo):
    """yfinance configured on this test's fresh cache folder; call it with the codes to seed."""

    def prepare(*codes: str) -> FakeYahoo:
        yahoo.prepare(codes, os.environ["STOCKSTREAM_CACHE_DIR"])
        return fake_yahoo

    return prepare


def test_recorded_bhp_response_parses_to_its_exact_values_with_the_dividend_adjusted_close(prepared):
    fake = prepared("BHP").respond("BHP", fixture("synthetic_chart_BHP.AX_range5d_1d.json"))
    rows = yahoo.fetch("BHP", APRIL_2, APRIL_8)
    # the response's events.dividends ride on the bar of their ex-date (issue 12): 0.80 going ex on 7 April
    assert rows["dividend"].to_list() == [0.0, 0.0, 0.0, 0.8, 0.0] and rows["split"].to_list() == [0.0] * 5
    assert rows.select(yahoo.RAW_COLUMNS).to_dicts() == [
        {"date": dt.date(2025, 4, 2), "open": 38.7, "high": 39.12, "low": 38.52, "close": 38.95, "adjusted_close": 38.08732, "volume": 7843211.0},
        {"date": dt.date(2025, 4, 3), "open": 38.4, "high": 38.55, "low": 37.61, "close": 37.8, "adjusted_close": 36.962791, "volume": 9920381.0},
        {"date": dt.date(2025, 4, 4), "open": 37.1, "high": 37.25, "low": 35.95, "close": 36.12, "adjusted_close": 35.32, "volume": 14028812.0},
        {"date": dt.date(2025, 4, 7), "open": 33.6, "high": 34.88, "low": 33.1, "close": 34.2, "adjusted_close": 34.2, "volume": 21876034.0},
        {"date": dt.date(2025, 4, 8), "open": 34.9, "high": 35.4, "low": 34.46, "close": 35.05, "adjusted_close": 35.05, "volume": 12457120.0},
    ]
    assert (fake.chart_requests("BHP"), fake.tz_probes("BHP")) == (1, 0)


def test_the_chart_request_asks_for_the_sydney_days_with_events(prepared):
    fake = prepared("BHP")
    yahoo.fetch("BHP", APRIL_2, APRIL_8)
    assert [r.kind for r in fake.requests] == ["cookie", "crumb", "chart"]  # a cold process: cookie and crumb first
    request = fake.requests[-1]
    assert request.ticker == "BHP.AX" and request.params["crumb"] == "fakeCrumb1"
    # midnight Sydney (AEDT) of the first day, midnight Sydney (AEST) after the last day: the DST change is inside
    assert request.params["period1"] == int(dt.datetime(2025, 4, 1, 13, tzinfo=dt.timezone.utc).timestamp())
    assert request.params["period2"] == int(dt.datetime(2025, 4, 8, 14, tzinfo=dt.timezone.utc).timestamp())
    assert request.params["interval"] == "1d"


def test_an_all_null_bar_comes_through_as_nulls_and_is_dropped_by_cleaning(prepared):
    prepared("CBA").respond("CBA", fixture("synthetic_chart_CBA.AX_range5d_1d.json"))
    raw = yahoo.fetch("CBA", APRIL_2, APRIL_8)
    null_day = raw.filter(pl.col("date") == dt.date(2025, 4, 4)).row(0, named=True)
    assert [null_day[c] for c in ("open", "high", "low", "close", "adjusted_close")] == [None] * 5
    rows, dropped = schema.clean_bars(raw, symbol="CBA", batch_number=0, fetch_timestamp="2025-04-08T09:00:00.000Z")
    assert dropped == {"all_null": 1, "invalid": 0, "duplicate": 0, "outside_window": 0}
    assert rows.get_column("date").to_list() == [dt.date(2025, 4, d) for d in (2, 3, 7, 8)]
    assert rows.get_column("close").to_list() == [157.9, 154.01, 149.33, 152.47]
    assert rows.get_column("volume").to_list() == [1534002, 2180554, 3322901, 2011934]
    assert rows.schema == schema.polars_schema()


def test_float32_like_prices_are_stored_exactly_as_sent(prepared):
    prepared("NAB").respond("NAB", fixture("appchart_NAB.AX_2017_v8_chart.json"))
    rows = yahoo.fetch("NAB", dt.date(2017, 9, 4), dt.date(2017, 9, 8))
    assert rows.get_column("date").to_list() == [dt.date(2017, 9, d) for d in (4, 5, 6, 7, 8)]
    assert rows.get_column("close").to_list()[:2] == [30.260000228881836, 30.350000381469727]


@pytest.mark.parametrize(
    ("fault", "reason", "chart"),
    [("not_found", "not_found", 2), ("empty", "no_data", 1), ("malformed", "error", 1), ("timeout", "timeout", 1),
     ("rate_limited", "rate_limited", 2), ("server_error", "error", 2)],
)
def test_each_fault_is_classified_after_one_fetch(prepared, fault, reason, chart):
    """One fetch: a status >= 400 is resent once by yfinance with its other cookie strategy (and a new crumb)."""
    fake = prepared("XYZ").fault("XYZ", fault)
    outcome = yahoo.fetch("XYZ", APRIL_2, APRIL_8)
    assert isinstance(outcome, yahoo.Failure)
    assert outcome.reason == reason
    assert outcome.retryable == (reason in {"rate_limited", "timeout", "error"})
    assert fake.count("XYZ", kind=None) == chart
    assert fake.by_kind() == {"cookie": 1, "crumb": chart, "chart": chart}


def test_a_delisted_answer_with_status_200_is_still_not_found(prepared):
    prepared("OLD").respond("OLD", fixture("synthetic_chart_404_not_found.json"), status=200)
    outcome = yahoo.fetch("OLD", APRIL_2, APRIL_8)
    assert outcome.reason == "not_found"
    assert "delisted" in outcome.detail


def test_curl_cffi_timeouts_count_as_timeouts():
    from curl_cffi.requests.exceptions import Timeout

    fake = FakeYahoo(timeout_error=Timeout).fault("SLW", "timeout")
    with fake.installed():
        yahoo.prepare(["SLW"], os.environ["STOCKSTREAM_CACHE_DIR"])
        assert yahoo.fetch("SLW", APRIL_2, APRIL_8).reason == "timeout"


def test_a_failed_answer_is_not_replayed_from_yfinances_response_cache(prepared):
    fake = prepared("RTY").fault("RTY", "malformed", times=1)
    past = (dt.date(2024, 1, 8), dt.date(2024, 1, 12))  # a past window: yfinance would use cache_get
    assert yahoo.fetch("RTY", *past).reason == "error"
    assert yahoo.fetch("RTY", *past).height == 5
    assert fake.chart_requests("RTY") == 2


def test_seeding_the_timezone_cache_saves_the_probe_request(fake_yahoo, tmp_path):
    yahoo.configure(str(tmp_path / "cold"))
    yahoo.fetch("ABC", APRIL_2, APRIL_8)  # not seeded: yfinance asks for the timezone first
    assert (fake_yahoo.tz_probes("ABC"), fake_yahoo.chart_requests("ABC")) == (1, 1)
    assert yahoo.seed_timezones(["DEF", "ABC"]) == 1  # ABC's timezone is cached now
    yahoo.fetch("DEF", APRIL_2, APRIL_8)
    assert (fake_yahoo.tz_probes("DEF"), fake_yahoo.chart_requests("DEF")) == (0, 1)


def test_the_cache_folder_is_created_and_used(fake_yahoo, tmp_path):
    folder = tmp_path / "deep" / "cache"
    assert yahoo.configure(str(folder)) == str(folder)
    yahoo.seed_timezones(["BHP"])
    assert (folder / "tkr-tz.db").is_file()


def test_lambda_default_cache_folder_is_under_tmp(monkeypatch):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "stock-data-fetcher")
    assert yahoo.default_cache_dir().startswith("/tmp/")


def test_classification_of_yfinance_exceptions():
    from yfinance.exceptions import YFPricesMissingError, YFRateLimitError, YFTzMissingError

    assert yahoo.classify_exception(YFRateLimitError()).reason == "rate_limited"
    assert yahoo.classify_exception(YFTzMissingError("X.AX")).reason == "not_found"
    assert yahoo.classify_exception(YFPricesMissingError("X.AX", "(1d)")).reason == "no_data"
    assert yahoo.classify_exception(YFPricesMissingError("X.AX", "", yahoo_reason="No data found, symbol may be delisted")).reason == "not_found"
    assert yahoo.classify_exception(YFPricesMissingError("X.AX", "(1d)"), status=503).reason == "error"
    assert yahoo.classify_exception(TimeoutError("slow")).reason == "timeout"
    assert yahoo.classify_exception(ConnectionError("reset")).reason == "error"
    assert yahoo.classify_exception(KeyError("timestamp")).reason == "error"


# ---------------------------------------------------------------------------------------------- the fake itself


def test_generated_responses_have_the_recorded_shape():
    recorded = fixture("synthetic_chart_BHP.AX_range5d_1d.json")["chart"]["result"][0]
    fake = FakeYahoo().dividend("BHP", "2025-04-07", 0.8)
    generated = fake.chart_body("BHP", bar_timestamp(APRIL_2) - 36000, bar_timestamp(APRIL_8) + 50000)["chart"]["result"][0]
    assert set(generated) == set(recorded)
    assert set(recorded["meta"]) - set(generated["meta"]) <= {"fiftyTwoWeekHigh", "fiftyTwoWeekLow", "regularMarketDayHigh",
                                                              "regularMarketDayLow", "regularMarketVolume", "longName", "shortName"}
    assert generated["timestamp"] == recorded["timestamp"]  # weekdays, 10:00 Sydney, across the DST change
    assert set(generated["indicators"]["quote"][0]) == set(recorded["indicators"]["quote"][0])
    assert list(generated["events"]["dividends"]) == list(recorded["events"]["dividends"])


def test_generated_bars_are_deterministic_plausible_and_adjusted_before_a_dividend():
    fake = FakeYahoo().dividend("CBA", "2025-04-07", 2.0)
    body = fake.chart_body("CBA", bar_timestamp(APRIL_2) - 3600, bar_timestamp(APRIL_8) + 3600)
    assert body == FakeYahoo().dividend("CBA", "2025-04-07", 2.0).chart_body("CBA", bar_timestamp(APRIL_2) - 3600, bar_timestamp(APRIL_8) + 3600)
    quote = body["chart"]["result"][0]["indicators"]["quote"][0]
    adjclose = body["chart"]["result"][0]["indicators"]["adjclose"][0]["adjclose"]
    for o, h, low, c, v in zip(quote["open"], quote["high"], quote["low"], quote["close"], quote["volume"]):
        assert 0 < low <= min(o, c) <= max(o, c) <= h and v >= 0
    factor = 1 - 2.0 / quote["close"][2]  # the close before the ex-date (Friday 4 April)
    assert adjclose[:3] == pytest.approx([c * factor for c in quote["close"][:3]], rel=1e-12)
    assert adjclose[3:] == quote["close"][3:]
    assert generated_bar("CBA.AX", APRIL_8)["close"] == quote["close"][-1]


def _chart(fake, params):
    return fake.serve("GET", "https://query2.finance.yahoo.com/v8/finance/chart/BHP.AX", params, client=1)


def test_server_side_rate_limit_and_latency_use_the_injected_clock_and_sleep():
    clock = Clock(start=100.0)
    slept = []
    fake = FakeYahoo(rate_limit=2, latency=0.25, clock=clock, sleep=slept.append)
    statuses = [_chart(fake, {"period1": 0, "period2": 1}).status for _ in range(3)]
    clock.now += 1.0
    statuses.append(_chart(fake, {"period1": 0, "period2": 1}).status)
    assert statuses == [200, 200, 429, 200]
    assert slept == [0.25] * 4
    assert fake.count("BHP") == 4 and fake.refused() == 1


def test_faults_for_n_fetches_a_resend_shares_the_fate_of_its_request():
    fake = FakeYahoo().fault("BHP", "rate_limited", times=2)
    window = {"period1": bar_timestamp(APRIL_2) - 3600, "period2": bar_timestamp(APRIL_2) + 3600}
    statuses = [_chart(fake, window).status for _ in range(5)]
    assert statuses == [429, 429, 429, 429, 200]  # two fetches: each request and its resend refused
    _chart(fake, {"range": "1d", "interval": "1d"})
    assert (fake.chart_requests("BHP"), fake.tz_probes("BHP"), fake.per_ticker(None)) == (5, 1, {"BHP.AX": 6})
    single = FakeYahoo().fault("BHP", "rate_limited", requests=1)
    assert [_chart(single, window).status for _ in range(2)] == [429, 200]


def test_configure_adds_its_warning_filter_once(monkeypatch, tmp_path):
    """Re-adding a filter removes it first: another thread's warning in between would slip through."""
    import warnings

    from stockstream_cli.sources import yahoo

    yahoo.configure(str(tmp_path / "a"))
    calls = []
    monkeypatch.setattr(warnings, "filterwarnings", lambda *a, **k: calls.append(a))
    yahoo.configure(str(tmp_path / "a"))
    yahoo.configure(str(tmp_path / "b"))
    assert calls == []
    assert yahoo._YFINANCE_WARNINGS in warnings.filters
