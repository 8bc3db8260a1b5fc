"""Yahoo Finance through yfinance, behind one function: `fetch(symbol, start, end, timeout)`.

It returns the symbol's daily bars as a polars frame (before cleaning) or a `Failure` saying why not, with
one of the contract's reasons. yfinance is used the way the pipeline needs it:

- one chart request per symbol: yfinance asks Yahoo for a symbol's timezone (`range=1d`) before its first
  history call unless the timezone is in its sqlite cache, so `prepare()` points that cache at a writable
  folder and seeds `Australia/Sydney` for every `.AX` ticker before any request;
- exceptions on (`yf.config.debug.hide_exceptions = False`), so a failure is an exception we can classify
  instead of a log line and an empty frame; yfinance's own network retries off (ours are in fetch/batch.py);
- the chart request goes around yfinance's in-process response cache (`cache_get`), which would otherwise
  replay a failed answer to our retries, and its HTTP status is kept to tell a 404 from a 5xx;
- every HTTP request yfinance makes (cookie, crumb, consent, chart, resend) goes through stockstream's own
  session (sources/http.py): paced by the pacer fetch/batch.py binds, counted by kind; one session per process,
  so the cookie and crumb are fetched once per process. A crumb Yahoo answered with "Too Many Requests" is
  dropped after the call, so the next call asks for a new one instead of sending it on;
- a request that cannot connect at all (DNS, refused, TLS, a proxy: http.connection_failure) when Yahoo has
  not answered this process for a minute is an `unreachable` Failure: no retry heals that soon, so the
  batch stops there (fetch/batch.py) instead of trying every symbol; yfinance's own log lines about it
  ("Cookie/crumb fetch failed ... continuing without crumb") stay out of the terminal (shown with -v).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import tempfile
import threading
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING, Union

from ..reasons import ERROR, NO_DATA, NOT_FOUND, RATE_LIMITED, TIMEOUT, TRANSIENT
from ..values import SYDNEY, yahoo_ticker

if TYPE_CHECKING:
    import polars as pl

RAW_COLUMNS = ("date", "open", "high", "low", "close", "adjusted_close", "volume")
# the chart response's events, kept on the bars of their ex-dates (0: none): the dividend per share, and the
# split's ratio numerator/denominator (yfinance's "Dividends" and "Stock Splits")
ACTION_COLUMNS = {"dividend": "Dividends", "split": "Stock Splits"}
_NOT_FOUND_WORDS = ("delisted", "not found", "no data found")

_setup_lock = threading.Lock()
_YFINANCE_WARNINGS = ("ignore", None, Warning, re.compile(r"yfinance(\.|$)"), 0)  # as warnings.filters holds it
_configured_cache_dir: str | None = None
_seeded: set[tuple[str | None, str]] = set()  # (cache folder, ticker) seeded by this process


@dataclasses.dataclass(frozen=True)
class Failure:
    """Why a symbol has no bars: one of reasons.ALL, and what Yahoo or yfinance said."""

    reason: str
    detail: str = ""
    unreachable: bool = False  # Yahoo cannot be reached at all (reason ERROR): the caller stops, no retry

    @property
    def retryable(self) -> bool:
        return self.reason in TRANSIENT


FetchOutcome = Union["pl.DataFrame", Failure]


def default_cache_dir() -> str:
    """Where yfinance keeps its caches when STOCKSTREAM_CACHE_DIR is not set (under /tmp on Lambda)."""
    from ..settings import default_cache_dir as stockstream_cache_dir

    return os.path.join(stockstream_cache_dir(), "yfinance")


def prepare(codes: Iterable[str], cache_dir: str | None = None, *, allow_plain_requests: bool = False) -> None:
    """Configure yfinance once per process (and per cache folder) and seed the timezone of every symbol.

    Raises InputError when yfinance is not on curl_cffi, unless `allow_plain_requests`.
    """
    from . import http

    http.require_impersonation(allow_plain_requests)
    configure(cache_dir)
    seed_timezones(codes)


def silence_third_party_warnings() -> None:
    """yfinance's warnings, and pandas' deprecation warnings about how yfinance calls it (Pandas4Warning
    "inplace ..."), are for their authors, not our users: ignored, in this process (every process that
    fetches calls it, worker processes included). Once: filterwarnings removes and re-inserts its filter, and
    a warning raised by another thread's parse in between would slip through."""
    if _YFINANCE_WARNINGS in warnings.filters:
        return
    import sys

    import yfinance  # noqa: F401  (imports pandas, yfinance's dependency, not ours: found, not imported, here)

    pandas_errors = sys.modules.get("pandas.errors")
    changes = getattr(pandas_errors, "PandasChangeWarning", None)
    if changes is not None:
        warnings.filterwarnings("ignore", category=changes)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(pandas|yfinance)(\.|$)")
    warnings.filterwarnings("ignore", module=r"yfinance(\.|$)")


