"""The fake Yahoo itself, driven through real yfinance and stockstream's session: what each kind of symbol
costs at the transport, and the market as Yahoo reports it on the day it is asked (splits, dividends, the
live bar)."""

from __future__ import annotations

import datetime as dt
import os

import polars as pl
import pytest

from stockstream_cli.sources import yahoo
from stockstream_cli.sources import http
from yahoo_fake import FakeYahoo, bar_timestamp, generated_bar
from clock import Clock

MON, TUE, WED, THU, FRI = (dt.date(2026, 1, d) for d in (5, 6, 7, 8, 9))
NEXT_MON, NEXT_TUE = dt.date(2026, 1, 12), dt.date(2026, 1, 13)


@pytest.fixture
def prepared(fake_yahoo):
    def prepare(*codes: str) -> FakeYahoo:
        yahoo.prepare(codes, os.environ["STOCKSTREAM_CACHE_DIR"])
        return fake_yahoo

    return prepare


def test_a_cold_process_pays_one_cookie_and_one_crumb_then_one_chart_request_per_symbol(prepared):
    fake = prepared("BHP", "CBA", "NAB")
    assert yahoo.fetch("BHP", MON, FRI).height == 5
    assert fake.by_kind() == {"cookie": 1, "crumb": 1, "chart": 1}
    assert [r.kind for r in fake.requests] == ["cookie", "crumb", "chart"]
    yahoo.fetch("CBA", MON, FRI)
    yahoo.fetch("NAB", MON, FRI)
    assert fake.by_kind() == {"cookie": 1, "crumb": 1, "chart": 3}
    # the session counted what the transport saw
    assert http.session().counts.snapshot() == {"cookie": 1, "crumb": 1, "consent": 0, "chart": 3, "other": 0}
    assert {r.params.get("crumb") for r in fake.requests if r.kind == "chart"} == {"fakeCrumb1"}


def test_a_not_found_symbol_costs_two_chart_requests_and_a_crumb(prepared):
    fake = prepared("BHP", "OLD").fault("OLD", "not_found")
    cold = yahoo.fetch("OLD", MON, FRI)  # a cold process: cookie and crumb first
    assert cold.reason == "not_found"
    assert [(r.kind, r.status) for r in fake.requests] == [
        ("cookie", 404), ("crumb", 200), ("chart", 404),  # fc.yahoo.com answers 404 with the cookie, as Yahoo does
        ("crumb", 200), ("chart", 404)]  # yfinance: other cookie strategy (its saved cookie), new crumb, resend
    fake.reset_counts()
    assert yahoo.fetch("OLD", MON, FRI).reason == "not_found"  # a warm process
    assert fake.by_kind() == {"crumb": 1, "chart": 2}
    fake.reset_counts()
    assert yahoo.fetch("BHP", MON, FRI).height == 5  # and a healthy symbol after it costs one request again
    assert fake.by_kind() == {"chart": 1}


def test_without_a_saved_cookie_the_consent_pages_are_fetched(prepared, monkeypatch):
    """yfinance's csrf strategy, when its cookie cache holds nothing: guce consent page, the consent POST,
    copyConsent, then a crumb from query2."""
    fake = prepared("OLD").fault("OLD", "not_found")
    from yfinance import data

    monkeypatch.setattr(data.YfData, "_load_cookie_curlCffi", lambda self: False)
    assert yahoo.fetch("OLD", MON, FRI).reason == "not_found"
    # 9 requests in all: yfinance's basic strategy asks fc.yahoo.com twice when it cannot reload the cookie
    assert fake.by_kind() == {"cookie": 2, "crumb": 2, "chart": 2, "consent": 3}
    assert [r.method for r in fake.requests if r.kind == "consent"] == ["GET", "POST", "GET"]


def test_blocking_answers_every_symbol_may_be_delisted(prepared):
    fake = prepared("BHP", "CBA").block()
    outcomes = [yahoo.fetch(code, MON, FRI) for code in ("BHP", "CBA")]
    assert [o.reason for o in outcomes] == ["not_found", "not_found"]
    assert all("may be delisted" in o.detail for o in outcomes)
    assert fake.chart_requests() == 4


def test_a_poisoned_crumb_is_a_429_to_the_budget_and_is_not_sent_on(prepared):
    fake = prepared("BHP", "CBA").poison_crumb(times=1)
    signals = []

    class Listening:
        def wait(self):
            pass

        def on_success(self):
            signals.append("ok")

        def on_rate_limited(self, retry_after=None):
            signals.append("429")

    with http.paced(Listening()):
        assert yahoo.fetch("BHP", MON, FRI).height == 5  # yfinance carries on without a crumb
        assert yahoo.fetch("CBA", MON, FRI).height == 5
    assert signals[:3] == ["ok", "429", "ok"]  # cookie, the poisoned crumb, chart
    charts = [r for r in fake.requests if r.kind == "chart"]
    assert "crumb" not in charts[0].params  # sent without one
    assert charts[1].params.get("crumb", "").startswith("fakeCrumb")  # a new crumb, not "Too Many Requests"
    assert http.session().counts.rate_limited == 1


