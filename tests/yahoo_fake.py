"""An offline Yahoo Finance chart API for tests and benchmarks: `FakeYahoo`.

It replaces `yfinance.data.YfData.get` (the seam yfinance's own tests use), so yfinance's real request
building and response parsing run on JSON in the real v8 chart shape. For any ticker it answers the
requested period1..period2 with plausible daily bars: weekdays only, stamped 10:00 Sydney time, values
derived from a hash of (ticker, date) so a rerun yields identical numbers. Per ticker it can be told to
misbehave (see `fault`), to carry a dividend, an all-null bar or any hand-set bar, or to answer a fixed body.

Use it
    - in pytest: the `fake_yahoo` fixture (registered in tests/conftest.py) yields an installed FakeYahoo;
    - anywhere else (benchmarks): `with FakeYahoo(latency=0.2, rate_limit=5).installed() as fake: ...`.

It counts every request per ticker and tells chart requests (period1/period2) from the timezone probe
yfinance sends before a symbol's first history call (`range=1d`).

What the real `YfData.get` does, and so what this fake does at that seam: a 404 comes back as a response
(status 404, the "Not Found / symbol may be delisted" body); a 429 is raised as `YFRateLimitError`
(yfinance retries once with its other cookie strategy and then raises); a network timeout is raised
as the HTTP library's timeout exception.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

SYDNEY = ZoneInfo("Australia/Sydney")
CHART_URL = "https://query2.finance.yahoo.com/v8/finance/chart/"
FAULTS = ("not_found", "empty", "malformed", "timeout", "rate_limited", "server_error")
VALID_RANGES = ["1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd", "max"]

NOT_FOUND_BODY = {"chart": {"result": None, "error": {"code": "Not Found", "description": "No data found, symbol may be delisted"}}}
SERVER_ERROR_BODY = {"finance": {"result": None, "error": {"code": "Internal Server Error", "description": "Internal error occurred"}}}
MALFORMED_BODY = '{"chart":{"result":[{"meta":{"currency":"AUD","symbol":'


@dataclasses.dataclass(frozen=True)
class Request:
    ticker: str
    kind: str  # "chart" (period1/period2), "tz_probe" (range=1d), "range" (another range) or "other"
    params: dict
    outcome: str  # "ok", a fault name, or "rate_limited" by the server-side limit


@dataclasses.dataclass
class _Fault:
    kind: str
    remaining: int | None  # None: for every request


def yahoo_symbol(code: str) -> str:
    """`BHP` -> `BHP.AX`; a symbol with a suffix already is kept."""
    code = code.upper()
    return code if "." in code else f"{code}.AX"


def bar_timestamp(day: dt.date) -> int:
    """Yahoo stamps ASX daily bars 10:00 Sydney time (AEST or AEDT)."""
    return int(dt.datetime.combine(day, dt.time(10), tzinfo=SYDNEY).timestamp())


def generated_bar(ticker: str, day: dt.date) -> dict[str, float | int]:
    """The bar FakeYahoo serves for (ticker, day): plausible, consistent (low <= open, close <= high), stable."""
    base = 0.05 + _unit(ticker, "base") * 150
    swing = 0.04 * (_unit(ticker, day, "drift") - 0.5)
    ticks = 3 if base < 2 else 2
    open_ = round(base * (1 + swing), ticks)
    close = round(open_ * (1 + 0.03 * (_unit(ticker, day, "close") - 0.5)), ticks)
    high = round(max(open_, close) * (1 + 0.02 * _unit(ticker, day, "high")), ticks)
    low = round(min(open_, close) * (1 - 0.02 * _unit(ticker, day, "low")), ticks)
    low = max(low, 10.0 ** -ticks)
    volume = int(1_000 + _unit(ticker, day, "volume") * 5_000_000)
    return {"open": open_, "high": high, "low": low, "close": close, "volume": volume}


def _unit(*parts: Any) -> float:
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class FakeYahoo:
    """A programmable stand-in for Yahoo's chart API at yfinance's `YfData.get` seam.

    latency: seconds every request takes (through `sleep`; 0 in tests).
    rate_limit: requests per second the server accepts (sliding one-second window over `clock`); requests
        beyond it get a 429. None: unlimited.
    """

    def __init__(
        self,
        *,
        latency: float = 0.0,
        rate_limit: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        timeout_error: type[BaseException] | None = None,
    ):
        self.latency = latency
        self.rate_limit = rate_limit
        self._sleep = sleep
        self._clock = clock
        self._timeout_error = timeout_error
        self._lock = threading.Lock()
        self._faults: dict[str, list[_Fault]] = defaultdict(list)
        self._overrides: dict[str, dict[dt.date, dict | None]] = defaultdict(dict)
        self._dividends: dict[str, dict[dt.date, float]] = defaultdict(dict)
        self._fixed: dict[str, tuple[int, Any]] = {}
        self._recent: deque[float] = deque()
        self.requests: list[Request] = []

    # ------------------------------------------------------------------ programming

    def fault(self, code: str, kind: str, times: int | None = None) -> "FakeYahoo":
        """Make `code` misbehave on its next `times` requests (None: always), then answer normally.

        kinds: not_found (404, delisted body), empty (200, no bars), malformed (200, truncated JSON),
        timeout (raises the HTTP library's timeout), rate_limited (429: raises YFRateLimitError),
        server_error (500 with Yahoo's generic error envelope).
        """
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; one of {FAULTS}")
        with self._lock:
            self._faults[yahoo_symbol(code)].append(_Fault(kind, times))
        return self

    def null_bar(self, code: str, day: dt.date | str) -> "FakeYahoo":
        """An all-null bar on `day` (what Yahoo sends for an untraded day)."""
        self._overrides[yahoo_symbol(code)][_date(day)] = None
        return self

    def set_bar(self, code: str, day: dt.date | str, **fields: float | int | None) -> "FakeYahoo":
        """Override some of open/high/low/close/volume/adjclose of one bar (e.g. to make it invalid)."""
        ticker, day = yahoo_symbol(code), _date(day)
        bar = dict(self._overrides[ticker].get(day) or self.bar(ticker, day))
        bar.update(fields)
        self._overrides[ticker][day] = bar
        return self

    def dividend(self, code: str, ex_date: dt.date | str, amount: float) -> "FakeYahoo":
        """A dividend going ex on `ex_date`: bars before it get Yahoo's back-adjusted adjclose."""
        self._dividends[yahoo_symbol(code)][_date(ex_date)] = amount
        return self

    def respond(self, code: str, body: Any, status: int = 200) -> "FakeYahoo":
        """Answer every chart request of `code` with this body (a dict is sent as JSON, a str as is)."""
        self._fixed[yahoo_symbol(code)] = (status, body)
        return self

    # ------------------------------------------------------------------ what was asked

    def count(self, code: str | None = None, kind: str | None = "chart") -> int:
        """Requests for `code` (None: every ticker) of `kind` (None: every kind)."""
        ticker = yahoo_symbol(code) if code else None
        with self._lock:
            return sum(1 for r in self.requests if (ticker is None or r.ticker == ticker) and (kind is None or r.kind == kind))

    def chart_requests(self, code: str | None = None) -> int:
        return self.count(code, "chart")

    def tz_probes(self, code: str | None = None) -> int:
        return self.count(code, "tz_probe")

    def per_ticker(self, kind: str | None = "chart") -> dict[str, int]:
        with self._lock:
            counts: dict[str, int] = defaultdict(int)
            for r in self.requests:
                if kind is None or r.kind == kind:
                    counts[r.ticker] += 1
            return dict(counts)

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()

    # ------------------------------------------------------------------ bars

    def bar(self, ticker: str, day: dt.date) -> dict[str, float | int] | None:
        """The bar served for (ticker, day) with overrides applied; None for an all-null bar."""
        ticker = yahoo_symbol(ticker)
        overrides = self._overrides.get(ticker, {})
        if day in overrides:
            return overrides[day]
        return generated_bar(ticker, day)

    def chart_body(self, ticker: str, period1: int, period2: int) -> dict:
        """The v8 chart JSON for the weekdays whose 10:00 Sydney bar falls in [period1, period2)."""
        ticker = yahoo_symbol(ticker)
        days = _weekdays(period1, period2)
        bars = [self.bar(ticker, day) for day in days]
        if not days:
            return _empty_body(ticker)
        timestamps = [bar_timestamp(day) for day in days]
        quote = {f: [None if b is None else b.get(f) for b in bars] for f in ("open", "high", "low", "close", "volume")}
        closes = quote["close"]
        adjclose = [None if b is None else b.get("adjclose", b.get("close")) for b in bars]
        adjclose = self._adjust_for_dividends(ticker, days, closes, adjclose, bars)
        result: dict[str, Any] = {
            "meta": _meta(ticker, days[-1], closes, period_range=""),
            "timestamp": timestamps,
            "indicators": {"quote": [quote], "adjclose": [{"adjclose": adjclose}]},
        }
        events = {
            str(bar_timestamp(day)): {"amount": amount, "date": bar_timestamp(day)}
            for day, amount in sorted(self._dividends.get(ticker, {}).items())
            if day in days
        }
        if events:
            result["events"] = {"dividends": events}
        return {"chart": {"result": [result], "error": None}}

    def _adjust_for_dividends(self, ticker, days, closes, adjclose, bars):
        """Yahoo's back-adjustment: before an ex-date, multiply by 1 - amount / (close the day before)."""
        adjusted = list(adjclose)
        for ex_date, amount in self._dividends.get(ticker, {}).items():
            before = [i for i, day in enumerate(days) if day < ex_date]
            if not before:
                continue
            previous_close = closes[before[-1]]
            if previous_close is None:
                continue
            factor = 1 - amount / previous_close
            for i in before:
                if adjusted[i] is not None and (bars[i] is None or "adjclose" not in bars[i]):
                    adjusted[i] = round(adjusted[i] * factor, 6)
        return adjusted

    def probe_body(self, ticker: str) -> dict:
        """The `range=1d` answer: the latest weekday's bar (its meta carries exchangeTimezoneName)."""
        day = dt.datetime.now(SYDNEY).date()
        while day.weekday() >= 5:
            day -= dt.timedelta(days=1)
        bar = self.bar(ticker, day) or generated_bar(ticker, day)
        closes = [bar["close"]]
        result = {
            "meta": _meta(ticker, day, closes, period_range="1d"),
            "timestamp": [bar_timestamp(day)],
            "indicators": {
                "quote": [{f: [bar[f]] for f in ("open", "high", "low", "close", "volume")}],
                "adjclose": [{"adjclose": [bar["close"]]}],
            },
        }
        return {"chart": {"result": [result], "error": None}}

    # ------------------------------------------------------------------ the seam

    def handle(self, url: str, params: dict | None = None, timeout: float = 30):
        """What `YfData.get(url, params, timeout)` returns (a requests.Response) or raises."""
        params = dict(params or {})
        ticker, kind = _classify(url, params)
        if self.latency:
            self._sleep(self.latency)
        outcome = self._next_outcome(ticker)
        with self._lock:
            self.requests.append(Request(ticker, kind, params, outcome))
        return self._answer(url, params, ticker, kind, outcome)

    def _next_outcome(self, ticker: str) -> str:
        with self._lock:
            if self.rate_limit is not None and self._over_rate_limit():
                return "rate_limited"
            for fault in self._faults.get(ticker, []):
                if fault.remaining is None:
                    return fault.kind
                if fault.remaining > 0:
                    fault.remaining -= 1
                    return fault.kind
            return "ok"

    def _over_rate_limit(self) -> bool:
        now = self._clock()
        while self._recent and self._recent[0] <= now - 1.0:
            self._recent.popleft()
        if len(self._recent) >= self.rate_limit:
            return True
        self._recent.append(now)
        return False

    def _answer(self, url: str, params: dict, ticker: str, kind: str, outcome: str):
        if outcome == "rate_limited":
            from yfinance.exceptions import YFRateLimitError

            raise YFRateLimitError()
        if outcome == "timeout":
            raise self._timeout_exception()(f"fake Yahoo: read timed out ({url})")
        if outcome == "not_found":
            return _response(url, params, 404, NOT_FOUND_BODY)
        if outcome == "server_error":
            return _response(url, params, 500, SERVER_ERROR_BODY)
        if outcome == "malformed":
            return _response(url, params, 200, MALFORMED_BODY)
        if outcome == "empty":
            return _response(url, params, 200, _empty_body(ticker))
        if kind == "tz_probe":
            return _response(url, params, 200, self.probe_body(ticker))
        if ticker in self._fixed:
            status, body = self._fixed[ticker]
            return _response(url, params, status, body)
        if kind == "chart":
            return _response(url, params, 200, self.chart_body(ticker, int(params["period1"]), int(params["period2"])))
        return _response(url, params, 404, {"finance": {"result": None, "error": {"code": "Not Found", "description": "fake Yahoo serves charts only"}}})

    def _timeout_exception(self) -> type[BaseException]:
        if self._timeout_error is not None:
            return self._timeout_error
        import requests

        return requests.exceptions.ReadTimeout

    def as_method(self):
        """A function to set as `YfData.get` (it receives the YfData instance first)."""
        fake = self

        def get(_yf_data, url, params=None, timeout=30):
            return fake.handle(url, params, timeout)

        return get

    @contextlib.contextmanager
    def installed(self) -> Iterator["FakeYahoo"]:
        """Patch `yfinance.data.YfData.get` for the duration of the block (outside pytest)."""
        import yfinance.data

        original = yfinance.data.YfData.__dict__["get"]
        yfinance.data.YfData.get = self.as_method()
        try:
            yield self
        finally:
            yfinance.data.YfData.get = original


# ---------------------------------------------------------------------- helpers


def _date(value: dt.date | str) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(value)


def _weekdays(period1: int, period2: int) -> list[dt.date]:
    first = dt.datetime.fromtimestamp(period1, SYDNEY).date()
    last = dt.datetime.fromtimestamp(period2, SYDNEY).date()
    days = []
    day = first
    while day <= last:
        if day.weekday() < 5 and period1 <= bar_timestamp(day) < period2:
            days.append(day)
        day += dt.timedelta(days=1)
    return days


def _classify(url: str, params: dict) -> tuple[str, str]:
    if "/v8/finance/chart/" not in url:
        return url.rsplit("/", 1)[-1].upper(), "other"
    ticker = url.split("/v8/finance/chart/", 1)[1].split("?", 1)[0].upper()
    if "period1" in params or "period2" in params:
        return ticker, "chart"
    if params.get("range") == "1d":
        return ticker, "tz_probe"
    return ticker, "range"


def _meta(ticker: str, last_day: dt.date, closes: list, period_range: str) -> dict:
    at = dt.datetime.combine(last_day, dt.time(16, 10), tzinfo=SYDNEY)
    offset = int(at.utcoffset().total_seconds())
    zone = at.tzname()
    day_start = int(dt.datetime.combine(last_day, dt.time(10), tzinfo=SYDNEY).timestamp())
    price = next((c for c in reversed(closes) if c is not None), None)

    def period(start: int, end: int) -> dict:
        return {"timezone": zone, "start": start, "end": end, "gmtoffset": offset}

    return {
        "currency": "AUD",
        "symbol": ticker,
        "exchangeName": "ASX",
        "fullExchangeName": "ASX",
        "instrumentType": "EQUITY",
        "firstTradeDate": 570398400,
        "regularMarketTime": int(at.timestamp()),
        "hasPrePostMarketData": False,
        "gmtoffset": offset,
        "timezone": zone,
        "exchangeTimezoneName": "Australia/Sydney",
        "regularMarketPrice": price,
        "chartPreviousClose": price,
        "priceHint": 2,
        "currentTradingPeriod": {
            "pre": period(day_start - 3 * 3600, day_start),
            "regular": period(day_start, day_start + 6 * 3600),
            "post": period(day_start + 6 * 3600, day_start + 6 * 3600 + 720),
        },
        "dataGranularity": "1d",
        "range": period_range,
        "validRanges": VALID_RANGES,
    }


def _empty_body(ticker: str) -> dict:
    """A valid symbol with no bars in the window: meta, no timestamps, empty indicator objects."""
    meta = _meta(ticker, dt.date(2026, 1, 2), [], period_range="")
    return {"chart": {"result": [{"meta": meta, "indicators": {"quote": [{}], "adjclose": [{}]}}], "error": None}}


def _response(url: str, params: dict, status: int, body: Any):
    import requests

    response = requests.Response()
    response.status_code = status
    response._content = (body if isinstance(body, str) else json.dumps(body)).encode()
    response.encoding = "utf-8"
    response.headers["Content-Type"] = "application/json;charset=utf-8"
    response.url = f"{url}?{urlencode(params)}" if params else url
    response.reason = {200: "OK", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error"}.get(status, "")
    return response


try:  # the pytest fixture, when pytest is there (benchmarks use FakeYahoo().installed() instead)
    import pytest

    @pytest.fixture
    def fake_yahoo(monkeypatch) -> Iterator[FakeYahoo]:
        """An installed FakeYahoo with no latency and no rate limit; program it per test."""
        import yfinance.data

        fake = FakeYahoo()
        monkeypatch.setattr(yfinance.data.YfData, "get", fake.as_method())
        yield fake

except ImportError:  # pragma: no cover
    pass
