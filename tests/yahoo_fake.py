"""An offline Yahoo Finance for tests and benchmarks, at the HTTP transport: `FakeYahoo`.

It answers every HTTP request yfinance sends, at the lowest seam of each backend: curl_cffi's
`Session._request_once` (below curl_cffi's retry loop, where the real request goes out) and, for yfinance's
fallback, `requests.Session.request`. So yfinance's own cookie (fc.yahoo.com), crumb (`/v1/test/getcrumb`),
cookie-strategy switch (guce.yahoo.com consent pages), resend and parsing run in every test, and every
request is logged (`requests`) with its kind: cookie, crumb, consent, chart (period1/period2), tz_probe
(the `range=1d` timezone probe), range (another range), other.

The market (`Market`): per symbol, raw daily bars (unadjusted; generated from a hash of (ticker, date) unless
set), dividends (ex-date, amount in the units of that day) and splits (ex-date, numerator, denominator).
The fake answers as Yahoo does on the day it is asked (`as_of`, a datetime in Australia/Sydney; None: the
end of time, every session final and every action known):

- sessions are weekdays, stamped 10:00 Sydney; a session is served once it opened (10:00); until
  FINAL_AFTER (16:15) it is a live bar, moving with the clock, then final;
- history is restated through every split with ex-date <= as-of: earlier open/high/low/close divided by
  numerator/denominator, volume multiplied by it (and earlier dividend amounts divided by it);
- adjclose is the restated close times, for every dividend D with ex-date E <= as-of and E after the bar,
  (1 - D / C), C the restated close of the session before E (Yahoo's multiplicative method);
- the chart response carries `events.dividends` / `events.splits` for the requested window in Yahoo's shape
  (keys are epoch strings; dividends {amount, date}, splits {date, numerator, denominator, splitRatio}).
`reported(code, start, end, as_of=...)` gives the same answer as a polars frame, for tests to compare a
store with.

Time: `clock` (seconds, default time.monotonic; tests pass a fake one) drives latency, the server-side
`rate_limit`, storms and blocks; `as_of` moves with it (as_of + clock seconds elapsed since it was set).

Faults (per symbol, `fault`): not_found (404, Yahoo's "No data found, symbol may be delisted" body), empty
(200, no bars), malformed (truncated JSON), timeout (the backend's timeout exception), rate_limited (429),
server_error (500). `times` counts fetches: a refused chart request and yfinance's resend of it (the next
chart request of the same client for that symbol) get the same answer, as Yahoo does within a second;
`requests=N` counts single requests instead (a single 429 that yfinance's resend heals). Whole-service
faults on the clock: `storm(seconds, retry_after=...)` (every request 429, "Too Many Requests"),
`block(seconds)` (every chart answered "No data found, symbol may be delisted", the way Yahoo treats a
client it blocks), `poison_crumb(times)` (the crumb body is "Too Many Requests", status 200).

Use it
    - in pytest: the `fake_yahoo` fixture (tests/conftest.py) yields an installed FakeYahoo
      in a cold process: yfinance's cookie, crumb and strategy forgotten, stockstream's session new;
    - anywhere else (benchmarks): `with FakeYahoo(latency=0.2, rate_limit=5).installed() as fake: ...`;
      benchmarks/fake_server.py serves `FakeYahoo.serve` to other processes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import email.utils
import hashlib
import http.cookiejar
import itertools
import json
import math
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit
from zoneinfo import ZoneInfo

SYDNEY = ZoneInfo("Australia/Sydney")
CHART_URL = "https://query2.finance.yahoo.com/v8/finance/chart/"
FAULTS = ("not_found", "empty", "malformed", "timeout", "rate_limited", "server_error")
# Yahoo never reached (`unreachable`): curl's error code and message for each way, as libcurl words them
UNREACHABLE = {
    "dns": (6, "Could not resolve host: {host} (Domain name not found)"),
    "refused": (7, "Failed to connect to {host} port 443 after 2 ms: Could not connect to server"),
    "tls": (35, "TLS connect error: error:0A000126:SSL routines::unexpected eof while reading"),
    "proxy": (97, "CONNECT tunnel failed, response 403"),
}
VALID_RANGES = ["1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd", "max"]
OPEN = dt.time(10, 0)
FINAL_AFTER = dt.time(16, 15)  # the close (16:00) plus the closing auction: a session's bar is final after this
CLOSE = dt.time(16, 0)

NOT_FOUND_BODY = {"chart": {"result": None, "error": {"code": "Not Found", "description": "No data found, symbol may be delisted"}}}
SERVER_ERROR_BODY = {"finance": {"result": None, "error": {"code": "Internal Server Error", "description": "Internal error occurred"}}}
MALFORMED_BODY = '{"chart":{"result":[{"meta":{"currency":"AUD","symbol":'
TOO_MANY_REQUESTS = "Too Many Requests"
CONSENT_PAGE = ('<html><body><form method="post" action="https://consent.yahoo.com/v2/collectConsent">'
                '<input type="hidden" name="csrfToken" value="fake-csrf"/>'
                '<input type="hidden" name="sessionId" value="fake-session"/>'
                '<button name="agree" value="agree">Accept all</button></form></body></html>')


@dataclasses.dataclass(frozen=True)
class Request:
    ticker: str  # "" for cookie, crumb and consent requests
    kind: str  # cookie, crumb, consent, chart, tz_probe, range, other
    params: dict
    outcome: str  # "ok", a fault name, "rate_limited" (a storm or the server-side limit), "blocked", "poisoned"
    status: int | None = None  # None: no answer (a timeout)
    method: str = "GET"
    url: str = ""
    at: float = 0.0  # on the fake's clock


@dataclasses.dataclass
class Reply:
    """What the fake answers, independent of the HTTP library: turned into its Response by an adapter."""

    status: int
    body: bytes
    headers: list[tuple[str, str]]
    url: str
    set_cookie: bool = False  # give the client Yahoo's A3 cookie (domain .yahoo.com)
    timeout: bool = False  # no answer: raise the backend's timeout
    unreachable: str | None = None  # never reached: raise the backend's error for this (UNREACHABLE's keys)


@dataclasses.dataclass
class _Fault:
    kind: str
    remaining: int | None  # None: for every fetch
    per_request: bool = False


def yahoo_symbol(code: str) -> str:
    """`BHP` -> `BHP.AX`; a symbol with a suffix already is kept."""
    code = code.upper()
    return code if "." in code else f"{code}.AX"


def bar_timestamp(day: dt.date) -> int:
    """Yahoo stamps ASX daily bars 10:00 Sydney time (AEST or AEDT)."""
    return int(dt.datetime.combine(day, OPEN, tzinfo=SYDNEY).timestamp())


def generated_bar(ticker: str, day: dt.date) -> dict[str, float | int]:
    """The raw bar of (ticker, day) when none is set: plausible (low <= open, close <= high), stable."""
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


def sydney(value: dt.datetime | dt.date | str) -> dt.datetime:
    """A datetime in Sydney: naive ones are read as Sydney time; a date is its 23:59:59 (after the close)."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value) if "T" in value or " " in value else dt.date.fromisoformat(value)
    if not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time(23, 59, 59))
    return value.replace(tzinfo=SYDNEY) if value.tzinfo is None else value.astimezone(SYDNEY)