def test_a_storm_has_a_length_on_the_fakes_clock():
    clock = Clock()
    fake = FakeYahoo(clock=clock).storm(600, start=100)
    url = "https://query2.finance.yahoo.com/v8/finance/chart/BHP.AX"
    window = {"period1": bar_timestamp(MON), "period2": bar_timestamp(TUE)}
    statuses = []
    for moment in (99.9, 100.0, 400.0, 699.9, 700.0):
        clock.now = moment
        statuses.append(fake.serve("GET", url, window, client=1).status)
    assert statuses == [200, 429, 429, 429, 200]
    crumb = fake.serve("GET", "https://query1.finance.yahoo.com/v1/test/getcrumb", client=1)
    assert crumb.status == 200
    clock.now = 150.0
    assert fake.serve("GET", "https://query1.finance.yahoo.com/v1/test/getcrumb", client=1).status == 429


def test_retry_after_is_sent_in_seconds_or_as_an_http_date():
    from stockstream_cli.sources.http import retry_after_seconds

    clock = Clock()
    fake = FakeYahoo(clock=clock, as_of="2026-01-09T12:00").storm(90, retry_after="date")
    reply = fake.serve("GET", "https://fc.yahoo.com", client=1)
    headers = dict(reply.headers)
    assert headers["Retry-After"].endswith("GMT") and retry_after_seconds(headers) == 90.0
    seconds = FakeYahoo(clock=lambda: 0.0).storm(90, retry_after=30).serve("GET", "https://fc.yahoo.com", client=1)
    assert retry_after_seconds(dict(seconds.headers)) == 30.0


# ---------------------------------------------------------------------------------------------- the market


def fetched(fake, code, first, last) -> pl.DataFrame:
    return yahoo.fetch(code, first, last)


def test_history_is_restated_through_a_split_and_a_dividend_as_of_the_day_asked(prepared):
    fake = prepared("SPL")
    fake.split("SPL", THU, 2, 1).dividend("SPL", NEXT_MON, 0.5)
    raw = {day: generated_bar("SPL.AX", day) for day in (MON, TUE, WED, THU, FRI, NEXT_MON)}

    fake.set_as_of(dt.datetime(2026, 1, 7, 17, 0))  # Wednesday evening: nothing known yet
    before = fetched(fake, "SPL", MON, FRI)
    assert before.get_column("date").to_list() == [MON, TUE, WED]
    assert before.get_column("close").to_list() == [raw[d]["close"] for d in (MON, TUE, WED)]

    fake.set_as_of(dt.datetime(2026, 1, 9, 17, 0))  # Friday evening: the split went ex on Thursday
    after = fetched(fake, "SPL", MON, FRI)
    assert after.get_column("close").to_list() == pytest.approx(
        [raw[MON]["close"] / 2, raw[TUE]["close"] / 2, raw[WED]["close"] / 2, raw[THU]["close"], raw[FRI]["close"]])
    assert after.get_column("volume").to_list() == [raw[MON]["volume"] * 2, raw[TUE]["volume"] * 2,
                                                    raw[WED]["volume"] * 2, raw[THU]["volume"], raw[FRI]["volume"]]
    assert after.get_column("adjusted_close").to_list() == pytest.approx(after.get_column("close").to_list())

    fake.set_as_of(dt.datetime(2026, 1, 12, 17, 0))  # Monday evening: the dividend went ex today
    latest = fetched(fake, "SPL", MON, NEXT_MON)
    factor = 1 - 0.5 / raw[FRI]["close"]  # Yahoo's multiplicative method: the close before the ex-date
    closes = [raw[MON]["close"] / 2, raw[TUE]["close"] / 2, raw[WED]["close"] / 2, raw[THU]["close"],
              raw[FRI]["close"], raw[NEXT_MON]["close"]]
    assert latest.get_column("close").to_list() == pytest.approx(closes, rel=1e-12)
    assert latest.get_column("adjusted_close").to_list() == pytest.approx(
        [c * factor for c in closes[:5]] + [closes[5]], rel=1e-12)
    bars = latest.select(yahoo.RAW_COLUMNS).drop("volume")  # (yahoo.fetch adds the events' dividend, split columns)
    assert bars.equals(fake.reported("SPL", MON, NEXT_MON).drop("volume"))  # one answer, two forms