def _keep_yfinance_log_off_the_terminal() -> None:
    """yfinance logs its troubles as warnings ("Cookie/crumb fetch failed (DNSError), continuing without
    crumb", once per request); with no handler of its own, logging's last resort prints them on stderr. A
    NullHandler ends that; -v and --log-file (commands/output.py) add handlers that still show them."""
    import logging

    logger = logging.getLogger("yfinance")
    if not any(isinstance(handler, logging.NullHandler) for handler in logger.handlers):
        logger.addHandler(logging.NullHandler())


def configure(cache_dir: str | None = None) -> str:
    """Point yfinance's caches at `cache_dir` (created if needed), turn its exceptions on and retries off."""
    global _configured_cache_dir
    import yfinance as yf

    folder = _writable_folder(cache_dir or default_cache_dir())
    with _setup_lock:
        yf.config.debug.hide_exceptions = False
        yf.config.network.retries = 0
        silence_third_party_warnings()
        _keep_yfinance_log_off_the_terminal()
        if folder != _configured_cache_dir:
            yf.set_tz_cache_location(folder)
            _forget_open_caches()
            _configured_cache_dir = folder
    return folder


def seed_timezones(codes: Iterable[str]) -> int:
    """Store Australia/Sydney as the timezone of CODE.AX for each code not cached yet; returns how many."""
    from yfinance import cache

    tz_cache = cache.get_tz_cache()
    tickers = [ticker for ticker in map(yahoo_ticker, codes) if (_configured_cache_dir, ticker) not in _seeded]
    if not tickers:
        return 0
    seeded = 0
    with _setup_lock, _one_transaction(tz_cache, tickers[0]):  # one commit for the batch, not one per symbol
        for ticker in tickers:
            if tz_cache.lookup(ticker) != SYDNEY:
                tz_cache.store(ticker, SYDNEY)
                seeded += 1
    _seeded.update((_configured_cache_dir, ticker) for ticker in tickers)
    return seeded


def _one_transaction(tz_cache, first_ticker: str):
    """A transaction around many lookups and stores of yfinance's sqlite timezone cache, when it has one."""
    import contextlib

    tz_cache.lookup(first_ticker)  # opens the database (and creates its table) outside the transaction
    database = tz_cache.get_db() if hasattr(tz_cache, "get_db") and not getattr(tz_cache, "dummy", False) else None
    if database is None or not hasattr(database, "atomic"):
        return contextlib.nullcontext()
    try:
        # IMMEDIATE: take the write lock first, so another process seeding the same cache waits for it
        # (a read transaction that later writes would fail at once with "database is locked")
        return database.atomic("IMMEDIATE")
    except TypeError:
        return database.atomic()