# ---------------------------------------------------------------------------------------------- the market


class Market:
    """Raw bars, dividends and splits per ticker, and what Yahoo reports of them as of a time."""

    def __init__(self):
        self.overrides: dict[str, dict[dt.date, dict | None]] = defaultdict(dict)
        self.dividends: dict[str, dict[dt.date, float]] = defaultdict(dict)
        self.splits: dict[str, dict[dt.date, tuple[float, float]]] = defaultdict(dict)

    def raw_bar(self, ticker: str, day: dt.date) -> dict | None:
        """The session's raw (unadjusted) bar; None for an all-null bar."""
        overrides = self.overrides.get(ticker, {})
        if day in overrides:
            return overrides[day]
        return generated_bar(ticker, day)

    def sessions(self, first: dt.date, last: dt.date, as_of: dt.datetime | None) -> list[dt.date]:
        """Weekdays first..last that had opened by `as_of`."""
        days = []
        day = first
        while day <= last:
            if day.weekday() < 5 and (as_of is None or dt.datetime.combine(day, OPEN, tzinfo=SYDNEY) <= as_of):
                days.append(day)
            day += dt.timedelta(days=1)
        return days

    def _bar_as_of(self, ticker: str, day: dt.date, as_of: dt.datetime | None) -> dict | None:
        """The raw bar, or today's live bar during the session: it moves from the open towards the close."""
        bar = self.raw_bar(ticker, day)
        if bar is None or as_of is None or as_of.date() != day or as_of.time() >= FINAL_AFTER:
            return bar
        opened = dt.datetime.combine(day, OPEN, tzinfo=SYDNEY)
        closes = dt.datetime.combine(day, CLOSE, tzinfo=SYDNEY)
        share = min(max((as_of - opened) / (closes - opened), 0.0), 1.0)
        live = dict(bar)
        if bar.get("open") is not None and bar.get("close") is not None:
            live["close"] = round(bar["open"] + (bar["close"] - bar["open"]) * share, 4)
            live["high"] = max(bar["open"], live["close"])
            live["low"] = min(bar["open"], live["close"])
        if bar.get("volume") is not None:
            live["volume"] = int(bar["volume"] * share)
        live.pop("adjclose", None)
        return live

    def _known(self, events: dict, as_of: dt.datetime | None) -> list:
        return sorted((day, value) for day, value in events.items() if as_of is None or day <= as_of.date())

    def split_factor_after(self, ticker: str, day: dt.date, as_of: dt.datetime | None) -> float:
        """numerator/denominator of every known split going ex after `day`, multiplied."""
        factor = 1.0
        for ex_date, (numerator, denominator) in self._known(self.splits.get(ticker, {}), as_of):
            if ex_date > day:
                factor *= numerator / denominator
        return factor

    def report(self, ticker: str, first: dt.date, last: dt.date, as_of: dt.datetime | None) -> list[tuple[dt.date, dict | None]]:
        """(session, bar as Yahoo reports it as of `as_of`: restated OHLCV and adjclose) for first..last."""
        days = self.sessions(first, last, as_of)
        dividends = self._known(self.dividends.get(ticker, {}), as_of)
        rows = []
        for day in days:
            bar = self._bar_as_of(ticker, day, as_of)
            if bar is None:
                rows.append((day, None))
                continue
            ratio = self.split_factor_after(ticker, day, as_of)
            restated = {f: (None if bar.get(f) is None else bar[f] / ratio) for f in ("open", "high", "low", "close")}
            restated["volume"] = None if bar.get("volume") is None else int(round(bar["volume"] * ratio))
            if "adjclose" in bar:
                restated["adjclose"] = bar["adjclose"]
            elif restated["close"] is None:
                restated["adjclose"] = None
            else:
                factor = 1.0
                for ex_date, amount in dividends:
                    if ex_date > day:
                        factor *= self._dividend_factor(ticker, ex_date, amount, as_of)
                restated["adjclose"] = restated["close"] * factor
            rows.append((day, restated))
        return rows

    def _dividend_factor(self, ticker: str, ex_date: dt.date, amount: float, as_of: dt.datetime | None) -> float:
        """1 - D/C: C the close of the session before the ex-date, in the units of the ex-date (a split going
        ex the same day converts it; later splits divide D and C alike)."""
        numerator, denominator = self.splits.get(ticker, {}).get(ex_date, (1, 1))
        day = ex_date - dt.timedelta(days=1)
        for _ in range(60):
            if day.weekday() < 5:
                bar = self.raw_bar(ticker, day)
                if bar is not None and bar.get("close"):
                    return 1 - amount / (bar["close"] * denominator / numerator)
            day -= dt.timedelta(days=1)
        return 1.0

    def events(self, ticker: str, first: dt.date, last: dt.date, as_of: dt.datetime | None) -> dict:
        """`events` of the chart response for first..last: dividends (restated amounts) and splits."""
        dividends = {
            str(bar_timestamp(day)): {"amount": amount / self.split_factor_after(ticker, day, as_of), "date": bar_timestamp(day)}
            for day, amount in self._known(self.dividends.get(ticker, {}), as_of) if first <= day <= last
        }
        splits = {
            str(bar_timestamp(day)): {"date": bar_timestamp(day), "numerator": float(numerator),
                                      "denominator": float(denominator), "splitRatio": f"{_num(numerator)}:{_num(denominator)}"}
            for day, (numerator, denominator) in self._known(self.splits.get(ticker, {}), as_of) if first <= day <= last
        }
        return {name: value for name, value in (("dividends", dividends), ("splits", splits)) if value}


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