def test_the_chart_response_carries_the_events_of_the_window_in_yahoos_shape():
    fake = FakeYahoo(as_of="2026-01-13").split("CON", WED, 1, 10).dividend("CON", NEXT_MON, 0.2)
    body = fake.chart_body("CON", bar_timestamp(MON) - 3600, bar_timestamp(NEXT_TUE) + 3600)
    events = body["chart"]["result"][0]["events"]
    assert events == {
        "dividends": {str(bar_timestamp(NEXT_MON)): {"amount": 0.2, "date": bar_timestamp(NEXT_MON)}},
        "splits": {str(bar_timestamp(WED)): {"date": bar_timestamp(WED), "numerator": 1.0, "denominator": 10.0,
                                             "splitRatio": "1:10"}},
    }
    assert "events" not in fake.chart_body("CON", bar_timestamp(THU) - 3600, bar_timestamp(FRI) + 3600)["chart"]["result"][0]
    assert fake.reported_actions("CON", MON, NEXT_TUE) == [
        {"date": WED, "kind": "split", "value": 0.1}, {"date": NEXT_MON, "kind": "dividend", "value": 0.2}]
    # a consolidation multiplies earlier prices by 10 and divides their volume by 10
    raw_tuesday = generated_bar("CON.AX", TUE)
    tuesday = fake.reported("CON", TUE, TUE).row(0, named=True)
    assert tuesday["close"] == pytest.approx(raw_tuesday["close"] * 10)
    assert tuesday["volume"] == round(raw_tuesday["volume"] / 10)


def test_a_dividend_before_a_split_is_reported_in_todays_units():
    fake = FakeYahoo(as_of="2026-01-13").dividend("DS", TUE, 1.0).split("DS", THU, 2, 1)
    assert fake.reported_actions("DS", MON, FRI) == [{"date": TUE, "kind": "dividend", "value": 0.5},
                                                     {"date": THU, "kind": "split", "value": 2.0}]
    monday = fake.reported("DS", MON, MON).row(0, named=True)
    factor = 1 - 1.0 / generated_bar("DS.AX", MON)["close"]  # raw amount over raw close: units cancel
    assert monday["adjusted_close"] == pytest.approx(generated_bar("DS.AX", MON)["close"] / 2 * factor, rel=1e-12)


def test_todays_bar_is_live_during_the_session_and_final_after_it(prepared):
    fake = prepared("LIV")
    final = generated_bar("LIV.AX", FRI)
    fake.set_as_of(dt.datetime(2026, 1, 9, 9, 30))
    assert fetched(fake, "LIV", THU, FRI).get_column("date").to_list() == [THU]  # not open yet
    fake.set_as_of(dt.datetime(2026, 1, 9, 14, 0))
    live = fetched(fake, "LIV", THU, FRI).row(-1, named=True)
    assert live["date"] == FRI and live["volume"] < final["volume"]
    assert live["close"] == pytest.approx(final["open"] + (final["close"] - final["open"]) * 4 / 6, abs=1e-4)
    fake.set_as_of(dt.datetime(2026, 1, 9, 16, 20))
    settled = fetched(fake, "LIV", THU, FRI).row(-1, named=True)
    assert (settled["close"], settled["volume"]) == (final["close"], final["volume"])


def test_the_as_of_clock_moves_with_the_fakes_clock():
    clock = Clock()
    fake = FakeYahoo(clock=clock, as_of=dt.datetime(2026, 1, 9, 15, 0))
    clock.now = 3600.0
    assert fake.as_of == dt.datetime(2026, 1, 9, 16, 0, tzinfo=fake.as_of.tzinfo)
    assert fake.reported("X", FRI, FRI).height == 1


def test_plain_requests_are_refused_unless_allowed_and_then_paced_and_counted_too(fake_yahoo, monkeypatch):
    from yfinance import _http

    from stockstream_cli.errors import InputError

    monkeypatch.setattr(_http, "HAS_CURL_CFFI", False)
    with pytest.raises(InputError, match="not using curl_cffi.*STOCKSTREAM_ALLOW_PLAIN_REQUESTS"):
        yahoo.prepare(["BHP"], os.environ["STOCKSTREAM_CACHE_DIR"])
    yahoo.prepare(["BHP"], os.environ["STOCKSTREAM_CACHE_DIR"], allow_plain_requests=True)
    http.reset_session()
    fake = fake_yahoo
    assert type(http.session()).__name__ == "PlainYahooSession"
    assert yahoo.fetch("BHP", MON, FRI).height == 5  # answered at requests.Session.request
    assert fake.by_kind() == {"cookie": 1, "crumb": 1, "chart": 1}
    assert http.session().counts.total == 3