def fetch(symbol: str, start: dt.date, end: dt.date, timeout: float = 30.0) -> FetchOutcome:
    """Daily bars of ASX `symbol` for the Sydney trading days start..end (both included), or a Failure.

    The frame has RAW_COLUMNS: `date` (the Sydney trading date), prices as float64 with nulls where Yahoo
    sent null, `volume` float64 (null-able); and the ACTION_COLUMNS Yahoo sent (float64, 0 for none). Nothing is dropped here: cleaning is schema.clean_bars's job.
    One call sends one chart request (after `prepare`); it never retries.
    """
    import yfinance as yf

    from . import http

    session = http.session()
    ticker = yf.Ticker(yahoo_ticker(symbol), session=session)
    recorder = _route_through_recorder(ticker)
    try:
        frame = ticker.history(
            start=start,
            end=end + dt.timedelta(days=1),
            interval="1d",
            auto_adjust=False,
            actions=True,  # events.dividends and events.splits of the same chart response: no extra request
            keepna=True,
            timeout=timeout,
        )
    except Exception as exc:  # noqa: BLE001 - every failure is classified, none escapes
        reached = session.answered_within(http.UNREACHED_AFTER_SECONDS)
        return classify_exception(exc, recorder.last_status if recorder else None, reached=reached)
    finally:
        _drop_poisoned_crumb()
    status = recorder.last_status if recorder else None
    if status is not None and status >= 400:
        return classify_status(status, "HTTP status with a parsable body")
    if frame is None or frame.empty:
        return Failure(NO_DATA, "no bars in the window")
    return to_polars(frame)


fetch.paced_per_request = True  # fetch/batch.py: the session paces each HTTP request, not fetch_symbol each call


def _drop_poisoned_crumb() -> None:
    """yfinance keeps a crumb whose body was "Too Many Requests" and sends it with every later request."""
    from yfinance.data import YfData

    from .http import POISONED_CRUMB

    data = YfData._instances.get(YfData) if hasattr(YfData, "_instances") else None
    crumb = getattr(data, "_crumb", None)
    if isinstance(crumb, str) and POISONED_CRUMB in crumb:
        with data._cookie_lock:
            if data._crumb == crumb:
                data._crumb = None


def to_polars(frame) -> "pl.DataFrame":
    """yfinance's frame (tz-aware index) -> RAW_COLUMNS, `date` being the trading date in Sydney."""
    import polars as pl

    index = frame.index.tz_convert(SYDNEY) if frame.index.tz is not None else frame.index.tz_localize(SYDNEY)
    sources = {"open": "Open", "high": "High", "low": "Low", "close": "Close",
               "adjusted_close": "Adj Close" if "Adj Close" in frame.columns else "Close", "volume": "Volume"}
    # This runs once per symbol on a handful of bars, where pandas' per-call overhead is the whole cost:
    # one conversion of the frame to an array (selecting columns first costs 30 times more), then columns.
    try:
        values = frame.to_numpy(dtype="float64", na_value=float("nan"))
    except (TypeError, ValueError):  # a column that is not numeric: convert the ones we need only
        values = frame[list(sources.values())].to_numpy(dtype="float64", na_value=float("nan"))
        positions = dict(zip(sources.values(), range(len(sources))))
    else:
        positions = {name: frame.columns.get_loc(name) for name in set(sources.values())}
    days = index.tz_localize(None).to_numpy().astype("datetime64[D]")
    actions = {name: source for name, source in ACTION_COLUMNS.items() if source in frame.columns}
    return pl.DataFrame([
        pl.Series("date", days, dtype=pl.Date),
        *(pl.Series(name, values[:, positions[source]], dtype=pl.Float64, nan_to_null=True)
          for name, source in sources.items()),
        *(pl.Series(name, frame[source].to_numpy(dtype="float64", na_value=float("nan")), dtype=pl.Float64,
                    nan_to_null=True) for name, source in actions.items()),
    ])