# ---------------------------------------------------------------------------------------------- the fake


class FakeYahoo:
    """A programmable Yahoo at the HTTP transport (see the module docstring).

    latency: seconds every request takes (through `sleep`; 0 in tests).
    rate_limit: requests per second the server accepts (a sliding one-second window over `clock`, every kind
        of request); requests beyond it get a 429. None: unlimited.
    as_of: the market's time (see `set_as_of`); None: every session final, every action known.
    timeouts_wait: a `timeout` fault answers (raises) only after the request's own timeout, on `sleep`, as a
        silent server does (a virtual clock's sleep in tests); False: at once.
    """

    def __init__(
        self,
        *,
        latency: float = 0.0,
        rate_limit: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        timeout_error: type[BaseException] | None = None,
        as_of: dt.datetime | dt.date | str | None = None,
        timeouts_wait: bool = False,
    ):
        self.latency = latency
        self.timeouts_wait = timeouts_wait
        self.rate_limit = rate_limit
        self._sleep = sleep
        self._clock = clock
        self._timeout_error = timeout_error
        self._lock = threading.Lock()
        self.market = Market()
        self._faults: dict[str, list[_Fault]] = defaultdict(list)
        self._fixed: dict[str, tuple[int, Any]] = {}
        self._recent: deque[float] = deque()
        self._storms: list[tuple[float, float, Any]] = []  # (start, end, retry_after) on the clock
        self._blocks: list[tuple[float, float]] = []
        self._unreachable: list[tuple[float, float, str]] = []  # (start, end, how) on the clock
        self._poisoned_crumbs: int | float = 0
        self._refused_chart: dict[Any, tuple[str, str, int]] = {}  # client -> (ticker, outcome, status) to resend
        self._crumbs = itertools.count(1)
        self.requests: list[Request] = []
        self.set_as_of(as_of)

    # ------------------------------------------------------------------ time

    def set_as_of(self, as_of: dt.datetime | dt.date | str | None) -> "FakeYahoo":
        """The market's time from now on: `as_of` (naive: Sydney; a date: after its close), moving with the clock."""
        self._as_of = None if as_of is None else sydney(as_of)
        self._as_of_set_at = self._clock()
        return self

    @property
    def as_of(self) -> dt.datetime | None:
        """Now, for the market (None: the end of time)."""
        if self._as_of is None:
            return None
        return self._as_of + dt.timedelta(seconds=self._clock() - self._as_of_set_at)

    def wall_time(self) -> dt.datetime:
        """The time the fake's answers are dated (the `Date` header): as_of, else this machine's clock."""
        return self.as_of or dt.datetime.now(dt.timezone.utc)

    # ------------------------------------------------------------------ programming

    def fault(self, code: str, kind: str, times: int | None = None, *, requests: int | None = None) -> "FakeYahoo":
        """Make `code` misbehave on its next `times` fetches (None: always), or on its next `requests` chart
        requests, then answer normally (see the module docstring)."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; one of {FAULTS}")
        with self._lock:
            self._faults[yahoo_symbol(code)].append(_Fault(kind, requests if requests is not None else times,
                                                           per_request=requests is not None))
        return self

    def clear_faults(self) -> "FakeYahoo":
        with self._lock:
            self._faults.clear()
        return self

    def storm(self, seconds: float, *, start: float | None = None, retry_after: int | str | None = None) -> "FakeYahoo":
        """Every request in [start, start + seconds) on the clock (start: now) gets 429 "Too Many Requests".

        retry_after: a Retry-After header on those answers: seconds (int), "date" (the storm's end as an HTTP
        date), or None (no header).
        """
        begin = self._clock() if start is None else start
        self._storms.append((begin, begin + seconds, retry_after))
        return self

    def block(self, seconds: float = math.inf, *, start: float | None = None) -> "FakeYahoo":
        """For `seconds` from now, every chart request is answered "No data found, symbol may be delisted"."""
        begin = self._clock() if start is None else start
        self._blocks.append((begin, begin + seconds))
        return self

    def unreachable(self, how: str = "dns", seconds: float = math.inf, *, start: float | None = None) -> "FakeYahoo":
        """For `seconds` from now, no request reaches Yahoo: each raises the backend's error for `how` (a key
        of UNREACHABLE: dns, refused, tls, proxy), as a machine without network sees it. Not counted as
        answered (`Request.status` None, outcome "unreachable")."""
        if how not in UNREACHABLE:
            raise ValueError(f"unknown way to be unreachable {how!r}; one of {tuple(UNREACHABLE)}")
        begin = self._clock() if start is None else start
        self._unreachable.append((begin, begin + seconds, how))
        return self

    def poison_crumb(self, times: int | None = None) -> "FakeYahoo":
        """The next `times` crumb requests (None: all) are answered "Too Many Requests" with status 200."""
        self._poisoned_crumbs = math.inf if times is None else times
        return self

    def null_bar(self, code: str, day: dt.date | str) -> "FakeYahoo":
        """An all-null bar on `day` (what Yahoo sends for an untraded day)."""
        self.market.overrides[yahoo_symbol(code)][_date(day)] = None
        return self

    def set_bar(self, code: str, day: dt.date | str, **fields: float | int | None) -> "FakeYahoo":
        """Override some of open/high/low/close/volume (raw) or adjclose (served as is) of one bar."""
        ticker, day = yahoo_symbol(code), _date(day)
        bar = dict(self.market.raw_bar(ticker, day) or generated_bar(ticker, day))
        bar.update(fields)
        self.market.overrides[ticker][day] = bar
        return self

    def dividend(self, code: str, ex_date: dt.date | str, amount: float) -> "FakeYahoo":
        """A dividend going ex on `ex_date`, `amount` per share in the units of that day."""
        self.market.dividends[yahoo_symbol(code)][_date(ex_date)] = amount
        return self

    def split(self, code: str, ex_date: dt.date | str, numerator: float, denominator: float = 1) -> "FakeYahoo":
        """A split (2, 1: two for one) or consolidation (1, 10: one for ten) going ex on `ex_date`."""
        self.market.splits[yahoo_symbol(code)][_date(ex_date)] = (numerator, denominator)
        return self

    def respond(self, code: str, body: Any, status: int = 200) -> "FakeYahoo":
        """Answer every chart request of `code` with this body (a dict is sent as JSON, a str as is)."""
        self._fixed[yahoo_symbol(code)] = (status, body)
        return self

    def bar(self, ticker: str, day: dt.date) -> dict | None:
        """The raw bar of (ticker, day) with overrides applied; None for an all-null bar."""
        return self.market.raw_bar(yahoo_symbol(ticker), day)

    # ------------------------------------------------------------------ what Yahoo reports

    def reported(self, code: str, start: dt.date | str, end: dt.date | str, *, as_of=None) -> "pl.DataFrame":
        """What Yahoo reports as of `as_of` (default: the fake's) for `code`, sessions start..end, as the columns
        yahoo.fetch returns (date, open, high, low, close, adjusted_close, volume; float64)."""
        import polars as pl

        moment = self.as_of if as_of is None else sydney(as_of)
        rows = self.market.report(yahoo_symbol(code), _date(start), _date(end), moment)
        return pl.DataFrame(
            {"date": [day for day, _ in rows],
             **{name: [None if bar is None else (None if bar.get(field) is None else float(bar[field])) for _, bar in rows]
                for name, field in (("open", "open"), ("high", "high"), ("low", "low"), ("close", "close"),
                                    ("adjusted_close", "adjclose"), ("volume", "volume"))}},
            schema={"date": pl.Date, "open": pl.Float64, "high": pl.Float64, "low": pl.Float64, "close": pl.Float64,
                    "adjusted_close": pl.Float64, "volume": pl.Float64},
        )

    def reported_actions(self, code: str, start: dt.date | str, end: dt.date | str, *, as_of=None) -> list[dict]:
        """The dividends and splits Yahoo reports as of `as_of` with ex-dates start..end: (date, kind, value),
        the dividend in today's units, the split as numerator/denominator."""
        moment = self.as_of if as_of is None else sydney(as_of)
        events = self.market.events(yahoo_symbol(code), _date(start), _date(end), moment)
        found = [{"date": _day_of(e["date"]), "kind": "dividend", "value": e["amount"]} for e in events.get("dividends", {}).values()]
        found += [{"date": _day_of(e["date"]), "kind": "split", "value": e["numerator"] / e["denominator"]}
                  for e in events.get("splits", {}).values()]
        return sorted(found, key=lambda a: (a["date"], a["kind"]))

    def chart_body(self, ticker: str, period1: int, period2: int) -> dict:
        """The v8 chart JSON as of the fake's time, for the sessions whose 10:00 bar falls in [period1, period2)."""
        ticker = yahoo_symbol(ticker)
        as_of = self.as_of
        first = dt.datetime.fromtimestamp(period1, SYDNEY).date()
        last = dt.datetime.fromtimestamp(max(period2 - 1, period1), SYDNEY).date()
        rows = [(day, bar) for day, bar in self.market.report(ticker, first, last, as_of)
                if period1 <= bar_timestamp(day) < period2]
        if not rows:
            return _empty_body(ticker)
        days = [day for day, _ in rows]
        quote = {f: [None if b is None else b.get(f) for _, b in rows] for f in ("open", "high", "low", "close", "volume")}
        result: dict[str, Any] = {
            "meta": _meta(ticker, days[-1], quote["close"], period_range=""),
            "timestamp": [bar_timestamp(day) for day in days],
            "indicators": {"quote": [quote], "adjclose": [{"adjclose": [None if b is None else b.get("adjclose") for _, b in rows]}]},
        }
        events = self.market.events(ticker, first, last, as_of)
        if events:
            result["events"] = events
        return {"chart": {"result": [result], "error": None}}

    def probe_body(self, ticker: str) -> dict:
        """The `range=1d` answer: the latest session's bar (its meta carries exchangeTimezoneName)."""
        ticker = yahoo_symbol(ticker)
        day = (self.as_of or dt.datetime.now(SYDNEY)).date()
        while day.weekday() >= 5:
            day -= dt.timedelta(days=1)
        bar = self.bar(ticker, day) or generated_bar(ticker, day)
        result = {
            "meta": _meta(ticker, day, [bar["close"]], period_range="1d"),
            "timestamp": [bar_timestamp(day)],
            "indicators": {
                "quote": [{f: [bar[f]] for f in ("open", "high", "low", "close", "volume")}],
                "adjclose": [{"adjclose": [bar["close"]]}],
            },
        }
        return {"chart": {"result": [result], "error": None}}

    # ------------------------------------------------------------------ what was asked

    def count(self, code: str | None = None, kind: str | None = "chart") -> int:
        """Requests for `code` (None: any, cookie and crumb included) of `kind` (None: every kind)."""
        ticker = yahoo_symbol(code) if code else None
        with self._lock:
            return sum(1 for r in self.requests if (ticker is None or r.ticker == ticker) and (kind is None or r.kind == kind))

    def chart_requests(self, code: str | None = None) -> int:
        return self.count(code, "chart")

    def tz_probes(self, code: str | None = None) -> int:
        return self.count(code, "tz_probe")

    def by_kind(self) -> dict[str, int]:
        """Every request so far by kind (kinds with none left out)."""
        with self._lock:
            counts: dict[str, int] = defaultdict(int)
            for r in self.requests:
                counts[r.kind] += 1
            return dict(counts)

    def per_ticker(self, kind: str | None = "chart") -> dict[str, int]:
        with self._lock:
            counts: dict[str, int] = defaultdict(int)
            for r in self.requests:
                if r.ticker and (kind is None or r.kind == kind):
                    counts[r.ticker] += 1
            return dict(counts)

    def refused(self) -> int:
        """Requests answered 429."""
        with self._lock:
            return sum(1 for r in self.requests if r.status == 429)

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()

    # ------------------------------------------------------------------ serving

    def serve(self, method: str, url: str, params: dict | None = None, *, client: Any = None,
              data: Any = None, timeout: Any = None) -> Reply:
        """Answer one HTTP request (any backend, any process): what Yahoo would send back. timeout: the
        request's own (seconds, or a (connect, read) pair), waited out by a timeout fault with timeouts_wait."""
        params = {**dict(parse_qsl(urlsplit(url).query)), **{k: v for k, v in dict(params or {}).items() if v is not None}}
        base = url.split("?", 1)[0]
        full_url = f"{base}?{urlencode(params)}" if params else base
        ticker, kind = _classify(base, params)
        if self.latency:
            self._sleep(self.latency)
        with self._lock:
            now = self._clock()
            outcome, reply = self._decide(method, base, full_url, params, ticker, kind, now, client)
            self.requests.append(Request(ticker, kind, _loggable(params), outcome,
                                         None if reply.timeout or reply.unreachable else reply.status, method,
                                         full_url, now))
        if reply.timeout and self.timeouts_wait:
            self._sleep(_seconds(timeout))
        return reply

    def _decide(self, method, base, full_url, params, ticker, kind, now, client) -> tuple[str, Reply]:
        chart = kind in ("chart", "tz_probe", "range")
        resend = self._refused_chart.pop(client, None) if chart else None
        for begin, end, how in self._unreachable:
            if begin <= now < end:
                return "unreachable", Reply(0, b"", [], full_url, unreachable=how)
        if self.rate_limit is not None and self._over_rate_limit(now):
            return "rate_limited", self._reply(429, TOO_MANY_REQUESTS, full_url, content_type="text/plain")
        for begin, end, retry_after in self._storms:
            if begin <= now < end:
                return "rate_limited", self._reply(429, TOO_MANY_REQUESTS, full_url, content_type="text/plain",
                                                   retry_after=self._retry_after(retry_after, end - now))
        if kind == "cookie":
            return "ok", self._reply(404, "<html>fc.yahoo.com</html>", full_url, content_type="text/html", set_cookie=True)
        if kind == "consent":
            if "collectConsent" in base:
                return "ok", self._reply(200, "<html>consent recorded</html>", full_url, content_type="text/html",
                                         set_cookie=True)
            return "ok", self._reply(200, CONSENT_PAGE, full_url, content_type="text/html")
        if kind == "crumb":
            if self._poisoned_crumbs:
                self._poisoned_crumbs -= 1
                return "poisoned", self._reply(200, TOO_MANY_REQUESTS, full_url, content_type="text/plain")
            return "ok", self._reply(200, f"fakeCrumb{next(self._crumbs)}", full_url, content_type="text/plain")
        if not chart:
            return "ok", self._reply(404, {"finance": {"result": None, "error": {"code": "Not Found", "description": "fake Yahoo serves charts only"}}}, full_url)
        if any(begin <= now < end for begin, end in self._blocks):
            return "blocked", self._reply(404, NOT_FOUND_BODY, full_url)
        if resend is not None and resend[0] == ticker:
            outcome = resend[1]  # yfinance's resend of a refused request: the same answer, and no third
            return outcome, self._answer(full_url, params, ticker, kind, outcome)
        outcome, per_request = self._next_fault(ticker)
        reply = self._answer(full_url, params, ticker, kind, outcome)
        return outcome, (reply if per_request else self._remember(client, ticker, outcome, reply))

    def _remember(self, client, ticker: str, outcome: str, reply: Reply) -> Reply:
        if reply.timeout or reply.status < 400:
            self._refused_chart.pop(client, None)
        else:
            self._refused_chart[client] = (ticker, outcome, reply.status)
        return reply

    def _next_fault(self, ticker: str) -> tuple[str, bool]:
        """The outcome of a new chart request of `ticker`, and whether its fault counts single requests."""
        for fault in self._faults.get(ticker, []):
            if fault.remaining is None:
                return fault.kind, fault.per_request
            if fault.remaining > 0:
                fault.remaining -= 1
                return fault.kind, fault.per_request
        return "ok", False

    def _over_rate_limit(self, now: float) -> bool:
        while self._recent and self._recent[0] <= now - 1.0:
            self._recent.popleft()
        if len(self._recent) >= self.rate_limit:
            return True
        self._recent.append(now)
        return False

    def _retry_after(self, retry_after, remaining: float) -> str | None:
        if retry_after is None:
            return None
        if retry_after == "date":
            return email.utils.format_datetime(self.wall_time().astimezone(dt.timezone.utc)
                                               + dt.timedelta(seconds=math.ceil(remaining)), usegmt=True)
        return str(int(retry_after))

    def _answer(self, full_url: str, params: dict, ticker: str, kind: str, outcome: str) -> Reply:
        if outcome == "rate_limited":
            return self._reply(429, TOO_MANY_REQUESTS, full_url, content_type="text/plain")
        if outcome == "timeout":
            return Reply(0, b"", [], full_url, timeout=True)
        if outcome == "not_found":
            return self._reply(404, NOT_FOUND_BODY, full_url)
        if outcome == "server_error":
            return self._reply(500, SERVER_ERROR_BODY, full_url)
        if outcome == "malformed":
            return self._reply(200, MALFORMED_BODY, full_url)
        if outcome == "empty":
            return self._reply(200, _empty_body(ticker), full_url)
        if kind == "tz_probe":
            return self._reply(200, self.probe_body(ticker), full_url)
        if ticker in self._fixed:
            status, body = self._fixed[ticker]
            return self._reply(status, body, full_url)
        if kind == "chart":
            return self._reply(200, self.chart_body(ticker, int(params["period1"]), int(params["period2"])), full_url)
        return self._reply(200, self.probe_body(ticker), full_url)

    def _reply(self, status: int, body: Any, url: str, *, content_type: str = "application/json;charset=utf-8",
               retry_after: str | None = None, set_cookie: bool = False) -> Reply:
        content = (body if isinstance(body, str) else json.dumps(body)).encode()
        headers = [("Content-Type", content_type), ("Date", email.utils.format_datetime(
            self.wall_time().astimezone(dt.timezone.utc).replace(microsecond=0), usegmt=True))]
        if retry_after is not None:
            headers.append(("Retry-After", retry_after))
        return Reply(status, content, headers, url, set_cookie=set_cookie)

    def timeout_exception(self, backend: str) -> type[BaseException]:
        if self._timeout_error is not None:
            return self._timeout_error
        if backend == "curl":
            from curl_cffi.requests.exceptions import Timeout

            return Timeout
        import requests

        return requests.exceptions.ReadTimeout

    # ------------------------------------------------------------------ the transport seams

    def curl_request_once(self):
        """A function to set as curl_cffi's `Session._request_once` (Yahoo's hosts only: see only_yahoo)."""
        fake = self

        def _request_once(session, method, url, params=None, data=None, *args, **kwargs):
            reply = fake.serve(method, url, params, client=threading.get_ident(), data=data,
                               timeout=kwargs.get("timeout"))
            return to_curl_response(session, reply, fake.timeout_exception("curl"))

        return _request_once

    def requests_request(self):
        """A function to set as `requests.Session.request` (yfinance's fallback backend)."""
        fake = self

        def request(session, method, url, params=None, data=None, *args, **kwargs):
            reply = fake.serve(method, url, params, client=threading.get_ident(), data=data,
                               timeout=kwargs.get("timeout"))
            return to_requests_response(session, reply, fake.timeout_exception("requests"))

        return request

    @contextlib.contextmanager
    def installed(self) -> Iterator["FakeYahoo"]:
        """Answer every HTTP request of this process to Yahoo for the block, starting from a cold process."""
        import requests
        from curl_cffi.requests import Session as CurlSession

        originals = (CurlSession.__dict__["_request_once"], requests.Session.__dict__["request"])
        CurlSession._request_once = only_yahoo(self.curl_request_once(), originals[0])
        requests.Session.request = only_yahoo(self.requests_request(), originals[1])
        cold_process()
        try:
            yield self
        finally:
            CurlSession._request_once, requests.Session.request = originals
            cold_process()


# ---------------------------------------------------------------------------------------------- adapters


def is_yahoo(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host == "yahoo.com" or host.endswith(".yahoo.com")


def only_yahoo(fake_send, real_send):
    """A send method that answers Yahoo's hosts with `fake_send` and anything else (a moto server, a local
    ASX list server) with the real one."""

    def send(session, method, url, *args, **kwargs):
        return (fake_send if is_yahoo(url) else real_send)(session, method, url, *args, **kwargs)

    return send



def yahoo_cookie() -> http.cookiejar.Cookie:
    expires = int(time.time()) + 365 * 86400
    return http.cookiejar.Cookie(0, "A3", "d=fake&S=fake", None, False, ".yahoo.com", True, True, "/", True, True,
                                 expires, False, None, None, {"HttpOnly": None, "SameSite": "None"})


def _jar(session):
    cookies = session.cookies
    return getattr(cookies, "jar", cookies)


def to_curl_response(session, reply: Reply, timeout_error: type[BaseException]):
    """The Reply as curl_cffi's Response; a cookie it sets goes into the session's jar, as libcurl's would."""
    from curl_cffi.requests.headers import Headers
    from curl_cffi.requests.models import Response

    if reply.timeout:
        raise timeout_error(f"fake Yahoo: operation timed out ({reply.url})")
    if reply.unreachable:
        raise curl_unreachable_error(reply.unreachable, reply.url)
    if reply.set_cookie:
        _jar(session).set_cookie(yahoo_cookie())
    response = Response()
    response.url = reply.url
    response.status_code = reply.status
    response.ok = 200 <= reply.status < 400
    response.reason = _REASONS.get(reply.status, "")
    response.content = reply.body
    response.headers = Headers(reply.headers)
    return response


def curl_unreachable_error(how: str, url: str) -> BaseException:
    """The exception curl_cffi raises when libcurl fails this way (its class from curl's code, its message
    in curl_cffi's words), as `Session._request_once` raises it."""
    from curl_cffi.requests.exceptions import code2error

    code, words = UNREACHABLE[how]
    message = (f"Failed to perform, curl: ({code}) {words.format(host=urlsplit(url).hostname)}. "
               "See https://curl.se/libcurl/c/libcurl-errors.html first for more details.")
    return code2error(code, message)(message, code)


def requests_unreachable_error(how: str, url: str) -> BaseException:
    """What requests raises for the same (yfinance's fallback backend): urllib3's connection error inside."""
    import requests
    from urllib3.exceptions import MaxRetryError, NameResolutionError, NewConnectionError

    host = urlsplit(url).hostname
    if how == "proxy":
        return requests.exceptions.ProxyError(f"Unable to connect to proxy for {host}")
    if how == "tls":
        return requests.exceptions.SSLError(f"[SSL: UNEXPECTED_EOF_WHILE_READING] EOF ({host})")
    reason = (NameResolutionError(host, None, OSError(-2, "Name or service not known")) if how == "dns"
              else NewConnectionError(None, f"Failed to establish a new connection: [Errno 111] Connection refused"))
    return requests.exceptions.ConnectionError(MaxRetryError(None, url, reason))


def to_requests_response(session, reply: Reply, timeout_error: type[BaseException]):
    import requests

    if reply.timeout:
        raise timeout_error(f"fake Yahoo: read timed out ({reply.url})")
    if reply.unreachable:
        raise requests_unreachable_error(reply.unreachable, reply.url)
    if reply.set_cookie:
        _jar(session).set_cookie(yahoo_cookie())
    response = requests.Response()
    response.status_code = reply.status
    response._content = reply.body
    response.encoding = "utf-8"
    for name, value in reply.headers:
        response.headers[name] = value
    response.url = reply.url
    response.reason = _REASONS.get(reply.status, "")
    return response


_REASONS = {200: "OK", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error"}


def cold_process() -> None:
    """As if the process had just started: yfinance's cookie, crumb and strategy forgotten (its persistent
    cookie cache is a file: the test's cache folder decides), stockstream's session new."""
    from stockstream_cli.sources import http as stockstream_http

    stockstream_http.reset_session()
    try:
        from yfinance.data import YfData
    except ImportError:  # pragma: no cover
        return
    data = YfData._instances.get(YfData)
    if data is not None:
        with data._cookie_lock:
            data._cookie = None
            data._crumb = None
            data._cookie_strategy = "basic"
            with contextlib.suppress(Exception):
                data._session.cookies.clear()


# ---------------------------------------------------------------------------------------------- helpers


def _seconds(timeout: Any) -> float:
    """A request's timeout in seconds: a number, the longer of a (connect, read) pair, else 30 (yfinance's)."""
    if isinstance(timeout, tuple):
        return max((_seconds(part) for part in timeout), default=30.0)
    return float(timeout) if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) else 30.0


def _date(value: dt.date | str) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(value)


def _day_of(timestamp: int) -> dt.date:
    return dt.datetime.fromtimestamp(timestamp, SYDNEY).date()


def _loggable(params: dict) -> dict:
    logged = dict(params)
    for name in ("period1", "period2"):
        if name in logged:
            with contextlib.suppress(TypeError, ValueError):
                logged[name] = int(logged[name])
    return logged


def _classify(url: str, params: dict) -> tuple[str, str]:
    from stockstream_cli.sources.http import request_kind

    kind = request_kind(url)
    if kind != "chart":
        return "", kind
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
    day_start = int(dt.datetime.combine(last_day, OPEN, tzinfo=SYDNEY).timestamp())
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