def classify_exception(exc: BaseException, status: int | None = None, *, reached: bool = True) -> Failure:
    """The contract's reason for what yfinance raised (status: the chart request's HTTP status, if any).
    reached: whether Yahoo answered lately; if not, a request that could not connect means Yahoo cannot be
    reached at all (Failure.unreachable)."""
    from yfinance.exceptions import YFDataException, YFRateLimitError, YFTickerMissingError

    from .http import connection_failure

    detail = f"{type(exc).__name__}: {exc}".strip()
    if isinstance(exc, YFRateLimitError):
        return Failure(RATE_LIMITED, detail)
    if status is not None and status >= 400:
        return classify_status(status, detail)
    if _is_timeout(exc):
        return Failure(TIMEOUT, detail)
    cause = connection_failure(exc)
    if cause is not None and not reached:
        return Failure(ERROR, cause, unreachable=True)
    if isinstance(exc, YFTickerMissingError):
        reason = getattr(exc, "yahoo_reason", None) or getattr(exc, "rationale", "") or ""
        if type(exc).__name__ == "YFTzMissingError" or any(word in reason.lower() for word in _NOT_FOUND_WORDS):
            return Failure(NOT_FOUND, detail)
        return Failure(NO_DATA, detail)
    if isinstance(exc, (ValueError, KeyError, TypeError, IndexError, YFDataException)):
        return Failure(ERROR, f"unusable response: {detail}")
    return Failure(ERROR, detail)


def classify_status(status: int, detail: str) -> Failure:
    if status == 429:
        return Failure(RATE_LIMITED, f"HTTP 429 ({detail})")
    if status == 404:
        return Failure(NOT_FOUND, f"HTTP 404: no such symbol or delisted ({detail})")
    return Failure(ERROR, f"HTTP {status} ({detail})")


def _is_timeout(exc: BaseException) -> bool:
    """requests', curl_cffi's and the standard library's timeouts (yfinance uses curl_cffi when it can)."""
    if isinstance(exc, TimeoutError):
        return True
    timeouts: list[type] = []
    try:
        import requests

        timeouts.append(requests.exceptions.Timeout)
    except ImportError:  # pragma: no cover
        pass
    try:
        from curl_cffi.requests.exceptions import Timeout as CurlTimeout

        timeouts.append(CurlTimeout)
    except ImportError:  # pragma: no cover
        pass
    return isinstance(exc, tuple(timeouts)) or type(exc).__name__ in {"Timeout", "ReadTimeout", "ConnectTimeout"}


class _StatusRecorder:
    """Stands in for yfinance's shared YfData inside one Ticker: no response cache, last status kept."""

    def __init__(self, data):
        self._data = data
        self.last_status: int | None = None

    def get(self, url, params=None, timeout=30):
        self.last_status = None
        response = self._data.get(url, params=params, timeout=timeout)
        self.last_status = getattr(response, "status_code", None)
        return response

    cache_get = get

    def __getattr__(self, name):
        return getattr(self._data, name)


def _route_through_recorder(ticker) -> _StatusRecorder | None:
    """Give the Ticker's price history a recorder; None if this yfinance has no such attribute."""
    if getattr(ticker, "_price_history", "missing") is not None or not hasattr(ticker, "_data"):
        return None
    recorder = _StatusRecorder(ticker._data)
    ticker._data = recorder
    return recorder


def _writable_folder(folder: str) -> str:
    """The folder, created; a temporary one when it cannot be (a read-only home, say)."""
    try:
        os.makedirs(folder, exist_ok=True)
        if os.access(folder, os.W_OK):
            return folder
    except OSError:
        pass
    fallback = os.path.join(tempfile.gettempdir(), "stockstream-yfinance")
    os.makedirs(fallback, exist_ok=True)
    return fallback


def _forget_open_caches() -> None:
    """yfinance opens its sqlite caches once; after a new location, make it open them again there."""
    from yfinance import cache

    for manager, attribute in (
        ("_TzCacheManager", "_tz_cache"),
        ("_CookieCacheManager", "_Cookie_cache"),
        ("_ISINCacheManager", "_isin_cache"),
    ):
        holder = getattr(cache, manager, None)
        if holder is not None and hasattr(holder, attribute):
            setattr(holder, attribute, None)
